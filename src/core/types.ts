// The HA domain vocabulary: what an agent observes about itself, its PostgreSQL and the DCS, and what it may do.
// Pure data only: no I/O, no classes with behaviour. Times are monotonic milliseconds unless named `wall`.
import type { SlotPlan } from './slot-changes.js';
import type { SlotState } from './slot-plan.js';
import type { RestoreTarget } from './restore-target.js';

/** Member tags, Patroni's names. */
export interface MemberTags {
  readonly nofailover?: boolean;
  readonly failover_priority?: number;
  readonly noloadbalance?: boolean;
  readonly clonefrom?: boolean;
  readonly nosync?: boolean;
  /** WAL from the archive only (restore_command), no replication connection (Patroni 3.0+). */
  readonly nostream?: boolean;
  readonly [key: string]: unknown;
}

/** Value of `members/<name>` in the DCS (Patroni's JSON field names). */
export interface MemberRecord {
  readonly name: string;
  readonly conn_url: string;
  readonly api_url: string;
  readonly state: string;
  readonly role: string;
  readonly version?: string;
  readonly xlog_location?: number;
  readonly receive_lsn?: number;
  readonly replay_lsn?: number;
  readonly replication_state?: string;
  /** Replica: how far behind in time (see core/replica-lag.ts; pgwarden addition, Patroni's tools ignore it). */
  readonly lag_seconds?: number;
  readonly timeline?: number;
  readonly tags?: MemberTags;
  readonly pending_restart?: boolean;
  readonly pause?: boolean;
  readonly scheduled_restart?: { readonly schedule: string; readonly [filter: string]: unknown };
}

/** Value of `failover`: a pending manual switchover/failover. */
export interface FailoverIntent {
  readonly leader?: string;
  readonly member?: string;
  readonly scheduled_at?: string;
}

/** Value of `sync`. */
export interface SyncState {
  readonly leader: string | null;
  readonly sync_standby: string | null;
  readonly quorum?: number;
}

/** One entry of `history`: [timeline, switch LSN, reason, iso timestamp, new leader]. */
export type HistoryEntry = readonly [number, number, string, string?, string?];

/** Dynamic configuration (DCS `config` key), seconds as Patroni stores them. */
export interface DynamicConfig {
  readonly ttl: number;
  readonly loop_wait: number;
  readonly retry_timeout: number;
  readonly maximum_lag_on_failover: number;
  readonly primary_start_timeout?: number;
  /** Patroni's older name of primary_start_timeout (used when that is absent). */
  readonly master_start_timeout?: number;
  readonly maximum_lag_on_syncnode?: number;
  /** How many entries the history key keeps (the newest); 0 or absent keeps all, as in Patroni. */
  readonly max_timelines_history?: number;
  /** true/'on' = priority mode, 'quorum' = ANY n. */
  readonly synchronous_mode?: boolean | string;
  readonly synchronous_mode_strict?: boolean;
  readonly synchronous_node_count?: number;
  readonly pause?: boolean;
  readonly postgresql?: {
    readonly use_pg_rewind?: boolean;
    readonly use_slots?: boolean;
    readonly parameters?: Readonly<Record<string, string | number | boolean>>;
  };
  readonly [key: string]: unknown;
}

/** The leader key: who holds the lock and the key's modification revision (for compare-and-delete). */
export interface LeaderRecord {
  readonly name: string;
  readonly modRevision: string;
  /** Stays the same while the key is rewritten in place; a lock lost and taken again gets a new one. */
  readonly createRevision?: string;
}

/** Value of `failsafe`: every member the leader knew, name -> REST api_url, itself included (Patroni's format). */
export type FailsafeTopology = Readonly<Record<string, string>>;

