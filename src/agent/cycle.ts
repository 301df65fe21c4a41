// One HA cycle: observe (PostgreSQL, DCS, peers) -> decide (pure core) -> execute -> publish the member key and
// snapshot. A function of explicit ports and state: the agent's loop runs it, and so does the simulator.
import { decide as coreDecide, initialMemory } from '../core/decide.js';
import { primaryStartTimeoutMs } from '../core/failover-candidates.js';
import { checkDecision } from '../core/invariants.js';
import { lockDeadlineOf } from '../core/lease.js';
import type { Clock, Dcs, LeaderLockTimer, PeerClient, PgController, RestoreTool, Upstream } from '../core/ports.js';
import { NO_LEADER_SOURCE, type CustomBootstrap, type ReplicaMethod } from '../core/replica-methods.js';
import { isStandbyLeaderNow, standbyClusterOf } from '../core/standby-cluster.js';
import { answerFailsafe, isFailsafeRecordFresh } from '../core/rules/failsafe.js';
import { syncSettingsOf } from '../core/sync-plan.js';
import { deriveTiming, TIMING_KEYS } from '../core/timing-rules.js';
import type {
  ClusterView,
  Decision,
  DynamicConfig,
  GucValue,
  HaMemory,
  LeaderRecord,
  LeaderSilence,
  LeaseReading,
  LocalPg,
  Observation,
  Timing,
} from '../core/types.js';
import { describeError } from '../util/errors.js';
import { within } from '../util/abort.js';
import type { Log } from '../util/log.js';
import type { CallbackRunner } from './callbacks.js';
import type { CommandInbox } from './command-inbox.js';
import { executeActions, NO_LOCK, type FailsafeHooks, type LockHolder } from './execute.js';
import { failsafeObservation, initialFailsafeState, isFailsafeEnabled, runFailsafeRound, type FailsafeState } from './failsafe.js';
import { buildMemberRecord, pgStateOf, type MemberIdentity } from './member-record.js';
import { DecisionCounts } from './decision-counts.js';
import { DecisionEvents, isDecisionEvent } from './decision-events.js';
import { LEASE_READ_WAIT_MS, leaseForDecision, readLease, shouldReadLease } from './old-lease.js';
import { observeDcs, observeHistoryDivergence, observeLeaderProbe, observePeers, observePg, type DcsReadState } from './observe.js';
import { buildSnapshot, isLockValidAt, type AgentSnapshot } from './snapshot.js';
import type { TaskSlot } from './tasks.js';
import type { WalCatchUp } from './wal-catch-up.js';
import { archiveMethodOf } from '../core/wal-archive.js';

/** A DCS call never gets more than this, whatever retry_timeout says: a slow etcd must not stall the loop. */
const MAX_DCS_CALL_MS = 3000;
/** Floor for a DCS call's budget so that a lock close to its deadline can still try to renew. */
const MIN_DCS_CALL_MS = 200;
const PG_PROBE_BUDGET_MS = 2000;
export const PG_COMMAND_BUDGET_MS = 5000;
/** A reason that stays the same is logged again this often, with how long it has held, instead of going silent. */
const REPEATED_REASON_LOG_MS = 60_000;

export type DecideFunction = (obs: Observation, mem: HaMemory) => Decision;

/** The outside world of one agent, as ports. */
export interface CyclePorts {
  readonly dcs: Dcs;
  readonly pg: PgController;
  readonly peers: PeerClient;
  readonly clock: Clock;
  readonly log: Log;
  readonly tasks: TaskSlot;
  readonly inbox: CommandInbox;
  /** Called with every lock outcome: the shell arms or disarms the lease fence with it. */
  readonly onLockChanged: (lock: LockHolder['current']) => void;
  /** decide() itself in production; the simulator passes variants with one rule removed to prove each is needed. */
  readonly decide?: DecideFunction | undefined;
  /** WAL archiving across failover: a new primary's catch-up pushes; absent, core plans no archiving steps. */
  readonly walCatchUp?: WalCatchUp | undefined;
  /** watchdog.mode automatic/required (agent/watchdog-feed.ts): activated before an acquire. */
  readonly watchdogVetoAcquire?: ((ttlMs: number) => string | undefined) | undefined;
  /** The leader lock's lease time left, read when the leader's stream breaks (agent/old-lease.ts); absent: never read. */
  readonly leaseTimer?: LeaderLockTimer | undefined;
  /** The silent-leader detector's evidence (agent/leader-silence.ts), fed with every view read. */
  readonly silence?:
    | {
        observeView(view: ClusterView): void;
        evidence(): LeaderSilence | undefined;
        silencedMember(nowMs: number, forMs: number): string | undefined;
      }
    | undefined;
}

