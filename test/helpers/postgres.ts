// A real PostgreSQL (Debian's package) started by the test itself: a data directory of its own in a
// temporary folder owned by the `postgres` user (initdb refuses root), listening on 127.0.0.1 on a
// free port, its unix socket in that folder.
//   const pg = await startPostgres();   // in beforeAll
//   openPostgresStore({ url: pg.url, path: ... });
//   await pg.stop();                    // in afterAll: stops the server and removes the folder
import { chmodSync, chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface Postgres {
  url: string;
  port: number;
  stop(): Promise<void>;
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
  const stopNow = () => {
    if (stopped) return;
    stopped = true;
    asPostgres([join(bin, "pg_ctl"), "-D", data, "-m", "immediate", "-w", "stop"]);
    rmSync(dir, { recursive: true, force: true });
  };
  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    port,
    stop: () => Promise.resolve(stopNow()),
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
