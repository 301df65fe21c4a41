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

/** Until the agent stops: watch from the last read revision, nudge the loop on any change, back off on errors. */
export async function runDcsWatch(options: DcsWatchOptions, stop: AbortSignal): Promise<void> {
  const { dcs, clock } = options;
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
    } catch {
      // A watch that ran out its time is renewed at once; a broken one is harmless (the loop wakes on its own
      // schedule) and is retried after a short back-off.
      if (!signal.aborted) await clock.sleep(500, stop).catch(() => undefined);
    }
  }
}
