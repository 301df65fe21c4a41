// The interfaces the agent needs from the outside world; adapters in dcs/ and postgres/ implement them.
import type { AnyUpgradeRecord } from './major-upgrade.js';
import type { CustomBootstrap, ReplicaMethod, ReplicaMethodResult } from './replica-methods.js';
import type { SlotStep, SlotStepResult } from './slot-changes.js';
import type { ArchiveMethod, ArchivePushStep } from './wal-archive.js';
import type {
  ClusterView,
  DynamicConfig,
  FailoverIntent,
  HeartbeatRecord,
  FailsafeTopology,
  HistoryEntry,
  LeaderRecord,
  LocalPg,
  MemberRecord,
  PeerStatus,
  ProxyRecord,
  SyncState,
} from './types.js';
import type { RestoreTarget } from './restore-target.js';

/** Monotonic time plus wall time for stamping DCS values. */
export interface Clock {
  /** Monotonic milliseconds (never goes backwards, unrelated to wall time). */
  nowMs(): number;
  /** Wall-clock ISO-8601 string, only for values written to the DCS. */
  wallIso(): string;
  /** Resolves after `ms` or rejects with the signal's reason when aborted. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
  /**
   * A deadline on this clock: aborts after `ms` or when `parent` aborts. Every DCS and PostgreSQL call the agent makes
   * gets one, so a simulated clock bounds calls in simulated time exactly as the system clock does in real time.
   */
  deadline(ms: number, parent?: AbortSignal): AbortSignal;
  /** Calls `fire` once after `ms` on this clock; the returned function cancels it. Never keeps a stopping process alive. */
  setTimer(ms: number, fire: () => void): () => void;
}

/** Result of a compare-and-set style DCS write: false means the precondition did not hold. */
export type CasResult = boolean;

/**
 * The DCS, Patroni-shaped. Every method takes an AbortSignal deadline; unavailability rejects with a
 * PgwardenError whose code is PGW_DCS_UNAVAILABLE (retryable), or PGW_DCS_TLS / PGW_DCS_AUTH when the DCS refuses
 * this client's certificate or credentials (the same to the agent: the DCS is not usable). A failed precondition
 * resolves false.
 */
export interface Dcs {
  loadCluster(signal: AbortSignal): Promise<ClusterView>;
  /**
   * Create-if-absent `leader = name`, bound to this agent's lease of `ttlMs` (granting one, or a new one when the
   * current lease was granted with another TTL). The caller judges the lock by the TTL it passed here.
   */
  acquireLeader(ttlMs: number, signal: AbortSignal): Promise<CasResult>;
  /** Keep the lease (of `ttlMs`, re-granted if its TTL differs) alive and ensure `leader == name` is bound to it. */
  renewLeader(ttlMs: number, signal: AbortSignal): Promise<CasResult>;
  /** Delete `leader` if its value is still our name. */
  releaseLeader(signal: AbortSignal): Promise<CasResult>;
  /** Delete `leader` only if its mod revision is still `modRevision` (a dead leader whose lease has not yet expired). */
  deleteLeaderIfUnchanged(modRevision: string, signal: AbortSignal): Promise<CasResult>;
  /**
   * Leader: write the heartbeat (this member's name and its fence window) on this agent's lease, only while the leader
   * key holds our name on that lease; false when it does not (the lock is lost or the lease was replaced).
   */
  beatHeartbeat(fenceMs: number, signal: AbortSignal): Promise<CasResult>;
  /** A linearizable read of the heartbeat; undefined when there is none. */
  readHeartbeat(signal: AbortSignal): Promise<HeartbeatRecord | undefined>;
  /**
   * Calls `onBeat` with every heartbeat written (or deleted: undefined) after `fromRevision`, until `signal` aborts
   * (rejects with its reason) or the stream breaks (rejects): the caller watches again from the last revision it saw.
   */
  watchHeartbeat(
    fromRevision: string,
    onBeat: (beat: HeartbeatRecord | undefined, revision: string) => void,
    signal: AbortSignal,
  ): Promise<void>;
  /**
   * Delete the leader key (and the heartbeat) only if the key is still `leader`'s (same create revision) and the
   * heartbeat is still at `heartbeatRevision`: a leader that beat since, or a new leader, makes it fail.
   */
  deleteSilentLeader(leader: LeaderRecord, heartbeatRevision: string, signal: AbortSignal): Promise<CasResult>;
  /** Put `members/<name>` on this agent's lease (of `ttlMs`, as for renewLeader). */
  touchMember(record: MemberRecord, ttlMs: number, signal: AbortSignal): Promise<void>;
  /** Create-only `initialize` (value '' while bootstrapping, or a sysid). */
  initialize(value: string, signal: AbortSignal): Promise<CasResult>;
  /** Overwrite `initialize` with the system identifier after bootstrap. */
  setInitialize(sysid: string, signal: AbortSignal): Promise<void>;
  /** Delete `initialize` after a failed bootstrap. */
  cancelInitialize(signal: AbortSignal): Promise<void>;
  setConfig(config: DynamicConfig, expectedRevision: string | undefined, signal: AbortSignal): Promise<CasResult>;
  setFailover(intent: FailoverIntent | undefined, expectedRevision: string | undefined, signal: AbortSignal): Promise<CasResult>;
  setSync(state: SyncState | undefined, expectedRevision: string | undefined, signal: AbortSignal): Promise<CasResult>;
  setHistory(history: readonly HistoryEntry[], signal: AbortSignal): Promise<void>;
  setStatus(optime: number, slots: Readonly<Record<string, number>> | undefined, signal: AbortSignal): Promise<void>;
  /** Overwrite the permanent `failsafe` key (failsafe_mode): member name -> api_url, as Patroni writes it. */
  setFailsafe(topology: FailsafeTopology, signal: AbortSignal): Promise<void>;
  /** Resolves when anything under the cluster prefix changes after `fromRevision`, or rejects on abort/error. */
  watch(fromRevision: string, signal: AbortSignal): Promise<void>;
  /** Stop keepalives; does not revoke the lease (a killed agent's keys must expire by TTL, as a crash would). */
  close(): Promise<void>;
}

