// CallMedia on the media plane's hosted phone leg (src/media/hosted-leg.ts): negotiation here,
// the media itself in the channel's media worker.
import { metrics } from "../metrics.ts";
import type { CodecName } from "../media/codec.ts";
import { HostedLeg } from "../media/hosted-leg.ts";
import type { SdpFailure } from "../media/leg.ts";
import type { ChannelMedia } from "../media/media-plane.ts";
import type { RtpPortAllocator } from "../media/ports.ts";
import { srtpDropTotals } from "../media/srtp.ts";
import { workerTotal } from "../media/worker-totals.ts";
import type { CallMedia, MediaFactory } from "./media.ts";

metrics.counter("trunkline_srtp_dropped_total", "SRTP/SRTCP packets dropped: failed authentication (auth) or replayed (replay).", ["reason"], () =>
  (["auth", "replay"] as const).map((reason) => ({ labels: { reason }, value: srtpDropTotals[reason] + workerTotal(reason === "auth" ? "srtpAuth" : "srtpReplay") })),
);

export interface PhoneLegMediaOptions {
  allocator: RtpPortAllocator;
  /** Address written into our SDP (c=, o=). */
  advertisedAddress: string;
  bindAddress?: string;
  codecPreferences?: readonly CodecName[];
  mediaTimeoutSec?: number;
  dtmfDurationMs?: number;
  strictSource?: boolean;
}

export function phoneLegMedia(o: PhoneLegMediaOptions): MediaFactory {
  return async ({ callId, mixer, encryption, log }) => {
    const leg = await HostedLeg.create({ ...o, channel: mixer, participantId: callId, encryption, log });
    return "error" in leg ? leg : new PhoneLegMedia(leg, o.advertisedAddress);
  };
}

class PhoneLegMedia implements CallMedia {
  constructor(
    private readonly leg: HostedLeg,
    private readonly host: string,
  ) {}

  offer(): string {
    return this.leg.offer();
  }

  answer(offerSdp: string) {
    const result = this.leg.answer(offerSdp);
    if (!result.ok) return this.failure(result);
    return { ok: true as const, sdp: result.sdp, codec: this.codec() };
  }

  acceptAnswer(answerSdp: string) {
    const result = this.leg.applyAnswer(answerSdp);
    if (!result.ok) return this.failure(result);
    return { ok: true as const, codec: this.codec() };
  }

  setSignallingAddress(address: string): void {
    this.leg.setSignallingAddress(address);
  }

  sendDtmf(digits: string): void {
    this.leg.sendDtmf(digits);
  }

  onDtmf(listener: (digit: string, durationMs: number) => void): void {
    this.leg.onDtmf = (event) => listener(event.digit, event.durationMs);
  }

  onTimeout(listener: () => void): void {
    this.leg.onTimeout = listener;
  }

  onLost(listener: (error: string) => void): void {
    this.leg.onLost = listener;
  }

  moveTo(channel: ChannelMedia): void {
    this.leg.moveTo(channel);
  }

  stats(): Record<string, number> {
    const s = this.leg.stats();
    return {
      ...(this.leg.srtp ? { srtp: 1, srtpAuthFailures: s.srtpAuthFailures, srtpReplays: s.srtpReplays } : {}),
      packetsSent: s.packetsSent,
      packetsReceived: s.packetsReceived,
      octetsSent: s.octetsSent,
      octetsReceived: s.octetsReceived,
      packetsLost: s.packetsLost,
      strangerPackets: s.strangerPackets,
      jitterMs: s.jitterMs,
      framesConcealed: s.framesConcealed,
      latePackets: s.latePackets,
      dtmfReceived: s.dtmfReceived,
      dtmfSent: s.dtmfSent,
    };
  }

  close(): void {
    this.leg.close();
  }

  private codec(): string {
    return this.leg.codec ?? "unknown";
  }

  private failure(f: SdpFailure) {
    // RFC 3261 §20.43: warn-code SP warn-agent SP warn-text.
    const warning = f.warning ? `${f.warning.code} ${this.host} "${f.warning.text.replace(/"/g, "'")}"` : undefined;
    return { ok: false as const, status: f.status, reason: f.reason, ...(warning ? { warning } : {}) };
  }
}
