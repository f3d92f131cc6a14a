// A media worker that dies under a phone call (as if it crashed): SIPp's call is hung up with a BYE
// saying why (500 "media worker media-1 exited"), the record ends as media_error rather than an RTP
// timeout, and the channel's next call is answered on the worker the plane put in the dead one's place.
import { afterAll, beforeAll, expect, test } from "bun:test";
import type { MediaPlane } from "../../src/media/media-plane.ts";
import { callUntil, findCall, sippLobbyYaml, startCallsApp, type CallsApp } from "../helpers/callsApp.ts";
import { startRtpPeer } from "../helpers/rtpPeer.ts";
import { runSipp } from "../helpers/sipp.ts";
import { sippCall } from "../helpers/sippCall.ts";
import { until } from "../helpers/until.ts";

let app: CallsApp;

beforeAll(async () => {
  app = await startCallsApp(`
media: { workers: 1 }
rtp: { mediaTimeoutSec: 30 }
${sippLobbyYaml}
`);
});

afterAll(async () => {
  await app?.close();
});

/** The call service's media plane: the test kills its worker from outside, as a crash would. */
const plane = () => (app.calls as unknown as { plane: MediaPlane }).plane;

test("a call whose media worker dies is hung up with the reason; the channel's next call is answered on a new worker", async () => {
  const phone = await startRtpPeer(440, { replyToSender: true });
  try {
    const scenario = sippCall({ name: "until-worker-exit", requestUri: "sip:[service]@[remote_ip]:[remote_port]", user: "+15550001111", tag: "we", offerPort: "[rtpport]", ending: "until-bye" });
    const run = runSipp({ scenario, remote: `127.0.0.1:${app.sipPort}`, service: "1000", keys: { rtpport: phone.port }, timeoutSec: 20 });
    const call = await findCall(app, (c) => c.channelId === "lobby" && c.state === "answered");
    const dead = plane().workers[0]!;
    await until(() => phone.received().length > 0, { what: () => "the phone hears the channel" });
    (dead as unknown as { worker: Worker }).worker.terminate();

    const result = await run;
    expect(result.exitCode, result.summary).toBe(0);
    expect(result.messages).toMatch(/BYE sip:[^\n]*\n(?:[^\n]+\n)*?Reason: SIP;cause=500;text="media worker media-1 exited"/);
    const ended = await callUntil(app, call.id, (c) => c.state === "ended");
    expect(ended.endReason).toBe("media_error");
    expect(plane().workers[0]).not.toBe(dead);

    const next = runSipp({ scenario: sippCall({ name: "after-worker-exit", requestUri: "sip:[service]@[remote_ip]:[remote_port]", user: "+15550002222", tag: "wa", offerPort: "[rtpport]", ending: "hang-up", holdMs: 200 }), remote: `127.0.0.1:${app.sipPort}`, service: "1000", keys: { rtpport: phone.port }, timeoutSec: 20 });
    const after = await next;
    expect(after.exitCode, after.summary).toBe(0);
    const second = await findCall(app, (c) => c.channelId === "lobby" && c.id !== call.id && c.state === "ended");
    expect(second.endReason).toBe("remote_bye");
    expect(plane().workers[0]!.failed).toBe(false);
    // The leg is let go of once the worker answers its close, which may come after the record ended.
    await until(() => plane().workers[0]!.legs === 0, { what: () => ({ legs: plane().workers[0]!.legs }) });
  } finally {
    phone.close();
  }
});