/** What does not change while the agent runs. */
export interface CycleSettings {
  readonly scope: string;
  readonly canBootstrap: boolean;
  readonly bootstrapRefusal?: string | undefined;
  /** `bootstrap.dcs`: written to `config` after initdb, and the config used until the DCS has one. */
  readonly bootstrapConfig: DynamicConfig;
  readonly isFastDeadLeaderEnabled: boolean;
  /** Debug mode: check the core's safety invariants on every decision and refuse to execute one that breaks them. */
  readonly isCheckingInvariants: boolean;
  /**
   * create_replica_methods (and the backup: section): the methods a new replica or a reinitialize tries against
   * `from`, in order. Absent: pg_basebackup only, into an emptied data dir.
   */
  readonly replicaMethods?: ((from: Upstream) => readonly ReplicaMethod[] | undefined) | undefined;
  /** bootstrap.method other than initdb: a new cluster is made by its command instead of initdb. */
  readonly customBootstrap?: CustomBootstrap | undefined;
  /** The archive_command the backup: section sets (pgBackRest's archive-push); undefined without the section. */
  readonly pgbackrestArchiveCommand?: string | undefined;
  /** The backup: section's point-in-time recovery in place (pgwarden restore). */
  readonly restoreTool?: RestoreTool | undefined;
}

/** The parts of the local config file a reload (POST /reload, SIGHUP) may change. */
export interface LocalSettings {
  readonly identity: MemberIdentity;
  readonly parameters: Readonly<Record<string, GucValue>>;
  readonly callbacks: CallbackRunner | undefined;
  /** postgresql.recovery_conf: recovery GUCs (restore_command, ...) of this member whenever it runs as a replica. */
  readonly recoveryConf?: Readonly<Record<string, GucValue>> | undefined;
}

/** Everything one agent carries from cycle to cycle (plain data; the simulator keeps one per node). */
export interface CycleState {
  memory: HaMemory;
  readonly lock: LockHolder;
  readonly dcsRead: DcsReadState;
  pg: LocalPg | undefined;
  timing: Timing;
  /** The timing repairs last logged, so each change of them is logged once. */
  timingAdjustments: string;
  lastReason: string;
  lastReasonLoggedAtMs: number;
  lastReasonSinceMs: number;
  /** Fingerprint of the GUC set PostgreSQL last accepted (undefined: never applied, or the local file was reloaded). */
  appliedParameters: string | undefined;
  local: LocalSettings;
  snapshot: AgentSnapshot;
  /** The last decision and what it was made from (tests and the simulator read them). */
  lastObservation: Observation | undefined;
  lastDecision: Decision | undefined;
  /** What the cycle in progress is doing, for the stall report (every step has a deadline; a stall is a bug). */
  cycleStep: string;
  /** failsafe_mode: the accepted POST /failsafe, the last round sent, lock calls in flight. */
  readonly failsafe: FailsafeState;
  /** Recent decisions that changed something: GET /events. */
  readonly events: DecisionEvents;
  /** Every cycle's decision by rule and by action (GET /metrics). */
  readonly decisionCounts: DecisionCounts;
  /** The leader lock's lease as last read while this replica could not stream (agent/old-lease.ts). */
  leaderLease: LeaseReading | undefined;
  /** The last leader lock a view showed: after it vanishes, the lock a takeover follows. */
  lastLeader: LeaderRecord | undefined;
}

