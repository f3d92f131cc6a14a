// What a call needs from its phone leg (src/media/leg.ts does the work): SDP offers and answers,
// audio into and out of the channel mixer (joined at creation, left at close), DTMF both ways, statistics and the media timeout.
import type { Logger } from "../log.ts";
import type { ChannelMedia } from "../media/media-plane.ts";
import type { MediaEncryption } from "../media/sdp.ts";

export type AnswerOutcome =
  | { ok: true; sdp: string; codec: string }
  /** 400: the SDP does not parse; 488: nothing acceptable in it (warning for the Warning header). */
  | { ok: false; status: 400 | 488; reason: string; warning?: string };

export type ApplyOutcome = { ok: true; codec: string } | { ok: false; reason: string; warning?: string };

export interface CallMedia {
  /** Our offer: for a delayed-offer INVITE's 2xx, an early-offer INVITE, or a refresh. */
  offer(): string;
  /** Answers the peer's offer (initial or in a re-INVITE/UPDATE: hold, new address, new codec). */
  answer(offerSdp: string): AnswerOutcome;
  /** Applies the peer's answer to our last offer. */
  acceptAnswer(answerSdp: string): ApplyOutcome;
  /** Where the call's SIP signalling comes from: media from that address is accepted too (NAT), unless rtp.strictSource. */
  setSignallingAddress(address: string): void;
  /** Sends RFC 4733 events (in-band tones when the peer negotiated no telephone-event). */
  sendDtmf(digits: string): void;
  onDtmf(listener: (digit: string, durationMs: number) => void): void;
  /** No RTP for the configured time while media is expected. */
  onTimeout(listener: () => void): void;
  /** The leg's media is gone for good (its media worker died): the call cannot go on. */
  onLost(listener: (error: string) => void): void;
  /** Leaves its channel for `channel` (a move; between two ticks, or re-homed to the channel's media worker). Throws when `channel` refuses it. */
  moveTo(channel: ChannelMedia): void;
  stats(): Record<string, number>;
  close(): void;
}

/**
 * Creates the call's phone leg as participant `callId` of the channel's mixer (`mixer`: the channel's media, wherever it runs; RTP ports bound),
 * with the call's SRTP policy (mediaEncryption.ts); the leg logs through the call's `log`.
 */
export type MediaFactory = (o: { callId: string; mixer: ChannelMedia; encryption: MediaEncryption; log: Logger }) => Promise<CallMedia | { error: string }>;
