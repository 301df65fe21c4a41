// Synchronous replication, decided purely: which standbys the primary waits for (synchronous_standby_names) and
// who may take over (the DCS `sync` key), changed in an order that never lets a promotion lose an acknowledged commit.
//
// The invariant: at every moment the sync key is safe for every synchronous_standby_names value whose commits may
// exist (isKeySafeFor). So the key is widened before PostgreSQL's set changes, and narrowed only after the new set is
// in effect and its members have caught up with the primary's position when it took effect.
import type { DecisionContext } from './context.js';
import {
  guaranteeOf,
  isKeySafeFor,
  renderSynchronousStandbyNames,
  safeKeyFor,
  STRICT_SYNC_PLACEHOLDER,
  type SyncGuarantee,
  type SyncKeyRule,
  type SyncMethod,
} from './sync-standby-names.js';
import type { Action, DynamicConfig, HaMemory, SyncSettings, SyncState } from './types.js';

export const SYNC_OFF: SyncSettings = { mode: 'off', isStrict: false, nodeCount: 1 };

/** How often a leader re-checks while a sync change is half done. */
export const SYNC_TRANSITION_WAKE_MS = 250;

export function syncSettingsOf(config: DynamicConfig | undefined): SyncSettings {
  const raw = config?.synchronous_mode;
  const text = typeof raw === 'string' ? raw.trim().toLowerCase() : raw;
  const mode = text === 'quorum' ? 'quorum' : text === true || text === 'on' || text === 'true' ? 'priority' : 'off';
  const count = config?.synchronous_node_count;
  return {
    mode,
    isStrict: mode !== 'off' && config?.synchronous_mode_strict === true,
    nodeCount: typeof count === 'number' && Number.isInteger(count) && count >= 1 ? count : 1,
  };
}

export function syncNames(state: SyncState | undefined): string[] {
  return (state?.sync_standby ?? '')
    .split(',')
    .map((name) => name.trim())
    .filter((name) => name !== '');
}

/** The key as a promotion rule, when it belongs to `leader`. */
export function keyRuleOf(state: SyncState | undefined, leader: string): SyncKeyRule | undefined {
  if (state === undefined || state.leader !== leader) return undefined;
  return { names: syncNames(state).sort(), quorum: state.quorum ?? 0 };
}

function keyState(leader: string, rule: SyncKeyRule, method: SyncMethod): SyncState {
  return {
    leader,
    sync_standby: rule.names.length === 0 ? null : [...rule.names].sort().join(','),
    ...(method === 'quorum' || rule.quorum > 0 ? { quorum: rule.quorum } : {}),
  };
}

const sameRule = (a: SyncKeyRule, b: SyncKeyRule): boolean =>
  a.quorum === b.quorum && a.names.length === b.names.length && a.names.every((name, index) => name === b.names[index]);

export interface SyncPlan {
  readonly actions: readonly Action[];
  readonly memory: Partial<HaMemory>;
  /** Set while a change is half done: decide again soon. */
  readonly wakeAfterMs: number | undefined;
  readonly note: string | undefined;
}

/** The leader's step towards the wanted synchronous set. Call only on a running primary that holds the lock. */
/**
 * maximum_lag_on_syncnode, as Patroni applies it: a standby more than that many bytes behind the most advanced
 * standby (or the primary, when there is only one) by the position synchronous_commit waits for is not chosen.
 */
export function laggingSyncCandidates(obs: DecisionContext['obs'], standbys: readonly string[]): ReadonlySet<string> {
  const maxLag = obs.maximumLagOnSyncnode;
  if (maxLag === undefined || !(maxLag > 0)) return new Set();
  const positions =
    obs.synchronousCommit === 'remote_apply'
      ? obs.pg.standbyReplayLsn
      : obs.synchronousCommit === 'remote_write'
        ? obs.pg.standbyWriteLsn
        : obs.pg.standbyFlushLsn;
  const known = standbys.filter((standby) => positions?.[standby] !== undefined);
  const reference = known.length > 1 ? known.map((standby) => positions![standby]!).reduce((a, b) => (a > b ? a : b)) : obs.pg.writeLsn;
  if (reference === undefined) return new Set();
  return new Set(known.filter((standby) => reference - positions![standby]! > BigInt(Math.floor(maxLag))));
}

