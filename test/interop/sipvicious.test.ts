// Real attacker tools: sipvicious from Debian (`svmap` finds SIP devices, `svwar` enumerates their
// extensions), pointed at the real app on loopback only. With the default config (sip.strangers:
// drop) a source that belongs to no trunk finds nothing and enumerates nothing; the same scan from
// a trunk's address finds the device and its routed extension, which is how we know the tools
// would see us.
import { afterEach, expect, test } from "bun:test";
import { startCallsApp, testApplicationYaml, type CallsApp } from "../helpers/callsApp.ts";

const apps: CallsApp[] = [];
afterEach(async () => {
  for (const app of apps.splice(0)) await app.close();
});

async function app(trunkDomain: string): Promise<CallsApp> {
  const started = await startCallsApp(`
trunks:
  - { id: carrier, domain: ${trunkDomain}, optionsIntervalSec: 0 }
${testApplicationYaml({ "1000": "lobby" })}
`);
  apps.push(started);
  return started;
}

/** Runs a sipvicious command (loopback targets only) and returns what it printed. */
async function sipvicious(args: string[]): Promise<{ out: string; exitCode: number }> {
  if (!args.some((a) => a.includes("127.0.0.1"))) throw new Error("sipvicious is only ever pointed at loopback");
  const proc = Bun.spawn(args, { stdout: "pipe", stderr: "pipe" });
  const kill = setTimeout(() => proc.kill(), 45_000);
  const [stdout, stderr] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text()]);
  clearTimeout(kill);
  return { out: `${stdout}\n${stderr}`, exitCode: await proc.exited };
}

async function strangerDrops(target: CallsApp): Promise<number> {
  const text = (await target.harness.call("GET", "/metrics")).text;
  const line = text.split("\n").find((l) => l.startsWith('trunkline_sip_dropped_total{reason="stranger"} '));
  return Number(line?.split(" ")[1] ?? 0);
}

test("default config: svmap from a source that belongs to no trunk finds nothing, svwar enumerates nothing", async () => {
  const target = await app("192.0.2.1");
  const map = await sipvicious(["svmap", "127.0.0.1", `-p${target.sipPort}`]);
  expect(map.exitCode, map.out).toBe(0);
  expect(map.out).toContain("found nothing");
  expect(map.out).not.toContain(`127.0.0.1:${target.sipPort}`);
  expect(map.out).not.toContain("Trunkline");
  const war = await sipvicious(["svwar", "-e999-1001", "-m", "INVITE", `udp://127.0.0.1:${target.sipPort}`]);
  expect(war.exitCode, war.out).toBe(0);
  expect(war.out).toContain("found nothing");
  expect(war.out).not.toContain("1000");
  // They did reach us: every probe was dropped unread.
  expect(await strangerDrops(target)).toBeGreaterThanOrEqual(2);
}, 60_000);

test("a trunk on 127.0.0.1 is still answered: svmap lists the device (User-Agent without version), svwar finds the routed extension", async () => {
  const target = await app("127.0.0.1");
  const map = await sipvicious(["svmap", "127.0.0.1", `-p${target.sipPort}`]);
  expect(map.exitCode, map.out).toBe(0);
  const row = map.out.split("\n").find((l) => l.includes(`127.0.0.1:${target.sipPort}`));
  expect(row, map.out).toBeDefined();
  expect(row!.split("|").map((cell) => cell.trim())).toContain("Trunkline");
  // From a trunk an INVITE scan finds what is routed (1000 is answered; 999 and 1001 get 404).
  const war = await sipvicious(["svwar", "-e999-1001", "-m", "INVITE", `udp://127.0.0.1:${target.sipPort}`]);
  expect(war.exitCode, war.out).toBe(0);
  const found = war.out.split("\n").filter((l) => l.startsWith("|") && !l.includes("Extension")).map((l) => l.split("|")[1]!.trim());
  expect(found).toEqual(["1000"]);
  expect(await strangerDrops(target)).toBe(0);
}, 60_000);