export function initialCycleState(settings: CycleSettings, local: LocalSettings, task: TaskSlot, nowMs: number): CycleState {
  const timing = deriveTiming(settings.bootstrapConfig).timing;
  const state: CycleState = {
    memory: initialMemory(),
    lock: { current: NO_LOCK },
    dcsRead: { view: undefined, unreachableSinceMs: undefined, lastOkWallEpochS: undefined },
    pg: undefined,
    timing,
    timingAdjustments: '',
    lastReason: '',
    lastReasonLoggedAtMs: 0,
    lastReasonSinceMs: nowMs,
    appliedParameters: undefined,
    local,
    snapshot: undefined as unknown as AgentSnapshot,
    lastObservation: undefined,
    lastDecision: undefined,
    cycleStep: 'idle',
    failsafe: initialFailsafeState(nowMs),
    events: new DecisionEvents(),
    decisionCounts: new DecisionCounts(),
    leaderLease: undefined,
    lastLeader: undefined,
  };
  state.snapshot = snapshotOf(settings, state, task, nowMs, true);
  return state;
}

/** A DCS call must finish before the lock's deadline, or the answer would arrive too late to matter. */
/** After an action found etcd not answering, the next cycle (which reads the DCS) comes this soon at the latest. */
const DCS_RETRY_AFTER_FAILED_ACTION_MS = 200;

export function dcsBudgetMs(state: CycleState, nowMs: number): number {
  const budget = Math.min(MAX_DCS_CALL_MS, state.timing.retryTimeoutMs);
  const deadlineMs = lockDeadlineOf(state.lock.current);
  if (deadlineMs === undefined) return budget;
  const left = deadlineMs - nowMs;
  return Math.max(MIN_DCS_CALL_MS, Math.min(budget, left));
}

function snapshotOf(settings: CycleSettings, state: CycleState, tasks: TaskSlot, nowMs: number, isDcsReachable: boolean): AgentSnapshot {
  const view = state.dcsRead.view;
  return buildSnapshot({
    identity: state.local.identity,
    scope: settings.scope,
    pg: state.pg,
    task: tasks.state(),
    view,
    isDcsReachable,
    dcsLastSeenEpochS: state.dcsRead.lastOkWallEpochS,
    lock: state.lock.current,
    config: view?.config ?? settings.bootstrapConfig,
    timing: state.timing,
    lastReason: state.lastReason,
    nowMs,
    events: state.events,
    decisionCounts: state.decisionCounts,
  });
}

function configuredSsn(parameters: Readonly<Record<string, unknown>>): string {
  const value = parameters.synchronous_standby_names;
  return typeof value === 'string' ? value : '';
}

/**
 * Timing comes from the view's config once per cycle. A value no write path accepts (another tool wrote it) is used
 * repaired, never silently: logged once per distinct value, with the keys, the values and what is used instead.
 */
function adoptTiming(state: CycleState, config: DynamicConfig, log: Log): void {
  const derived = deriveTiming(config);
  const adjustments = derived.adjustments.join('; ');
  if (adjustments !== state.timingAdjustments && adjustments !== '') {
    const given = Object.fromEntries(TIMING_KEYS.filter((key) => config[key] !== undefined).map((key) => [key, config[key]]));
    const used = derived.timing;
    log.warn(
      {
        key: 'config',
        given,
        using: {
          ttl: used.ttlMs / 1000,
          loop_wait: used.loopWaitMs / 1000,
          retry_timeout: used.retryTimeoutMs / 1000,
          silent_leader_detector: used.silence !== undefined,
        },
      },
      `invalid dynamic configuration in the DCS: ${adjustments}`,
    );
  }
  state.timingAdjustments = adjustments;
  state.timing = derived.timing;
}