export function planSync(context: DecisionContext): SyncPlan {
  const { obs, view, name, mem } = context;
  const settings = obs.sync ?? SYNC_OFF;
  const current = obs.pg.synchronousStandbyNames;
  const none: SyncPlan = { actions: [], memory: {}, wakeAfterMs: undefined, note: undefined };
  if (view === undefined || current === undefined) return none;

  if (settings.mode === 'off') {
    // Key first: while it exists only its members may promote, which stays true whatever PostgreSQL does meanwhile.
    const actions: Action[] = [];
    if (view.sync !== undefined) actions.push({ kind: 'writeSync', state: undefined });
    const wanted = obs.configuredSynchronousStandbyNames ?? '';
    if (current !== wanted) actions.push({ kind: 'setSynchronousStandbyNames', value: wanted });
    return {
      actions,
      memory: mem.syncAppliedAt === undefined ? {} : { syncAppliedAt: undefined },
      wakeAfterMs: undefined,
      note:
        actions.length === 0
          ? undefined
          : 'synchronous mode is off: removing the sync key and restoring the configured synchronous_standby_names',
    };
  }

  const method: SyncMethod = settings.mode;
  const key = keyRuleOf(view.sync, name);
  const currentGuarantee = guaranteeOf(current);
  if (key === undefined) {
    // No key of ours yet (synchronous mode just enabled): publish what the present setting already guarantees.
    return {
      actions: [{ kind: 'writeSync', state: keyState(name, safeKeyFor([currentGuarantee]), method) }],
      memory: {},
      wakeAfterMs: 0,
      note: 'publishing the synchronous standby set',
    };
  }

  const flush = obs.pg.standbyFlushLsn ?? {};
  const memberByName = new Map(view.members.map((member) => [member.name, member]));
  // Incumbents (in the key or in the setting now) stay first: choosing by WAL position alone would flap between
  // standbys that overtake each other under load, and every change costs a reload and a key write.
  const inKey = new Set([...key.names, ...currentGuarantee.names]);
  const streaming = obs.pg.replication
    .filter((row) => row.state === 'streaming' && row.application_name !== name)
    .map((row) => row.application_name)
    .filter((standby) => memberByName.get(standby)?.tags?.nosync !== true && memberByName.has(standby));
  const tooFarBehind = laggingSyncCandidates(obs, streaming);
  const eligible = streaming
    .filter((standby) => !tooFarBehind.has(standby))
    .sort((a, b) => {
      // Keep current members (no needless churn), then prefer the standby with the most WAL.
      if (inKey.has(a) !== inKey.has(b)) return inKey.has(a) ? -1 : 1;
      const fa = flush[a] ?? 0n;
      const fb = flush[b] ?? 0n;
      if (fa !== fb) return fa > fb ? -1 : 1;
      return a < b ? -1 : a > b ? 1 : 0;
    });
  const chosen = method === 'priority' ? eligible.slice(0, settings.nodeCount) : eligible;
  const count = method === 'priority' ? chosen.length : Math.min(settings.nodeCount, chosen.length);
  const wanted = renderSynchronousStandbyNames(method, chosen, count, settings.isStrict);
  const wantedGuarantee = guaranteeOf(wanted);

  if (current !== wanted) {
    const actions: Action[] = [];
    // The key also stands for commits acknowledged under settings before the current one (e.g. before strict mode's
    // placeholder blocked commits): whoever it allows must stay covered until the new set has caught up.
    const keyGuarantee: SyncGuarantee[] =
      key.names.length === 0 ? [] : [{ names: key.names, count: Math.max(1, key.names.length - key.quorum), isBlocking: false }];
    if (!isKeySafeFor(key, currentGuarantee) || !isKeySafeFor(key, wantedGuarantee)) {
      actions.push({ kind: 'writeSync', state: keyState(name, safeKeyFor([...keyGuarantee, currentGuarantee, wantedGuarantee]), method) });
    }
    actions.push({ kind: 'setSynchronousStandbyNames', value: wanted });
    return {
      actions,
      memory: { syncAppliedAt: undefined },
      wakeAfterMs: SYNC_TRANSITION_WAKE_MS,
      note: `synchronous_standby_names ${JSON.stringify(current)} -> ${JSON.stringify(wanted)}`,
    };
  }

  const applied = mem.syncAppliedAt?.value === wanted ? mem.syncAppliedAt : undefined;
  if (applied === undefined) {
    // Commits acknowledged before this moment may be only on the previous set: new members must pass this LSN first.
    return {
      actions: [],
      memory: { syncAppliedAt: { value: wanted, lsn: obs.pg.writeLsn ?? 0n } },
      wakeAfterMs: SYNC_TRANSITION_WAKE_MS,
      note: undefined,
    };
  }
  // Strict mode with nobody to wait for: nothing new is acknowledged, so the key keeps whoever holds the old commits.
  if (wantedGuarantee.isBlocking) return none;
  const target = safeKeyFor([wantedGuarantee]);
  if (sameRule(key, target)) return none;
  const lagging = target.names.filter((standby) => (flush[standby] ?? 0n) < applied.lsn);
  if (lagging.length > 0)
    return {
      actions: [],
      memory: {},
      wakeAfterMs: SYNC_TRANSITION_WAKE_MS,
      note: `waiting for ${lagging.join(',')} to confirm WAL up to the synchronous set change`,
    };
  return {
    actions: [{ kind: 'writeSync', state: keyState(name, target, method) }],
    memory: {},
    wakeAfterMs: undefined,
    note: `synchronous standbys now ${target.names.join(',') || 'none'}`,
  };
}

