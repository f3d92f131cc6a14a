// Call record writes to a PostgreSQL that stopped answering (its processes frozen with SIGSTOP):
// the records waiting for it stop at their bound, changes of further calls are dropped and counted,
// one log line per episode says so, the calls' side never waits; once the database answers again
// the waiting records land and one line says writes flow again.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { setLogSink } from "../../src/log.ts";
import { metrics } from "../../src/metrics.ts";
import { openPostgresStore, type Store } from "../../src/store/index.ts";
import { createDatabase, startPostgres, type Postgres } from "../helpers/postgres.ts";
import { until } from "../helpers/until.ts";

const MAX_QUEUED = 20;
let pg: Postgres;
let store: Store;
const lines: string[] = [];

beforeAll(async () => {
  pg = await startPostgres();
  store = await openPostgresStore({ url: await createDatabase(pg, "record_queue"), nodeId: "n1", callRecords: { maxPending: MAX_QUEUED } });
  setLogSink((line) => lines.push(line));
}, 60_000);
afterAll(async () => {
  setLogSink((line) => process.stdout.write(line + "\n"));
  pg.resume();
  await store.close();
  await pg.stop();
});

function droppedTotal(): number {
  const line = metrics
    .render()
    .split("\n")
    .find((l) => l.startsWith("trunkline_call_record_writes_dropped_total "));
  return Number(line?.split(" ")[1] ?? 0);
}
const logged = (msg: string) => lines.filter((l) => l.includes(`"msg":"${msg}"`));
const newCall = (id: string) => ({ id, direction: "inbound" as const, from: "sip:a@x", to: "sip:100@y" });

test("a hung PostgreSQL: writes queue up to the bound, the rest are dropped and counted, logged once per episode; calls never wait", async () => {
  store.calls.create(newCall("before"));
  await store.calls.flush();
  expect(await store.calls.get("before")).toMatchObject({ state: "trying" });

  for (const episode of [1, 2]) {
    const droppedBefore = droppedTotal();
    await pg.pause();
    // Synchronous: every call's write returns at once, whether queued or dropped.
    for (let i = 0; i < MAX_QUEUED + 10; i++) store.calls.create(newCall(`e${episode}-${i}`));
    expect(store.calls.queuedWrites).toBe(MAX_QUEUED);
    expect(droppedTotal() - droppedBefore).toBe(10);
    expect(logged("call record writes dropped: the database is not keeping up")).toHaveLength(episode);

    pg.resume();
    await until(() => store.calls.queuedWrites === 0, { timeoutMs: 20_000, what: () => store.calls.queuedWrites });
    const recovered = logged("call record writes flowing again");
    expect(recovered).toHaveLength(episode);
    expect(JSON.parse(recovered.at(-1)!).dropped).toBe(10);
    // The queued writes landed in order; the dropped ones never did.
    expect(await store.calls.get(`e${episode}-${MAX_QUEUED - 1}`)).toMatchObject({ state: "trying" });
    expect(await store.calls.get(`e${episode}-${MAX_QUEUED}`)).toBeUndefined();
  }
  expect(logged("call record write failed")).toEqual([]);
}, 60_000);
