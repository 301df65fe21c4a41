// This node holds the leader key: renew, keep PostgreSQL a primary (promote or restart it), publish status and history.
import { decision, type Rule } from '../context.js';
import { failoverCandidates } from '../failover-candidates.js';
import { publishedSlotPositions } from '../slot-plan.js';
import { planSync, promotionSync } from '../sync-plan.js';
import { REMOTE_PRIMARY, standbyClusterFingerprint, standbyClusterOf } from '../standby-cluster.js';
import type { Action, ClusterView } from '../types.js';
import { slotActions } from './slots.js';
import { isBackingOff } from './task.js';

/**
 * An intent still here was for us (we are the new leader) or is stale: either way it is done. A scheduled one for this
 * leader is left alone until it is due (the switchover rule acts on it).
 */
function doneFailoverCleanup(view: ClusterView, name: string): Action[] {
  const intent = view.failover;
  if (intent === undefined) return [];
  const isScheduledForMe = intent.scheduled_at !== undefined && (intent.leader === undefined || intent.leader === name);
  return isScheduledForMe ? [] : [{ kind: 'clearFailover' }];
}

export const leaderRule: Rule = (context) => {
  const { obs, view, name, mem } = context;
  if (view === undefined || context.leaderName !== name) return undefined;
  if (!context.holdsLock) return decision(context, `updating leader lock (${name})`, [{ kind: 'renewLeader' }], { wakeAfterMs: 0 });
  const pg = obs.pg;
  const renew: Action = { kind: 'renewLeader' };
  if (context.isStandbyCluster) return standbyLeaderDecision(context);

  if (context.isRunningPrimary) {
    const actions: Action[] = [renew];
    if (view.initialize === undefined || view.initialize === '') {
      if (pg.sysid !== undefined) actions.push({ kind: 'publishInitialize', sysid: pg.sysid });
      if (view.config === undefined) actions.push({ kind: 'writeBootstrapConfig' });
    }
    if (pg.writeLsn !== undefined)
      actions.push({ kind: 'publishStatus', optime: Number(pg.writeLsn), slots: publishedSlotPositions(pg.slots ?? []) });
    let memory = {};
    if (mem.promotedFrom !== undefined && pg.timeline !== undefined && pg.timeline > mem.promotedFrom.timeline) {
      const keepLast = view.config?.max_timelines_history ?? 0;
      actions.push({
        kind: 'writeHistory',
        entry: [
          mem.promotedFrom.timeline,
          Number(mem.promotedFrom.lsn),
          mem.promotedFrom.reason ?? 'no recovery target specified',
          obs.wallIso,
          name,
        ],
        ...(Number.isInteger(keepLast) && keepLast > 0 ? { keepLast } : {}),
      });
      memory = { promotedFrom: undefined };
    }
    actions.push(...doneFailoverCleanup(view, name));
    actions.push(...slotActions(context, true));
    // Last: a sync-key CAS that loses skips only what follows it.
    const sync = planSync(context);
    actions.push(...sync.actions);
    const reason =
      sync.note === undefined
        ? `no action. I am (${name}), the leader with the lock`
        : `${sync.note}. I am (${name}), the leader with the lock`;
    return decision(context, reason, actions, {
      memory: { ...memory, ...sync.memory },
      ...(sync.wakeAfterMs !== undefined ? { wakeAfterMs: Math.min(sync.wakeAfterMs, obs.timing.loopWaitMs) } : {}),
    });
  }

  const timeLeftMs = (context.deadlineMs ?? obs.nowMs) - obs.nowMs;
  if (context.isRunningReplica) {
    // Promote only with enough lock left to finish; otherwise renew first and promote on the next (immediate) cycle.
    if (timeLeftMs < obs.timing.ttlMs / 2) return decision(context, 'renewing the lock before promoting', [renew], { wakeAfterMs: 0 });
    const lsn = context.myWal;
    // Synchronous mode: the key names us before we accept a write, and PostgreSQL starts with the set that key allows.
    const sync = promotionSync(context);
    const prepare: Action[] =
      sync === undefined
        ? []
        : [
            { kind: 'writeSync', state: sync.state },
            { kind: 'setSynchronousStandbyNames', value: sync.value },
          ];
    return decision(context, 'promoted self to leader by acquiring session lock', [renew, ...prepare, { kind: 'promote' }], {
      memory: { promotedFrom: { timeline: pg.timeline ?? 1, lsn } },
      wakeAfterMs: 0,
    });
  }
  if (obs.task.kind === 'running') return undefined;
  if (pg.role === 'primary') {
    // primary_start_timeout 0: a replica that can take over is preferred to restarting this primary in place.
    if (obs.primaryStartTimeoutMs === 0 && failoverCandidates(context, { referenceLsn: view.optime }).length > 0)
      return decision(context, 'Primary crashed. Failing over (primary_start_timeout is 0)', [{ kind: 'demote', mode: 'immediate' }], {
        wakeAfterMs: 0,
      });
    return decision(context, 'starting primary after failure', [renew, { kind: 'startPrimary' }], { wakeAfterMs: 0 });
  }
  // A replica's data dir holding the lock starts as a replica first; the next cycle promotes it (new timeline).
  return decision(context, 'starting as a replica before promoting', [renew, { kind: 'startReplica', upstream: undefined }], {
    wakeAfterMs: 0,
  });
};

