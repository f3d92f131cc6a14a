// The trunk service in the real app against Kamailio: trunks created, changed and deleted through
// the admin API register, re-register, fail, disable and un-register, and GET /trunks/…/status
// shows it.
import { afterAll, beforeAll, expect, test } from "bun:test";
import type { Service } from "../../src/app.ts";
import { SipStack } from "../../src/sip/stack.ts";
import { TrunkService } from "../../src/trunks/service.ts";
import { startHarness, type Harness } from "../api/harness.ts";
import { startKamailio, type KamailioRun } from "../helpers/kamailio.ts";
import { trunkStatusUntil } from "../helpers/trunkStatus.ts";
import { trunkStatusApi } from "../../src/api/routes/services.ts";
import { loopbackIsTrunk } from "../helpers/loopbackTrunks.ts";

let kamailio: KamailioRun;
let harness: Harness;

beforeAll(async () => {
  kamailio = await startKamailio({ config: "test/fixtures/kamailio/registrar.cfg" });
  harness = await startHarness("", (ctx) => {
    const stack = new SipStack({ isKnownSource: loopbackIsTrunk, listen: [{ transport: "udp", host: "127.0.0.1", port: 0 }] });
    const sip: Service = { name: "sip", start: () => stack.start(), stop: () => stack.stop() };
    const trunks = new TrunkService(ctx, stack);
    return [sip, trunks, trunkStatusApi(trunks)];
  });
});

afterAll(async () => {
  await harness?.close();
  await kamailio?.stop();
});

test("API changes drive registration; status routes report it", async () => {
  const created = await harness.call("POST", "/api/v1/trunks", {
    id: "kam", domain: "127.0.0.1", port: kamailio.port, register: true, username: "frank", password: "trunk-secret", registerExpires: 60,
    optionsIntervalSec: 0,
  });
  expect(created.status, created.text).toBe(201);
  const registered = await trunkStatusUntil(harness, "kam", (s) => s.registration.state === "registered");
  expect(registered).toMatchObject({ id: "kam", reachable: null, activeCalls: 0, available: true, registration: { lastStatusCode: 200, lastError: null } });
  expect(Date.parse(registered.registration.expiresAt)).toBeGreaterThan(Date.now());
  await kamailio.waitFor(/TRUNKLINE saved bindings=1 aor=sip:frank@127\.0\.0\.1 /);

  const all = await harness.call("GET", "/api/v1/trunks/status");
  expect(all.status).toBe(200);
  expect(all.json.map((s: { id: string }) => s.id)).toEqual(["kam"]);

  // New (wrong) password: re-registers at once and fails with the provider's answer.
  expect((await harness.call("PATCH", "/api/v1/trunks/kam", { password: "wrong" })).status).toBe(200);
  const failed = await trunkStatusUntil(harness, "kam", (s) => s.registration.state === "failed");
  expect(failed.registration.lastStatusCode).toBe(401);
  expect(failed.available).toBe(false);

  expect((await harness.call("PATCH", "/api/v1/trunks/kam", { password: "trunk-secret" })).status).toBe(200);
  await trunkStatusUntil(harness, "kam", (s) => s.registration.state === "registered");

  // Disabling removes the binding from Kamailio.
  expect((await harness.call("PATCH", "/api/v1/trunks/kam", { enabled: false })).status).toBe(200);
  await trunkStatusUntil(harness, "kam", (s) => s.registration.state === "disabled");
  await kamailio.waitFor(/TRUNKLINE saved bindings=0 aor=sip:frank@127\.0\.0\.1 .* expires=0 /);

  expect((await harness.call("DELETE", "/api/v1/trunks/kam")).status).toBe(204);
  const gone = await harness.call("GET", "/api/v1/trunks/kam/status");
  expect(gone.status).toBe(404);
  expect(gone.json.error.code).toBe("not_found");
}, 20_000);