/** Logs the decision (a repeated one again every REPEATED_REASON_LOG_MS, with how long) and keeps it as an event when it changed something. */
function logDecision(state: CycleState, decision: Decision, nowMs: number, wallIso: string, log: Log): void {
  const actions = decision.actions.map((action) => action.kind);
  state.decisionCounts.record(decision);
  if (isDecisionEvent(decision.reason !== state.lastReason, actions)) {
    const pg = state.pg;
    const oldLease = leaseForDecision(decision.actions, state.leaderLease, state.lastLeader, state.local.identity.name);
    state.events.add({
      at: wallIso,
      member: state.local.identity.name,
      role: pg?.isRunning !== true ? 'uninitialized' : pg.role === 'primary' ? 'master' : 'replica',
      timeline: pg?.timeline,
      actions,
      reason: decision.reason,
      ...(oldLease !== undefined ? { oldLease } : {}),
    });
  }
  if (decision.reason !== state.lastReason) {
    state.lastReasonSinceMs = nowMs;
    state.lastReasonLoggedAtMs = nowMs;
    log.info({ actions }, decision.reason);
  } else if (actions.length > 0 || nowMs - state.lastReasonLoggedAtMs >= REPEATED_REASON_LOG_MS) {
    state.lastReasonLoggedAtMs = nowMs;
    log.info({ actions, repeated_for_ms: Math.round(nowMs - state.lastReasonSinceMs) }, decision.reason);
  }
  state.lastReason = decision.reason;
}

