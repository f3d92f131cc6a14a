// One WebRTC client's media connection: a werift RTCPeerConnection answering the client's offer,
// audio only (Opus preferred, PCMU accepted), ICE host candidates on the configured addresses.
// The peer takes the client's RTP straight from werift's ICE sockets and SRTP session
// (direct-rtp.ts), buffers it in a jitter buffer and hands out 20 ms frames of PCM at the
// codec's rate on the mixer's clock (`pull`; the mixer converts rates), and sends whatever encoded
// frames it is given (`sendEncoded`), with its own sequence numbers and timestamps, straight onto
// werift's SRTP session and ICE connection (direct-rtp.ts).
// It reports its own death (`onClosed`): ICE/DTLS failure, no connection in time, or no media.
import { isIPv4, isIPv6 } from "node:net";
import {
  RTCPeerConnection,
  RTCRtpCodecParameters,
  useAudioLevelIndication,
  type RTCRtpTransceiver,
} from "werift";
import { codecByName, type AudioDecoder, type Codec } from "../media/codec.ts";
import { JitterBuffer, type JitterPop } from "../media/jitter.ts";
import type { ParsedRtp } from "../media/rtp-packet.ts";
import { createLogger } from "../log.ts";
import { DirectRtpSender, receiveRtpDirectly } from "./direct-rtp.ts";

export interface PeerNetworkOptions {
  /** ICE host candidate addresses; empty means every interface address, loopback included. */
  hostAddresses: string[];
  /** A public (1:1 NAT) address, offered as one more host candidate (its own socket and port: the NAT must forward it). */
  publicAddress?: string;
  /** UDP port range for ICE sockets (forward it on the NAT when publicAddress is used). */
  portRange?: [number, number];
  /** STUN/TURN servers, for when a plain host candidate cannot be reached. */
  iceServers?: { urls: string[]; username?: string; credential?: string }[];
}

export interface PeerTimeouts {
  /** ICE + DTLS must complete within this after the answer. */
  connectMs: number;
  /** Nothing from the client (no RTP, no RTCP) for this long once connected: the client is gone. */
  mediaMs: number;
}

export type PeerCloseReason = "ice-failed" | "connect-timeout" | "media-timeout" | "closed";

export type AnswerResult = { ok: true; peer: ClientPeer; sdp: string } | { ok: false; message: string };

const log = createLogger("webrtc");
const GATHER_TIMEOUT_MS = 3000;

/** The codecs we accept, in our order of preference. */
function localCodecs(): RTCRtpCodecParameters[] {
  return [
    new RTCRtpCodecParameters({ mimeType: "audio/opus", clockRate: 48000, channels: 2 }),
    new RTCRtpCodecParameters({ mimeType: "audio/PCMU", clockRate: 8000, payloadType: 0 }),
  ];
}

/** Answers a client's offer. On any failure everything opened so far is closed again. */
export async function answerClientOffer(offerSdp: string, network: PeerNetworkOptions, timeouts: PeerTimeouts): Promise<AnswerResult> {
  const problem = offerProblem(offerSdp);
  if (problem) return { ok: false, message: problem };
  const auto = network.hostAddresses.length === 0;
  const pc = new RTCPeerConnection({
    // Each socket is bound to the address its host candidate names (RFC 8445 §5.1.1.1): on the
    // wildcard address the kernel picks the source of our answers by route, so a node advertising
    // 127.0.0.4 answered a browser from 127.0.0.1 (or its LAN address), and the browser selected a
    // peer-reflexive pair on an address we never offered instead of the host candidate.
    ...(auto ? {} : { iceInterfaceAddresses: interfaceAddresses(network.hostAddresses) }),
    codecs: { audio: localCodecs() },
    // RFC 6464 levels of the client's audio (browsers send them when the answer accepts them): the
    // mixer ranks talkers by them and decodes only the ones it mixes. The only extension the answer
    // accepts, so the packets we send carry none (DirectRtpSender writes none).
    headerExtensions: { audio: [useAudioLevelIndication()] },
    // Gather only on the addresses we were given; werift's own interface scan is turned off then.
    iceUseIpv4: auto,
    iceUseIpv6: false,
    iceAdditionalHostAddresses: [...(auto ? ["127.0.0.1"] : network.hostAddresses), ...(network.publicAddress ? [network.publicAddress] : [])],
    icePortRange: network.portRange,
    iceServers: network.iceServers ?? [],
    bundlePolicy: "max-bundle",
  });
  try {
    await pc.setRemoteDescription({ type: "offer", sdp: offerSdp });
    const audio = pc.getTransceivers().filter((t) => t.kind === "audio");
    const transceiver = audio[0];
    if (!transceiver || audio.length !== 1 || pc.getTransceivers().length !== 1)
      throw new OfferError("the offer must have exactly one audio section and nothing else");
    const accepted = transceiver.codecs.filter((c) => codecOf(c) !== undefined);
    if (accepted.length === 0) throw new OfferError("the offer has neither Opus nor PCMU");
    transceiver.setCodecPreferences(preferOpus(accepted));
    transceiver.setDirection("sendrecv");
    await pc.setLocalDescription(await pc.createAnswer());
    await gathered(pc);
    guardSockets(pc);
    const opusPayloadType = transceiver.codecs.find((c) => c.name.toLowerCase() === "opus")?.payloadType;
    const sdp = pc.localDescription && withOpusDtx(pc.localDescription.sdp, opusPayloadType);
    const sendCodec = transceiver.sender.codec ?? transceiver.codecs[0];
    if (!sdp || !sendCodec) throw new OfferError("no answer could be negotiated");
    const codec = codecOf(sendCodec);
    if (!codec) throw new OfferError("the negotiated codec is neither Opus nor PCMU");
    return { ok: true, peer: new ClientPeer(pc, transceiver, codec, sendCodec.payloadType, timeouts), sdp };
  } catch (error) {
    await pc.close().catch(() => {});
    const message = error instanceof OfferError ? error.message : `the offer was not accepted: ${errorText(error)}`;
    return { ok: false, message };
  }
}

