// Gathers one Observation: PostgreSQL probe, DCS read, peer statuses, each under its own deadline; failures become data.
import type { Clock, Dcs, PeerClient, PgController } from '../core/ports.js';
import type { ClusterView, DcsObservation, LeaderProbe, LocalPg, PeerStatus } from '../core/types.js';
import { describeError } from '../util/errors.js';
import { within } from '../util/abort.js';
import type { Log } from '../util/log.js';

/** Peers get Patroni's budget for the leader race: one short attempt, no retries. */
const PEER_STATUS_BUDGET_MS = 2000;
/** A refused TCP connect answers in well under a millisecond on a live host; anything slower is "not refused". */
const LEADER_PROBE_BUDGET_MS = 300;

export interface DcsReadState {
  view: ClusterView | undefined;
  unreachableSinceMs: number | undefined;
  lastOkWallEpochS: number | undefined;
  /** While unreachable: failed reads so far, when it was last said, and the cause last said. */
  unreachable?: { reads: number; loggedAtMs: number; cause: string } | undefined;
}

/**
 * An unreachable DCS is said again at this interval, with how long and how many reads, rather than going silent
 * (and at once when the cause changes, e.g. refused becomes timeout).
 */
const DCS_UNREACHABLE_REPEAT_MS = 10_000;

export async function observePg(
  pg: PgController,
  clock: Clock,
  budgetMs: number,
  log: Log,
  previous: LocalPg | undefined,
): Promise<LocalPg | undefined> {
  try {
    return await within(clock.deadline(budgetMs), (signal) => pg.probe(signal));
  } catch (error) {
    log.warn({ error: describeError(error) }, 'PostgreSQL probe failed');
    return previous;
  }
}

/** Reads the cluster; a failure keeps the last view and starts (or continues) the unreachable clock. */
export async function observeDcs(dcs: Dcs, clock: Clock, budgetMs: number, state: DcsReadState, log: Log): Promise<DcsObservation> {
  try {
    const view = await within(clock.deadline(budgetMs), (signal) => dcs.loadCluster(signal));
    if (state.unreachableSinceMs !== undefined)
      log.info(
        { unreachable_for_ms: Math.round(clock.nowMs() - state.unreachableSinceMs), failed_reads: state.unreachable?.reads ?? 0 },
        'DCS reachable again',
      );
    state.view = view;
    state.unreachableSinceMs = undefined;
    state.unreachable = undefined;
    state.lastOkWallEpochS = Math.floor(Date.parse(clock.wallIso()) / 1000);
    return { kind: 'ok', view };
  } catch (error) {
    const nowMs = clock.nowMs();
    const cause = describeError(error);
    if (state.unreachableSinceMs === undefined || state.unreachable === undefined) {
      state.unreachableSinceMs ??= nowMs;
      state.unreachable = { reads: 1, loggedAtMs: nowMs, cause };
      log.warn({ error: cause }, 'DCS is not accessible');
    } else {
      const unreachable = state.unreachable;
      unreachable.reads += 1;
      if (cause !== unreachable.cause || nowMs - unreachable.loggedAtMs >= DCS_UNREACHABLE_REPEAT_MS) {
        unreachable.loggedAtMs = nowMs;
        unreachable.cause = cause;
        log.warn(
          { error: cause, failed_reads: unreachable.reads, unreachable_for_ms: Math.round(nowMs - state.unreachableSinceMs) },
          `DCS is still not accessible (for ${Math.round((nowMs - state.unreachableSinceMs) / 1000)} s, ${unreachable.reads} failed reads)`,
        );
      }
    }
    return { kind: 'unreachable', sinceMs: state.unreachableSinceMs, lastView: state.view };
  }
}

/**
 * Peer statuses for the leader race: only when the view has no leader (the race is the only reader). `skip` is a member
 * known to answer nothing (a leader this member just removed for silence): it counts as unreachable at once.
 */
export async function observePeers(view: ClusterView, self: string, peers: PeerClient, clock: Clock, skip?: string): Promise<PeerStatus[]> {
  if (view.leader !== undefined) return [];
  const others = view.members.filter((member) => member.name !== self && member.name !== skip);
  const signal = clock.deadline(PEER_STATUS_BUDGET_MS);
  return Promise.all(others.map((member) => peers.fetchStatus(member, signal)));
}

/**
 * The dead-leader fast path's evidence: probed only on a replica whose WAL receiver is down while another member
 * holds the lock, because that is the moment a leader crash shows first.
 */
export async function observeLeaderProbe(
  view: ClusterView,
  self: string,
  pg: LocalPg,
  peers: PeerClient,
  clock: Clock,
  isEnabled: boolean,
): Promise<LeaderProbe | undefined> {
  if (!isEnabled || view.leader === undefined || view.leader.name === self) return undefined;
  if (!pg.isRunning || pg.role !== 'replica' || pg.isStreaming) return undefined;
  const leaderMember = view.members.find((member) => member.name === view.leader?.name);
  if (leaderMember === undefined) return undefined;
  const refused = await peers.probeRefused(leaderMember, clock.deadline(LEADER_PROBE_BUDGET_MS));
  return { leader: view.leader, isApiRefused: refused.isApiRefused, isPgRefused: refused.isPgRefused };
}

/**
 * A replica that cannot stream while on the leader's timeline number may have promoted itself to that same ID
 * (a promotion cut short): pg_rewind sees "same timeline" and does nothing, so compare the history files.
 */
export async function observeHistoryDivergence(
  pg: PgController,
  clock: Clock,
  budgetMs: number,
  localPg: LocalPg,
  view: ClusterView | undefined,
  self: string,
): Promise<LocalPg> {
  const leader = view?.leader?.name;
  const leaderMember = view?.members.find((member) => member.name === leader);
  if (leader === undefined || leaderMember === undefined || leader === self) return localPg;
  if (!localPg.isRunning || localPg.role !== 'replica' || localPg.isStreaming) return localPg;
  if (localPg.timeline === undefined || leaderMember.timeline !== localPg.timeline) return localPg;
  const isHistoryDivergent = await pg
    .isHistoryDivergent({ name: leader, connUrl: leaderMember.conn_url }, localPg.timeline, clock.deadline(budgetMs))
    .catch(() => undefined);
  return { ...localPg, isHistoryDivergent };
}
