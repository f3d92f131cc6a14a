// A real PostgreSQL (Debian's package) started by the test itself: a data directory of its own in a
// temporary folder owned by the `postgres` user (initdb refuses root), listening on 127.0.0.1 on a
// free port, its unix socket in that folder.
//   const pg = await startPostgres();   // in beforeAll
//   openPostgresStore({ url: pg.url, path: ... });
//   await pg.stop();                    // in afterAll: stops the server and removes the folder
//   pg.pause(); … pg.resume();          // SIGSTOP / SIGCONT to its postmaster and every backend: a hung database
import { chmodSync, chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { until } from "./until.ts";

export interface Postgres {
  url: string;
  port: number;
  stop(): Promise<void>;
  /** Freezes this server (its postmaster and the backends serving open connections): statements hang unanswered. Resolves once every process is stopped. */
  pause(): Promise<void>;
  /** Lets a paused server go on. */
  resume(): void;
}

/** A process's state letter from /proc (T: stopped; "gone" once it has exited). */
function processState(pid: number): string {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[0]!;
  } catch {
    return "gone";
  }
}

/** This server's processes: the postmaster (first line of postmaster.pid) and its children. */
function serverPids(data: string): number[] {
  const postmaster = Number(readFileSync(join(data, "postmaster.pid"), "utf8").split("\n")[0]);
  const children = readdirSync("/proc")
    .filter((entry) => /^\d+$/.test(entry))
    .filter((pid) => {
      try {
        // stat: "pid (comm) state ppid …"; comm may hold spaces, so read after the last ')'.
        const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
        return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]) === postmaster;
      } catch {
        return false; // gone meanwhile
      }
    })
    .map(Number);
  return [postmaster, ...children];
}

function binDir(): string {
  const root = "/usr/lib/postgresql";
  const versions = existsSync(root) ? readdirSync(root).filter((v) => existsSync(join(root, v, "bin", "initdb"))) : [];
  const newest = versions.sort((a, b) => Number(b) - Number(a))[0];
  if (!newest) throw new Error("PostgreSQL is not installed (scripts/system-deps.sh installs Debian's postgresql)");
  return join(root, newest, "bin");
}

function postgresIds(): { uid: number; gid: number } {
  const out = Bun.spawnSync(["id", "-u", "postgres"]).stdout.toString().trim();
  const gid = Bun.spawnSync(["id", "-g", "postgres"]).stdout.toString().trim();
  return { uid: Number(out), gid: Number(gid) };
}

function asPostgres(command: string[]): { ok: boolean; output: string } {
  const run = Bun.spawnSync(["runuser", "-u", "postgres", "--", ...command], { stdout: "pipe", stderr: "pipe" });
  return { ok: run.exitCode === 0, output: run.stdout.toString() + run.stderr.toString() };
}

function freePort(): number {
  const server = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = server.port;
  server.stop(true);
  return port;
}

export async function startPostgres(): Promise<Postgres> {
  const bin = binDir();
  const dir = mkdtempSync(join(tmpdir(), "trunkline-pg-"));
  const { uid, gid } = postgresIds();
  chownSync(dir, uid, gid);
  chmodSync(dir, 0o700);
  const data = join(dir, "data");
  const init = asPostgres([join(bin, "initdb"), "-D", data, "-U", "postgres", "--auth=trust", "--encoding=UTF8", "--no-sync"]);
  if (!init.ok) {
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`initdb failed: ${init.output}`);
  }
  const port = freePort();
  const options = `-c listen_addresses=127.0.0.1 -c port=${port} -c unix_socket_directories=${dir} -c fsync=off`;
  const start = asPostgres([join(bin, "pg_ctl"), "-D", data, "-l", join(dir, "log"), "-o", options, "-w", "-t", "30", "start"]);
  if (!start.ok) {
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`pg_ctl start failed: ${start.output}`);
  }
  let stopped = false;
  let paused = false;
  const signal = (name: "SIGSTOP" | "SIGCONT") => {
    for (const pid of serverPids(data)) process.kill(pid, name);
  };
  const stopNow = () => {
    if (stopped) return;
    stopped = true;
    if (paused) signal("SIGCONT");
    asPostgres([join(bin, "pg_ctl"), "-D", data, "-m", "immediate", "-w", "stop"]);
    rmSync(dir, { recursive: true, force: true });
  };
  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    port,
    stop: () => Promise.resolve(stopNow()),
    async pause() {
      paused = true;
      signal("SIGSTOP");
      const pids = serverPids(data);
      await until(() => pids.every((pid) => ["T", "t", "gone"].includes(processState(pid))), {
        pollMs: 5,
        what: () => pids.map((pid) => [pid, processState(pid)]),
      });
    },
    resume() {
      paused = false;
      signal("SIGCONT");
    },
  };
}

/** A fresh, empty database on the server, so tests do not see each other's rows. */
export async function createDatabase(pg: Postgres, name: string): Promise<string> {
  const { SQL } = await import("bun");
  const admin = new SQL(pg.url);
  try {
    await admin.unsafe(`CREATE DATABASE "${name}"`);
  } finally {
    await admin.close();
  }
  return pg.url.replace(/\/postgres$/, `/${name}`);
}
