// The read-only state an agent exposes to the REST API and metrics, replaced atomically after each cycle.
import { lockDeadlineOf } from '../core/lease.js';
import { STOPPED_PG } from '../core/local-pg.js';
import { isStandbyLeaderNow } from '../core/standby-cluster.js';
import type {
  ClusterView,
  DecisionEventSource,
  DynamicConfig,
  LocalPg,
  LockObservation,
  MemberTags,
  PgState,
  TaskState,
  Timing,
} from '../core/types.js';
import { pgStateOf, type MemberIdentity } from './member-record.js';

export interface AgentSnapshot {
  readonly name: string;
  readonly scope: string;
  readonly version: string;
  readonly tags: MemberTags;
  /** PostgreSQL state string as Patroni reports it. */
  readonly state: PgState;
  readonly pg: LocalPg;
  /** The last DCS view (possibly stale; undefined if never read). */
  readonly view: ClusterView | undefined;
  readonly isDcsReachable: boolean;
  /** Wall-clock epoch seconds of the last successful DCS read. */
  readonly dcsLastSeenEpochS: number | undefined;
  /** True while this agent holds a lock whose local deadline has not passed. */
  readonly isLeaderWithLock: boolean;
  /** The lock holder of a standby cluster, running as a replica of the remote primary (role standby_leader). */
  readonly isStandbyLeader: boolean;
  readonly isPaused: boolean;
  readonly task: TaskState;
  /** Monotonic ms of the last completed HA cycle (for /liveness). */
  readonly lastCycleAtMs: number;
  readonly ttlMs: number;
  readonly lastReason: string;
  /** failsafe_mode is active (Patroni's failsafe_mode_is_active): set per read by the agent (cycle.ts currentSnapshot). */
  readonly isFailsafeActive?: boolean | undefined;
  /** Recent decisions that changed something (GET /events). */
  readonly events?: DecisionEventSource;
  /** Monotonic ms at which this member's leader lock runs out (set while it holds the lock; the dashboard's "lock left"). */
  readonly lockDeadlineMs?: number | undefined;
}

/** Whether a lock renewal sent at `lock.lastRenewSentAtMs` is still good at `nowMs`, judged by its own lease's TTL. */
export function isLockValidAt(lock: LockObservation, nowMs: number): boolean {
  const deadlineMs = lockDeadlineOf(lock);
  return deadlineMs !== undefined && nowMs < deadlineMs;
}

export interface SnapshotInputs {
  readonly identity: MemberIdentity;
  readonly scope: string;
  readonly pg: LocalPg | undefined;
  readonly task: TaskState;
  readonly view: ClusterView | undefined;
  readonly isDcsReachable: boolean;
  readonly dcsLastSeenEpochS: number | undefined;
  readonly lock: LockObservation;
  readonly config: DynamicConfig;
  readonly timing: Timing;
  readonly lastReason: string;
  readonly nowMs: number;
  readonly events?: DecisionEventSource;
}

export function buildSnapshot(inputs: SnapshotInputs): AgentSnapshot {
  const { identity, view } = inputs;
  const isLeaderWithLock = isLockValidAt(inputs.lock, inputs.nowMs) && (view === undefined || view.leader?.name === identity.name);
  return {
    name: identity.name,
    scope: inputs.scope,
    version: identity.version,
    tags: identity.tags,
    state: pgStateOf(inputs.pg, inputs.task),
    pg: inputs.pg ?? STOPPED_PG,
    view,
    isDcsReachable: inputs.isDcsReachable,
    dcsLastSeenEpochS: inputs.dcsLastSeenEpochS,
    isLeaderWithLock,
    isStandbyLeader: isStandbyLeaderNow(view, identity.name, inputs.pg, isLeaderWithLock),
    isPaused: inputs.config.pause === true,
    task: inputs.task,
    lastCycleAtMs: inputs.nowMs,
    ttlMs: inputs.timing.ttlMs,
    lastReason: inputs.lastReason,
    isFailsafeActive: false,
    ...(inputs.events !== undefined ? { events: inputs.events } : {}),
    ...(isLeaderWithLock ? { lockDeadlineMs: lockDeadlineOf(inputs.lock) } : {}),
  };
}
