// Follows the DCS between cycles so that a leader change wakes the loop at once instead of after loop_wait.
import type { Clock, Dcs } from '../core/ports.js';

export interface DcsWatchOptions {
  readonly dcs: Dcs;
  readonly clock: Clock;
  /** The revision of the last view the cycle read (the watch starts after it). */
  readonly revision: () => string | undefined;
  /** Bounds one watch request: a silent etcd connection is re-established at least this often. */
  readonly maxWatchMs: () => number;
  readonly onChange: () => void;
}

/** The first retry of a failed watch, doubled for each failure in a row up to WATCH_RETRY_MAX_MS. */
const WATCH_RETRY_MS = 500;
/**
 * A watch that keeps failing at once (etcd refuses our certificate or credentials) is retried this often at most: the
 * loop reads the DCS every cycle anyway, and each attempt costs etcd a TLS handshake or a password check.
 */
const WATCH_RETRY_MAX_MS = 5_000;

/** Until the agent stops: watch from the last read revision, nudge the loop on any change, back off on errors. */
export async function runDcsWatch(options: DcsWatchOptions, stop: AbortSignal): Promise<void> {
  const { dcs, clock } = options;
  let retryMs = WATCH_RETRY_MS;
  while (!stop.aborted) {
    const revision = options.revision();
    if (revision === undefined) {
      // No view yet: the first cycle's read gives the revision to start from.
      await clock.sleep(200, stop).catch(() => undefined);
      continue;
    }
    const signal = clock.deadline(options.maxWatchMs(), stop);
    try {
      await dcs.watch(revision, signal);
      options.onChange();
      retryMs = WATCH_RETRY_MS;
    } catch {
      // A watch that ran out its time is renewed at once; a broken one is harmless (the loop wakes on its own
      // schedule) and is retried after a back-off that grows while it keeps failing.
      if (signal.aborted) retryMs = WATCH_RETRY_MS;
      else {
        await clock.sleep(retryMs, stop).catch(() => undefined);
        retryMs = Math.min(retryMs * 2, WATCH_RETRY_MAX_MS);
      }
    }
  }
}
