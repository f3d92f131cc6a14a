import { describe, expect, test } from "bun:test";
import { JitterBuffer, type JitterPop } from "../../src/media/jitter.ts";

const FRAME = 160; // 20 ms at 8 kHz

function payloadFor(seq: number): Uint8Array {
  return new Uint8Array([seq & 0xff, (seq >> 8) & 0xff]);
}

/** Plays `ticks` 20 ms frames; `deliver(t)` lists the seqs arriving just before tick t. */
function run(jb: JitterBuffer, ticks: number, deliver: (tick: number) => number[], tsOf = (seq: number) => seq * FRAME): JitterPop[] {
  const out: JitterPop[] = [];
  for (let t = 0; t < ticks; t++) {
    for (const seq of deliver(t)) jb.push(seq & 0xffff, tsOf(seq) >>> 0, payloadFor(seq), t * 20);
    out.push(jb.pop());
  }
  return out;
}

function seqs(pops: JitterPop[]): (number | "lost")[] {
  return pops.filter((p) => p !== undefined).map((p) => (p === "lost" ? "lost" : p!.seq));
}

/** Pops six frames: each played payload holds its packet's sequence number in all four bytes. */
function expectPlayedInOrder(jb: JitterBuffer): void {
  const played: number[][] = [];
  for (let t = 0; t < 6; t++) {
    const frame = jb.pop();
    // A frame's payload is valid until the next pop: read it now.
    if (frame && frame !== "lost") played.push([...frame.payload]);
  }
  expect(played.length).toBeGreaterThan(2);
  for (const [k, payload] of played.entries()) expect(payload).toEqual(new Array(4).fill(k));
}

