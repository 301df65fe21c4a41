// An empty data directory: win the `initialize` race and run initdb, or clone from a running member.
import { decision, type Rule } from '../context.js';
import { REMOTE_PRIMARY } from '../standby-cluster.js';
import { isBackingOff } from './task.js';

export const uninitializedRule: Rule = (context) => {
  const { obs, view, name } = context;
  if (obs.pg.dataDir === 'initialized') return undefined;
  if (view === undefined) return decision(context, 'DCS is not accessible; waiting to bootstrap', []);
  if (isBackingOff(context)) return decision(context, 'waiting before the next bootstrap attempt', []);
  const leader = context.leaderName;
  if (leader === name) {
    // We hold a lock but have no data: an interrupted bootstrap. Give everything back so the race can restart.
    return decision(context, 'removing the leader key and initialize key of an interrupted bootstrap', [{ kind: 'abortBootstrap' }], {
      wakeAfterMs: 0,
    });
  }
  if (view.initialize === undefined && leader === undefined) {
    const refusal = obs.self.bootstrapRefusal;
    // An unsupported custom method must not turn into initdb: that would be a new, empty cluster where a restore was asked for.
    if (refusal !== undefined) return decision(context, `not bootstrapping a new cluster: ${refusal}`, []);
    if (!obs.self.canBootstrap || context.myPriority === 0) return decision(context, 'waiting for leader to bootstrap', []);
    // A standby cluster starts as a copy of the remote primary: the winner clones it and becomes the standby leader.
    if (context.isStandbyCluster)
      return decision(context, 'trying to bootstrap a standby cluster from the remote primary', [
        { kind: 'initializeCluster' },
        { kind: 'acquireLeader' },
        { kind: 'basebackup', from: REMOTE_PRIMARY },
      ]);
    // initialize is create-only: exactly one member wins and only it runs initdb; the others wait for its leader key.
    return decision(context, 'trying to bootstrap a new cluster', [
      { kind: 'initializeCluster' },
      { kind: 'acquireLeader' },
      { kind: 'bootstrap' },
    ]);
  }
  // Patroni's "bootstrap (without leader)": a method that needs no leader (a restore from the backup) may run, but not
  // while another member is still bootstrapping the cluster (initialize empty) and not for a standby cluster, whose
  // copy is of the remote primary.
  if (
    leader === undefined &&
    obs.self.canCloneWithoutLeader === true &&
    view.initialize !== undefined &&
    view.initialize !== '' &&
    !context.isStandbyCluster
  )
    return decision(context, 'trying to bootstrap (without leader) with a no_leader replica method', [{ kind: 'cloneWithoutLeader' }]);
  if (leader === undefined || context.leaderMember === undefined) return decision(context, 'waiting for leader to bootstrap', []);
  const cloneSource = view.members.find((member) => member.name !== name && member.tags?.clonefrom === true && member.state === 'running');
  const from = cloneSource?.name ?? leader;
  return decision(context, `bootstrapping from ${from === leader ? 'leader' : 'member'} '${from}'`, [{ kind: 'basebackup', from }]);
};