/** Runs one cycle; resolves with how long the loop may sleep before the next one. */
export async function runHaCycle(ports: CyclePorts, settings: CycleSettings, state: CycleState): Promise<number> {
  const { clock, dcs, pg, peers, log, tasks, inbox } = ports;
  const identity = state.local.identity;
  state.cycleStep = 'observe: probe PostgreSQL and read the DCS';
  const [probedPg, dcsObservation] = await Promise.all([
    // A postmaster the fence froze answers nothing: it is what it was when it froze (a leader must not read it as
    // stopped and demote a primary that is only paused; chaos found that in an etcd quorum loss under failsafe_mode).
    // Once the fence or a demotion killed it, the probe says so.
    observePg(pg, clock, PG_PROBE_BUDGET_MS, log, state.pg).then((probed) =>
      probed?.isFrozen === true && state.pg !== undefined ? state.pg : probed,
    ),
    observeDcs(dcs, clock, dcsBudgetMs(state, clock.nowMs()), state.dcsRead, log),
  ]);
  if (probedPg === undefined) {
    state.pg = undefined;
    return state.timing.loopWaitMs;
  }
  const view = dcsObservation.kind === 'ok' ? dcsObservation.view : undefined;
  if (view !== undefined) ports.silence?.observeView(view);
  state.cycleStep = 'observe: timeline history, peers, leader probe';
  const localPg = await observeHistoryDivergence(pg, clock, PG_PROBE_BUDGET_MS, probedPg, view, identity.name);
  const isNewRole = localPg.isRunning !== state.pg?.isRunning || localPg.role !== state.pg?.role;
  state.pg = localPg;
  // A promotion the probe just saw is served at once (GET /primary, which proxies and HAProxy route on, still needs a
  // valid lock at request time), not after this cycle's DCS calls: 40-80 ms of a switchover's write pause.
  if (isNewRole) state.snapshot = snapshotOf(settings, state, tasks, clock.nowMs(), dcsObservation.kind === 'ok');
  if (view?.config !== undefined) adoptTiming(state, view.config, log);
  // Read before this cycle may delete the lock as stale: the dashboard's bound on the failover's write pause. Only a
  // figure for a page: the cycle waits for it at most LEASE_READ_WAIT_MS (a failover must not wait on a slow DCS), and a
  // later answer still lands for the next decision.
  const leaseRead =
    view !== undefined &&
    ports.leaseTimer !== undefined &&
    view.leader !== undefined &&
    shouldReadLease(view, identity.name, localPg, identity.tags.nostream === true)
      ? readLease(ports.leaseTimer, clock, view.leader, state.timing.ttlMs).then((reading) => {
          if (reading !== undefined) state.leaderLease = reading;
        })
      : undefined;
  const [peerStatuses, leaderProbe] =
    view === undefined
      ? [[], undefined]
      : await Promise.all([
          // A leader whose beats stopped before its key went away answers nothing: the race does not wait for it.
          observePeers(view, identity.name, peers, clock, ports.silence?.silencedMember(clock.nowMs(), state.timing.ttlMs)),
          observeLeaderProbe(view, identity.name, localPg, peers, clock, settings.isFastDeadLeaderEnabled),
          leaseRead === undefined ? undefined : Promise.race([leaseRead, clock.sleep(LEASE_READ_WAIT_MS)]),
        ]);
  if (view?.leader !== undefined) state.lastLeader = view.leader;
  const config = view?.config ?? settings.bootstrapConfig;
  const wantedParameters = { ...(config.postgresql?.parameters ?? {}), ...state.local.parameters };
  const scheduled = inbox.scheduled();
  const observation: Observation = {
    nowMs: clock.nowMs(),
    wallIso: clock.wallIso(),
    self: {
      name: identity.name,
      tags: identity.tags,
      canBootstrap: settings.canBootstrap,
      bootstrapRefusal: settings.bootstrapRefusal,
      canCloneWithoutLeader: (settings.replicaMethods?.(NO_LEADER_SOURCE)?.length ?? 0) > 0,
      isStandbyClusterAtBootstrap: standbyClusterOf(settings.bootstrapConfig) !== undefined,
      apiUrl: identity.apiUrl,
    },
    pg: localPg,
    dcs: dcsObservation,
    lock: state.lock.current,
    peers: peerStatuses,
    task: tasks.state(),
    timing: state.timing,
    maximumLagOnFailover: config.maximum_lag_on_failover,
    primaryStartTimeoutMs: primaryStartTimeoutMs(config),
    maximumLagOnSyncnode: config.maximum_lag_on_syncnode,
    synchronousCommit: typeof wantedParameters.synchronous_commit === 'string' ? wantedParameters.synchronous_commit : undefined,
    useRewind: config.postgresql?.use_pg_rewind ?? true,
    useSlots: config.postgresql?.use_slots ?? true,
    isPaused: config.pause === true,
    leaderProbe,
    leaderSilence: ports.silence?.evidence(),
    command: inbox.pending(),
    // While the DCS is away, failsafe_mode is what the last view's config said (the bootstrap one is not the cluster's).
    failsafe: failsafeObservation(state.failsafe, (view ?? state.dcsRead.view)?.config ?? settings.bootstrapConfig, clock.nowMs()),
    sync: syncSettingsOf(config),
    configuredSynchronousStandbyNames: configuredSsn(wantedParameters),
    scheduledRestart: scheduled?.due,
    parameters: view?.config === undefined ? undefined : { wanted: wantedParameters, appliedFingerprint: state.appliedParameters },
    walArchive: ports.walCatchUp?.observation(archiveMethodOf(wantedParameters, settings.pgbackrestArchiveCommand)),
  };
  const decision = (ports.decide ?? coreDecide)(observation, state.memory);
  state.memory = decision.memory;
  state.lastObservation = observation;
  state.lastDecision = decision;
  logDecision(state, decision, observation.nowMs, clock.wallIso(), log);
  const violations = settings.isCheckingInvariants ? checkDecision(observation, decision) : [];
  for (const violation of violations) log.error({ invariant: violation.invariant }, `safety invariant broken: ${violation.message}`);
  let outcome: Awaited<ReturnType<typeof executeActions>> = 'ok';
  if (decision.actions.length > 0 && violations.length === 0) {
    state.cycleStep = `execute: ${decision.actions.map((action) => action.kind).join(', ')}`;
    outcome = await executeActions(
      decision.actions,
      {
        member: identity.name,
        dcs,
        pg,
        clock,
        log,
        tasks,
        lock: state.lock,
        bootstrapConfig: settings.bootstrapConfig,
        replicaMethods: settings.replicaMethods,
        customBootstrap: settings.customBootstrap,
        restoreTool: settings.restoreTool,
        callbacks: state.local.callbacks,
        onLockChanged: ports.onLockChanged,
        onParametersApplied: (fingerprint) => (state.appliedParameters = fingerprint),
        onScheduledRestartCleared: () => inbox.cancelScheduled(),
        onFailsafeWritten: (topology) => {
          if (state.dcsRead.view !== undefined) state.dcsRead.view = { ...state.dcsRead.view, failsafe: topology };
        },
        replicaOptions: () => ({
          recoveryConf: state.local.recoveryConf ?? {},
          isNoStream: state.local.identity.tags.nostream === true,
        }),
        failsafe: failsafeHooks(ports, state),
        walCatchUp: ports.walCatchUp,
        watchdogVetoAcquire: ports.watchdogVetoAcquire && (() => ports.watchdogVetoAcquire?.(state.timing.ttlMs)),
      },
      { view, ttlMs: state.timing.ttlMs, dcsBudgetMs: dcsBudgetMs(state, clock.nowMs()), pgBudgetMs: PG_COMMAND_BUDGET_MS },
    );
  }
  // Settled only now: the API request waiting for this command must see the task the actions started.
  inbox.settleUpTo(decision.memory.handledCommandId, decision.reason);
  // etcd stopped answering during this cycle's actions: the member key would wait out another budget, and a leader
  // then reaches its lock deadline before its next cycle can see the DCS gone (and run failsafe_mode): chaos, etcd
  // quorum loss right after a renewal. The next cycle starts soon instead (not at once: never a hot loop).
  if (outcome === 'dcs-unavailable') {
    state.snapshot = snapshotOf(settings, state, tasks, clock.nowMs(), false);
    state.cycleStep = 'idle';
    return Math.min(decision.wakeAfterMs, DCS_RETRY_AFTER_FAILED_ACTION_MS);
  }
  if (dcsObservation.kind === 'ok') {
    const record = buildMemberRecord(
      identity,
      state.pg,
      pgStateOf(state.pg, tasks.state()),
      observation.isPaused,
      inbox.scheduled()?.record,
      isStandbyLeaderNow(view, identity.name, state.pg, isLockValidAt(state.lock.current, clock.nowMs())),
    );
    state.cycleStep = 'publish the member key';
    await within(clock.deadline(dcsBudgetMs(state, clock.nowMs())), (signal) => dcs.touchMember(record, state.timing.ttlMs, signal)).catch(
      (error: unknown) => log.warn({ error: describeError(error) }, 'could not publish the member key'),
    );
  }
  state.snapshot = snapshotOf(settings, state, tasks, clock.nowMs(), dcsObservation.kind === 'ok');
  state.cycleStep = 'idle';
  // A round that was not confirmed is decided on at once (the leader demotes), not a loop later.
  const round = state.failsafe.lastRound;
  if (decision.actions.some((action) => action.kind === 'confirmFailsafe') && round !== undefined && !round.isConfirmed) return 0;
  return decision.wakeAfterMs;
}

