// A WebRTC client for tests and benchmarks: a werift peer that offers audio in one codec, sends a
// sine tone (or silence) as 20 ms RTP frames on a drift-free clock, and records what it hears,
// decoded at the codec's sample rate.
import { RTCPeerConnection, RTCRtpCodecParameters, RTP_EXTENSION_URI, RtpHeader, RtpPacket, useAudioLevelIndication, type RTCRtpTransceiver } from "werift";
import { codecByName, type Codec } from "../../src/media/codec.ts";
import { guardSockets } from "../../src/webrtc/peer.ts";

export type TestCodec = "opus" | "PCMU";

export interface TestClient {
  readonly codec: Codec;
  /** The offer with gathered host candidates on 127.0.0.1. */
  offer(): Promise<string>;
  accept(answerSdp: string): Promise<void>;
  connected(timeoutMs?: number): Promise<void>;
  /**
   * Starts sending: a tone at `freq` Hz, or digital silence when freq is 0. A client made with
   * audio levels tags each packet with its level (RFC 6464), measured like a browser, or `level`.
   */
  startSending(freq: number, amplitude?: number, level?: number): void;
  stopSending(): void;
  /** Everything heard since the last call, decoded (codec sample rate), and forgets it. */
  takeReceived(): Int16Array;
  readonly packetsReceived: number;
  /** RTP payload bytes received so far. */
  readonly bytesReceived: number;
  /** Sequence number and timestamp of the latest RTP packet received. */
  readonly lastReceived: { sequenceNumber: number; timestamp: number } | undefined;
  /** Date.now() when the latest frame was sent (undefined before the first). */
  readonly lastSentAt: number | undefined;
  close(): Promise<void>;
}

/** A werift peer that offers one audio codec with host candidates on 127.0.0.1 only. */
export interface OfferingPeer {
  readonly pc: RTCPeerConnection;
  readonly transceiver: RTCRtpTransceiver;
  offer(): Promise<string>;
  accept(answerSdp: string): Promise<void>;
  connected(timeoutMs?: number): Promise<void>;
  /** The RTP header extension carrying `level` (−dBov, RFC 6464), once the answer accepted audio levels. */
  audioLevelExtension(level: number): { id: number; payload: Buffer } | undefined;
}

export interface OfferingOptions {
  /** Offer RFC 6464 client-to-mixer audio levels, as browsers do. */
  audioLevels?: boolean;
}

/** −dBov (0–127) of a frame, as libwebrtc's RmsLevel measures what a browser sends (RFC 6464). */
export function audioLevelOf(pcm: Int16Array): number {
  let sum = 0;
  for (const v of pcm) sum += v * v;
  const meanSquare = sum / pcm.length / (32768 * 32768);
  return meanSquare <= 1e-127 ? 127 : Math.min(127, Math.max(0, Math.round(-10 * Math.log10(meanSquare))));
}

export function createOfferingPeer(codecName: TestCodec, o: OfferingOptions = {}): OfferingPeer {
  const parameters =
    codecName === "opus"
      ? new RTCRtpCodecParameters({ mimeType: "audio/opus", clockRate: 48000, channels: 2 })
      : new RTCRtpCodecParameters({ mimeType: "audio/PCMU", clockRate: 8000, payloadType: 0 });
  const pc = new RTCPeerConnection({
    codecs: { audio: [parameters] },
    headerExtensions: { audio: o.audioLevels ? [useAudioLevelIndication()] : [] },
    iceUseIpv4: false,
    iceUseIpv6: false,
    iceAdditionalHostAddresses: ["127.0.0.1"],
  });
  const transceiver = pc.addTransceiver("audio", { direction: "sendrecv" });
  return {
    pc,
    transceiver,
    async offer() {
      await pc.setLocalDescription(await pc.createOffer());
      if (pc.iceGatheringState !== "complete") await pc.iceGatheringStateChange.watch((s) => s === "complete", 10_000);
      guardSockets(pc);
      return pc.localDescription!.sdp;
    },
    async accept(answerSdp) {
      await pc.setRemoteDescription({ type: "answer", sdp: answerSdp });
    },
    async connected(timeoutMs = 10_000) {
      if (pc.connectionState !== "connected") await pc.connectionStateChange.watch((s) => s === "connected", timeoutMs);
    },
    audioLevelExtension(level) {
      const id = transceiver.headerExtensions.find((e) => e.uri === RTP_EXTENSION_URI.audioLevelIndication)?.id;
      // RFC 6464 §3: V (voice activity, unused here) then the level in 7 bits.
      return id === undefined ? undefined : { id, payload: Buffer.of(level & 0x7f) };
    },
  };
}

