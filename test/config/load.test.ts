import { describe, expect, test } from "bun:test";
import { join } from "node:path";
import { parseConfigText, loadConfigFile } from "../../src/config/load.ts";
import { applyOverrides } from "../../src/config/overrides.ts";

const parse = (text: string, env: Record<string, string> = {}) => parseConfigText(text, "t.yaml", { env });

function errorsOf(text: string, env: Record<string, string> = {}): string[] {
  const result = parse(text, env);
  if (result.ok) throw new Error("expected errors");
  return result.errors;
}

describe("config example", () => {
  test("config.example.yaml is valid and declares a trunk that cannot reach a provider", async () => {
    const result = await loadConfigFile("config.example.yaml", { env: {} });
    if (!result.ok) throw new Error(result.errors.join("\n"));
    const trunk = result.config.trunks[0]!;
    expect(trunk.register && trunk.enabled).toBe(false);
    expect(result.config.applications[0]?.inboundRoutes.length).toBeGreaterThan(0);
  });

  test("an empty file is a valid config with every default filled in", () => {
    const result = parse("");
    if (!result.ok) throw new Error(result.errors.join("\n"));
    expect(result.config.http.port).toBe(8080);
    expect(result.config.sip.listen.map((l) => l.transport)).toEqual(["udp", "tcp"]);
    expect(result.config.rtp).toMatchObject({ portMin: 10000, portMax: 20000, mediaTimeoutSec: 30, strictSource: false });
    expect(result.config.calls.ringTimeoutSec).toBe(60);
    expect(result.config.webhooks).toBeUndefined();
  });

  test("trunk defaults: registerExpires 3600, earlyOffer false, optionsIntervalSec 30, tlsVerify and enabled true", () => {
    const result = parse("trunks:\n  - id: a\n    domain: sip.example.com\n");
    if (!result.ok) throw new Error(result.errors.join("\n"));
    expect(result.config.trunks[0]).toMatchObject({
      transport: "udp",
      registerExpires: 3600,
      earlyOffer: false,
      optionsIntervalSec: 30,
      tlsVerify: true,
      enabled: true,
      allowedAddresses: [],
      mediaEncryption: "none",
      allowSdesWithoutTls: false,
    });
  });

  test("trunk SRTP: needs transport tls unless SDES keys are allowed in the clear", () => {
    const trunk = (extra: string) => `trunks:\n  - id: a\n    domain: sip.example.com\n${extra}`;
    expect(errorsOf(trunk("    transport: udp\n    mediaEncryption: required\n"))).toEqual([
      't.yaml:5:22: trunks[0].mediaEncryption: SRTP keys (SDES) travel in the SDP, so mediaEncryption "required" needs transport "tls"; set allowSdesWithoutTls: true to send them over udp in the clear',
    ]);
    expect(errorsOf(trunk("    mediaEncryption: optional\n    transport: tcp\n"))[0]).toContain('mediaEncryption "optional" needs transport "tls"');
    expect(errorsOf(trunk("    mediaEncryption: always\n"))).toEqual(['t.yaml:4:22: trunks[0].mediaEncryption: must be one of "none", "optional", "required"']);
    for (const ok of ["    transport: tls\n    mediaEncryption: required\n", "    mediaEncryption: optional\n    allowSdesWithoutTls: true\n"]) {
      const result = parse(trunk(ok));
      if (!result.ok) throw new Error(result.errors.join("\n"));
    }
  });
});