/** One consistent read of the cluster prefix. */
export interface ClusterView {
  /** undefined = key absent; '' = bootstrap in progress; else the database system identifier. */
  readonly initialize: string | undefined;
  readonly config: DynamicConfig | undefined;
  readonly configRevision: string | undefined;
  readonly leader: LeaderRecord | undefined;
  readonly members: readonly MemberRecord[];
  readonly failover: FailoverIntent | undefined;
  readonly failoverRevision: string | undefined;
  readonly sync: SyncState | undefined;
  readonly syncRevision?: string | undefined;
  readonly history: readonly HistoryEntry[];
  /** `status.optime`: the leader's last published WAL position in bytes. */
  readonly optime: number | undefined;
  /** `status.slots`: the position each of the leader's slots has reached (bytes), for replicas to advance their copies. */
  readonly statusSlots?: Readonly<Record<string, number>> | undefined;
  /** The leader's heartbeat (the silent-host detector), when one was written. */
  readonly heartbeat?: HeartbeatRecord | undefined;
  /** `failsafe` (Patroni 3.0+): the members the leader last knew, name -> api_url; undefined when absent or not an object. */
  readonly failsafe?: FailsafeTopology | undefined;
  /** pgwarden proxies following this cluster (`proxies/<name>`, each on its proxy's lease); absent when none. */
  readonly proxies?: readonly ProxyRecord[] | undefined;
  /** A major upgrade asks the proxies to hold new primary connections (`upgrade` key): why; absent otherwise. */
  readonly writesHeld?: string | undefined;
  /** etcd revision of the read. */
  readonly revision: string;
}

/**
 * The value of `proxies/<name>` (pgwarden addition; Patroni's tools read only the keys they know): where one proxy
 * routes, written when its routes change, on the proxy's own lease so that a dead proxy's record expires.
 */
export interface ProxyRecord {
  readonly name: string;
  /** The proxy's HTTP endpoint (its /ui, /status), when it has one. */
  readonly api_url?: string | undefined;
  /** Listen addresses (host:port) of the primary and replica listeners. */
  readonly primary_listen?: string | undefined;
  readonly replica_listen?: string | undefined;
  /** The member primary traffic goes to, or undefined while it is held (then `held` says why). */
  readonly primary?: string | undefined;
  readonly held?: string | undefined;
  /** The members replica traffic goes to. */
  readonly replicas?: readonly string[] | undefined;
}

export type DcsObservation =
  | { readonly kind: 'ok'; readonly view: ClusterView }
  | { readonly kind: 'unreachable'; readonly sinceMs: number; readonly lastView: ClusterView | undefined };

export type PgRole = 'primary' | 'replica';

/** Patroni's PostgreSQL state strings we produce. */
export type PgState =
  | 'running'
  | 'starting'
  | 'stopped'
  | 'crashed'
  | 'stopping'
  | 'restarting'
  | 'creating replica'
  | 'initializing new cluster'
  | 'start failed'
  | 'initdb failed'
  | 'restoring'
  | 'restore failed'
  | 'unknown';