class OfferError extends Error {}

/** The address each socket family binds to: the first host address of that family. */
function interfaceAddresses(hostAddresses: string[]): { udp4?: string; udp6?: string } {
  const udp4 = hostAddresses.find((a) => isIPv4(a));
  const udp6 = hostAddresses.find((a) => isIPv6(a));
  return { ...(udp4 ? { udp4 } : {}), ...(udp6 ? { udp6 } : {}) };
}

export class ClientPeer {
  /** Called once when the peer is gone, whatever the cause. */
  onClosed: (reason: PeerCloseReason) => void = () => {};
  /** The codec our side sends (Opus or PCMU); the client may send either of the negotiated ones. */
  readonly sendCodec: Codec;

  private closed = false;
  private connected = false;
  private lastHeardAt = 0;
  private readonly createdAt = Date.now();
  private readonly watchdog: ReturnType<typeof setInterval>;
  private sequence = Math.floor(Math.random() * 0x10000);
  private timestamp = Math.floor(Math.random() * 0x1_0000_0000);
  private readonly samplesPerFrame: number;
  private readonly codecsByPayloadType = new Map<number, Codec>();
  private receiver: ClientAudioReceiver | undefined;
  private readonly rtpSender: DirectRtpSender;

  constructor(
    private readonly pc: RTCPeerConnection,
    transceiver: RTCRtpTransceiver,
    codec: Codec,
    sendPayloadType: number,
    private readonly timeouts: PeerTimeouts,
  ) {
    this.sendCodec = codec;
    this.rtpSender = new DirectRtpSender(transceiver.sender, sendPayloadType);
    this.samplesPerFrame = (codec.rtpClockRate * 20) / 1000;
    for (const c of transceiver.codecs) {
      const known = codecOf(c);
      if (known) this.codecsByPayloadType.set(c.payloadType, known);
    }
    receiveRtpDirectly(transceiver, (rtp, level) => this.receive(rtp, level));
    // RTCP shows the client is there even when it sends no audio (receive-only, or not yet talking):
    // its receiver reports on our stream, its sender reports on its own (RFC 3550 §6).
    const alive = (): void => void (this.lastHeardAt = Date.now());
    transceiver.sender.onRtcp.subscribe(alive);
    transceiver.receiver.onRtcp.subscribe(alive);
    pc.connectionStateChange.subscribe((state) => {
      if (state === "connected") {
        this.connected = true;
        this.lastHeardAt = Date.now();
      } else if (state === "failed") this.close("ice-failed");
      else if (state === "closed") this.close("closed");
    });
    // A browser closing its RTCPeerConnection sends a DTLS close_notify alert (RFC 5246 §7.2.1).
    for (const dtls of pc.dtlsTransports) dtls.onStateChange.subscribe((state) => state === "closed" && this.close("closed"));
    this.watchdog = setInterval(() => this.checkLiveness(), 500);
  }

  /** Sends one encoded 20 ms frame; silently dropped until the connection is up. */
  sendEncoded(payload: Uint8Array): void {
    if (this.closed || !this.connected) return;
    this.sequence = (this.sequence + 1) & 0xffff;
    this.timestamp = (this.timestamp + this.samplesPerFrame) >>> 0;
    this.rtpSender.send(payload, this.sequence, this.timestamp);
  }

