// A phone's media end for tests: sends a PCMU sine tone every 20 ms from its own socket (so the
// far end can latch to it) and records what it receives, decoded to 8 kHz PCM, so tests can ask
// "does this side hear a 440 Hz tone?" with Goertzel. Also what the kernel queues for a socket.
import { readFileSync } from "node:fs";
import { decodeUlaw, encodeUlaw } from "../../src/media/g711.ts";
import { goertzelPower, meanSquare } from "../../src/media/goertzel.ts";
import { parseRtp, serializeRtp } from "../../src/media/rtp-packet.ts";
import { concat } from "./audio.ts";

export interface RtpPeer {
  readonly port: number;
  /** Where to send (the SDP of the other side); sending starts with the first call. */
  sendTo(address: string, port: number): void;
  /** Sends one RFC 4733 event (payload type 101): three updates, then three end packets (§2.5.1.4). */
  sendDtmf(event: number): Promise<void>;
  /** Decoded PCM (8 kHz) of every PCMU packet received so far, in arrival order. */
  received(): Int16Array;
  readonly packetsReceived: number;
  /** Tone packets sent so far. */
  readonly packetsSent: number;
  /** RFC 4733 event codes received (payload type 101), each once per event in arrival order. */
  readonly dtmfEvents: number[];
  /**
   * Restarts of the received PCMU stream after its first packet: a new SSRC, a marker bit, or a
   * timestamp that does not follow the sequence number (160 per packet; a lost packet keeps it).
   */
  readonly streamRestarts: number;
  /** Share of the received signal's power at `freq` (0..1) over the last `ms` milliseconds (toneShareOf). */
  toneShare(freq: number, ms?: number): number;
  close(): void;
}

/**
 * `replyToSender`: start sending to wherever the first RTP packet comes from (symmetric RTP), for
 * when the test does not see the other side's SDP. `host`: the loopback address to bind
 * (default 127.0.0.1; "::1" for IPv6).
 */