/**
 * The standby leader: holds the lock like any leader, but keeps PostgreSQL a replica of the remote primary named in
 * `standby_cluster`, and never promotes while that section is there. Its replicas cascade from it (the follow rule).
 */
const standbyLeaderDecision: Rule = (context) => {
  const { obs, view, name } = context;
  const pg = obs.pg;
  const renew: Action = { kind: 'renewLeader' };
  if (view === undefined) return undefined;
  const isBootstrapping = view.initialize === undefined || view.initialize === '';
  // A new standby cluster: the clone's system identifier and the bootstrap config go into the DCS, as after initdb.
  const publishInitialize: Action[] = isBootstrapping
    ? [
        ...(pg.sysid !== undefined ? [{ kind: 'publishInitialize', sysid: pg.sysid } as const] : []),
        ...(view.config === undefined ? [{ kind: 'writeBootstrapConfig' } as const] : []),
      ]
    : [];
  if (context.isRunningPrimary) {
    // A primary turned into a standby cluster (the section was added): it stops accepting writes at once and comes back
    // as a replica of the remote. Its own writes since the fork are lost to the remote's history, as in Patroni.
    return decision(
      context,
      `demoting the primary to a standby leader following the remote primary (standby_cluster)`,
      [renew, { kind: 'restart', asPrimary: false, upstream: REMOTE_PRIMARY }],
      { wakeAfterMs: 0 },
    );
  }
  if (context.isRunningReplica) {
    // The section as it is now (undefined only before the DCS holds a config: the bootstrap clone already follows it).
    const followed =
      view.config === undefined ? context.mem.followedStandbyCluster : standbyClusterFingerprint(standbyClusterOf(view.config));
    if (pg.upstream !== REMOTE_PRIMARY || followed !== context.mem.followedStandbyCluster)
      return decision(
        context,
        pg.upstream !== REMOTE_PRIMARY
          ? `I am (${name}), the standby leader: changing primary_conninfo to follow the remote primary`
          : `I am (${name}), the standby leader: standby_cluster changed, following it`,
        [renew, ...publishInitialize, { kind: 'followLeader', upstream: REMOTE_PRIMARY }],
        { wakeAfterMs: 0, memory: { followedStandbyCluster: followed } },
      );
    const position =
      pg.receivedLsn !== undefined && pg.replayedLsn !== undefined && pg.receivedLsn > pg.replayedLsn ? pg.receivedLsn : pg.replayedLsn;
    const status: Action[] =
      position === undefined ? [] : [{ kind: 'publishStatus', optime: Number(position), slots: publishedSlotPositions(pg.slots ?? []) }];
    return decision(context, `no action. I am (${name}), the standby leader with the lock`, [
      renew,
      ...publishInitialize,
      ...status,
      ...doneFailoverCleanup(view, name),
      ...slotActions(context, true),
    ]);
  }
  if (obs.task.kind === 'running') return undefined;
  if (isBackingOff(context)) return decision(context, 'waiting before retrying to start the standby leader', [renew]);
  return decision(
    context,
    `starting as the standby leader, following the remote primary`,
    [renew, { kind: 'startReplica', upstream: REMOTE_PRIMARY }],
    { wakeAfterMs: 0 },
  );
};