/** The value of the backup lock key `<namespace>/<scope>/backup`: who runs which backup since when. */
export interface BackupLockRecord {
  readonly member: string;
  readonly type: 'full' | 'diff' | 'incr';
  /** Wall-clock ISO-8601 time the backup started. */
  readonly started: string;
}

/**
 * One backup at a time in the cluster (the `backup:` section): a lock key on this agent's lease (as the leader key), so a
 * dead agent's lock expires with its member key. Implemented by the DCS adapters beside Dcs.
 */
export interface BackupLocks {
  /** Create-if-absent `backup = record` on this agent's lease of `ttlMs`; false when another backup holds it. */
  acquireBackupLock(record: BackupLockRecord, ttlMs: number, signal: AbortSignal): Promise<CasResult>;
  /** Delete the lock if it is still this member's; false when it was not. */
  releaseBackupLock(signal: AbortSignal): Promise<CasResult>;
  /** The lock's holder, or undefined when no backup runs. */
  readBackupLock(signal: AbortSignal): Promise<BackupLockRecord | undefined>;
}

/**
 * The record of a running `pgwarden upgrade` (`<namespace>/<scope>/upgrade`), kept without a lease: it must outlive the
 * CLI that wrote it, so that a re-run after an interruption continues the same upgrade. Implemented beside Dcs.
 */
export interface UpgradeLedger {
  /** The record and its mod revision (for compare-and-set), or undefined when no upgrade is in progress. */
  readUpgrade(signal: AbortSignal): Promise<{ readonly record: AnyUpgradeRecord; readonly revision: string } | undefined>;
  /** Create (expectedRevision '0') or replace the record if it is still at expectedRevision; false when it changed. */
  writeUpgrade(record: AnyUpgradeRecord, expectedRevision: string, signal: AbortSignal): Promise<CasResult>;
  /** Delete the record (the upgrade finished or was abandoned). */
  deleteUpgrade(signal: AbortSignal): Promise<void>;
}

/** The leader lock's remaining time as the DCS counts it: what every member's dashboard shows (implemented beside Dcs). */
export interface LeaderLockTimer {
  /**
   * Milliseconds until the lease the leader key is bound to expires (etcd counts whole seconds); undefined when there is
   * no leader key or it is bound to no lease. One read, no write.
   */
  leaderLockTimeLeft(signal: AbortSignal): Promise<number | undefined>;
}

/** The proxies' records `proxies/<name>` (implemented by the DCS adapters beside Dcs). */
export interface ProxyRegistry {
  /** Put `proxies/<record.name>` on this client's lease of `ttlMs` (kept alive by each call); unchanged values are not rewritten. */
  publishProxy(record: ProxyRecord, ttlMs: number, signal: AbortSignal): Promise<void>;
  /** Delete `proxies/<name>` (a clean stop; a crashed proxy's record expires with its lease). */
  withdrawProxy(name: string, signal: AbortSignal): Promise<void>;
}

