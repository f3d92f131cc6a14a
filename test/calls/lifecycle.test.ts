// A call's life (src/calls/call.ts): the channel join as an awaited step (participant.joined only
// once the phone leg is in the mixer), and the one way to end a call acting on the wire as the
// state machine says. The SIP side is faked here; test/calls/inDialog.test.ts and
// test/interop/calls-*.test.ts drive the same paths with real peers.
import { afterAll, describe, expect, test } from "bun:test";
import { Call, type CallInit } from "../../src/calls/call.ts";
import { phoneLegMedia } from "../../src/calls/legMedia.ts";
import type { MediaFactory } from "../../src/calls/media.ts";
import { ChannelRegistry } from "../../src/channels/registry.ts";
import { events } from "../../src/events.ts";
import type { Mixer } from "../../src/media/mixer.ts";
import { RtpPortAllocator } from "../../src/media/ports.ts";
import type { Dialog } from "../../src/sip/dialog.ts";
import type { SipRequest } from "../../src/sip/message.ts";
import type { SipStack } from "../../src/sip/stack.ts";
import type { ClientTransaction, ServerTransaction } from "../../src/sip/transaction.ts";
import { openStore } from "../../src/store/index.ts";

const store = openStore(":memory:");
afterAll(() => store.close());

let ids = 0;
function newCall(init: Omit<CallInit, "id" | "from" | "to"> & Partial<CallInit>, media: MediaFactory = () => Promise.resolve({ error: "no media in this test" })) {
  const full: CallInit = { id: `lifecycle-${++ids}`, from: "sip:alice@example.net", to: "sip:1000@example.net", ...init };
  store.calls.create({ id: full.id, direction: full.direction, from: full.from, to: full.to });
  const call = new Call(full, { store: store.calls, media, registry: new ChannelRegistry(), stack: {} as SipStack, release: () => {}, maxDurationSec: () => 0, referPolicy: () => "decline", placeReferredCall: () => Promise.resolve({ status: 603, reason: "Declined" }) });
  return { call, record: () => store.calls.get(full.id) };
}

/** The parts of a server transaction the call uses before the answer. */
function fakeServerTx() {
  const responses: number[] = [];
  const tx = { respond: (status: number) => void responses.push(status) } as unknown as ServerTransaction;
  return { tx, responses };
}

function fakeClientTx() {
  const state = { cancels: 0 };
  const tx = { cancel: () => void state.cancels++ } as unknown as ClientTransaction;
  return { tx, state };
}

/** A dialog that counts the BYEs sent in it; `peerEnded()` is the peer's BYE having terminated it. */
function fakeDialog() {
  const state = { byes: 0 };
  const fake = {
    state: "confirmed",
    peer: { address: "127.0.0.1" },
    on: () => {},
    bye: () => {
      state.byes++;
      fake.state = "terminated";
      return Promise.resolve(undefined);
    },
    createRequest: (method: string) => ({ method }),
    sendRequest: (req: { method: string }) => {
      if (req.method === "BYE") state.byes++;
    },
    terminate: () => {
      fake.state = "terminated";
    },
  };
  return { dialog: fake as unknown as Dialog, state, peerEnded: () => void (fake.state = "terminated") };
}

const invite = { callId: "abc@example.net" } as SipRequest;

describe("joining the channel", () => {
  test("participant.joined fires once the phone leg exists in the channel's mixer, not before", async () => {
    const realLeg = phoneLegMedia({ allocator: new RtpPortAllocator({ min: 20000, max: 59999 }), advertisedAddress: "127.0.0.1", bindAddress: "127.0.0.1" });
    const order: string[] = [];
    let mixer: Mixer | undefined;
    let participantsAtJoin: number | undefined;
    const media: MediaFactory = async (o) => {
      // Without media workers the channel runs on this thread, its mixer at hand.
      mixer = o.mixer.localMixer();
      const leg = await realLeg(o);
      order.push("phone leg created");
      return leg;
    };
    const { call } = newCall({ direction: "outbound", applicationId: "app", channelId: "room" }, media);
    const stop = events.subscribe((e) => {
      if (e.type !== "participant.joined" || (e.data as { callId?: string }).callId !== call.id) return;
      order.push("participant.joined");
      participantsAtJoin = mixer?.size;
    });
    try {
      const joined = await call.joinChannel();
      expect("error" in joined).toBe(false);
      expect(order).toEqual(["phone leg created", "participant.joined"]);
      expect(participantsAtJoin).toBe(1);
      expect(call.media).toBe(joined as never);
    } finally {
      stop();
      call.end("local_hangup");
    }
    expect(mixer?.size).toBe(0);
  });

  test("a phone leg that cannot be made joins nobody: no participant.joined, and the error is returned", async () => {
    const seen: string[] = [];
    const stop = events.subscribe((e) => void seen.push(e.type));
    const { call } = newCall({ direction: "inbound", applicationId: "app", channelId: "room" });
    try {
      expect(await call.joinChannel()).toEqual({ error: "no media in this test" });
      call.end("rejected", { sipStatus: 503 });
      await call.endRecorded;
      // call.ended is emitted after anything the join could have emitted.
      expect(seen.filter((t) => t !== "call.ended")).toEqual([]);
      expect(seen).toContain("call.ended");
    } finally {
      stop();
    }
  });
});

