// The SIPp caller template of the front and cluster tests survives what a front with several UDP
// workers does: forward a 180 after the 200 that followed it. The answerer here sends 100, 200 and
// 180 in that order before SIPp's ACK can reach it, so the 180 is always in SIPp's socket before the
// BYE's 200.
import { expect, test } from "bun:test";
import dgram from "node:dgram";
import { runSipp } from "../helpers/sipp.ts";
import { sippCall } from "../helpers/sippCall.ts";

function header(text: string, name: string): string {
  return text.split("\r\n").filter((l) => l.toLowerCase().startsWith(`${name.toLowerCase()}:`)).join("\r\n");
}

test("a 180 that arrives after the 200 is ignored, and the call goes on to its BYE", async () => {
  const answerer = dgram.createSocket("udp4");
  await new Promise<void>((resolve) => answerer.bind(0, "127.0.0.1", resolve));
  const port = answerer.address().port;
  const methods: string[] = [];
  answerer.on("message", (bytes, from) => {
    const text = bytes.toString();
    const method = text.slice(0, text.indexOf(" "));
    methods.push(method);
    const respond = (status: string, extra = "") =>
      answerer.send(
        `SIP/2.0 ${status}\r\n${header(text, "Via")}\r\n${header(text, "From")}\r\n${header(text, "To")};tag=answerer\r\n` +
          `${header(text, "Call-ID")}\r\n${header(text, "CSeq")}\r\n${extra}Content-Length: 0\r\n\r\n`,
        from.port,
        from.address,
      );
    if (method === "INVITE") {
      respond("100 Trying");
      respond("200 OK", `Contact: <sip:answerer@127.0.0.1:${port}>\r\n`);
      respond("180 Ringing");
    } else if (method === "BYE") respond("200 OK");
  });
  try {
    const scenario = sippCall({ name: "late-180", requestUri: "sip:[service]@[remote_ip]:[remote_port]", user: "+15550001111", tag: "l", offerPort: "9", ending: "hang-up" });
    const r = await runSipp({ scenario, remote: `127.0.0.1:${port}`, localIp: "127.0.0.1", service: "late", timeoutSec: 10 });
    expect(r.exitCode, r.summary).toBe(0);
    expect(methods).toEqual(["INVITE", "ACK", "BYE"]);
  } finally {
    answerer.close();
  }
});
