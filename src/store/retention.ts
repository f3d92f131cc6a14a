// Retention of finished things: call records (config records.retentionDays), SIP traces
// (records.sipTraceDays) and recordings (recordings.retentionDays). What ended more than that many days ago is deleted at start and every
// hour, in the background. Each batch is one short DELETE of at most `batchSize` rows, and the event
// loop runs between batches, so calls writing their own records never wait behind the pruning.
// Records of live calls (and running recordings) have no end time and are never pruned.
// retentionDays 0 keeps everything.
import { createLogger } from "../log.ts";
import { type Counter, metrics } from "../metrics.ts";

interface CommonOptions {
  /** Read at each run, so a config reload applies to the next one. 0 keeps records forever. */
  retentionDays: () => number;
  /** Rows per DELETE (default 500). */
  batchSize?: number;
  /** Between runs (default one hour). */
  intervalMs?: number;
  now?: () => number;
}

/** Kept per call and pruned by the call's end time: call records (calls.ts) or SIP traces (sipTraces.ts). */
export interface PrunableRecords {
  /** Deletes up to `limit` records of calls that ended before `cutoff` (epoch ms); returns how many. */
  pruneEnded(cutoff: number, limit: number): Promise<number>;
}

export type RetainedKind = "call records" | "SIP traces";

export interface RetentionOptions extends CommonOptions {
  records: PrunableRecords;
  /** Names the logs and the metric (default "call records"). */
  kind?: RetainedKind;
}

export interface PrunerOptions extends CommonOptions {
  /** What is pruned, for the log. */
  what: string;
  /** Deletes up to `limit` of what ended before `cutoff` (epoch ms); returns how many. */
  prune(cutoff: number, limit: number): Promise<number>;
  pruned: Counter;
}

export interface PruneResult {
  pruned: number;
  batches: number;
}

const DAY_MS = 86_400_000;
const log = createLogger("store.retention");
const prunedCounters: Record<RetainedKind, Counter> = {
  "call records": metrics.counter("trunkline_call_records_pruned_total", "Call records deleted by records.retentionDays."),
  "SIP traces": metrics.counter("trunkline_sip_traces_pruned_total", "SIP traces of calls deleted by records.sipTraceDays."),
};

export class Retention {
  private timer: ReturnType<typeof setInterval> | undefined;
  private running: Promise<PruneResult> | undefined;
  private stopped = false;
  private readonly batchSize: number;
  private readonly now: () => number;

  constructor(private readonly options: PrunerOptions) {
    this.batchSize = options.batchSize ?? 500;
    this.now = options.now ?? Date.now;
  }

  /** Prunes now in the background, then every interval. */
  start(): void {
    void this.run();
    this.timer = setInterval(() => void this.run(), this.options.intervalMs ?? 3_600_000);
    this.timer.unref?.();
  }

  /** One pruning pass until nothing is older than the limit; joins the pass already running, if any. */
  run(): Promise<PruneResult> {
    this.running ??= this.prune().finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  /** No new pass; the one running stops after its current batch. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    await this.running;
  }

  private async prune(): Promise<PruneResult> {
    const days = this.options.retentionDays();
    const result: PruneResult = { pruned: 0, batches: 0 };
    if (days === 0) return result;
    const cutoff = this.now() - days * DAY_MS;
    try {
      while (!this.stopped) {
        const deleted = await this.options.prune(cutoff, this.batchSize);
        result.batches++;
        result.pruned += deleted;
        this.options.pruned.inc({}, deleted);
        if (deleted < this.batchSize) break;
        await new Promise<void>((resolve) => setImmediate(resolve));
      }
    } catch (err) {
      log.error("pruning failed", { what: this.options.what, err });
    }
    if (result.pruned > 0) log.info("old records pruned", { what: this.options.what, count: result.pruned, retentionDays: days });
    return result;
  }
}

export class CallRecordRetention extends Retention {
  constructor(options: RetentionOptions) {
    const what = options.kind ?? "call records";
    super({ ...options, what, prune: (cutoff, limit) => options.records.pruneEnded(cutoff, limit), pruned: prunedCounters[what] });
  }
}
