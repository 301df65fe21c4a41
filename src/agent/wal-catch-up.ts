// After a promotion, the new primary pushes the earlier timelines' WAL still in its pg_wal (core/wal-archive.ts decides
// when). Beside the HA loop, never in it: the promotion is done before this starts, a slow archive delays nothing, and
// the outcome comes back to core as obs.walArchive. A failed run is logged by the adapter with the archive's own
// message; whether and when it is retried (a pause that doubles per failure, never a hot loop) or given up is core's
// catchUpFailureVerdict.
import { catchUpFailureVerdict, type ArchiveMethod, type WalArchiveObservation } from '../core/wal-archive.js';
import type { Clock, WalArchiveTool } from '../core/ports.js';
import { describeError } from '../util/errors.js';
import type { Log } from '../util/log.js';

/** A catch-up run that has not finished after this long is stopped and retried later (a stuck archive). */
const CATCH_UP_LIMIT_MS = 300_000;

export interface WalCatchUpStatus {
  readonly caughtUpTimeline: number | undefined;
  readonly isRunning: boolean;
  readonly retryNotBeforeMs: number | undefined;
  readonly failuresInRow: number;
  /** The last run's failure (the archive's message), for the snapshot. */
  readonly lastError: string | undefined;
}

export class WalCatchUp {
  readonly #tool: WalArchiveTool;
  readonly #clock: Clock;
  readonly #log: Log;
  #status: WalCatchUpStatus = {
    caughtUpTimeline: undefined,
    isRunning: false,
    retryNotBeforeMs: undefined,
    failuresInRow: 0,
    lastError: undefined,
  };
  #running: AbortController | undefined;

  constructor(tool: WalArchiveTool, clock: Clock, log: Log) {
    this.#tool = tool;
    this.#clock = clock;
    this.#log = log;
  }

  status(): WalCatchUpStatus {
    return this.#status;
  }

  observation(method: ArchiveMethod | undefined): WalArchiveObservation {
    const { caughtUpTimeline, isRunning, retryNotBeforeMs } = this.#status;
    return { method, caughtUpTimeline, isRunning, retryNotBeforeMs };
  }

  /** Starts pushing the timelines before `timeline`; a run already going is left alone. Resolves when it ended. */
  start(timeline: number, method: ArchiveMethod): Promise<void> {
    if (this.#running !== undefined) return Promise.resolve();
    const controller = new AbortController();
    this.#running = controller;
    this.#status = { ...this.#status, isRunning: true };
    this.#log.info({ timeline, method: method.kind }, `archiving the WAL of timelines before ${timeline} still in pg_wal`);
    const cancelLimit = this.#clock.setTimer(CATCH_UP_LIMIT_MS, () => controller.abort());
    return this.#tool
      .pushPreviousTimelines(timeline, method, controller.signal)
      .then(
        (steps) => {
          const failed = steps.find((step) => step.outcome === 'failed');
          if (failed === undefined) this.#succeeded(timeline);
          else this.#failed(timeline, failed.detail);
        },
        (error: unknown) => {
          const detail = describeError(error);
          this.#log.warn({ timeline, error: detail }, `archiving the WAL of timelines before ${timeline} failed: ${detail}`);
          this.#failed(timeline, detail);
        },
      )
      .finally(() => {
        cancelLimit();
        this.#running = undefined;
        this.#status = { ...this.#status, isRunning: false };
      });
  }

  /** The agent stops: a run in progress is stopped. */
  close(): void {
    this.#running?.abort();
  }

  #succeeded(timeline: number): void {
    // A different content (045) is not retried: pushing again cannot change what the archive holds.
    this.#status = { ...this.#status, caughtUpTimeline: timeline, retryNotBeforeMs: undefined, failuresInRow: 0, lastError: undefined };
  }

  #failed(timeline: number, detail: string): void {
    const verdict = catchUpFailureVerdict(this.#status.failuresInRow, this.#clock.nowMs());
    const { failuresInRow } = verdict;
    if (verdict.kind === 'give-up') {
      this.#log.error(
        { timeline, failures_in_row: failuresInRow, error: detail },
        `gave up archiving the WAL of timelines before ${timeline} after ${failuresInRow} failed runs: the archive may lack segments of the old timeline (${detail}); take a new full backup`,
      );
      this.#status = { ...this.#status, caughtUpTimeline: timeline, retryNotBeforeMs: undefined, failuresInRow: 0, lastError: detail };
      return;
    }
    const retryInS = (verdict.retryNotBeforeMs - this.#clock.nowMs()) / 1000;
    this.#status = { ...this.#status, retryNotBeforeMs: verdict.retryNotBeforeMs, failuresInRow, lastError: detail };
    this.#log.info({ retry_in_s: retryInS, failures_in_row: failuresInRow }, `WAL catch-up will be retried in ${retryInS} s`);
  }
}
