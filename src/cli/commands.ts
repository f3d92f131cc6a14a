// `trunkline calls` and `trunkline trunks`: the admin API's call records and trunk status as aligned
// tables, for operators who live in a terminal (admin API URL and token from the environment).
//
//   const code = await runCliCommand("calls", ["--state", "active", "--limit", "10"], { env: process.env, out, err });
import type { CallRecord } from "../store/calls.ts";
import type { TrunkStatus } from "../trunks/manager.ts";
import { AdminApiError, adminClientFromEnv, type AdminClient } from "./adminClient.ts";
import { formatDuration, formatTime, renderTable } from "./table.ts";

export const CLI_USAGE = `  trunkline calls [--state active|ended|trying|ringing|answered] [--trunk ID] [--direction inbound|outbound] [--limit N]
  trunkline trunks`;

export interface CliIo {
  env: Record<string, string | undefined>;
  /** Awaited before the command returns (the caller may exit right after). */
  out: (text: string) => unknown;
  err: (text: string) => unknown;
  now?: () => number;
}

/** Exit codes: 0 done, 1 the API could not be asked or refused, 2 a usage error. */
export async function runCliCommand(name: "calls" | "trunks", args: string[], io: CliIo): Promise<number> {
  const options = name === "calls" ? parseCallsArgs(args) : args.length > 0 ? { error: `trunks takes no arguments, got ${JSON.stringify(args[0])}` } : {};
  if ("error" in options) {
    await io.err(`trunkline ${name}: ${options.error}\n\nUsage:\n${CLI_USAGE}\n`);
    return 2;
  }
  const client = adminClientFromEnv(io.env);
  if ("error" in client) {
    await io.err(`trunkline ${name}: ${client.error}\n`);
    return 1;
  }
  try {
    await io.out(name === "calls" ? await callsTable(client, options as CallsOptions, io.now?.() ?? Date.now()) : await trunksTable(client));
    return 0;
  } catch (err) {
    if (!(err instanceof AdminApiError)) throw err;
    await io.err(`trunkline ${name}: ${err.message}\n`);
    return 1;
  }
}

const STATES = ["active", "ended", "trying", "ringing", "answered"] as const;
const DIRECTIONS = ["inbound", "outbound"] as const;
const MAX_LIMIT = 1000;
/** Records read at most when filtering by trunk, direction or a live state (the API filters only active/ended). */
const MAX_SCANNED = 5000;
const PAGE = 500;

export interface CallsOptions {
  state?: (typeof STATES)[number];
  trunk?: string;
  direction?: (typeof DIRECTIONS)[number];
  limit: number;
}

export function parseCallsArgs(args: string[]): CallsOptions | { error: string } {
  const options: CallsOptions = { limit: 20 };
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    const eq = arg.indexOf("=");
    const [flag, inline] = arg.startsWith("--") && eq > 0 ? [arg.slice(0, eq), arg.slice(eq + 1)] : [arg, undefined];
    if (!["--state", "--trunk", "--direction", "--limit"].includes(flag)) return { error: `unknown argument ${JSON.stringify(arg)}` };
    const value = inline ?? args[++i];
    if (value === undefined || value === "") return { error: `${flag} needs a value` };
    if (flag === "--state") {
      if (!(STATES as readonly string[]).includes(value)) return { error: `--state must be one of ${STATES.join(", ")}; got ${JSON.stringify(value)}` };
      options.state = value as CallsOptions["state"];
    } else if (flag === "--direction") {
      if (!(DIRECTIONS as readonly string[]).includes(value)) return { error: `--direction must be inbound or outbound; got ${JSON.stringify(value)}` };
      options.direction = value as CallsOptions["direction"];
    } else if (flag === "--limit") {
      if (!/^\d+$/.test(value) || Number(value) < 1 || Number(value) > MAX_LIMIT) return { error: `--limit must be a number from 1 to ${MAX_LIMIT}; got ${JSON.stringify(value)}` };
      options.limit = Number(value);
    } else options.trunk = value;
  }
  return options;
}

async function callsTable(client: AdminClient, o: CallsOptions, now: number): Promise<string> {
  const serverState = o.state === "ended" ? "ended" : o.state === undefined ? undefined : "active";
  const matches = (c: CallRecord) =>
    (o.state === undefined || o.state === "active" || o.state === "ended" || c.state === o.state) &&
    (o.trunk === undefined || c.trunkId === o.trunk) &&
    (o.direction === undefined || c.direction === o.direction);
  const filtered = o.trunk !== undefined || o.direction !== undefined || (o.state !== undefined && o.state !== serverState);
  const found: CallRecord[] = [];
  let scanned = 0;
  let cursor: string | undefined;
  do {
    const query = new URLSearchParams({ limit: String(filtered ? PAGE : Math.min(PAGE, o.limit - found.length)) });
    if (serverState) query.set("state", serverState);
    if (cursor) query.set("cursor", cursor);
    const page = await client.get<{ calls: CallRecord[]; nextCursor?: string }>(`/api/v1/calls?${query}`);
    scanned += page.calls.length;
    found.push(...page.calls.filter(matches));
    cursor = page.nextCursor;
  } while (cursor !== undefined && found.length < o.limit && scanned < MAX_SCANNED);
  const shown = found.slice(0, o.limit);
  const note = cursor !== undefined && found.length < o.limit ? `(only the newest ${scanned} calls were searched)\n` : "";
  if (shown.length === 0) return `No calls.\n${note}`;
  const rows = shown.map((c) => [
    c.id,
    c.direction,
    c.state,
    c.trunkId ?? "-",
    c.from,
    c.to,
    formatTime(c.createdAt),
    formatDuration(Date.parse(c.endedAt ?? new Date(now).toISOString()) - Date.parse(c.createdAt)),
    c.endReason ?? "-",
  ]);
  return renderTable(["ID", "DIRECTION", "STATE", "TRUNK", "FROM", "TO", "STARTED (UTC)", "DURATION", "END REASON"], rows) + note;
}

type TrunkView = { id: string; transport: string; domain: string; enabled: boolean; register: boolean };

async function trunksTable(client: AdminClient): Promise<string> {
  const [trunks, statuses] = await Promise.all([client.get<TrunkView[]>("/api/v1/trunks"), client.get<TrunkStatus[]>("/api/v1/trunks/status")]);
  if (trunks.length === 0) return "No trunks.\n";
  const byId = new Map(statuses.map((s) => [s.id, s]));
  const rows = trunks.map((t) => {
    const s = byId.get(t.id);
    const registration = !s ? "-" : s.registration.state === "failed" && s.registration.lastError ? `failed: ${s.registration.lastError}` : s.registration.state;
    const reachable = !s || s.reachable === null ? "not probed" : s.reachable ? "yes" : s.lastOptionsError ? `no: ${s.lastOptionsError}` : "no";
    const calls = !s ? "-" : s.maxConcurrentCalls === null ? String(s.activeCalls) : `${s.activeCalls}/${s.maxConcurrentCalls}`;
    return [t.id, t.transport, registration, reachable, !s ? "-" : s.available ? "yes" : "no", calls];
  });
  return renderTable(["ID", "TRANSPORT", "REGISTRATION", "REACHABLE", "AVAILABLE", "ACTIVE CALLS"], rows);
}