describe("config errors name file, line, column and key path", () => {
  test("unknown key points at the key, with a suggestion", () => {
    expect(errorsOf("http:\n  prot: 80\n")).toEqual(['t.yaml:2:3: http.prot: unknown key (did you mean "port"?)']);
  });

  test("rtp.ioWorker, removed, says what replaced it; media.workers must be a positive integer", () => {
    expect(errorsOf("rtp:\n  ioWorker: true\n")).toEqual([
      "t.yaml:2:13: rtp.ioWorker: was removed: the media workers (media.workers) own the RTP sockets now; delete this line",
    ]);
    expect(errorsOf("media:\n  workers: 0\n")).toEqual(["t.yaml:2:12: media.workers: must be between 1 and 256"]);
  });

  test("duplicate key points at the second occurrence", () => {
    expect(errorsOf("logLevel: info\nlogLevel: debug\n")).toEqual(["t.yaml:2:1: logLevel: duplicate key"]);
  });

  test("wrong type points at the value", () => {
    expect(errorsOf("http:\n  port: \"80\"\n")).toEqual(["t.yaml:2:9: http.port: must be an integer, got a string"]);
  });

  test("missing required key points at the mapping that lacks it", () => {
    expect(errorsOf("trunks:\n  - id: a\n    transport: udp\n")).toEqual(["t.yaml:2:5: trunks[0].domain: is required"]);
  });

  test("enum and range violations", () => {
    expect(errorsOf("trunks:\n  - id: a\n    domain: x.org\n    transport: sctp\n    port: 70000\n")).toEqual([
      't.yaml:4:16: trunks[0].transport: must be one of "udp", "tcp", "tls"',
      "t.yaml:5:11: trunks[0].port: must be between 1 and 65535",
    ]);
  });

  test("media: maxSpeakers 3, opusComplexity 5, opusApplication lowdelay and relayPairs on by default; a bad value is an error at the value", () => {
    const result = parse("");
    if (!result.ok) throw new Error(result.errors.join("\n"));
    expect(result.config.media).toEqual({ maxSpeakers: 3, opusComplexity: 5, opusApplication: "lowdelay", relayPairs: true });
    expect(errorsOf("media:\n  maxSpeakers: -1\n  opusComplexity: 11\n  relayPairs: sometimes\n  opusApplication: music\n")).toEqual([
      "t.yaml:2:16: media.maxSpeakers: must be between 0 and 1000",
      "t.yaml:3:19: media.opusComplexity: must be between 0 and 10",
      "t.yaml:4:15: media.relayPairs: must be true or false, got a string",
      't.yaml:5:20: media.opusApplication: must be one of "lowdelay", "voip"',
    ]);
  });

  test("YAML syntax errors are reported with their position", () => {
    const [line] = errorsOf("http:\n  port: [1, 2\n");
    expect(line).toMatch(/^t\.yaml:\d+:\d+: \(syntax\): /);
  });

  test("every problem is reported at once, in file order", () => {
    const errors = errorsOf(
      [
        "sip:",
        "  listen:",
        "    - transport: tls", // tls without certificates
        "rtp:",
        "  portMin: 20000",
        "  portMax: 10000",
        "trunks:",
        "  - id: a",
        "    domain: x.org",
        "    allowedAddresses: [10.0.0.0/33]",
        "  - id: a",
        "    domain: y.org",
        "bogus: 1",
      ].join("\n"),
    );
    expect(errors).toEqual([
      "t.yaml:3:18: sip.listen[0].transport: a tls listener needs sip.tls.certFile and sip.tls.keyFile",
      "t.yaml:6:12: rtp.portMax: must be above portMin (20000)",
      "t.yaml:10:24: trunks[0].allowedAddresses[0]: must be an IP address or CIDR block (e.g. 203.0.113.0/24)",
      "t.yaml:13:1: bogus: unknown key",
    ]);
  });

  test("sip.tls: a caFile alone is valid (TLS trunks without a listener); certFile and keyFile go together", () => {
    expect(parse("sip:\n  tls:\n    caFile: /etc/ssl/private-ca.pem\n").ok).toBe(true);
    expect(errorsOf("sip:\n  tls:\n    certFile: /etc/c.pem\n")).toEqual(["t.yaml:3:15: sip.tls.certFile: certFile and keyFile go together"]);
  });

  test("http.tls: a missing, unreadable or non-PEM file is an error at its line; both files are required", () => {
    const cert = join(import.meta.dir, "../fixtures/tls/cert.pem");
    const key = join(import.meta.dir, "../fixtures/tls/key.pem");
    expect(parse(`http:\n  tls:\n    certFile: ${cert}\n    keyFile: ${key}\n`).ok).toBe(true);
    expect(errorsOf(`http:\n  tls:\n    certFile: /nonexistent/cert.pem\n    keyFile: ${import.meta.dir}\n`)).toEqual([
      "t.yaml:3:15: http.tls.certFile: cannot read /nonexistent/cert.pem: ENOENT",
      `t.yaml:4:14: http.tls.keyFile: cannot read ${import.meta.dir}: EISDIR`,
    ]);
    expect(errorsOf(`http:\n  tls:\n    certFile: ${key}\n    keyFile: ${cert}\n`)).toEqual([
      `t.yaml:3:15: http.tls.certFile: ${key} holds no PEM certificate`,
      `t.yaml:4:14: http.tls.keyFile: ${cert} holds no PEM private key`,
    ]);
    expect(errorsOf(`http:\n  tls:\n    certFile: ${cert}\n`)).toEqual(["t.yaml:3:5: http.tls.keyFile: is required"]);
  });

  test("duplicate ids in a list point at the repeated item", () => {
    expect(errorsOf("trunks:\n  - id: a\n    domain: x.org\n  - id: a\n    domain: y.org\n")).toEqual([
      't.yaml:4:5: trunks[1]: duplicate trunk id "a"',
    ]);
  });

  test("a sipUsername routed by two applications is an error", () => {
    const app = (id: string) => `  - id: ${id}\n    name: n\n    sharedSecret: 0123456789abcdef\n    inboundRoutes:\n      - { sipUsername: "100", channelId: c }\n`;
    const [line] = errorsOf(`applications:\n${app("a")}${app("b")}`);
    expect(line).toBe('t.yaml:11:24: applications[1].inboundRoutes[0].sipUsername: "100" is already routed by application "a"');
  });

  test("a caller-ID template with an unknown variable is an error at its position", () => {
    const text = [
      "applications:",
      "  - id: a",
      "    name: n",
      "    sharedSecret: 0123456789abcdef",
      "    channels:",
      "      lobby:",
      "        callerId:",
      '          displayName: "{userAlias} {nickname}"',
    ].join("\n");
    expect(errorsOf(text)).toEqual([
      't.yaml:8:24: applications[0].channels.lobby.callerId.displayName: unknown variable {nickname}; known variables: {id} {deviceId} {deviceAlias} {userId} {userAlias} {tag} {roles} {region}',
    ]);
  });

  test("an unreadable file is one error naming the file", async () => {
    const result = await loadConfigFile("/nonexistent/trunkline.yaml");
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.errors[0]).toStartWith("/nonexistent/trunkline.yaml:1:1: (file): cannot read");
  });
});

