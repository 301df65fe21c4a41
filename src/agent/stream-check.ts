// Between cycles, one cheap query where it can change a decision: a streaming replica's WAL receiver (a dead primary
// shows first as a dropped stream) and, in synchronous mode, the primary's set of streaming standbys.
import type { Clock, PgController, WalStatus } from '../core/ports.js';
import type { LocalPg } from '../core/types.js';
import type { Log } from '../util/log.js';

/**
 * How often the check runs. Noticing a dropped stream here instead of at the next loop_wait is what makes failover
 * independent of loop_wait; one tiny query per interval.
 */
export const STREAM_CHECK_INTERVAL_MS = 500;
const WAL_STATUS_BUDGET_MS = 2000;

export interface StreamCheckView {
  /** The last observation of the local PostgreSQL (undefined before the first probe). */
  readonly pg: LocalPg | undefined;
  readonly isTaskRunning: boolean;
  /** Synchronous mode is on: a standby coming or going changes what the primary must wait for. */
  readonly isSyncMode: boolean;
}

export interface StreamCheckOptions {
  readonly pg: PgController;
  readonly clock: Clock;
  readonly log: Log;
  readonly view: () => StreamCheckView;
  /** Fresh WAL positions for the REST API (switchover candidates are judged on them). */
  readonly onPositions: (positions: Pick<LocalPg, 'writeLsn' | 'receivedLsn' | 'replayedLsn'>) => void;
  /**
   * The replica's WAL receiver stopped: mark the observation and decide now. The positions come with it, read in the
   * same query: a "not streaming" member must never publish a position from before its stream stopped (a quorum
   * candidate would count it as a vote that it is not behind).
   */
  readonly onStreamLost: (positions: Pick<LocalPg, 'receivedLsn' | 'replayedLsn'>) => void;
  readonly onStandbysChanged: () => void;
}

/** Which check, if any, can change a decision for this observation. */
export function streamCheckKind(view: StreamCheckView): 'replica-stream' | 'sync-standbys' | undefined {
  const pg = view.pg;
  if (pg === undefined || !pg.isRunning || view.isTaskRunning) return undefined;
  if (pg.role === 'replica' && pg.isStreaming) return 'replica-stream';
  if (pg.role === 'primary' && view.isSyncMode) return 'sync-standbys';
  return undefined;
}

const standbySet = (pg: LocalPg): string =>
  pg.replication
    .filter((row) => row.state === 'streaming')
    .map((row) => row.application_name)
    .sort()
    .join(',');

export async function runStreamCheck(options: StreamCheckOptions, stop: AbortSignal): Promise<void> {
  const { clock, pg, log } = options;
  /** The standby set the check last woke the loop for (one nudge per change). */
  let lastStandbySet: string | undefined;
  while (!stop.aborted) {
    await clock.sleep(STREAM_CHECK_INTERVAL_MS, stop).catch(() => undefined);
    if (stop.aborted) break;
    const kind = streamCheckKind(options.view());
    if (kind === undefined) continue;
    let status: WalStatus | undefined;
    try {
      status = await pg.walStatus(clock.deadline(WAL_STATUS_BUDGET_MS, stop));
    } catch {
      continue;
    }
    const current = options.view();
    if (status === undefined || streamCheckKind(current) !== kind || current.pg === undefined) continue;
    if (kind === 'replica-stream') {
      const positions = {
        receivedLsn: status.receivedLsn ?? current.pg.receivedLsn,
        replayedLsn: status.replayedLsn ?? current.pg.replayedLsn,
      };
      options.onPositions({ writeLsn: undefined, ...positions });
      if (!status.isStreaming) {
        log.info({}, 'WAL receiver stopped streaming: checking the cluster now');
        options.onStreamLost(positions);
      }
      continue;
    }
    options.onPositions({ writeLsn: status.writeLsn, receivedLsn: undefined, replayedLsn: undefined });
    if (status.streamingStandbys === undefined) continue;
    const now = status.streamingStandbys.join(',');
    if (standbySet(current.pg) !== now && now !== lastStandbySet) {
      // The primary may be waiting on a standby that is gone, or strict mode may be blocking writes that a newly
      // arrived standby can unblock: decide now, not at loop_wait.
      log.info({ standbys: now }, 'streaming standbys changed: checking synchronous replication now');
      lastStandbySet = now;
      options.onStandbysChanged();
    }
  }
}