describe("one way to end a call", () => {
  test("our hang-up before the answer, inbound: 480 to the INVITE, recorded as rejected; the flow's webhooks are aborted", async () => {
    const { tx, responses } = fakeServerTx();
    const { call, record } = newCall({ direction: "inbound", invite: tx });
    call.end("local_hangup");
    expect(responses).toEqual([480]);
    expect(call.phase).toBe("ended");
    expect(call.signal.aborted).toBe(true);
    expect(await record()).toMatchObject({ state: "ended", endReason: "rejected", sipStatus: 480 });
  });

  test("the flow's own outcome before the answer sends nothing more (the flow already answered)", async () => {
    const { tx, responses } = fakeServerTx();
    const { call, record } = newCall({ direction: "inbound", invite: tx });
    call.end("cancelled", { sipStatus: 487 });
    expect(responses).toEqual([]);
    expect(await record()).toMatchObject({ state: "ended", endReason: "cancelled", sipStatus: 487 });
  });

  test("our hang-up with an INVITE out: CANCEL, and the INVITE's final response ends the call as cancelled", async () => {
    const { tx, state } = fakeClientTx();
    const { call, record } = newCall({ direction: "outbound" });
    call.inviting(invite, tx);
    call.ringing(180);
    call.end("local_hangup");
    expect(state.cancels).toBe(1);
    expect(call.phase).toBe("cancelling");
    expect(call.isLive).toBe(false);
    expect(await record()).toMatchObject({ state: "ringing", sipCallId: "abc@example.net" });
    // A second hang-up while cancelling changes nothing; the 487 ends the call.
    call.end("local_hangup");
    expect(state.cancels).toBe(1);
    expect(call.phase).toBe("cancelling");
    call.end("rejected", { sipStatus: 487 });
    expect(await record()).toMatchObject({ state: "ended", endReason: "cancelled", sipStatus: 487 });
  });

  test("the ring timeout cancels too, and its 487 is recorded as no_answer", async () => {
    const { tx, state } = fakeClientTx();
    const { call, record } = newCall({ direction: "outbound" });
    call.inviting(invite, tx);
    call.end("no_answer");
    expect(state.cancels).toBe(1);
    call.end("rejected", { sipStatus: 487 });
    expect(await record()).toMatchObject({ state: "ended", endReason: "no_answer", sipStatus: 487 });
  });

  test("a 2xx crossing our CANCEL is ended with BYE (its dialog ACKed it) and recorded as local_hangup", async () => {
    const { tx } = fakeClientTx();
    const { call, record } = newCall({ direction: "outbound" });
    call.inviting(invite, tx);
    call.end("local_hangup");
    const { dialog, state } = fakeDialog();
    expect(call.connect(dialog)).toBe(false);
    expect(state.byes).toBe(1);
    expect(await record()).toMatchObject({ state: "ended", endReason: "local_hangup" });
  });

  test("shutdown cancels the INVITE without waiting for its answer; before any INVITE our hang-up is recorded as cancelled", async () => {
    const { tx, state } = fakeClientTx();
    const { call, record } = newCall({ direction: "outbound" });
    call.inviting(invite, tx);
    call.end("shutdown", { cause: { status: 503, text: "shutting down" } });
    expect(state.cancels).toBe(1);
    expect(await record()).toMatchObject({ state: "ended", endReason: "shutdown" });

    const early = newCall({ direction: "outbound" });
    early.call.end("local_hangup");
    expect(early.call.signal.aborted).toBe(true);
    expect(await early.record()).toMatchObject({ state: "ended", endReason: "cancelled" });
  });

  test("transitions outside the table do nothing: no answer without a dialog, no ringing after the answer, nothing after the end", async () => {
    const { call, record } = newCall({ direction: "outbound" });
    call.answered("PCMU");
    expect(call.phase).toBe("trying");
    const { dialog, state, peerEnded } = fakeDialog();
    expect(call.connect(dialog)).toBe(true);
    call.answered("PCMU");
    call.ringing(180);
    expect(call.phase).toBe("answered");
    expect(await record()).toMatchObject({ state: "answered", codec: "PCMU" });
    peerEnded();
    call.end("remote_bye");
    call.ringing(183);
    call.end("local_hangup");
    expect(state.byes).toBe(0);
    expect(await record()).toMatchObject({ state: "ended", endReason: "remote_bye" });
  });

  test("our hang-up of an answered call sends one BYE", async () => {
    const { call, record } = newCall({ direction: "inbound" });
    const { dialog, state } = fakeDialog();
    call.connect(dialog);
    call.answered("PCMU");
    call.end("local_hangup");
    call.end("local_hangup");
    expect(state.byes).toBe(1);
    expect(await record()).toMatchObject({ state: "ended", endReason: "local_hangup" });
  });
});