export function createTestClient(codecName: TestCodec, o: OfferingOptions = {}): TestClient {
  const codec = codecByName(codecName)!;
  const peer = createOfferingPeer(codecName, o);
  const { pc, transceiver } = peer;
  const decoder = codec.createDecoder();
  const encoder = codec.createEncoder();
  const frameSamples = (codec.sampleRate * 20) / 1000;
  const timestampStep = (codec.rtpClockRate * 20) / 1000;
  let heard: Int16Array[] = [];
  let packetsReceived = 0;
  let bytesReceived = 0;
  let lastReceived: { sequenceNumber: number; timestamp: number } | undefined;
  let lastSentAt: number | undefined;
  let timer: ReturnType<typeof setInterval> | undefined;

  transceiver.onTrack.subscribe((track) =>
    track.onReceiveRtp.subscribe((rtp) => {
      packetsReceived++;
      bytesReceived += rtp.payload.length;
      lastReceived = { sequenceNumber: rtp.header.sequenceNumber, timestamp: rtp.header.timestamp };
      heard.push(decoder.decode(rtp.payload));
    }),
  );

  return {
    codec,
    offer: peer.offer,
    accept: peer.accept,
    connected: peer.connected,
    startSending(freq, amplitude = 8000, level) {
      clearInterval(timer);
      let sequence = 0;
      let timestamp = 0;
      let phase = 0;
      const started = performance.now();
      let sent = 0;
      const sendFrame = () => {
        const pcm = new Int16Array(frameSamples);
        for (let i = 0; i < frameSamples; i++) {
          pcm[i] = Math.round(amplitude * Math.sin(phase));
          phase += (2 * Math.PI * freq) / codec.sampleRate;
        }
        phase %= 2 * Math.PI;
        const payload = encoder.encode(pcm);
        const levelExtension = o.audioLevels ? peer.audioLevelExtension(level ?? audioLevelOf(pcm)) : undefined;
        const header = new RtpHeader({ sequenceNumber: sequence, timestamp, marker: sequence === 0, ...(levelExtension ? { extensions: [levelExtension], extension: true } : {}) });
        sequence = (sequence + 1) & 0xffff;
        timestamp = (timestamp + timestampStep) >>> 0;
        transceiver.sender.sendRtp(new RtpPacket(header, Buffer.from(payload))).catch(() => {});
        lastSentAt = Date.now();
      };
      // Sends every frame that is due, so timer jitter never changes the sending rate.
      timer = setInterval(() => {
        const due = Math.floor((performance.now() - started) / 20);
        while (sent < due) {
          sendFrame();
          sent++;
        }
      }, 10);
    },
    stopSending() {
      clearInterval(timer);
      timer = undefined;
    },
    takeReceived() {
      const total = heard.reduce((n, a) => n + a.length, 0);
      const out = new Int16Array(total);
      let offset = 0;
      for (const chunk of heard) {
        out.set(chunk, offset);
        offset += chunk.length;
      }
      heard = [];
      return out;
    },
    get packetsReceived() {
      return packetsReceived;
    },
    get bytesReceived() {
      return bytesReceived;
    },
    get lastReceived() {
      return lastReceived;
    },
    get lastSentAt() {
      return lastSentAt;
    },
    async close() {
      clearInterval(timer);
      await pc.close();
    },
  };
}
