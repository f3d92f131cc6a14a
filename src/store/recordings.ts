// Recordings' metadata: one row per recording of a channel's mix, written when it starts and when
// it stops, owned by the node whose disk holds the file (node_id). The audio itself is a file
// (src/recordings/); retention deletes both.
import type { SqlExecutor, SqlValue } from "./sql.ts";

export const recordingsMigration = {
  sqlite: `
CREATE TABLE recordings (
  id TEXT PRIMARY KEY,
  node_id TEXT NOT NULL,
  application_id TEXT NOT NULL,
  channel_id TEXT NOT NULL,
  format TEXT NOT NULL CHECK (format IN ('opus', 'wav')),
  sample_rate INTEGER NOT NULL,
  file TEXT NOT NULL,
  state TEXT NOT NULL CHECK (state IN ('recording', 'stopped')),
  started_at INTEGER NOT NULL,
  stopped_at INTEGER,
  duration_ms INTEGER NOT NULL DEFAULT 0,
  bytes INTEGER NOT NULL DEFAULT 0,
  dropped_frames INTEGER NOT NULL DEFAULT 0,
  stop_reason TEXT
) STRICT;
CREATE INDEX recordings_stopped_at ON recordings (stopped_at) WHERE stopped_at IS NOT NULL;
`,
  postgres: `
CREATE TABLE recordings (
  id TEXT PRIMARY KEY,
  node_id TEXT NOT NULL,
  application_id TEXT NOT NULL,
  channel_id TEXT NOT NULL,
  format TEXT NOT NULL CHECK (format IN ('opus', 'wav')),
  sample_rate INTEGER NOT NULL,
  file TEXT NOT NULL,
  state TEXT NOT NULL CHECK (state IN ('recording', 'stopped')),
  started_at BIGINT NOT NULL,
  stopped_at BIGINT,
  duration_ms BIGINT NOT NULL DEFAULT 0,
  bytes BIGINT NOT NULL DEFAULT 0,
  dropped_frames BIGINT NOT NULL DEFAULT 0,
  stop_reason TEXT
);
CREATE INDEX recordings_stopped_at ON recordings (stopped_at) WHERE stopped_at IS NOT NULL;
`,
};

export interface RecordingRecord {
  id: string;
  applicationId: string;
  channelId: string;
  format: "opus" | "wav";
  sampleRate: number;
  /** Path of the audio file on its node's disk. */
  file: string;
  state: "recording" | "stopped";
  startedAt: string;
  stoppedAt?: string;
  durationMs: number;
  bytes: number;
  droppedFrames: number;
  /** stopped (API), channel_empty, write_failed, shutdown, interrupted */
  stopReason?: string;
}

export type NewRecording = Pick<RecordingRecord, "id" | "applicationId" | "channelId" | "format" | "sampleRate" | "file">;

export interface RecordingEnd {
  durationMs: number;
  bytes: number;
  droppedFrames: number;
  stopReason: string;
}

type Int = number | string;

interface RecordingRow {
  id: string;
  application_id: string;
  channel_id: string;
  format: "opus" | "wav";
  sample_rate: number;
  file: string;
  state: "recording" | "stopped";
  started_at: Int;
  stopped_at: Int | null;
  duration_ms: Int;
  bytes: Int;
  dropped_frames: Int;
  stop_reason: string | null;
}

export class RecordingStore {
  constructor(
    private readonly sql: SqlExecutor,
    private readonly nodeId: string,
  ) {}

  async create(recording: NewRecording, startedAt: number): Promise<RecordingRecord> {
    const [row] = await this.sql.serial(() =>
      this.sql.query<RecordingRow>(
        `INSERT INTO recordings (id, node_id, application_id, channel_id, format, sample_rate, file, state, started_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, 'recording', $8) RETURNING *`,
        [recording.id, this.nodeId, recording.applicationId, recording.channelId, recording.format, recording.sampleRate, recording.file, startedAt],
      ),
    );
    return toRecord(row!);
  }

  /** Marks the recording stopped with its final figures; a stopped one stays as it was. */
  async stop(id: string, end: RecordingEnd, stoppedAt: number): Promise<RecordingRecord | undefined> {
    const [row] = await this.sql.serial(() =>
      this.sql.query<RecordingRow>(
        `UPDATE recordings SET state = 'stopped', stopped_at = $1, duration_ms = $2, bytes = $3, dropped_frames = $4, stop_reason = $5
         WHERE id = $6 AND state = 'recording' RETURNING *`,
        [stoppedAt, end.durationMs, end.bytes, end.droppedFrames, end.stopReason, id],
      ),
    );
    return row ? toRecord(row) : undefined;
  }

  async get(id: string): Promise<RecordingRecord | undefined> {
    const [row] = await this.sql.serial(() => this.sql.query<RecordingRow>("SELECT * FROM recordings WHERE id = $1", [id]));
    return row ? toRecord(row) : undefined;
  }

  /**
   * Deletes up to `limit` of this node's recordings that stopped before `cutoff` (epoch ms), oldest
   * first, and returns them so their files can go too (only this node's disk has them; on SQLite
   * every row is this process's).
   */
  async pruneStopped(cutoff: number, limit: number): Promise<RecordingRecord[]> {
    const rows = await this.sql.serial(() =>
      this.sql.query<RecordingRow>(
        `DELETE FROM recordings WHERE id IN
           (SELECT id FROM recordings WHERE stopped_at < $1 ${this.ownOnly("$3")} ORDER BY stopped_at LIMIT $2) RETURNING *`,
        this.withNode([cutoff, limit]),
      ),
    );
    return rows.map(toRecord);
  }

  /** At start: this node's recordings that were running when it stopped end as `interrupted`. */
  async closeInterrupted(now = Date.now()): Promise<RecordingRecord[]> {
    const rows = await this.sql.serial(() =>
      this.sql.query<RecordingRow>(
        `UPDATE recordings SET state = 'stopped', stopped_at = $1, stop_reason = 'interrupted'
         WHERE state = 'recording' ${this.ownOnly("$2")} RETURNING *`,
        this.withNode([now]),
      ),
    );
    return rows.map(toRecord);
  }

  /** On PostgreSQL the cluster shares the table: a node touches only its own rows. */
  private ownOnly(placeholder: string): string {
    return this.sql.dialect === "postgres" ? `AND node_id = ${placeholder}` : "";
  }

  private withNode(params: SqlValue[]): SqlValue[] {
    return this.sql.dialect === "postgres" ? [...params, this.nodeId] : params;
  }
}

function toRecord(row: RecordingRow): RecordingRecord {
  return {
    id: row.id,
    applicationId: row.application_id,
    channelId: row.channel_id,
    format: row.format,
    sampleRate: Number(row.sample_rate),
    file: row.file,
    state: row.state,
    startedAt: new Date(Number(row.started_at)).toISOString(),
    ...(row.stopped_at !== null ? { stoppedAt: new Date(Number(row.stopped_at)).toISOString() } : {}),
    durationMs: Number(row.duration_ms),
    bytes: Number(row.bytes),
    droppedFrames: Number(row.dropped_frames),
    ...(row.stop_reason !== null ? { stopReason: row.stop_reason } : {}),
  };
}