/** What the agent knows of its own PostgreSQL (from SQL when up, pg_controldata when down). */
export interface LocalPg {
  /** 'missing'/'empty' mean there is nothing to start; 'initialized' has a PG_VERSION. */
  readonly dataDir: 'missing' | 'empty' | 'initialized';
  readonly isRunning: boolean;
  /**
   * The postmaster is stopped by a signal (the fence froze it: its heartbeat window passed): it answers nothing and
   * this probe knows nothing more (reported as not running). The agent keeps what it knew before the freeze.
   */
  readonly isFrozen?: boolean | undefined;
  /** Role PostgreSQL reports (pg_is_in_recovery) or, when down, what pg_control says. */
  readonly role: PgRole | undefined;
  readonly sysid: string | undefined;
  readonly timeline: number | undefined;
  /** Primary: current flush LSN. Replica: undefined. */
  readonly writeLsn: bigint | undefined;
  readonly receivedLsn: bigint | undefined;
  readonly replayedLsn: bigint | undefined;
  /** True when the WAL receiver streams from some upstream. */
  readonly isStreaming: boolean;
  /** The member this replica's primary_conninfo points at (as we configured it). */
  readonly upstream: string | undefined;
  /** Set when the postmaster exited without the agent asking it to (crash). Cleared by a successful start. */
  readonly crashedAtMs: number | undefined;
  /** pg_control cluster state when down, e.g. 'shut down', 'shut down in recovery', 'in production'. */
  readonly controlState: string | undefined;
  /** Details for the REST API (only when running). */
  readonly serverVersion: number | undefined;
  /** e.g. '2026-11-22 17:54:15.702182+00:00' */
  readonly postmasterStartTime: string | undefined;
  readonly replayedTimestamp: string | null | undefined;
  /**
   * Replica: milliseconds from the last replayed transaction's commit to the probe (read by the probe's one query, on
   * PostgreSQL's clock). undefined: nothing replayed since start, or not a replica.
   */
  readonly replayAgeMs?: number | undefined;
  readonly isReplayPaused: boolean;
  /** pg_stat_replication rows (primary). */
  readonly replication: readonly ReplicationRow[];
  /** A changed setting waits for a restart (pg_settings.pending_restart). */
  readonly isPendingRestart: boolean;
  /** current_setting('synchronous_standby_names') while running. */
  readonly synchronousStandbyNames?: string | undefined;
  /**
   * Replica on the leader's timeline number whose history file for it differs from the leader's: it promoted itself
   * to the same timeline ID (a promotion cut short) and can never stream. Filled only when checked.
   */
  readonly isHistoryDivergent?: boolean | undefined;
  /** current_setting('wal_level') while running. */
  readonly walLevel?: string | undefined;
  /** Replication slots on this node (while running). */
  readonly slots?: readonly SlotState[] | undefined;
  /** Flush position each connected standby (by application_name) reported (primary). */
  readonly standbyFlushLsn?: Readonly<Record<string, bigint>> | undefined;
  /** Write and replay positions each standby reported (primary): what synchronous_commit remote_write/remote_apply wait for. */
  readonly standbyWriteLsn?: Readonly<Record<string, bigint>> | undefined;
  readonly standbyReplayLsn?: Readonly<Record<string, bigint>> | undefined;
  /** pg_stat_archiver and archive_mode, read by the probe's one query (while running). */
  readonly archiver?: ArchiverState | undefined;
  /** The file system holding pg_wal (statfs of <data_dir>/pg_wal, once per probe; no SQL), also while stopped. */
  readonly walDisk?: WalDiskState | undefined;
  /**
   * A running primary with a backup: section: when the newest backup in the repository finished (epoch seconds;
   * undefined: the repository holds none), from `pgbackrest info` run in the background every few minutes.
   */
  readonly lastBackup?: BackupRepositoryState | undefined;
  /** With a backup: section: what pushing WAL and stanza-create found wrong with the repository (see wal-archive.ts). */
  readonly backupRepository?: BackupRepositoryProblems | undefined;
}

/** What the primary last read from `pgbackrest info` (see LocalPg.lastBackup). */
export interface BackupRepositoryState {
  /** When the newest backup finished (epoch seconds); undefined: the repository holds none. */
  readonly stopEpochS: number | undefined;
  readonly label?: string | undefined;
  readonly type?: string | undefined;
  readonly sizeBytes?: number | undefined;
  readonly backupCount?: number | undefined;
  /** The earliest point a restore can reach: the end of the oldest backup (epoch seconds). */
  readonly recoverableFromEpochS?: number | undefined;
  /** The oldest WAL file the repository's archive holds. */
  readonly archiveMinWal?: string | undefined;
}

export interface BackupRepositoryProblems {
  /** The repository's stanza holds another database system (pgBackRest 028, or an archive-push system-id mismatch). */
  readonly isForeignSystem: boolean;
  /** WAL files the archive already held with a different content when this agent pushed them (pgBackRest 045). */
  readonly differentContentFiles: number;
}

export interface ArchiverState {
  /** archive_mode: 'off', 'on' or 'always'. */
  readonly mode: string;
  readonly archivedCount: number;
  readonly failedCount: number;
  /** Epoch seconds of the last archived / failed WAL file; undefined when none since the statistics were reset. */
  readonly lastArchivedEpochS: number | undefined;
  readonly lastFailedEpochS: number | undefined;
  /** pg_stat_archiver.last_archived_wal / last_failed_wal (absent in rows of older fixtures). */
  readonly lastArchivedWal?: string | undefined;
  readonly lastFailedWal?: string | undefined;
  /** While archiving fails: pgBackRest's own error for the last attempt, when its log has one. */
  readonly failureMessage?: string | undefined;
}