describe("environment substitution", () => {
  test("${NAME} anywhere in a string value is replaced", () => {
    const result = parse("adminToken: ${TOKEN}\ntrunks:\n  - id: a\n    domain: sip.${ZONE}.com\n    password: ${PW}\n", {
      TOKEN: "t0123456789abcdefgh",
      ZONE: "example",
      PW: "s3cret",
    });
    if (!result.ok) throw new Error(result.errors.join("\n"));
    expect(result.config.adminToken).toBe("t0123456789abcdefgh");
    expect(result.config.trunks[0]).toMatchObject({ domain: "sip.example.com", password: "s3cret" });
  });

  test("${NAME:-fallback} uses the fallback when NAME is unset or empty", () => {
    const result = parse("trunks:\n  - id: a\n    domain: x.org\n    username: ${U:-alice}\n    password: ${P:-}\n", { U: "" });
    if (!result.ok) throw new Error(result.errors.join("\n"));
    expect(result.config.trunks[0]).toMatchObject({ username: "alice", password: "" });
  });

  test("an unset variable is an error at its value, without a second complaint", () => {
    expect(errorsOf("adminToken: ${MISSING_TOKEN}\n")).toEqual(["t.yaml:1:13: adminToken: environment variable MISSING_TOKEN is not set"]);
  });

  test("keys and non-string values are not substituted", () => {
    const result = parse("http:\n  port: 8081\n", { port: "x" });
    expect(result.ok && result.config.http.port).toBe(8081);
  });
});

describe("overrides", () => {
  const base = parse("sip:\n  listen:\n    - transport: udp\n    - transport: tcp\n    - transport: tls\n  tls: { certFile: c, keyFile: k }\n");
  if (!base.ok) throw new Error(base.errors.join("\n"));

  test("--sip-port moves udp/tcp to N and tls to N+1; --http-port, --db and --log-level replace their keys", () => {
    const config = applyOverrides(base.config, { sipPort: 5070, httpPort: 9000, dbPath: "/tmp/x.db", logLevel: "debug" }, {});
    expect(config.sip.listen.map((l) => l.port)).toEqual([5070, 5070, 5071]);
    expect(config.http.port).toBe(9000);
    expect(config.database.path).toBe("/tmp/x.db");
    expect(config.logLevel).toBe("debug");
    expect(base.config.http.port).toBe(8080);
  });

  test("--sip-port 0 gives every listener a free port", () => {
    expect(applyOverrides(base.config, { sipPort: 0 }, {}).sip.listen.map((l) => l.port)).toEqual([0, 0, 0]);
  });

  test("TRUNKLINE_ADMIN_TOKEN overrides adminToken", () => {
    expect(applyOverrides(base.config, {}, { TRUNKLINE_ADMIN_TOKEN: "from-the-environment" }).adminToken).toBe("from-the-environment");
  });
});
