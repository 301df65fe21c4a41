// Between cycles, what can change a decision before loop_wait: a streaming replica's upstream going away, and, in
// synchronous mode, the primary's set of streaming standbys. The first is an event (an idle session to the upstream's
// server ends when its postmaster does); only when no such session can be opened is the WAL receiver polled. The
// second is polled: PostgreSQL has no event for a standby coming or going.
import type { Clock, PgController, Upstream, WalStatus } from '../core/ports.js';
import type { LocalPg } from '../core/types.js';
import type { Log } from '../util/log.js';
import { within } from '../util/abort.js';

/** How often the polled checks run: one tiny query per interval, only while it can change a decision. */
export const STREAM_CHECK_INTERVAL_MS = 500;
const WAL_STATUS_BUDGET_MS = 2000;
/** After the upstream session ends, how often and how long to look for the WAL receiver to notice. */
const STREAM_LOSS_POLL_MS = 50;
const STREAM_LOSS_WAIT_MS = 2000;
/** An upstream that refused the watch session, or closed it while the stream went on, is polled this long instead. */
const WATCH_RETRY_MS = 30_000;

export interface StreamCheckView {
  /** The last observation of the local PostgreSQL (undefined before the first probe). */
  readonly pg: LocalPg | undefined;
  readonly isTaskRunning: boolean;
  /** Synchronous mode is on: a standby coming or going changes what the primary must wait for. */
  readonly isSyncMode: boolean;
  /** The member the replica streams from, with its conn_url (undefined when the view does not know it). */
  readonly upstream: Upstream | undefined;
}

export interface StreamCheckOptions {
  readonly pg: PgController;
  readonly clock: Clock;
  readonly log: Log;
  readonly view: () => StreamCheckView;
  /** Resolves when the view may have changed (after a cycle), or when the signal aborts. */
  readonly viewChanged: (signal: AbortSignal) => Promise<void>;
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

const isSameUpstream = (a: Upstream | undefined, b: Upstream): boolean => a?.name === b.name && a.connUrl === b.connUrl;

async function readWal(options: StreamCheckOptions, stop: AbortSignal): Promise<WalStatus | undefined> {
  try {
    return await within(options.clock.deadline(WAL_STATUS_BUDGET_MS, stop), (signal) => options.pg.walStatus(signal));
  } catch {
    return undefined;
  }
}

/**
 * Reads the WAL receiver once; a stopped stream is reported. Returns whether the replica still streams (undefined when
 * the question no longer applies: PostgreSQL down, a task started, no longer a streaming replica).
 */
async function checkReplicaStream(options: StreamCheckOptions, stop: AbortSignal): Promise<boolean | undefined> {
  const status = await readWal(options, stop);
  const current = options.view();
  if (status === undefined || streamCheckKind(current) !== 'replica-stream' || current.pg === undefined) return undefined;
  if (status.isStreaming) return true;
  options.log.info({}, 'WAL receiver stopped streaming: checking the cluster now');
  options.onStreamLost({
    receivedLsn: status.receivedLsn ?? current.pg.receivedLsn,
    replayedLsn: status.replayedLsn ?? current.pg.replayedLsn,
  });
  return false;
}

/** The upstream's session ended: the WAL receiver hears of the same event at about the same time; wait for it. */
async function confirmStreamLoss(options: StreamCheckOptions, stop: AbortSignal): Promise<'lost' | 'streaming' | 'moot'> {
  const { clock } = options;
  const startedAtMs = clock.nowMs();
  for (;;) {
    const isStreaming = await checkReplicaStream(options, stop);
    if (isStreaming === undefined) return 'moot';
    if (!isStreaming) return 'lost';
    if (stop.aborted || clock.nowMs() - startedAtMs >= STREAM_LOSS_WAIT_MS) return 'streaming';
    await clock.sleep(STREAM_LOSS_POLL_MS, stop).catch(() => undefined);
  }
}

/** Holds the upstream watch until it ends or the view stops naming this upstream for a streaming replica. */
async function watchWhileCurrent(options: StreamCheckOptions, upstream: Upstream, stop: AbortSignal): Promise<string> {
  const { pg } = options;
  const watch = new AbortController();
  const signal = AbortSignal.any([stop, watch.signal]);
  let end: string | undefined;
  const ended = pg.watchUpstream(upstream, signal).then((result) => (end = result));
  try {
    while (end === undefined && !stop.aborted) {
      await Promise.race([ended, options.viewChanged(signal)]);
      if (end !== undefined) break;
      const view = options.view();
      if (streamCheckKind(view) !== 'replica-stream' || !isSameUpstream(view.upstream, upstream)) return 'moved';
    }
    return end ?? 'aborted';
  } finally {
    watch.abort();
  }
}

export async function runStreamCheck(options: StreamCheckOptions, stop: AbortSignal): Promise<void> {
  const { clock, log } = options;
  /** The standby set the check last woke the loop for (one nudge per change). */
  let lastStandbySet: string | undefined;
  /** Until when the upstream is polled instead of watched, and which upstream that was logged for. */
  let pollUntilMs = Number.NEGATIVE_INFINITY;
  let polledUpstream: string | undefined;
  const pollInstead = (upstream: Upstream, why: string): void => {
    pollUntilMs = clock.nowMs() + WATCH_RETRY_MS;
    if (polledUpstream !== upstream.name)
      log.warn(
        { upstream: upstream.name, poll_ms: STREAM_CHECK_INTERVAL_MS, retry_ms: WATCH_RETRY_MS },
        `${why}: polling the WAL receiver instead`,
      );
    polledUpstream = upstream.name;
  };
  while (!stop.aborted) {
    const view = options.view();
    const kind = streamCheckKind(view);
    const upstream = view.upstream;
    if (kind === 'replica-stream' && upstream !== undefined && clock.nowMs() >= pollUntilMs) {
      const end = await watchWhileCurrent(options, upstream, stop);
      if (end === 'unavailable') pollInstead(upstream, 'could not open a session to the upstream to watch it');
      if (end === 'closed') {
        log.info({ upstream: upstream.name }, 'the session to the upstream ended: checking the WAL receiver');
        const outcome = await confirmStreamLoss(options, stop);
        // A server that closes idle sessions (idle_session_timeout, a pooler) would turn the watch into a busy loop.
        if (outcome === 'streaming') pollInstead(upstream, 'the upstream closed the watch session but replication goes on');
        if (outcome === 'lost') polledUpstream = undefined;
      }
      continue;
    }
    if (kind === undefined) {
      // Nothing between cycles can change a decision: no timer, wait for the next cycle's view.
      await options.viewChanged(stop);
      continue;
    }
    await clock.sleep(STREAM_CHECK_INTERVAL_MS, stop).catch(() => undefined);
    if (stop.aborted) break;
    if (kind === 'replica-stream') {
      await checkReplicaStream(options, stop);
      continue;
    }
    if (kind !== 'sync-standbys') continue;
    const status = await readWal(options, stop);
    const current = options.view();
    if (status?.streamingStandbys === undefined || streamCheckKind(current) !== kind || current.pg === undefined) continue;
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