export interface WalDiskState {
  readonly sizeBytes: number;
  /** Bytes an unprivileged writer may still use (statfs bavail, as df shows). */
  readonly availableBytes: number;
  /** Bytes in use (blocks minus free blocks). */
  readonly usedBytes: number;
}

export interface ReplicationRow {
  readonly usename: string;
  readonly application_name: string;
  readonly client_addr: string | null;
  readonly state: string;
  readonly sync_state: string;
  readonly sync_priority: number;
}

/** A peer's `/patroni` answer, used only in the leader race. */
export interface PeerStatus {
  readonly name: string;
  readonly isReachable: boolean;
  readonly role: PgRole | undefined;
  readonly isRunning: boolean;
  /** max(received, replayed) for replicas, flush LSN for a primary. */
  readonly walPosition: bigint | undefined;
  readonly timeline: number | undefined;
  readonly tags: MemberTags;
  /** Replica whose WAL receiver streams right now (its position may still grow). */
  readonly isStreaming?: boolean | undefined;
}

/** The long-running task slot (basebackup, rewind, bootstrap, ...): only one at a time. */
export type TaskState =
  | { readonly kind: 'idle' }
  | { readonly kind: 'running'; readonly name: TaskName; readonly startedAtMs: number }
  | {
      readonly kind: 'done';
      readonly name: TaskName;
      readonly isOk: boolean;
      readonly error?: string;
      readonly endedAtMs: number;
      /** Failures of this task in a row, this one included (absent: 1); the retry pause doubles with each. */
      readonly failuresInRow?: number;
    };

export type TaskName =
  | 'bootstrap'
  | 'abort-bootstrap'
  | 'basebackup'
  | 'rewind'
  | 'reinitialize'
  | 'start'
  | 'stop'
  | 'promote'
  | 'restart'
  | 'copy-slots'
  /** Point-in-time recovery of the leader's data dir in place (pgwarden restore). */
  | 'restore';

/** Effective timing, already validated and converted to milliseconds. */
export interface Timing {
  readonly ttlMs: number;
  readonly loopWaitMs: number;
  readonly retryTimeoutMs: number;
  /** The silent-leader detector; undefined when the dynamic config turns it off (fence_window: 0). */
  readonly silence?: SilenceDetection | undefined;
}

/**
 * The silent-leader detector (dynamic config heartbeat_interval, fence_window, silence_margin). The leader writes the
 * heartbeat key every `intervalMs`; its fence freezes PostgreSQL `fenceWindowMs` after sending the last beat etcd
 * acknowledged. A replica that has seen no newer beat for `fenceWindowMs + marginMs` on its own clock, and has found
 * etcd answering promptly for `confirmMs` since, knows the old primary has stopped acknowledging writes.
 */
export interface SilenceDetection {
  readonly intervalMs: number;
  readonly fenceWindowMs: number;
  readonly marginMs: number;
  readonly confirmMs: number;
}

/** The heartbeat key as read from the DCS. */
export interface HeartbeatRecord {
  readonly leader: string;
  /** The fence window the leader's fence enforces; 0 = no fence (the silent path must not be used against it). */
  readonly fenceMs: number;
  readonly modRevision: string;
}

/** What a replica has seen of the leader's heartbeat (gathered by agent/leader-silence.ts). */
export interface LeaderSilence {
  readonly beat: HeartbeatRecord;
  /** When this agent first saw that beat (its monotonic clock). */
  readonly seenAtMs: number;
  /**
   * Since when every linearizable read of the heartbeat found that same beat and was answered within the heartbeat
   * interval (etcd answering promptly: a live leader could have written); undefined until one such read.
   */
  readonly confirmedSinceMs: number | undefined;
  /** When the newest such read was answered. */
  readonly lastConfirmedAtMs: number | undefined;
}

