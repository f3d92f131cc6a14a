// Recordings' metadata on both drivers (SQLite, and a PostgreSQL this run starts for itself), and
// what the service does with it at start: recordings a crash left running end as interrupted, and
// recordings.retentionDays deletes old stopped ones with their files.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { AppContext } from "../../src/app.ts";
import { ChannelRegistry } from "../../src/channels/registry.ts";
import { metrics } from "../../src/metrics.ts";
import { RecordingService } from "../../src/recordings/service.ts";
import { openPostgresStore, openStore, type Store } from "../../src/store/index.ts";
import { createDatabase, startPostgres, type Postgres } from "../helpers/postgres.ts";
import { until } from "../helpers/until.ts";

const DAY = 86_400_000;
let pg: Postgres | undefined;
let databases = 0;

beforeAll(async () => {
  pg = await startPostgres();
});

afterAll(async () => {
  await pg?.stop();
});

const drivers: { name: string; open(nodeId: string, shared?: string): Promise<{ store: Store; url?: string }> }[] = [
  { name: "sqlite", open: async (nodeId) => ({ store: openStore(":memory:", undefined, { nodeId }) }) },
  {
    name: "postgres",
    async open(nodeId, shared) {
      const url = shared ?? (await createDatabase(pg!, `recordings_${++databases}`));
      return { store: await openPostgresStore({ url, nodeId }), url };
    },
  },
];

const recording = (id: string) => ({ id, applicationId: "app1", channelId: "lobby", format: "opus" as const, sampleRate: 48000, file: `/tmp/${id}.ogg` });

for (const driver of drivers) {
  describe(`recordings store (${driver.name})`, () => {
    test("a recording is created running, stopped once with its figures, read back, and pruned by stop time", async () => {
      const { store } = await driver.open("node-1");
      try {
        const t0 = Date.parse("2026-01-01T00:00:00Z");
        const created = await store.recordings.create(recording("rec_a"), t0);
        expect(created).toEqual({ ...recording("rec_a"), state: "recording", startedAt: new Date(t0).toISOString(), durationMs: 0, bytes: 0, droppedFrames: 0 });
        const end = { durationMs: 61_000, bytes: 250_000, droppedFrames: 3, stopReason: "stopped" };
        const stopped = await store.recordings.stop("rec_a", end, t0 + 61_000);
        expect(stopped).toEqual({ ...created, ...end, state: "stopped", stoppedAt: new Date(t0 + 61_000).toISOString() });
        // Stopped is final.
        expect(await store.recordings.stop("rec_a", { ...end, stopReason: "shutdown" }, t0 + 99_000)).toBeUndefined();
        expect(await store.recordings.get("rec_a")).toEqual(stopped!);

        await store.recordings.create(recording("rec_b"), t0 + 10 * DAY);
        await store.recordings.stop("rec_b", end, t0 + 10 * DAY);
        await store.recordings.create(recording("rec_running"), t0);
        const pruned = await store.recordings.pruneStopped(t0 + 5 * DAY, 500);
        expect(pruned.map((r) => r.id)).toEqual(["rec_a"]);
        expect(await store.recordings.get("rec_a")).toBeUndefined();
        expect((await store.recordings.get("rec_b"))?.state).toBe("stopped");
        expect((await store.recordings.get("rec_running"))?.state).toBe("recording");
      } finally {
        await store.close();
      }
    });

    if (driver.name === "postgres") {
      test("a node closes only its own running recordings as interrupted, and prunes only its own", async () => {
        const one = await driver.open("node-1");
        const two = await driver.open("node-2", one.url);
        try {
          await one.store.recordings.create(recording("rec_one"), 1000);
          await two.store.recordings.create(recording("rec_two"), 1000);
          expect((await one.store.recordings.closeInterrupted(5000)).map((r) => r.id)).toEqual(["rec_one"]);
          expect((await two.store.recordings.get("rec_two"))?.state).toBe("recording");
          await two.store.recordings.stop("rec_two", { durationMs: 1, bytes: 1, droppedFrames: 0, stopReason: "stopped" }, 2000);
          expect(await one.store.recordings.pruneStopped(10_000, 500)).toHaveLength(1);
          expect(await one.store.recordings.get("rec_one")).toBeUndefined();
          expect((await one.store.recordings.get("rec_two"))?.state).toBe("stopped");
        } finally {
          await two.store.close();
          await one.store.close();
        }
      });
    }
  });
}

describe("recording service at start", () => {
  test("recordings left running end as interrupted; stopped ones older than recordings.retentionDays go with their files", async () => {
    const dir = mkdtempSync(join(tmpdir(), "trunkline-recordings-"));
    const store = openStore(":memory:");
    const now = Date.now();
    const file = (id: string) => {
      const path = join(dir, `${id}.ogg`);
      writeFileSync(path, "audio");
      return path;
    };
    const end = { durationMs: 1000, bytes: 5, droppedFrames: 0, stopReason: "stopped" };
    for (const [id, stoppedAt] of [["rec_old", now - 31 * DAY], ["rec_recent", now - 29 * DAY]] as const) {
      await store.recordings.create({ ...recording(id), file: file(id) }, stoppedAt - 1000);
      await store.recordings.stop(id, end, stoppedAt);
    }
    await store.recordings.create({ ...recording("rec_crashed"), file: file("rec_crashed") }, now - 40 * DAY);
    const prunedBefore = metrics.counter("trunkline_recordings_pruned_total", "").get();

    const ctx = { config: { recordings: { dir, retentionDays: 30 } }, store } as unknown as AppContext;
    const service = new RecordingService(ctx, new ChannelRegistry());
    await service.start();
    try {
      // The pass counts what it pruned once its rows and files are gone.
      await until(() => metrics.counter("trunkline_recordings_pruned_total", "").get() - prunedBefore === 1);
      expect(existsSync(join(dir, "rec_old.ogg"))).toBe(false);
      expect(await store.recordings.get("rec_old")).toBeUndefined();
      expect(existsSync(join(dir, "rec_recent.ogg"))).toBe(true);
      expect(existsSync(join(dir, "rec_crashed.ogg"))).toBe(true);
      expect(await store.recordings.get("rec_crashed")).toMatchObject({ state: "stopped", stopReason: "interrupted" });
    } finally {
      await service.stop();
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