function failsafeHooks(ports: CyclePorts, state: CycleState): FailsafeHooks {
  const { clock, peers, log } = ports;
  const failsafe = state.failsafe;
  return {
    vetoAcquire: () => {
      const record = failsafe.record;
      if (!isFailsafeRecordFresh(record, clock.nowMs()) || record.leader === state.local.identity.name) return undefined;
      return `failsafe leader ${record.leader} was confirmed ${Math.round(clock.nowMs() - record.receivedAtMs)} ms ago`;
    },
    lockCallStarted: () => void failsafe.lockCallsInFlight++,
    lockCallEnded: () => void failsafe.lockCallsInFlight--,
    confirm: async (targets, ttlMs, signal, sentAtMs) => {
      const identity = state.local.identity;
      const request = { name: identity.name, conn_url: identity.connUrl, api_url: identity.apiUrl, ttl: ttlMs / 1000 };
      const round = await runFailsafeRound(peers, request, targets, signal, sentAtMs);
      failsafe.lastRound = round;
      if (!round.isConfirmed) log.warn({ unconfirmed: round.unconfirmed }, 'failsafe: not every member confirmed this leader');
      return round.isConfirmed;
    },
  };
}

/** What POST /failsafe answers: the status, Patroni's text, and this replica's WAL position for the `lsn` header. */
export interface FailsafeReceipt {
  readonly status: number;
  readonly message: string;
  readonly lsn: bigint | undefined;
}

/**
 * A leader running without the DCS asks this member to confirm it (POST /failsafe). The core decides the answer; an
 * accepted one is recorded on this agent's clock and holds for the longer of our ttl and the leader's.
 */