/** Static facts about this agent from the local config. */
export interface SelfInfo {
  readonly name: string;
  readonly tags: MemberTags;
  /** Whether the local config has a bootstrap section allowing this node to run initdb. */
  readonly canBootstrap: boolean;
  /** Why this member must not bootstrap a new cluster (an unsupported bootstrap.method), said in the decision. */
  readonly bootstrapRefusal?: string | undefined;
  /**
   * create_replica_methods has a method marked no_leader (Patroni's no_leader/no_master): with an initialized cluster
   * and no leader, an empty member makes its data dir with it instead of waiting for a leader.
   */
  readonly canCloneWithoutLeader?: boolean | undefined;
  /**
   * The local bootstrap.dcs has a standby_cluster section: until the DCS holds a config, it decides whether a new
   * cluster is a standby cluster (cloned from the remote primary) or a new one (initdb), as in Patroni.
   */
  readonly isStandbyClusterAtBootstrap?: boolean | undefined;
  /** This member's REST api_url: what the leader writes for itself in the failsafe key. */
  readonly apiUrl?: string | undefined;
}

/**
 * The lock as this agent last saw it succeed: the send time of the last successful acquire/renew, and the TTL of the
 * lease that renewal was made under. The lock is judged by that TTL, never by the ttl in force now: a lease granted
 * for 10 s does not last 30 s because someone raised `ttl` since.
 */
export type LockObservation =
  | { readonly lastRenewSentAtMs: undefined; readonly ttlMs?: undefined; readonly lastFailsafeSentAtMs?: undefined }
  | {
      readonly lastRenewSentAtMs: number;
      readonly ttlMs: number;
      /**
       * failsafe_mode: the send time of the last POST /failsafe round every listed member confirmed while the DCS was
       * unreachable. It proves the lock as a renewal sent then would (lease.ts lockDeadlineOf); a renewal clears it.
       */
      readonly lastFailsafeSentAtMs?: number | undefined;
    };

/**
 * failsafe_mode as this member sees it: whether the dynamic config enables it, the POST /failsafe this member last
 * accepted from a leader (while fresh), and the outcome of the last round this member sent as leader.
 */
export interface FailsafeObservation {
  readonly isEnabled: boolean;
  /** A leader's POST /failsafe accepted less than its ttl ago (on this agent's clock); undefined otherwise. */
  readonly record: FailsafeRecord | undefined;
  /** The last round of POST /failsafe this member sent (as leader), if any. */
  readonly lastRound: FailsafeRound | undefined;
  /** When this agent started (monotonic): whatever it confirmed before a restart is forgotten. */
  readonly agentStartedAtMs?: number | undefined;
}

/** A POST /failsafe this member accepted: that leader runs as primary without the DCS, and nobody may race it. */
export interface FailsafeRecord {
  readonly leader: string;
  readonly connUrl: string;
  readonly apiUrl: string;
  /** Monotonic time of the acceptance on this agent's clock. */
  readonly receivedAtMs: number;
  /** How long it holds: at least this member's ttl, and at least the ttl the leader judged its own deadline by. */
  readonly ttlMs: number;
}

export interface FailsafeRound {
  readonly sentAtMs: number;
  readonly isConfirmed: boolean;
  /** The members that did not answer 200 "Accepted" in time. */
  readonly unconfirmed: readonly string[];
}

/** A member asked to confirm a failsafe leader: its name and REST api_url (from the failsafe key or its member key). */
export interface FailsafeTarget {
  readonly name: string;
  readonly apiUrl: string;
}

