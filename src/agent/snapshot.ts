// The read-only state an agent exposes to the REST API and metrics, replaced atomically after each cycle.
import { lockDeadlineOf } from '../core/lease.js';
import type { SilencePhase } from '../core/silent-leader.js';
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
import type { DecisionCountSource } from './decision-counts.js';
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
  /** The bin_dir PostgreSQL is started from (GET /patroni's bin_dir, a pgwarden addition; pgwarden upgrade reads it). */
  readonly binDir?: string | undefined;
  /** Recent decisions that changed something (GET /events). */
  readonly events?: DecisionEventSource;
  /** Monotonic ms at which this member's leader lock runs out (set while it holds the lock; the dashboard's "lock left"). */
  readonly lockDeadlineMs?: number | undefined;
  /** Every cycle's decision by rule and by action since the agent started (GET /metrics). */
  readonly decisionCounts?: DecisionCountSource | undefined;
  /** The fence process and the silent-leader detector as of the request (Agent.metricsSnapshot; GET /metrics). */
  readonly guards?: GuardStatus | undefined;
}

/** The external fence as the agent last armed it; times are from the moment the snapshot was taken. */
export interface FenceStatus {
  readonly isConnected: boolean;
  /** Until the fence stops a running primary (the lock deadline it holds); undefined: never armed. */
  readonly killInMs: number | undefined;
  /** Until the fence freezes a running primary (the silent-leader window); undefined: no window announced. */
  readonly freezeInMs: number | undefined;
}

/** A replica's silent-leader detector (agent/leader-silence.ts). */
export interface SilenceStatus {
  /** silent_leader_detector is on in the dynamic configuration. */
  readonly isEnabled: boolean;
  /** The leader whose beats are followed, how long since the newest was first seen, and what core/silent-leader.ts makes of it. */
  readonly leader?: string | undefined;
  readonly beatAgeMs?: number | undefined;
  readonly phase?: SilencePhase | undefined;
}

export interface GuardStatus {
  /** undefined: no fence process configured. */
  readonly fence: FenceStatus | undefined;
  readonly silence: SilenceStatus;
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
  readonly decisionCounts?: DecisionCountSource;
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
    ...(inputs.decisionCounts !== undefined ? { decisionCounts: inputs.decisionCounts } : {}),
    ...(isLeaderWithLock ? { lockDeadlineMs: lockDeadlineOf(inputs.lock) } : {}),
  };
}
