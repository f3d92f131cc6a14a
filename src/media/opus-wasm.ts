// libopus compiled to WebAssembly (the module @evan/opus ships), instantiated once per thread, so
// each thread codes in memory of its own. @evan/opus's own entry point loads its native addon
// instead, whose result buffer is one per process: every thread (the main thread and each media
// worker) writes into it, and a result is copied out only after the call returns, so one thread's
// packet or PCM could be overwritten by another's in between (a WebRTC client then heard other
// audio of the process, its own voice among it). Its own WebAssembly loader reads the module from
// its install directory at run time, which a compiled executable does not carry; imported as a
// file here, the module travels inside the executable.
import { readFileSync } from "node:fs";
import simdModulePath from "@evan/opus/wasm/simd.wasm" with { type: "file" };

interface OpusExports {
  memory: WebAssembly.Memory;
  malloc(bytes: number): number;
  free(pointer: number): void;
  opus_strerror(code: number): number;
  opus_encoder_get_size(channels: number): number;
  opus_encoder_init(state: number, sampleRate: number, channels: number, application: number): number;
  opus_encoder_ctl_set(state: number, request: number, value: number): number;
  opus_encoder_ctl_get(state: number, request: number): number;
  opus_encode(state: number, pcm: number, frameSize: number, packet: number, maxPacketBytes: number): number;
  opus_decoder_get_size(channels: number): number;
  opus_decoder_init(state: number, sampleRate: number, channels: number): number;
  opus_decode(state: number, packet: number, packetBytes: number, pcm: number, maxFrameSize: number, decodeFec: number): number;
}

/** Room for one packet (RFC 6716 §3.4: at most 1275 bytes a frame) and for 120 ms of mono PCM at 48 kHz. */
const packetBytes = 2 ** 13;
const pcmBytes = 2 ** 15;
const maxFrameSize = pcmBytes / 2;

class OpusModule {
  readonly exports: OpusExports;
  readonly packet: number;
  readonly pcm: number;
  private bytes: Uint8Array;

  constructor() {
    const module = new WebAssembly.Module(readFileSync(simdModulePath));
    const instance = new WebAssembly.Instance(module, {
      wasi_snapshot_preview1: { fd_seek() {}, fd_write() {}, fd_close() {}, proc_exit() {} },
      env: { emscripten_notify_memory_growth: () => (this.bytes = new Uint8Array(this.exports.memory.buffer)) },
    });
    this.exports = instance.exports as unknown as OpusExports;
    this.packet = this.exports.malloc(packetBytes);
    this.pcm = this.exports.malloc(pcmBytes);
    this.bytes = new Uint8Array(this.exports.memory.buffer);
  }

  /** The memory as bytes (a new view after the memory grew). */
  get heap(): Uint8Array {
    return this.bytes;
  }

  /** `code` when it is not an error; throws libopus's message otherwise. */
  check(code: number): number {
    if (code >= 0) return code;
    const heap = this.heap;
    let message = "";
    for (let at = this.exports.opus_strerror(code); at < heap.length && heap[at] !== 0; at++) message += String.fromCharCode(heap[at] as number);
    throw new Error(`opus: ${message}`);
  }
}

let loaded: OpusModule | undefined;

/** This thread's instance, created on first use. */
function opusModule(): OpusModule {
  loaded ??= new OpusModule();
  return loaded;
}

/** Frees a coder's state when its owner is garbage-collected. */
const states = new FinalizationRegistry<number>((state) => opusModule().exports.free(state));

/** `bytes` of the module's memory for a coder's state, freed once `owner` is garbage-collected. */
function allocateState(m: OpusModule, bytes: number, owner: object): number {
  const state = m.exports.malloc(bytes);
  states.register(owner, state);
  return state;
}

/** A mono or stereo libopus encoder. */
export class WasmOpusEncoder {
  private readonly state: number;
  private readonly m = opusModule();

  /** `application`: an `OPUS_APPLICATION_*` of opus_defines.h. */
  constructor(
    sampleRate: number,
    private readonly channels: 1 | 2,
    application: number,
  ) {
    this.state = allocateState(this.m, this.m.exports.opus_encoder_get_size(channels), this);
    this.m.check(this.m.exports.opus_encoder_init(this.state, sampleRate, channels, application));
  }

  /** Sets an encoder CTL (opus_defines.h `OPUS_SET_*_REQUEST`). */
  set(request: number, value: number): void {
    this.m.check(this.m.exports.opus_encoder_ctl_set(this.state, request, value));
  }

  /** Reads an encoder CTL (opus_defines.h `OPUS_GET_*_REQUEST`). */
  get(request: number): number {
    return this.m.check(this.m.exports.opus_encoder_ctl_get(this.state, request));
  }

  /** One packet for one frame of 16-bit PCM (interleaved when stereo); a copy the caller owns. */
  encode(pcm: Int16Array): Uint8Array {
    const { m } = this;
    if (pcm.byteLength > pcmBytes) throw new Error(`opus: ${pcm.length} samples exceed one frame`);
    m.heap.set(new Uint8Array(pcm.buffer, pcm.byteOffset, pcm.byteLength), m.pcm);
    const length = m.check(m.exports.opus_encode(this.state, m.pcm, pcm.length / this.channels, m.packet, packetBytes));
    return m.heap.slice(m.packet, m.packet + length);
  }
}

/** A mono or stereo libopus decoder. */
export class WasmOpusDecoder {
  private readonly state: number;
  private readonly m = opusModule();

  constructor(
    sampleRate: number,
    private readonly channels: 1 | 2,
  ) {
    this.state = allocateState(this.m, this.m.exports.opus_decoder_get_size(channels), this);
    this.m.check(this.m.exports.opus_decoder_init(this.state, sampleRate, channels));
  }

  /**
   * The 16-bit PCM of one packet (interleaved when stereo), a copy the caller owns. A packet of
   * only a TOC byte is a lost frame the decoder conceals (RFC 6716 §3.2.1).
   */
  decode(packet: Uint8Array): Int16Array {
    const { m } = this;
    // A peer's datagram can be far longer than any Opus packet: copied whole it would overwrite the
    // PCM scratch and other coders' state in this thread's memory.
    if (packet.length > packetBytes) throw new Error(`opus: a ${packet.length}-byte packet exceeds ${packetBytes} bytes`);
    m.heap.set(packet, m.packet);
    const samples = m.check(m.exports.opus_decode(this.state, m.packet, packet.length, m.pcm, maxFrameSize / this.channels, 0));
    const bytes = m.heap.slice(m.pcm, m.pcm + samples * this.channels * 2);
    return new Int16Array(bytes.buffer);
  }
}