/** Everything decide() reads. */
export interface Observation {
  readonly nowMs: number;
  /** Wall-clock ISO time, only to stamp values written to the DCS (history). */
  readonly wallIso: string;
  readonly self: SelfInfo;
  readonly pg: LocalPg;
  readonly dcs: DcsObservation;
  readonly lock: LockObservation;
  /** Peer statuses; filled only when the last view had no leader. */
  readonly peers: readonly PeerStatus[];
  readonly task: TaskState;
  readonly timing: Timing;
  readonly maximumLagOnFailover: number;
  /**
   * primary_start_timeout (ms): how long a crashed primary holding the lock may take to start again before it gives
   * the lock up for a failover, when one is possible; 0 = fail over at once instead of restarting.
   */
  readonly primaryStartTimeoutMs: number;
  /**
   * maximum_lag_on_syncnode (bytes): a standby further behind the most advanced one (by the position
   * synchronous_commit waits for) is not chosen as synchronous; 0 or less disables it, as in Patroni.
   */
  readonly maximumLagOnSyncnode?: number | undefined;
  /** synchronous_commit as configured (on, remote_write, remote_apply, ...): which standby position counts. */
  readonly synchronousCommit?: string | undefined;
  readonly useRewind: boolean;
  readonly useSlots: boolean;
  readonly isPaused: boolean;
  /**
   * Filled only on a replica whose WAL receiver is down while another member holds the lock: whether that
   * leader's REST API and PostgreSQL port both refused a TCP connection just now (its processes are gone,
   * so nothing there can accept writes). Undefined when not probed or when the fast path is disabled.
   */
  readonly leaderProbe: LeaderProbe | undefined;
  /** A replica's view of the leader's heartbeat (the silent-host detector); undefined when it has none. */
  readonly leaderSilence?: LeaderSilence | undefined;
  /** A pending manual command (restart, reinitialize), if any. */
  readonly command?: AgentCommand | undefined;
  /** failsafe_mode (Patroni 3.0+); absent means off. */
  readonly failsafe?: FailsafeObservation | undefined;
  /** Synchronous replication settings from the dynamic config. */
  readonly sync?: SyncSettings | undefined;
  /** synchronous_standby_names from postgresql.parameters: what the primary uses when synchronous mode is off. */
  readonly configuredSynchronousStandbyNames?: string | undefined;
  /** A restart scheduled through POST /restart {schedule}, with its filters (re-checked when it is due). */
  readonly scheduledRestart?: ScheduledRestart | undefined;
  /**
   * The GUCs PostgreSQL should run with (dynamic config merged under the local file's) and the fingerprint of the
   * set last applied; present only once the DCS has a config.
   */
  readonly parameters?: ParameterState | undefined;
  /** WAL archiving across failover (core/wal-archive.ts); absent when the agent does not track it. */
  readonly walArchive?: WalArchiveObservation | undefined;
}

/** How this member archives: pgBackRest (pgwarden's own archive_command) or the user's archive_command. */
export type ArchiveMethod = { readonly kind: 'pgbackrest' } | { readonly kind: 'command'; readonly command: string };

/** What the agent knows about its catch-up pushes (agent/wal-catch-up.ts). */
export interface WalArchiveObservation {
  readonly method: ArchiveMethod | undefined;
  /** The newest timeline whose earlier timelines' segments this agent pushed completely (this process). */
  readonly caughtUpTimeline: number | undefined;
  readonly isRunning: boolean;
  /** After a failed push: not again before this (monotonic ms). */
  readonly retryNotBeforeMs: number | undefined;
}

export type GucValue = string | number | boolean;

export interface ScheduledRestart {
  /** ISO-8601 wall time at which it becomes due. */
  readonly atIso: string;
  /** Only restart while in this role ('primary'/'master' or 'replica'). */
  readonly role?: string | undefined;
  /** Only restart when a changed setting waits for it. */
  readonly isPendingOnly: boolean;
}

export interface ParameterState {
  readonly wanted: Readonly<Record<string, GucValue>>;
  readonly appliedFingerprint: string | undefined;
}

export interface SyncSettings {
  readonly mode: 'off' | 'priority' | 'quorum';
  readonly isStrict: boolean;
  /** synchronous_node_count: standbys per commit (priority) or ANY n (quorum). */
  readonly nodeCount: number;
}

/** A manual request from the REST API for this member, consumed by exactly one decision. */
export interface AgentCommand {
  readonly id: number;
  /** stop and restore: pgwarden restore's steps, accepted in maintenance mode only. */
  readonly kind: 'restart' | 'reinitialize' | 'stop' | 'restore';
  /** restore: where recovery stops. */
  readonly target?: RestoreTarget | undefined;
}

export interface LeaderProbe {
  readonly leader: LeaderRecord;
  readonly isApiRefused: boolean;
  readonly isPgRefused: boolean;
}