/** Where a standby backup reads the primary's non-replicated files (pgBackRest pg1 with --backup-standby). */
export interface BackupPrimary {
  readonly name: string;
  readonly upstream: Upstream;
}

/** pgBackRest run by the PostgreSQL adapter as the postgres user (the `backup:` section). */
export interface BackupTool {
  /**
   * `pgbackrest backup --type=<type>` for this member: on the primary (`primary` undefined), or from this streaming
   * standby with --backup-standby (pg1 = `primary`, pg2 = this member). Aborting the signal stops pgBackRest (SIGTERM).
   * Resolves with the new backup's label and size (bytes) from `info`.
   */
  runBackup(
    type: 'full' | 'diff' | 'incr',
    primary: BackupPrimary | undefined,
    signal: AbortSignal,
  ): Promise<{ readonly label: string | undefined; readonly sizeBytes: number | undefined }>;
  /** `pgbackrest info --output=json` for the stanza, as printed. */
  backupInfo(signal: AbortSignal): Promise<string>;
}

/** Point-in-time recovery of this member's data dir in place (pgwarden restore), by the PostgreSQL adapter. */
export interface RestoreTool {
  /**
   * With PostgreSQL stopped: `pgbackrest restore --delta` with the target, recovery until the target, promotion onto a
   * new timeline, the recovery target settings removed again (a later standby of this data dir must not stop at the
   * old target), the members' physical slots made, and a start as primary. Rejects with PGW_PG_COMMAND_FAILED naming what failed; PostgreSQL is then stopped.
   */
  restoreToTarget(target: RestoreTarget, memberSlots: readonly string[], signal: AbortSignal): Promise<void>;
}

/** Where a replica streams from. */
export interface Upstream {
  readonly name: string;
  /** postgres://host:port/db as published in the member's conn_url; '' when WAL comes from the archive only. */
  readonly connUrl: string;
  /**
   * The slot to stream through on the upstream: undefined = this member's own member slot (a member of this cluster);
   * null = none (another cluster's primary without primary_slot_name).
   */
  readonly slotName?: string | null | undefined;
  /** Recovery GUCs written with it (restore_command, archive_cleanup_command, recovery_min_apply_delay, ...). */
  readonly recovery?: Readonly<Record<string, string | number | boolean>> | undefined;
}

export type StopMode = 'smart' | 'fast' | 'immediate';

/**
 * How a watch on the upstream's server ended: `closed` (the session to it ended: its postmaster stopped or died, or the
 * network said so), `unavailable` (no session could be opened: the caller falls back to polling), `aborted`.
 */
export type UpstreamWatchEnd = 'closed' | 'unavailable' | 'aborted';

/** A cheap live reading of WAL positions, taken between HA cycles so the REST API never reports positions a loop old. */
export interface WalStatus {
  readonly isStreaming: boolean;
  readonly writeLsn: bigint | undefined;
  readonly receivedLsn: bigint | undefined;
  readonly replayedLsn: bigint | undefined;
  /** Primary: application names of the standbys streaming right now, sorted. */
  readonly streamingStandbys?: readonly string[] | undefined;
}

/**
 * Control of the local PostgreSQL. Failures reject with a PgwardenError whose code the conformance suite
 * (postgres/conformance.ts) pins for every implementation: PGW_PG_COMMAND_FAILED (a program or start-up failed; argv,
 * exit code and stderr tail in the context), PGW_PG_QUERY_FAILED (SQL failed, e.g. the server is not running),
 * PGW_PG_UNREACHABLE (the upstream does not answer), PGW_PG_TIMEOUT (the deadline passed).
 */
export interface RewindOptions {
  /**
   * Push the WAL marked .ready to the archive with this method before pg_rewind replaces pg_wal (after crash recovery,
   * bounded in time); a failed push is logged and the rewind goes on (core/wal-archive.ts).
   */
  readonly archiveReadyFirst?: ArchiveMethod | undefined;
}

/** Pushes WAL from this member's pg_wal to the archive (what and when: core/wal-archive.ts). */
export interface WalArchiveTool {
  /**
   * The complete segments of timelines before `timeline` still in pg_wal, oldest first; resolves with each file's
   * outcome (never rejects for a failed push: it is a step's outcome).
   */
  pushPreviousTimelines(timeline: number, method: ArchiveMethod, signal: AbortSignal): Promise<readonly ArchivePushStep[]>;
}