/**
 * The sync key to publish before a replica promotes itself: the new leader with nobody allowed after it (not strict:
 * commits are acknowledged alone until a standby joins), or the previous holders of acknowledged commits (strict:
 * commits wait, so the old set stays the one that may take over).
 */
export function promotionSync(context: DecisionContext): { readonly state: SyncState; readonly value: string } | undefined {
  const settings = context.obs.sync ?? SYNC_OFF;
  const view = context.view;
  if (settings.mode === 'off' || view === undefined) return undefined;
  const method: SyncMethod = settings.mode;
  const previous = view.sync;
  const value = renderSynchronousStandbyNames(method, [], 0, settings.isStrict);
  if (!settings.isStrict)
    return { state: { leader: context.name, sync_standby: null, ...(method === 'quorum' ? { quorum: 0 } : {}) }, value };
  const names = new Set(syncNames(previous));
  if (previous?.leader !== null && previous?.leader !== undefined) names.add(previous.leader);
  names.delete(context.name);
  names.delete(STRICT_SYNC_PLACEHOLDER);
  return { state: keyState(context.name, { names: [...names].sort(), quorum: previous?.quorum ?? 0 }, method), value };
}

/** In synchronous mode only the last leader and its synchronous standbys may race, and in quorum mode only with enough votes. */
export function syncRaceRestriction(context: DecisionContext): string | undefined {
  const { obs, view, name } = context;
  if ((obs.sync ?? SYNC_OFF).mode === 'off' || view?.sync === undefined || view.sync.leader === null || view.sync.leader === name)
    return undefined;
  const names = syncNames(view.sync);
  if (!names.includes(name))
    return `not racing: synchronous mode is on and I am not a synchronous standby of ${view.sync.leader} (sync set: ${names.join(',') || 'none'})`;
  const quorum = view.sync.quorum ?? 0;
  if (quorum > 0) {
    // A vote counts only from a standby that no longer receives WAL: the old primary may still be running and
    // acknowledging commits that any quorum member flushes, so positions must be frozen before they are compared.
    const seen = obs.peers.filter(
      (peer) =>
        peer.isReachable && peer.name !== name && names.includes(peer.name) && peer.walPosition !== undefined && peer.isStreaming !== true,
    ).length;
    if (seen < quorum)
      return `not racing: need ${quorum} other synchronous standbys detached from the old primary to confirm I have every acknowledged commit, reached ${seen}`;
  }
  return undefined;
}

/**
 * In synchronous mode the members whose WAL matters in the race: the last leader and its synchronous standbys.
 * Anyone else's extra WAL was never acknowledged, so comparing with it could only block a safe candidate forever.
 */
export function syncRaceRivals(context: DecisionContext): ReadonlySet<string> | undefined {
  const { obs, view } = context;
  if ((obs.sync ?? SYNC_OFF).mode === 'off' || view?.sync === undefined || view.sync.leader === null) return undefined;
  return new Set([view.sync.leader, ...syncNames(view.sync)]);
}

/**
 * With no leader and a sync key that needs votes (quorum > 0), a listed standby stops receiving WAL first: the old
 * primary may be alive without its agent, and every flush by a quorum member would let it acknowledge more commits.
 */
export function mustDetachForQuorum(context: DecisionContext): boolean {
  const { obs, view, name } = context;
  if ((obs.sync ?? SYNC_OFF).mode === 'off' || view?.sync === undefined || view.sync.leader === null || view.leader !== undefined)
    return false;
  if ((view.sync.quorum ?? 0) === 0 || !syncNames(view.sync).includes(name)) return false;
  return obs.pg.isRunning && obs.pg.role === 'replica' && (obs.pg.isStreaming || obs.pg.upstream !== undefined);
}

/** True when strict synchronous mode has no standby to wait for: the primary accepts no writes. */
export function isWaitingForSyncStandby(settings: SyncSettings, synchronousStandbyNames: string | undefined): boolean {
  return (
    settings.mode !== 'off' && settings.isStrict && synchronousStandbyNames !== undefined && guaranteeOf(synchronousStandbyNames).isBlocking
  );
}