describe("JitterBuffer", () => {
  test("in-order stream plays every frame in order after the initial fill", () => {
    const jb = new JitterBuffer({ clockRate: 8000 });
    const out = seqs(run(jb, 60, (t) => (t < 50 ? [1000 + t] : [])));
    expect(out.slice(0, 48)).toEqual(Array.from({ length: 48 }, (_, i) => 1000 + i));
    expect(jb.stats()).toMatchObject({ received: 50, late: 0, duplicates: 0 });
  });

  test("push copies the payload: the caller may reuse its buffer (a socket's receive buffer)", () => {
    const jb = new JitterBuffer({ clockRate: 8000 });
    const datagram = new Uint8Array(4);
    for (let seq = 0; seq < 6; seq++) {
      datagram.fill(seq);
      jb.push(seq, seq * FRAME, datagram, seq * 20);
    }
    datagram.fill(0xee);
    expectPlayedInOrder(jb);
  });

  test("pushFrom copies the payload at its offset in a datagram, and only those bytes", () => {
    const jb = new JitterBuffer({ clockRate: 8000 });
    const datagram = new Uint8Array(12 + 4 + 2);
    for (let seq = 0; seq < 6; seq++) {
      datagram.fill(0xaa);
      datagram.fill(seq, 12, 16);
      jb.pushFrom(seq, seq * FRAME, datagram, 12, 4, seq * 20);
    }
    datagram.fill(0xee);
    expectPlayedInOrder(jb);
  });

  test("reordered packets come out in sequence order", () => {
    const jb = new JitterBuffer({ clockRate: 8000, minDelayMs: 60 });
    const order = [0, 2, 1, 3, 5, 4, 6, 8, 7, 9, 11, 10, 12, 13, 14, 15];
    const out = seqs(run(jb, 24, (t) => (t < order.length ? [order[t]!] : [])));
    expect(out.filter((s) => s !== "lost").slice(0, 14)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13]);
    expect(out.slice(0, 14)).not.toContain("lost");
  });

  test("duplicates are dropped and counted, before and after playout", () => {
    const jb = new JitterBuffer({ clockRate: 8000 });
    const out = seqs(run(jb, 30, (t) => (t < 20 ? [t, t] : t === 25 ? [3] : [])));
    expect(out.filter((s) => s !== "lost").slice(0, 18)).toEqual(Array.from({ length: 18 }, (_, i) => i));
    expect(jb.stats().duplicates).toBe(21);
  });

  test("a lost packet yields exactly one 'lost' in its place", () => {
    const jb = new JitterBuffer({ clockRate: 8000 });
    const out = seqs(run(jb, 30, (t) => (t < 25 && t !== 10 ? [t] : [])));
    expect(out.slice(0, 20)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, "lost", 11, 12, 13, 14, 15, 16, 17, 18, 19]);
    expect(jb.stats().lost).toBeGreaterThanOrEqual(1);
  });

  test("a late packet after its playout time is discarded as late", () => {
    const jb = new JitterBuffer({ clockRate: 8000 });
    run(jb, 30, (t) => (t < 25 && t !== 10 ? [t] : t === 25 ? [10] : []));
    expect(jb.stats().late).toBe(1);
  });

  test("sequence wrap-around keeps order", () => {
    const jb = new JitterBuffer({ clockRate: 8000 });
    const out = seqs(run(jb, 12, (t) => [65530 + t]));
    expect(out.slice(0, 9)).toEqual([65530, 65531, 65532, 65533, 65534, 65535, 0, 1, 2]);
  });

  test("timestamp jump (silence suppression) does not stall or drop frames", () => {
    const jb = new JitterBuffer({ clockRate: 8000 });
    const out = seqs(run(jb, 40, (t) => (t < 30 ? [t] : []), (seq) => (seq < 15 ? seq * FRAME : seq * FRAME + 8000 * 90)));
    expect(out.slice(0, 28)).toEqual(Array.from({ length: 28 }, (_, i) => i));
    expect(jb.stats().jitterMs).toBeLessThan(1);
  });

  test("a huge sequence jump restarts the buffer and playback resumes", () => {
    const jb = new JitterBuffer({ clockRate: 8000 });
    const out = seqs(run(jb, 40, (t) => (t < 15 ? [t] : [30000 + t])));
    expect(out).toContain(30000 + 20);
    expect(jb.stats().resets).toBe(1);
  });

  test("jittery arrival raises the target delay; a silent stream goes idle", () => {
    const jb = new JitterBuffer({ clockRate: 8000 });
    // Packets arrive in bursts of 3 every 60 ms.
    for (let t = 0; t < 300; t++) {
      if (t % 3 === 2) for (let k = 2; k >= 0; k--) jb.push(t - k, (t - k) * FRAME, payloadFor(t - k), t * 20);
      jb.pop();
    }
    const s = jb.stats();
    expect(s.jitterMs).toBeGreaterThan(5);
    expect(s.targetDelayMs).toBeGreaterThanOrEqual(40);
    expect(s.targetDelayMs).toBeLessThanOrEqual(200);
    // With the grown buffer the steady state has (almost) no concealment.
    const before = s.lost;
    for (let t = 300; t < 600; t++) {
      if (t % 3 === 2) for (let k = 2; k >= 0; k--) jb.push(t - k, (t - k) * FRAME, payloadFor(t - k), t * 20);
      jb.pop();
    }
    expect(jb.stats().lost - before).toBeLessThan(5);
    const pops = [jb.pop(), jb.pop(), jb.pop(), jb.pop(), jb.pop(), jb.pop(), jb.pop(), jb.pop(), jb.pop(), jb.pop(), jb.pop(), jb.pop()];
    expect(pops.at(-1)).toBeUndefined();
  });

  test("clock drift: a 1% fast sender is absorbed by dropping, depth stays bounded", () => {
    const jb = new JitterBuffer({ clockRate: 8000 });
    let next = 0;
    for (let t = 0; t < 3000; t++) {
      while (next * 19.8 <= t * 20) { jb.push(next & 0xffff, next * FRAME, payloadFor(next), next * 19.8); next++; }
      jb.pop();
    }
    const s = jb.stats();
    expect(s.dropped).toBeGreaterThan(10);
    expect(s.bufferedMs).toBeLessThanOrEqual(s.targetDelayMs + 60);
  });

  test("clock drift: a 1% slow sender is absorbed by short stalls", () => {
    const jb = new JitterBuffer({ clockRate: 8000 });
    let next = 0;
    let played = 0;
    for (let t = 0; t < 3000; t++) {
      while (next * 20.2 <= t * 20) { jb.push(next & 0xffff, next * FRAME, payloadFor(next), next * 20.2); next++; }
      const p = jb.pop();
      if (p !== undefined && p !== "lost") played++;
    }
    expect(played).toBeGreaterThan(next - 5);
    expect(jb.stats().late).toBe(0);
  });

  test("a deep buffer (minDelayMs 800: 40 frames) outgrows the initial ring and still reorders without loss", () => {
    const jb = new JitterBuffer({ clockRate: 8000, minDelayMs: 800, maxDelayMs: 1000 });
    // Each block of 8 arrives reversed: 7, 6, …, 0, 15, 14, …
    const order = Array.from({ length: 96 }, (_, i) => Math.floor(i / 8) * 8 + 7 - (i % 8));
    const out = seqs(run(jb, 150, (t) => (t < order.length ? [order[t]!] : [])));
    expect(out.slice(0, 96)).toEqual(Array.from({ length: 96 }, (_, i) => i));
    expect(jb.stats()).toMatchObject({ received: 96, late: 0, duplicates: 0, dropped: 0 });
  });

  test("a stalled consumer: the buffer holds at most twice maxDelayMs, dropping the oldest, then plays on in order", () => {
    const jb = new JitterBuffer({ clockRate: 8000 });
    run(jb, 10, (t) => [t]); // playing
    for (let seq = 10; seq < 110; seq++) jb.push(seq, seq * FRAME, payloadFor(seq), seq * 20);
    const s = jb.stats();
    expect(s.bufferedMs).toBeLessThanOrEqual(400);
    expect(s.bufferedMs).toBeGreaterThanOrEqual(360);
    expect(s.dropped).toBeGreaterThanOrEqual(75);
    const out = seqs(run(jb, 20, () => []));
    expect(out).toEqual(Array.from({ length: 20 }, (_, i) => 90 + i));
  });

  test("nobody pulling at all: the buffer still holds at most twice maxDelayMs and starts from the newest frames", () => {
    const jb = new JitterBuffer({ clockRate: 8000, maxDelayMs: 100 });
    for (let seq = 0; seq < 300; seq++) jb.push(seq, seq * FRAME, payloadFor(seq), seq * 20);
    expect(jb.stats().bufferedMs).toBeLessThanOrEqual(200);
    const first = jb.pop();
    expect(first !== undefined && first !== "lost" && first.seq).toBe(290);
    expect(jb.stats()).toMatchObject({ resets: 0, late: 0 });
  });

  test("a duplicate of a frame dropped for depth counts as late, not as a new frame", () => {
    const jb = new JitterBuffer({ clockRate: 8000 });
    for (let seq = 0; seq < 40; seq++) jb.push(seq, seq * FRAME, payloadFor(seq), seq * 20);
    jb.push(5, 5 * FRAME, payloadFor(5), 800);
    expect(jb.stats().late).toBe(1);
    const first = jb.pop();
    expect(first !== undefined && first !== "lost" && first.seq).toBe(20);
  });
});
