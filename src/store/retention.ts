// Call-record retention (config records.retentionDays; SIP traces: records.sipTraceDays): records of
// calls that ended more than that many days ago are deleted at start and every hour, in the background. Each batch is one short
// DELETE of at most `batchSize` rows, and the event loop runs between batches, so calls writing
// their own records never wait behind the pruning. Records of live calls have no end time and are
// never pruned. retentionDays 0 keeps every record.
import { createLogger } from "../log.ts";
import { metrics } from "../metrics.ts";

/** What retention prunes: call records (calls.ts) or SIP traces (sipTraces.ts). */
export interface PrunableRecords {
  /** Deletes up to `limit` records of calls that ended before `cutoff` (epoch ms); returns how many. */
  pruneEnded(cutoff: number, limit: number): Promise<number>;
}

export type RetainedKind = "call records" | "SIP traces";

export interface RetentionOptions {
  records: PrunableRecords;
  /** Names the logs and the metric (default "call records"). */
  kind?: RetainedKind;
  /** Read at each run, so a config reload applies to the next one. 0 keeps records forever. */
  retentionDays: () => number;
  /** Rows per DELETE (default 500). */
  batchSize?: number;
  /** Between runs (default one hour). */
  intervalMs?: number;
  now?: () => number;
}

export interface PruneResult {
  pruned: number;
  batches: number;
}

const DAY_MS = 86_400_000;
const log = createLogger("store.retention");
const prunedCounters: Record<RetainedKind, ReturnType<typeof metrics.counter>> = {
  "call records": metrics.counter("trunkline_call_records_pruned_total", "Call records deleted by records.retentionDays."),
  "SIP traces": metrics.counter("trunkline_sip_traces_pruned_total", "SIP traces of calls deleted by records.sipTraceDays."),
};

export class CallRecordRetention {
  private timer: ReturnType<typeof setInterval> | undefined;
  private running: Promise<PruneResult> | undefined;
  private stopped = false;
  private readonly batchSize: number;
  private readonly now: () => number;
  private readonly kind: RetainedKind;

  constructor(private readonly options: RetentionOptions) {
    this.batchSize = options.batchSize ?? 500;
    this.now = options.now ?? Date.now;
    this.kind = options.kind ?? "call records";
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
        const deleted = await this.options.records.pruneEnded(cutoff, this.batchSize);
        result.batches++;
        result.pruned += deleted;
        prunedCounters[this.kind].inc({}, deleted);
        if (deleted < this.batchSize) break;
        await new Promise<void>((resolve) => setImmediate(resolve));
      }
    } catch (err) {
      log.error(`${this.kind} pruning failed`, { err });
    }
    if (result.pruned > 0) log.info(`old ${this.kind} pruned`, { count: result.pruned, retentionDays: days });
    return result;
  }
}