  close(reason: PeerCloseReason = "closed"): void {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.watchdog);
    this.pc.close().catch((error: unknown) => log.warn("closing peer connection failed", { error: errorText(error) }));
    this.onClosed(reason);
  }

  get isConnected(): boolean {
    return this.connected && !this.closed;
  }

  /** The mixer's pull: the client's next 20 ms at its codec's rate, or undefined when it is silent. */
  pull(): Int16Array | undefined {
    return this.receiver?.pull();
  }

  /** The mixer's inputLevel: the energy of the client's next 20 ms from its RFC 6464 level, if it sent one. */
  inputLevel(): number | undefined {
    return this.receiver?.takeLevel();
  }

  private receive(rtp: ParsedRtp, level: number | undefined): void {
    if (this.closed) return;
    const now = Date.now();
    this.lastHeardAt = now;
    const { payloadType } = rtp;
    if (this.receiver?.payloadType !== payloadType) {
      // A client may switch between the negotiated codecs; each switch starts a fresh decoder.
      const codec = this.codecsByPayloadType.get(payloadType);
      if (!codec) return;
      this.receiver = new ClientAudioReceiver(payloadType, codec);
    }
    this.receiver.push(rtp, now, level);
  }

  private checkLiveness(): void {
    const now = Date.now();
    if (!this.connected) {
      if (now - this.createdAt > this.timeouts.connectMs) this.close("connect-timeout");
    } else if (now - this.lastHeardAt > this.timeouts.mediaMs) this.close("media-timeout");
  }
}

/** How many packets back a level is remembered (a power of two; the jitter buffer holds at most 400 ms). */
const levelSlots = 64;
/** takeLevel() took no frame for pull(). */
const nothingTaken = Symbol("nothing taken");

/**
 * One payload type's incoming audio: jitter buffer, decoding with loss concealment, 20 ms frames.
 * Each packet's RFC 6464 level, when the client sends one, is kept beside the jitter buffer by
 * sequence number, so the mixer can judge a frame by it before deciding to decode it.
 */
class ClientAudioReceiver {
  private readonly decoder: AudioDecoder;
  private readonly jitter: JitterBuffer;
  private readonly frameSamples: number;
  private readonly packetTimestampUnits: number;
  private pending: Int16Array = new Int16Array(0);
  /** −dBov (0–127) of the packet with sequence number `levelSequence[i]`, by sequence number modulo levelSlots. */
  private readonly levels = new Uint8Array(levelSlots);
  private readonly levelSequence = new Int32Array(levelSlots).fill(-1);
  /** The frame takeLevel() popped for the next pull(). */
  private taken: JitterPop | typeof nothingTaken = nothingTaken;

  constructor(
    readonly payloadType: number,
    private readonly codec: Codec,
  ) {
    this.decoder = codec.createDecoder();
    this.jitter = new JitterBuffer({ clockRate: codec.rtpClockRate });
    this.frameSamples = (codec.sampleRate * 20) / 1000;
    this.packetTimestampUnits = (codec.rtpClockRate * 20) / 1000;
  }

  push(rtp: ParsedRtp, arrivalMs: number, level: number | undefined): void {
    const sequence = rtp.sequenceNumber;
    const slot = sequence & (levelSlots - 1);
    if (level === undefined) this.levelSequence[slot] = -1;
    else {
      this.levels[slot] = level;
      this.levelSequence[slot] = sequence;
    }
    this.jitter.pushFrom(sequence, rtp.timestamp, rtp.data, rtp.payloadOffset, rtp.payloadLength, arrivalMs);
  }

  /**
   * Takes the next 20 ms packet and answers its energy from its sender's level, leaving it for
   * pull() to decode; undefined when there is no such packet with a level (a loss, a gap, a client
   * sending no levels, packets of another length): pull() then works as usual.
   */
  takeLevel(): number | undefined {
    this.taken = nothingTaken;
    if (this.pending.length > 0 || this.jitter.frameTimestampUnits !== this.packetTimestampUnits) return undefined;
    const frame = this.jitter.pop();
    this.taken = frame;
    if (frame === undefined || frame === "lost") return undefined;
    const slot = frame.seq & (levelSlots - 1);
    if (this.levelSequence[slot] !== frame.seq) return undefined;
    return energyOfLevel(this.levels[slot] as number);
  }

