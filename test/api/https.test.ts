// http.tls: the HTTP listener speaks HTTPS with the configured certificate. A client that trusts
// the test CA (curl, and Bun's fetch) reaches the admin API; nothing answers in clear text.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { ADMIN_TOKEN, startHarness, type Harness } from "./harness.ts";

const CERT = join(import.meta.dir, "../fixtures/tls/cert.pem");
const KEY = join(import.meta.dir, "../fixtures/tls/key.pem");

let h: Harness;
beforeAll(async () => {
  h = await startHarness("", undefined, "warn", { http: `tls: { certFile: ${CERT}, keyFile: ${KEY} }` });
});
afterAll(() => h.close());

describe("HTTPS on the HTTP listener", () => {
  test("curl, trusting the test CA, gets the admin API over TLS", async () => {
    expect(h.app.url).toStartWith("https://127.0.0.1:");
    const curl = Bun.spawn(
      ["curl", "-sS", "--fail-with-body", "--cacert", CERT, "-H", `Authorization: Bearer ${ADMIN_TOKEN}`, "-w", "\n%{http_code} %{ssl_verify_result}", `${h.app.url}/api/v1/trunks`],
      { stdout: "pipe", stderr: "pipe" },
    );
    const [out, err, code] = await Promise.all([new Response(curl.stdout).text(), new Response(curl.stderr).text(), curl.exited]);
    expect({ code, err }).toEqual({ code: 0, err: "" });
    const [body, status] = out.split("\n");
    expect(JSON.parse(body!)).toEqual([]);
    expect(status).toBe("200 0");
  });

  test("fetch with the CA works; without trusting it the handshake fails; clear HTTP gets no API answer", async () => {
    const ca = readFileSync(CERT, "utf8");
    const res = await fetch(`${h.app.url}/api/v1/trunks`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` }, tls: { ca } });
    expect(res.status).toBe(200);
    await expect(fetch(`${h.app.url}/healthz`)).rejects.toThrow();
    const clear = await fetch(`${h.app.url.replace("https:", "http:")}/healthz`).then(
      (r) => r.status,
      () => "no answer",
    );
    expect(clear).not.toBe(200);
  });
});
