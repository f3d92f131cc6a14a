// CallMedia on the media plane's PhoneLeg (src/media/leg.ts).
import { metrics } from "../metrics.ts";
import type { CodecName } from "../media/codec.ts";
import type { Mixer } from "../media/mixer.ts";
import { createPhoneLeg, type PhoneLeg, type SdpFailure } from "../media/leg.ts";
import type { RtpPortAllocator } from "../media/ports.ts";
import { srtpDropTotals } from "../media/srtp.ts";
import type { UdpIo } from "../media/udp-io.ts";
import type { CallMedia, MediaFactory } from "./media.ts";

metrics.counter("trunkline_srtp_dropped_total", "SRTP/SRTCP packets dropped: failed authentication (auth) or replayed (replay).", ["reason"], () =>
  (["auth", "replay"] as const).map((reason) => ({ labels: { reason }, value: srtpDropTotals[reason] })),
);

export interface PhoneLegMediaOptions {
  allocator: RtpPortAllocator;
  /** Address written into our SDP (c=, o=). */
  advertisedAddress: string;
  bindAddress?: string;
  /** Where the RTP sockets live (default: the main thread). */
  io?: UdpIo;
  codecPreferences?: readonly CodecName[];
  mediaTimeoutSec?: number;
  dtmfDurationMs?: number;
  strictSource?: boolean;
}

export function phoneLegMedia(o: PhoneLegMediaOptions): MediaFactory {
  return async ({ callId, mixer, encryption, log }) => {
    const leg = await createPhoneLeg({ ...o, mixer, participantId: callId, encryption, log });
    return "error" in leg ? leg : new PhoneLegMedia(leg, o.advertisedAddress);
  };
}

class PhoneLegMedia implements CallMedia {
  constructor(
    private readonly leg: PhoneLeg,
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

  moveTo(mixer: Mixer): void {
    this.leg.moveTo(mixer);
  }

  stats(): Record<string, number> {
    const { rtp, jitter, dtmfReceived, dtmfSent, srtp } = this.leg.stats();
    return {
      ...(srtp ? { srtp: 1, srtpAuthFailures: rtp.srtpAuthFailures, srtpReplays: rtp.srtpReplays } : {}),
      packetsSent: rtp.packetsSent,
      packetsReceived: rtp.packetsReceived,
      octetsSent: rtp.octetsSent,
      octetsReceived: rtp.octetsReceived,
      packetsLost: rtp.packetsLost,
      strangerPackets: rtp.strangerPackets,
      jitterMs: rtp.jitterMs,
      framesConcealed: jitter.lost,
      latePackets: jitter.late,
      dtmfReceived,
      dtmfSent,
    };
  }

  close(): void {
    this.leg.close();
  }

  private codec(): string {
    return this.leg.stats().codec ?? "unknown";
  }

  private failure(f: SdpFailure) {
    // RFC 3261 §20.43: warn-code SP warn-agent SP warn-text.
    const warning = f.warning ? `${f.warning.code} ${this.host} "${f.warning.text.replace(/"/g, "'")}"` : undefined;
    return { ok: false as const, status: f.status, reason: f.reason, ...(warning ? { warning } : {}) };
  }
}
