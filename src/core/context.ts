// Facts derived once per decision from the Observation, shared by all rules (pure).
import { failoverPriority } from './candidates.js';
import { lockDeadlineOf } from './lease.js';
import { standbyClusterOf } from './standby-cluster.js';
import type { ClusterView, Decision, HaMemory, MemberRecord, Observation } from './types.js';

export interface DecisionContext {
  readonly obs: Observation;
  readonly mem: HaMemory;
  readonly name: string;
  /** The fresh view, or undefined when the DCS is unreachable. */
  readonly view: ClusterView | undefined;
  readonly leaderName: string | undefined;
  readonly leaderMember: MemberRecord | undefined;
  /** Our local lock deadline (monotonic), if we ever renewed. */
  readonly deadlineMs: number | undefined;
  /** We hold the lock: a renewal within the deadline, and the DCS (when readable) names us. */
  readonly holdsLock: boolean;
  readonly isRunningPrimary: boolean;
  readonly isRunningReplica: boolean;
  readonly myWal: bigint;
  readonly myPriority: number;
  /** The dynamic config has a `standby_cluster` section: the leader replicates from a remote primary, never promotes. */
  readonly isStandbyCluster: boolean;
}

export function buildContext(obs: Observation, mem: HaMemory): DecisionContext {
  const view = obs.dcs.kind === 'ok' ? obs.dcs.view : undefined;
  const name = obs.self.name;
  const lock = obs.lock;
  const deadlineMs = lockDeadlineOf(lock);
  const isWithinDeadline = deadlineMs !== undefined && obs.nowMs < deadlineMs;
  const leaderName = view?.leader?.name;
  const holdsLock = isWithinDeadline && (view === undefined || leaderName === name);
  const pg = obs.pg;
  const positions = [pg.writeLsn, pg.receivedLsn, pg.replayedLsn].filter((value): value is bigint => value !== undefined);
  return {
    obs,
    mem,
    name,
    view,
    leaderName,
    leaderMember: view?.members.find((member) => member.name === leaderName),
    deadlineMs,
    holdsLock,
    isRunningPrimary: pg.isRunning && pg.role === 'primary',
    isRunningReplica: pg.isRunning && pg.role === 'replica',
    myWal: positions.reduce((a, b) => (a > b ? a : b), 0n),
    myPriority: failoverPriority(obs.self.tags),
    isStandbyCluster:
      view?.config !== undefined ? standbyClusterOf(view.config) !== undefined : obs.self.isStandbyClusterAtBootstrap === true,
  };
}

/** Sleep at most until the deadline (minus a little), so a lock holder always decides in time. */
export function wakeFor(context: DecisionContext, preferredMs: number): number {
  if (context.deadlineMs === undefined || !context.holdsLock) return Math.max(0, preferredMs);
  const untilDeadline = context.deadlineMs - context.obs.nowMs;
  return Math.max(0, Math.min(preferredMs, untilDeadline - 50));
}

export function decision(
  context: DecisionContext,
  reason: string,
  actions: Decision['actions'],
  options: { wakeAfterMs?: number; memory?: Partial<HaMemory> } = {},
): Decision {
  const preferred = options.wakeAfterMs ?? context.obs.timing.loopWaitMs;
  return {
    actions,
    reason,
    memory: options.memory === undefined ? context.mem : { ...context.mem, ...options.memory },
    wakeAfterMs: wakeFor(context, preferred),
  };
}

/** A rule either decides or passes (undefined) to the next one. */
export type Rule = (context: DecisionContext) => Decision | undefined;