export function receiveFailsafe(
  settings: CycleSettings,
  state: CycleState,
  tasks: TaskSlot,
  body: unknown,
  nowMs: number,
  log: Log,
): FailsafeReceipt {
  const fields = typeof body === 'object' && body !== null ? (body as Record<string, unknown>) : {};
  const { name, conn_url: connUrl, api_url: apiUrl, ttl } = fields;
  if (typeof name !== 'string' || name === '' || typeof connUrl !== 'string' || typeof apiUrl !== 'string')
    return { status: 400, message: 'the body must carry the leader name, conn_url and api_url', lsn: undefined };
  const pg = state.pg;
  const task = tasks.state();
  const view = state.dcsRead.view;
  const answer = answerFailsafe({
    self: state.local.identity.name,
    sender: name,
    isEnabled: isFailsafeEnabled(view?.config ?? settings.bootstrapConfig),
    isRunningPrimary: pg?.isRunning === true && pg.role === 'primary',
    isLockBusy:
      isLockValidAt(state.lock.current, nowMs) ||
      state.failsafe.lockCallsInFlight > 0 ||
      (task.kind === 'running' && task.name === 'promote'),
    viewLeader: state.dcsRead.unreachableSinceMs === undefined ? view?.leader?.name : undefined,
  });
  if (!answer.isAccepted) {
    log.info({ leader: name, status: answer.status }, `refused POST /failsafe: ${answer.message}`);
    return { status: answer.status, message: answer.message, lsn: undefined };
  }
  const leaderTtlMs = typeof ttl === 'number' && Number.isFinite(ttl) && ttl > 0 ? ttl * 1000 : 0;
  const previous = state.failsafe.record;
  state.failsafe.record = { leader: name, connUrl, apiUrl, receivedAtMs: nowMs, ttlMs: Math.max(state.timing.ttlMs, leaderTtlMs) };
  if (!isFailsafeRecordFresh(previous, nowMs) || previous.leader !== name)
    log.warn({ leader: name }, `failsafe: ${name} runs as leader without the DCS; not racing while it keeps confirming`);
  const positions = [pg?.receivedLsn, pg?.replayedLsn].filter((value): value is bigint => value !== undefined);
  return { status: 200, message: 'Accepted', lsn: positions.length === 0 ? undefined : positions.reduce((a, b) => (a > b ? a : b)) };
}

/**
 * failsafe_mode is active: this member runs as primary on confirmed rounds while the DCS is away, or holds a fresh
 * POST /failsafe (Patroni's replicas report it for ttl after the last one, too).
 */
function isFailsafeActiveAt(state: CycleState, nowMs: number): boolean {
  const lock = state.lock.current;
  const isLeaderOnFailsafe =
    lock.lastFailsafeSentAtMs !== undefined &&
    isLockValidAt(lock, nowMs) &&
    state.dcsRead.unreachableSinceMs !== undefined &&
    state.pg?.isRunning === true &&
    state.pg.role === 'primary';
  return isLeaderOnFailsafe || isFailsafeRecordFresh(state.failsafe.record, nowMs);
}

/** The snapshot as the API must see it now: /primary turns 503 the moment the lock deadline passes. */
export function currentSnapshot(state: CycleState, nowMs: number): AgentSnapshot {
  const isFailsafeActive = isFailsafeActiveAt(state, nowMs);
  const snapshot = state.snapshot.isFailsafeActive === isFailsafeActive ? state.snapshot : { ...state.snapshot, isFailsafeActive };
  if (!snapshot.isLeaderWithLock) return snapshot;
  return isLockValidAt(state.lock.current, nowMs) ? snapshot : { ...snapshot, isLeaderWithLock: false, isStandbyLeader: false };
}

/** Backstop at the lock deadline (the lease fence fires it): a primary whose lock was not renewed in time stops at once. */
export function enforceLeaseDeadline(ports: Pick<CyclePorts, 'pg' | 'clock' | 'log'>, state: CycleState): void {
  const { log, pg, clock } = ports;
  state.lock.current = NO_LOCK;
  if (state.pg?.isRunning === true && state.pg.role === 'primary') {
    log.error({}, 'leader lock deadline passed without a renewal: stopping PostgreSQL immediately');
    pg.stop('immediate', clock.deadline(PG_COMMAND_BUDGET_MS)).catch((error: unknown) =>
      log.error({ error: describeError(error) }, 'fence stop failed'),
    );
  }
}
