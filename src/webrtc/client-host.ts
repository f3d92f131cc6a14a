// A WebRTC client on the media host of its channel (a media worker, or the main thread without
// workers): answers the client's offer (a werift peer, peer.ts) and puts it in the channel's mixer,
// wiring the two directions: the mixer pulls the client's audio from its jitter buffer each tick,
// and each mixed frame (N−1) is encoded for the client — identical mixes once per codec
// (participant.encode), silence as a constant Opus frame. A call-progress tone is added to this
// client's mix alone and encoded for it alone (tones.ts).
//
//   hostClientsHere(webrtcClientHandler);   // in each thread's composition root (media-engine.ts)
import type { ClientHandler, HostedClient } from "../media/media-engine.ts";
import type { Mixer, MixerParticipant } from "../media/mixer.ts";
import { ToneGenerator, ToneOverlay, type ToneCadence } from "../media/tones.ts";
import { answerClientOffer, type ClientPeer, type PeerNetworkOptions, type PeerTimeouts } from "./peer.ts";

/** What a join needs besides the offer (chosen on the main thread, from the config). */
export interface ClientJoinOptions {
  network: PeerNetworkOptions;
  timeouts: PeerTimeouts;
}

/**
 * One 20 ms Opus frame of silence (RFC 6716 §3.1 TOC 0xF8: CELT fullband, 20 ms, mono, one frame),
 * sent when nobody else is talking. Encoding all-zero input is libopus's slowest case here (measured
 * ~1.7× a speech frame), and a constant frame that decodes to silence needs no encoder at all.
 */
const OPUS_SILENCE = Uint8Array.of(0xf8, 0xff, 0xfe);

export const webrtcClientHandler: ClientHandler = {
  async answer(offer, options) {
    const { network, timeouts } = options as ClientJoinOptions;
    const answer = await answerClientOffer(offer, network, timeouts);
    if (!answer.ok) return answer;
    return { ok: true, sdp: answer.sdp, codec: answer.peer.sendCodec.name, client: new WebRtcClient(answer.peer) };
  },
};

class WebRtcClient implements HostedClient {
  onClosed: (reason: string) => void = () => {};
  private participant: MixerParticipant | undefined;
  private tone: ToneOverlay | undefined;

  constructor(private readonly peer: ClientPeer) {
    peer.onClosed = (reason) => {
      this.participant?.leave();
      this.onClosed(reason);
    };
  }

  attach(mixer: Mixer, participantId: string): void {
    const { peer } = this;
    const participant = mixer.join(
      participantId,
      (frame) => {
        if (!peer.isConnected) return;
        if (this.tone) {
          const payload = this.tone.encode(frame.pcm, frame.sampleRate);
          if (payload) return peer.sendEncoded(payload);
          this.tone = undefined;
        }
        const opusSilence = frame.silent && peer.sendCodec.name === "opus";
        peer.sendEncoded(opusSilence ? OPUS_SILENCE : participant.encode(frame, peer.sendCodec));
      },
      // The channel mixes at 48 kHz only while someone hears Opus; PCMU clients leave it at 8 kHz.
      { pull: () => peer.pull(), inputLevel: () => peer.inputLevel(), sampleRate: peer.sendCodec.sampleRate },
    );
    this.participant = participant;
  }

  playTone(tone: { cadence: ToneCadence; durationMs?: number } | undefined): void {
    this.tone = tone ? new ToneOverlay(new ToneGenerator(tone.cadence, tone.durationMs === undefined ? {} : { durationMs: tone.durationMs }), this.peer.sendCodec) : undefined;
  }

  close(): void {
    this.peer.close("closed");
  }
}