  pull(): Int16Array | undefined {
    let pcm = this.pending;
    let taken = this.taken;
    this.taken = nothingTaken;
    while (pcm.length < this.frameSamples) {
      const frame = taken === nothingTaken ? this.jitter.pop() : taken;
      taken = nothingTaken;
      if (frame === undefined) break;
      const lostSamples = Math.round((this.jitter.frameTimestampUnits * this.codec.sampleRate) / this.codec.rtpClockRate);
      const decoded = frame === "lost" ? this.decoder.conceal(lostSamples) : this.decoder.decode(frame.payload);
      pcm = pcm.length === 0 ? decoded : joinPcm(pcm, decoded);
    }
    if (pcm.length < this.frameSamples) {
      this.pending = pcm;
      return undefined;
    }
    this.pending = pcm.subarray(this.frameSamples);
    return pcm.subarray(0, this.frameSamples);
  }
}

/**
 * Mean square (16-bit scale) of audio at `level` −dBov (RFC 6464 §3), as browsers measure it
 * (libwebrtc's RmsLevel: 10·log10 of the mean square relative to a full-scale 32768²).
 */
function energyOfLevel(level: number): number {
  return 32768 * 32768 * 10 ** (-level / 10);
}

function joinPcm(a: Int16Array, b: Int16Array): Int16Array {
  const out = new Int16Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

/**
 * Asks the client to use Opus DTX towards us (RFC 7587 §6.1 usedtx=1): a silent browser then sends
 * one packet per 400 ms instead of fifty per second, so quiet participants cost next to nothing
 * to receive and decode. The parameter describes our receiving side only.
 */
function withOpusDtx(sdp: string, payloadType: number | undefined): string {
  if (payloadType === undefined) return sdp;
  const fmtp = new RegExp(`^a=fmtp:${payloadType} ([^\\r\\n]*)`, "m");
  const params = fmtp.exec(sdp)?.[1];
  if (params === undefined) return sdp.replace(new RegExp(`^a=rtpmap:${payloadType} [^\\r\\n]*`, "m"), (line) => `${line}\r\na=fmtp:${payloadType} usedtx=1`);
  const kept = params.split(";").filter((p) => p.trim() !== "" && !/^\s*usedtx=/.test(p));
  return sdp.replace(fmtp, `a=fmtp:${payloadType} ${[...kept, "usedtx=1"].join(";")}`);
}

/** What makes an offer unusable for WebRTC before werift sees it (RFC 8829 §5.8 requirements, briefly). */
function offerProblem(sdp: string): string | undefined {
  if (!/^v=0\r?\n/.test(sdp)) return "sdp must be an SDP offer (starting with v=0)";
  if (!/^m=audio \d+ UDP\/TLS\/RTP\/SAVPF /m.test(sdp)) return "the offer needs an m=audio section with UDP/TLS/RTP/SAVPF";
  for (const attribute of ["ice-ufrag", "ice-pwd", "fingerprint"])
    if (!new RegExp(`^a=${attribute}:\\S`, "m").test(sdp)) return `the offer has no a=${attribute}`;
  return undefined;
}

function codecOf(parameters: RTCRtpCodecParameters): Codec | undefined {
  const name = parameters.name.toLowerCase();
  if (name === "opus" && parameters.clockRate === 48000) return codecByName("opus");
  if (name === "pcmu" && parameters.clockRate === 8000) return codecByName("PCMU");
  return undefined;
}

function preferOpus(codecs: RTCRtpCodecParameters[]): RTCRtpCodecParameters[] {
  const isOpus = (c: RTCRtpCodecParameters) => c.name.toLowerCase() === "opus";
  return [...codecs.filter(isOpus), ...codecs.filter((c) => !isOpus(c))];
}

function gathered(pc: RTCPeerConnection): Promise<void> {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(done, GATHER_TIMEOUT_MS);
    const { unSubscribe } = pc.iceGatheringStateChange.subscribe((state) => state === "complete" && done());
    function done() {
      clearTimeout(timer);
      unSubscribe();
      resolve();
    }
  });
}

/**
 * werift's UDP sockets have no 'error' listener, and an unhandled socket error (Bun reports ICMP
 * port-unreachable from a vanished peer as one) would end the process. Each socket gets a listener.
 */
export function guardSockets(pc: RTCPeerConnection): void {
  for (const transport of pc.iceTransports) {
    const protocols = (transport.connection as unknown as { protocols?: { transport?: { socket?: unknown } }[] }).protocols ?? [];
    for (const protocol of protocols) {
      const socket = protocol.transport?.socket as { on?: (event: "error", listener: (error: Error) => void) => void } | undefined;
      socket?.on?.("error", (error) => log.debug("ICE socket error", { error: error.message }));
    }
  }
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