export interface PgController {
  /** SQL while running, pg_control while down; rejects only when even that cannot be read. */
  probe(signal: AbortSignal): Promise<LocalPg>;
  /** A new cluster, stopped (pg_control says primary); refuses a data dir that already holds one. */
  initdb(signal: AbortSignal): Promise<void>;
  /**
   * bootstrap.method: like initdb, a new stopped cluster that starts as primary, made by `method`'s command (as the
   * postgres user) into an empty data dir, then recovered with its recovery_conf (or the recovery settings the command
   * left, keep_existing_recovery_conf) until it is promoted, and stopped; the configured roles get their passwords.
   * Rejects with PGW_PG_COMMAND_FAILED (the data dir left empty) when the command fails or leaves no cluster.
   */
  bootstrapFrom(method: CustomBootstrap, signal: AbortSignal): Promise<void>;
  /** Start as primary (no standby.signal) and wait until it accepts connections. */
  startPrimary(signal: AbortSignal): Promise<void>;
  /** Write standby.signal + primary_conninfo for `upstream` (or none) and start; returns once the postmaster accepts connections. */
  startReplica(upstream: Upstream | undefined, signal: AbortSignal): Promise<void>;
  /** Whether this node's history file for `timeline` differs from `upstream`'s; undefined when it cannot tell. */
  isHistoryDivergent(upstream: Upstream, timeline: number, signal: AbortSignal): Promise<boolean | undefined>;
  /** Stop a running replica's WAL receiver (empty primary_conninfo, reload): its position stops growing. */
  detachUpstream(signal: AbortSignal): Promise<void>;
  /** Point a running replica at a new upstream (rewrites primary_conninfo and reloads). */
  followUpstream(upstream: Upstream, signal: AbortSignal): Promise<void>;
  /** Resolves at once when nothing runs; a requested stop never reaches onUnexpectedExit. */
  stop(mode: StopMode, signal: AbortSignal): Promise<void>;
  /** Resolves once the replica runs as primary on the next timeline; rejects (PGW_PG_QUERY_FAILED) unless it is a running replica. */
  promote(signal: AbortSignal): Promise<void>;
  /** CHECKPOINT, so pg_rewind on the old primary sees the new timeline. */
  checkpoint(signal: AbortSignal): Promise<void>;
  /** Replace the (stopped) node's data dir with a copy of `from`'s; a failure leaves an empty data dir. */
  basebackup(from: Upstream, signal: AbortSignal): Promise<void>;
  /**
   * Make the (stopped) node's data dir a copy to start as a replica of `from` by trying `methods` in order
   * (create_replica_methods): a method that is not keep_data starts from an empty data dir; the first that succeeds
   * ends the list. Resolves with how each method went; when none succeeded, rejects with the last failure's code
   * (PGW_PG_UNREACHABLE when the source did not answer) and the per-method outcomes in its context (`methods`).
   */
  createReplica(from: Upstream, methods: readonly ReplicaMethod[], signal: AbortSignal): Promise<readonly ReplicaMethodResult[]>;
  /**
   * Stop, then make the data dir follow `from` (crash recovery first if it was not shut down cleanly). A failure
   * (no data dir, another system, `from` unreachable) leaves the data dir as it was.
   */
  rewind(from: Upstream, signal: AbortSignal, options?: RewindOptions): Promise<void>;
  /** Remove the data directory (before a re-clone). */
  removeDataDir(signal: AbortSignal): Promise<void>;
  /** Apply new GUCs from the dynamic configuration (re-render, reload); restart-only ones surface as isPendingRestart. */
  reconfigure(parameters: Readonly<Record<string, string | number | boolean>>, signal: AbortSignal): Promise<void>;
  /**
   * Apply the steps core planned (planSlotChanges), in order, and say how each went. Never rejects: a failed step
   * (PostgreSQL down, a consumer connected since the probe, a missing plugin) is a `failed` result and the rest still run.
   */
  applySlotPlan(steps: readonly SlotStep[], signal: AbortSignal): Promise<readonly SlotStepResult[]>;
  /** Replica: copy logical slots' state from the primary (PostgreSQL 15 cannot create them in recovery) and restart. */
  copyLogicalSlots(from: Upstream, slotNames: readonly string[], signal: AbortSignal): Promise<void>;
  /** Set and reload synchronous_standby_names (persisted, so a restart keeps it). */
  setSynchronousStandbyNames(value: string, signal: AbortSignal): Promise<void>;
  /** One cheap query: WAL positions and whether the WAL receiver streams right now; undefined when PostgreSQL is down. */
  walStatus(signal: AbortSignal): Promise<WalStatus | undefined>;
  /**
   * Holds an idle session to `upstream`'s server and resolves when it ends: the event that replaces polling the WAL
   * receiver (a dead primary's backends exit with its postmaster, so the session closes at once).
   */
  watchUpstream(upstream: Upstream, signal: AbortSignal): Promise<UpstreamWatchEnd>;
  /** Called with the exit of a postmaster the agent did not ask to stop. */
  onUnexpectedExit(listener: () => void): void;
  close(): Promise<void>;
}