export async function startRtpPeer(toneHz: number, o: { amplitude?: number; replyToSender?: boolean; host?: string } = {}): Promise<RtpPeer> {
  const amplitude = o.amplitude ?? 8000;
  const chunks: Int16Array[] = [];
  let packetsReceived = 0;
  let packetsSent = 0;
  let streamRestarts = 0;
  let last: { ssrc: number; sequenceNumber: number; timestamp: number } | undefined;
  let sending = false;
  const dtmfEvents: number[] = [];
  let lastEventTimestamp = -1;
  let target: { address: string; port: number } | undefined;
  const socket = await Bun.udpSocket({
    hostname: o.host ?? "127.0.0.1",
    socket: {
      data(_socket, data, port, address) {
        const packet = parseRtp(new Uint8Array(data));
        if (!packet) return;
        if (o.replyToSender && !sending) peer.sendTo(address, port);
        if (packet.payloadType === 101 && packet.timestamp !== lastEventTimestamp) {
          lastEventTimestamp = packet.timestamp;
          dtmfEvents.push(packet.payload[0]!);
        }
        if (packet.payloadType !== 0) return;
        if (last) {
          const packets = (packet.sequenceNumber - last.sequenceNumber) & 0xffff;
          const follows = packet.ssrc === last.ssrc && !packet.marker && ((packet.timestamp - last.timestamp) >>> 0) === (packets * 160) >>> 0;
          if (!follows) streamRestarts++;
        }
        last = { ssrc: packet.ssrc, sequenceNumber: packet.sequenceNumber, timestamp: packet.timestamp };
        packetsReceived++;
        chunks.push(decodeUlaw(packet.payload));
      },
      // ICMP port unreachable once the far end has closed its socket: expected at hang-up.
      error() {},
    },
  });
  let timer: ReturnType<typeof setInterval> | undefined;
  let seq = Math.floor(Math.random() * 60000);
  let timestamp = Math.floor(Math.random() * 1e9);
  let phase = 0;
  const ssrc = Math.floor(Math.random() * 0xffffffff);
  const frame = new Int16Array(160);
  const step = (2 * Math.PI * toneHz) / 8000;

  const peer: RtpPeer = {
    port: socket.port,
    sendTo(address, port) {
      sending = true;
      target = { address, port };
      if (timer) clearInterval(timer);
      // A phone's clock does not stall with our CPU: every frame due by now is sent, so a late
      // timer on a loaded machine means a burst (jitter), never fewer frames.
      const started = performance.now();
      let sent = 0;
      timer = setInterval(() => {
        const due = Math.floor((performance.now() - started) / 20) + 1;
        for (; sent < due; sent++) {
          for (let i = 0; i < frame.length; i++) {
            frame[i] = Math.round(amplitude * Math.sin(phase));
            phase += step;
          }
          try {
            socket.send(serializeRtp({ payloadType: 0, sequenceNumber: seq, timestamp, ssrc }, encodeUlaw(frame)), port, address);
            packetsSent++;
          } catch {
            // ECONNREFUSED: the far end closed and its ICMP came back; lost like any datagram.
          }
          seq = (seq + 1) & 0xffff;
          timestamp = (timestamp + 160) >>> 0;
        }
      }, 10);
    },
    async sendDtmf(event) {
      if (!target) throw new Error("sendDtmf before sendTo");
      const start = timestamp;
      for (let i = 1; i <= 6; i++) {
        const end = i > 3;
        const duration = Math.min(i, 4) * 160;
        const payload = new Uint8Array([event, (end ? 0x80 : 0) | 10, duration >> 8, duration & 0xff]);
        socket.send(serializeRtp({ payloadType: 101, sequenceNumber: seq, timestamp: start, ssrc, marker: i === 1 }, payload), target.port, target.address);
        seq = (seq + 1) & 0xffff;
        await Bun.sleep(20);
      }
    },
    received() {
      return concat(chunks);
    },
    get packetsReceived() {
      return packetsReceived;
    },
    get packetsSent() {
      return packetsSent;
    },
    dtmfEvents,
    get streamRestarts() {
      return streamRestarts;
    },
    toneShare(freq, ms = 1000) {
      const all = peer.received();
      return toneShareOf(all.subarray(Math.max(0, all.length - (ms * 8000) / 1000)), 8000, freq);
    },
    close() {
      if (timer) clearInterval(timer);
      socket.close();
    },
  };
  return peer;
}

/**
 * Share of the power of `pcm` at `freq` (0..1), summed over 20 ms blocks — one RTP frame each, as
 * `pcm` is whole 20 ms frames — so that a phase jump between frames (a concealed, dropped or late
 * frame) does not cancel the tone. (A 20 ms block still tells 440 Hz from 1000 Hz: a pure tone
 * puts under 0.1 % of its power in the other's bin.)
 */
export function toneShareOf(pcm: Int16Array, sampleRate: number, freq: number): number {
  const size = sampleRate / 50;
  let tone = 0;
  let total = 0;
  for (let at = 0; at + size <= pcm.length; at += size) {
    const block = pcm.subarray(at, at + size);
    tone += goertzelPower(block, sampleRate, freq);
    total += meanSquare(block);
  }
  return total === 0 ? 0 : tone / total;
}

/**
 * What the kernel holds for the IPv4 UDP socket bound to 127.0.0.1:`port`, read synchronously from
 * /proc/net/udp: bytes received and not yet read, and datagrams it dropped because they did not fit.
 * Lets a test pace a flood by the receiver's reading instead of by sleeps, and show none was lost.
 */
export function loopbackUdpQueue(port: number): { rxQueue: number; drops: number } {
  const local = `0100007F:${port.toString(16).toUpperCase().padStart(4, "0")}`;
  for (const line of readFileSync("/proc/net/udp", "utf8").split("\n")) {
    const f = line.trim().split(/\s+/);
    // sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode ref pointer drops
    if (f[1] === local) return { rxQueue: parseInt(f[4]!.split(":")[1]!, 16), drops: Number(f[12]) };
  }
  throw new Error(`no UDP socket on 127.0.0.1:${port} in /proc/net/udp`);
}