/** State carried from one decision to the next: the only memory decide() has. */
export interface HaMemory {
  /**
   * Set when we promote or restore in place: the timeline and LSN we left, so one history entry is written once the
   * new timeline shows. `reason` is the entry's reason (default: PostgreSQL's 'no recovery target specified').
   */
  readonly promotedFrom: { readonly timeline: number; readonly lsn: bigint; readonly reason?: string | undefined } | undefined;
  /** A rewind from this leader failed: the next attempt re-clones instead. */
  readonly rewindFailedFor: string | undefined;
  /** endedAtMs of the last finished task whose outcome we already acted on. */
  readonly handledTaskEndedAtMs: number | undefined;
  /** After a failed PostgreSQL task, don't retry before this time (no tight failure loops). */
  readonly retryNotBeforeMs: number | undefined;
  /** When this replica was first seen running but not streaming from the current leader. */
  readonly notStreamingSinceMs: number | undefined;
  /** The last manual command acted on (ids only grow). */
  readonly handledCommandId?: number | undefined;
  /** The synchronous_standby_names value first seen in effect, with the primary's flush LSN at that moment. */
  readonly syncAppliedAt?: { readonly value: string; readonly lsn: bigint } | undefined;
  /** The standby_cluster settings the standby leader last pointed PostgreSQL at (a changed section is followed again). */
  readonly followedStandbyCluster?: string | undefined;
  /**
   * Set when this leader demoted for a switchover in maintenance mode: the member it handed over to. Until PostgreSQL
   * runs again it starts as a replica of that member, as Patroni's demote does, although a paused agent starts nothing.
   */
  readonly handedOverInPauseTo?: string | undefined;
}

export type DemoteMode = 'offline' | 'graceful' | 'immediate' | 'immediate-nolock';

/**
 * Actions are verbs; each is idempotent and its outcome shows up in the next Observation.
 * Execution contract (agent/execute.ts): actions run in list order and the first one that fails (a CAS that
 * returns false, or an error) skips the rest. DCS actions run inline. PostgreSQL actions (bootstrap, basebackup,
 * promote, startPrimary, startReplica, rewind, reinitialize, abortBootstrap) run as the single long task and
 * must come last in a list; `demote` cancels any running task and runs at once; followLeader and manageSlots are
 * quick and inline; copyLogicalSlots is a long task (it restarts the replica). Promote's task also runs CHECKPOINT so a later pg_rewind sees the new timeline.
 * `reconfigure` and `clearScheduledRestart` never fail the list: a GUC that cannot be applied is logged and retried.
 */
export type Action =
  | { readonly kind: 'acquireLeader' }
  | { readonly kind: 'renewLeader' }
  | { readonly kind: 'releaseLeader' }
  | { readonly kind: 'deleteStaleLeader'; readonly leader: LeaderRecord }
  /** Delete the leader key (and heartbeat) only if neither changed: the leader was silent past its fence window. */
  | { readonly kind: 'deleteSilentLeader'; readonly leader: LeaderRecord; readonly heartbeatRevision: string }
  | { readonly kind: 'initializeCluster' }
  | { readonly kind: 'publishInitialize'; readonly sysid: string }
  | { readonly kind: 'writeBootstrapConfig' }
  | { readonly kind: 'abortBootstrap' }
  | { readonly kind: 'bootstrap' }
  | { readonly kind: 'basebackup'; readonly from: string }
  /** No leader to copy from: a create_replica_methods entry marked no_leader makes the data dir (e.g. from a backup). */
  | { readonly kind: 'cloneWithoutLeader' }
  | { readonly kind: 'promote' }
  | { readonly kind: 'demote'; readonly mode: DemoteMode }
  | { readonly kind: 'startPrimary' }
  | { readonly kind: 'startReplica'; readonly upstream: string | undefined }
  | { readonly kind: 'followLeader'; readonly upstream: string }
  | { readonly kind: 'detachUpstream' }
  /** archiveReadyFirst: push the WAL marked .ready before pg_rewind replaces pg_wal (core/wal-archive.ts). */
  | { readonly kind: 'rewind'; readonly from: string; readonly archiveReadyFirst?: ArchiveMethod | undefined }
  | { readonly kind: 'reinitialize'; readonly from: string }
  | { readonly kind: 'restart'; readonly asPrimary: boolean; readonly upstream: string | undefined }
  /** Stop PostgreSQL (fast) and leave it stopped: a paused cluster starts nothing again on its own. */
  | { readonly kind: 'stopPostgres' }
  /** The leader's data dir restored in place by pgBackRest to `target`, recovered, promoted and started as primary. */
  /**
   * `memberSlots`: the physical slots the members stream through, made again after the promotion (pgBackRest restores
   * none, and a paused leader manages no slots, so the re-cloned replicas would find none).
   */
  | { readonly kind: 'restoreToTarget'; readonly target: RestoreTarget; readonly memberSlots: readonly string[] }
  | { readonly kind: 'manageSlots'; readonly plan: SlotPlan }
  | { readonly kind: 'copyLogicalSlots'; readonly from: string; readonly slots: readonly string[] }
  | { readonly kind: 'setSynchronousStandbyNames'; readonly value: string }
  | { readonly kind: 'writeSync'; readonly state: SyncState | undefined }
  | { readonly kind: 'writeHistory'; readonly entry: HistoryEntry; readonly keepLast?: number }
  /**
   * A new primary pushes the complete segments of timelines before `timeline` still in its pg_wal, in the background
   * (bounded; the outcome comes back as obs.walArchive). Never fails the list.
   */
  | { readonly kind: 'archivePreviousTimelines'; readonly timeline: number; readonly method: ArchiveMethod }
  | { readonly kind: 'clearFailover' }
  | { readonly kind: 'clearScheduledRestart' }
  | {
      readonly kind: 'reconfigure';
      readonly parameters: Readonly<Record<string, GucValue>>;
      readonly fingerprint: string;
      /** A change after the first application to a running PostgreSQL: on_reload fires with this role. */
      readonly reloadCallbackRole: PgRole | undefined;
    }
  | { readonly kind: 'publishStatus'; readonly optime: number; readonly slots?: Readonly<Record<string, number>> | undefined }
  /** failsafe_mode: the leader publishes the members it knows (never fails the list: the next cycle retries). */
  | { readonly kind: 'writeFailsafe'; readonly topology: FailsafeTopology }
  /**
   * failsafe_mode with the DCS unreachable: POST /failsafe to every target, each bounded by `budgetMs`. The outcome comes
   * back as obs.failsafe.lastRound and, when all confirmed, as lock.lastFailsafeSentAtMs (the send time). Never fails the list.
   */
  | { readonly kind: 'confirmFailsafe'; readonly targets: readonly FailsafeTarget[]; readonly budgetMs: number };

