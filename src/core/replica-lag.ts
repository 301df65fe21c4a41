// A replica's lag in seconds, from what its probe already read (no extra query): the standard
// "now() - pg_last_xact_replay_timestamp()", except when there is nothing to replay. On an idle primary the last commit
// may be hours old while the replica has everything: that is no lag, and a bare replay age would page someone for it.
import type { LocalPg } from './types.js';

/**
 * 0 for a streaming replica that replayed all it received (caught up, however old the last commit); otherwise the
 * time since the last replayed commit (replay stuck or slow, or no stream: a replica cut off from its leader ages as
 * its data does). undefined: not a running replica, or nothing replayed since it started (unknown).
 */
export function replicaLagMs(pg: LocalPg | undefined): number | undefined {
  if (pg === undefined || !pg.isRunning || pg.role !== 'replica') return undefined;
  const received = pg.receivedLsn;
  const replayed = pg.replayedLsn;
  const isCaughtUp = received !== undefined && replayed !== undefined && replayed >= received;
  if (pg.isStreaming && isCaughtUp) return 0;
  return pg.replayAgeMs === undefined ? undefined : Math.max(0, pg.replayAgeMs);
}

/** The lag as published in the member key: seconds with one decimal (a steady value is not rewritten every cycle). */
export function lagSecondsOf(pg: LocalPg | undefined): number | undefined {
  const ms = replicaLagMs(pg);
  return ms === undefined ? undefined : Math.round(ms / 100) / 10;
}