/** Fetches peers' `/patroni` for the leader race (2 s budget, no retries, like Patroni). */
export interface PeerClient {
  /** Never rejects: an unreachable peer is a PeerStatus with isReachable false. */
  fetchStatus(member: MemberRecord, signal: AbortSignal): Promise<PeerStatus>;
  /** Whether TCP connects to the member's REST API and PostgreSQL port are actively refused (its processes are gone). */
  probeRefused(member: MemberRecord, signal: AbortSignal): Promise<{ readonly isApiRefused: boolean; readonly isPgRefused: boolean }>;
  /**
   * failsafe_mode: POST /failsafe to a member's REST API (`apiUrl` is its api_url); true only for 200 "Accepted".
   * Never rejects: no answer in time is false.
   */
  postFailsafe(apiUrl: string, request: FailsafeRequest, signal: AbortSignal): Promise<boolean>;
}

/** The body of POST /failsafe (Patroni's fields, plus the ttl in seconds the leader judges its deadline by). */
export interface FailsafeRequest {
  readonly name: string;
  readonly conn_url: string;
  readonly api_url: string;
  readonly ttl?: number;
}

/** watchdog.mode, as Patroni reads it (config/watchdog.ts). */
export type WatchdogMode = 'off' | 'automatic' | 'required';

/** A Linux watchdog device (bin/linux-watchdog.ts), driven by agent/watchdog-feed.ts. */
export interface WatchdogDevice {
  readonly path: string;
  /** Starts the timer with this timeout (seconds); returns the timeout the driver accepted. Throws when it cannot. */
  open(timeoutSeconds: number): number;
  keepalive(): void;
  /** Magic close: stops the timer (unless the driver has nowayout). */
  close(): void;
}

/**
 * A fence outside the agent's process (src/fence): it stops PostgreSQL, if it runs as a primary, at the lock deadline
 * the agent last proved, even when the agent itself is stopped, hung or starved. Never rejects; fire and forget.
 */
export interface ExternalFence {
  /**
   * The lock is proved until `deadlineMs` on the agent's clock: a primary still running then is stopped. With
   * `freezeAtMs` (the silent-leader detector), a primary is frozen (SIGSTOP) from that instant until a newer arm moves it
   * into the future again, and killed at `deadlineMs`.
   */
  armUntil(deadlineMs: number, freezeAtMs?: number): void;
  /** Whether the fence process is connected right now (only then may the heartbeat announce a fence window). */
  isConnected(): boolean;
  /** Nothing to enforce (PostgreSQL stopped or not a primary, or maintenance mode). */
  disarm(): void;
  /** The agent stops: `exit` tells the fence to leave (PostgreSQL was stopped or the fence disarmed first). */
  close(options: { readonly exit: boolean }): Promise<void>;
}

/** The proxy's replication-position port: what one member says about itself, in one query. */
export interface MemberPosition {
  /** false on the primary. */
  readonly isInRecovery: boolean;
  /** Bytes: the primary's current WAL position, or the replica's replay position (undefined before any replay). */
  readonly lsn: number | undefined;
  /** Whether its WAL receiver streams (undefined when the role may not see it: grant pg_monitor). */
  readonly isStreaming: boolean | undefined;
  /** How old the last replayed transaction is, by the replica's clock (undefined before any replay). */
  readonly replayAgeMs: number | undefined;
}

/** Reads a member's position; the adapter (postgres/position-reader.ts) keeps one session per member. */
export interface PositionReader {
  read(member: MemberRecord, signal: AbortSignal): Promise<MemberPosition>;
  /** Closes the sessions of members not in `keep`. */
  retain(keep: ReadonlySet<string>): void;
  close(): Promise<void>;
}