export interface Decision {
  readonly actions: readonly Action[];
  /** One human sentence, logged once per cycle (Patroni's style). */
  readonly reason: string;
  readonly memory: HaMemory;
  /** How long the loop may sleep before deciding again (a DCS watch event or crash can wake it earlier). */
  readonly wakeAfterMs: number;
  /** The rule of decide.ts RULES that decided ('none': no rule did, the member only reports itself); for metrics. */
  readonly rule?: string | undefined;
}

/** One HA decision that changed something (a new reason, or actions taken), as GET /events serves it. */
export interface DecisionEvent {
  /** Increasing per agent process; a reader passes the last one it saw to `since`. */
  readonly seq: number;
  /** Wall-clock ISO time of the cycle. */
  readonly at: string;
  readonly member: string;
  /** Patroni's role name at that cycle (master, replica, standby_leader, uninitialized). */
  readonly role: string;
  readonly timeline: number | undefined;
  /** The actions the cycle took (kinds), empty when only the reason changed. */
  readonly actions: readonly string[];
  /** The decision's sentence, as logged. */
  readonly reason: string;
  /**
   * Set on a decision that removes a leader's lock as stale/silent or takes the lock after it vanished: what this
   * member last read of that lock's lease (agent/old-lease.ts), to bound the failover's write pause.
   */
  readonly oldLease?: LeaseReading;
}

/** The DCS's time left on a leader lock's lease, as one member read it (wall-clock times, ISO). */
export interface LeaseReading {
  readonly leader: string;
  /** The lock's term (the leader key's creation revision): a reading of one term says nothing of another. */
  readonly term: string;
  readonly readAt: string;
  /** Whole seconds, rounded down as etcd answers: between leftS and leftS + 1 were left. */
  readonly leftS: number;
  readonly ttlS: number;
  /** readAt - (ttl - left): the holder renewed the lease for the last time no earlier than this. */
  readonly renewedNotBefore: string;
}

/** Recent decision events, oldest first: those after `seq`, at most `limit` (the newest). */
export interface DecisionEventSource {
  since(seq?: number, limit?: number): readonly DecisionEvent[];
}
