// The read-only state an agent exposes to the REST API and metrics, replaced atomically after each cycle.
import type { ClusterView, LocalPg, MemberTags, PgState, TaskState } from '../core/types.js';

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
  readonly isPaused: boolean;
  readonly task: TaskState;
  /** Monotonic ms of the last completed HA cycle (for /liveness). */
  readonly lastCycleAtMs: number;
  readonly ttlMs: number;
  readonly lastReason: string;
}

/** A holder the API reads from; the loop replaces the value after each cycle. */
export class SnapshotHolder {
  #current: AgentSnapshot;
  constructor(initial: AgentSnapshot) {
    this.#current = initial;
  }
  get(): AgentSnapshot {
    return this.#current;
  }
  set(next: AgentSnapshot): void {
    this.#current = next;
  }
}
