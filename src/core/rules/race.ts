// No leader: the healthiest eligible member takes the lock; the others stay replicas.
import { compareCandidates, failoverPriority } from '../candidates.js';
import { clusterTimelineOf, timelineRestriction } from '../cluster-timeline.js';
import { decision, type DecisionContext, type Rule } from '../context.js';
import { mustDetachForQuorum, SYNC_OFF, syncRaceRestriction, syncRaceRivals } from '../sync-plan.js';
import { raceRestriction } from './switchover.js';
import { isBackingOff } from './task.js';

export const raceRule: Rule = (context) => {
  const { obs, view, name } = context;
  if (view === undefined || context.leaderName !== undefined) return undefined;
  const pg = obs.pg;
  if (!pg.isRunning) {
    if (obs.task.kind === 'running' || isBackingOff(context)) return decision(context, 'waiting for PostgreSQL before the leader race', []);
    return decision(context, 'starting as a read-only replica while the cluster has no leader', [
      { kind: 'startReplica', upstream: undefined },
    ]);
  }
  if (mustDetachForQuorum(context))
    return decision(
      context,
      'no leader and a quorum sync key: detaching from the old primary so it cannot acknowledge more commits',
      [{ kind: 'detachUpstream' }],
      { wakeAfterMs: 0 },
    );
  if (context.myPriority === 0) return decision(context, 'following a different leader because I am not allowed to promote', []);
  if (view.optime !== undefined && BigInt(Math.trunc(view.optime)) - context.myWal > BigInt(obs.maximumLagOnFailover)) {
    return decision(
      context,
      `not healthy enough for leader race: lag exceeds maximum_lag_on_failover (${obs.maximumLagOnFailover} bytes)`,
      [],
    );
  }
  const behind = timelineRestriction(context);
  if (behind !== undefined) return decision(context, `not healthy enough for leader race: ${behind}`, []);
  // A switchover names the leader that was to hand over cleanly; in synchronous mode, if that leader is gone instead
  // (its agent does not answer: killed or frozen, so no clean shutdown sent its WAL to the standbys),
  // this is an unplanned failover and the normal race decides who holds every acknowledged commit (simulator,
  // quorum-strict seed 131: a frozen leader's switchover candidate took over without the commits the other standby
  // had acknowledged). A manual failover (no leader named) picks its candidate explicitly: the operator's call.
  const isSync = (obs.sync ?? SYNC_OFF).mode !== 'off';
  const handingOver = view.failover?.leader;
  const isHandoverGone =
    handingOver !== undefined && handingOver !== name && !obs.peers.some((peer) => peer.name === handingOver && peer.isReachable);
  const intent = isSync && isHandoverGone ? undefined : view.failover;
  const restriction = intent === undefined ? undefined : raceRestriction(context);
  if (restriction !== undefined) return decision(context, restriction, []);
  const isManualFailover = intent?.member === name && intent.leader === undefined;
  const syncRestriction = isManualFailover ? undefined : syncRaceRestriction(context);
  if (syncRestriction !== undefined) return decision(context, syncRestriction, []);
  if (intent?.member === name)
    return decision(context, 'acquiring the leader lock as the switchover candidate', [{ kind: 'acquireLeader' }], { wakeAfterMs: 0 });
  const me = { name, walPosition: context.myWal, failoverPriority: context.myPriority };
  const behindTimeline = (obs.sync ?? SYNC_OFF).mode === 'off' ? undefined : clusterTimelineOf(view);
  const rivals = syncRestriction === undefined && !isManualFailover ? syncRaceRivals(context) : undefined;
  for (const peer of obs.peers) {
    if (!peer.isReachable || (intent !== undefined && peer.name === intent.leader)) continue;
    if (peer.isRunning && peer.role === 'primary')
      return decision(context, `following a different leader because ${peer.name} is still running as primary`, []);
    if (rivals !== undefined && !rivals.has(peer.name)) continue;
    // failsafe_mode: a member missing from a non-empty failsafe key never races (failsafeRaceRule), so it is no rival;
    // deferring to it would leave the cluster without a leader (the simulator found it).
    if (isOutsideFailsafeTopology(context, peer.name)) continue;
    const priority = failoverPriority(peer.tags);
    if (priority === 0 || peer.walPosition === undefined) continue;
    // A peer behind the cluster's timeline cannot win (timelineRestriction): its LSN counts a diverged history.
    if (behindTimeline !== undefined && peer.timeline !== undefined && peer.timeline < behindTimeline) continue;
    if (compareCandidates({ name: peer.name, walPosition: peer.walPosition, failoverPriority: priority }, me) < 0) {
      return decision(
        context,
        `following a different leader because i am not the healthiest node (${whyPreferred(peer.name, peer.walPosition, priority, me)})`,
        [],
      );
    }
  }
  return decision(context, 'acquiring the leader lock as the healthiest member', [{ kind: 'acquireLeader' }], { wakeAfterMs: 0 });
};

/** Why a peer wins the race over this member, in Patroni's words where it has them (its log lines for the same checks). */
export function whyPreferred(
  peer: string,
  peerWal: bigint,
  peerPriority: number,
  me: { readonly walPosition: bigint; readonly failoverPriority: number },
): string {
  if (peerWal > me.walPosition) return `Wal position of ${peer} is ahead of my wal position`;
  if (peerPriority > me.failoverPriority)
    return `${peer} has equally tolerable WAL position and priority ${peerPriority}, while this node has priority ${me.failoverPriority}`;
  return `${peer} has the same WAL position and priority, and the name that goes first`;
}

function isOutsideFailsafeTopology(context: DecisionContext, member: string): boolean {
  const topology = context.view?.failsafe;
  return (
    context.obs.failsafe?.isEnabled === true && topology !== undefined && Object.keys(topology).length > 0 && topology[member] === undefined
  );
}
