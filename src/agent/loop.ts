// The HA loop: observe, decide (pure core), execute, publish the member key and snapshot, then sleep until woken.
import { decide, initialMemory } from '../core/decide.js';
import { syncSettingsOf } from '../core/sync-plan.js';
import { lockDeadlineMs } from '../core/lease.js';
import { STOPPED_PG } from '../core/local-pg.js';
import type { Clock, Dcs, PeerClient, PgController } from '../core/ports.js';
import type {
  AgentCommand,
  ClusterView,
  DynamicConfig,
  HaMemory,
  LocalPg,
  MemberRecord,
  MemberTags,
  Observation,
  Timing,
} from '../core/types.js';
import { deadline } from '../util/abort.js';
import { describeError } from '../util/errors.js';
import type { Log } from '../util/log.js';
import type { CallbackRunner } from './callbacks.js';
import { executeActions, type LockRecord } from './execute.js';
import { LeaseFence } from './lease-fence.js';
import { buildMemberRecord, pgStateOf, type MemberIdentity } from './member-record.js';
import { observeDcs, observeLeaderProbe, observePeers, observePg, type DcsReadState } from './observe.js';
import type { AgentSnapshot } from './snapshot.js';
import { TaskSlot } from './tasks.js';
import { Wakeup } from './wakeup.js';

/** A DCS call never gets more than this, whatever retry_timeout says: a slow etcd must not stall the loop. */
const MAX_DCS_CALL_MS = 3000;
/** Floor for a DCS call's budget so that a lock close to its deadline can still try to renew. */
const MIN_DCS_CALL_MS = 200;
const PG_PROBE_BUDGET_MS = 2000;
const PG_COMMAND_BUDGET_MS = 5000;
/**
 * How often a streaming replica checks its WAL receiver between loops. A primary's death shows first as a
 * dropped replication connection; noticing it here instead of at the next loop_wait is what makes failover
 * independent of loop_wait. One tiny query per interval.
 */
const STREAM_CHECK_INTERVAL_MS = 500;

export interface AgentOptions {
  readonly identity: MemberIdentity;
  readonly scope: string;
  readonly canBootstrap: boolean;
  /** `bootstrap.dcs`: written to `config` after initdb, and the timing used until the DCS has a config. */
  readonly bootstrapConfig: DynamicConfig;
  /** Converts a DCS `config` value into effective timing (validated, adjusted). */
  readonly timingOf: (config: DynamicConfig) => Timing;
  readonly isFastDeadLeaderEnabled: boolean;
  readonly callbacks?: CallbackRunner | undefined;
  /** postgresql.parameters of the local file: they win over the dynamic configuration's. */
  readonly localParameters: Readonly<Record<string, string | number | boolean>>;
  /** Lets the composition root resize the DCS lease when `ttl` changes at runtime. */
  readonly onTimingChanged?: (timing: Timing) => void;
  readonly dcs: Dcs;
  readonly pg: PgController;
  readonly peers: PeerClient;
  readonly clock: Clock;
  readonly log: Log;
}

export class Agent {
  readonly #options: AgentOptions;
  readonly #wakeup = new Wakeup();
  readonly #tasks: TaskSlot;
  readonly #fence: LeaseFence;
  readonly #lock: LockRecord = { lastRenewSentAtMs: undefined };
  readonly #dcsState: DcsReadState = { view: undefined, unreachableSinceMs: undefined, lastOkWallEpochS: undefined };
  readonly #stopController = new AbortController();
  #memory: HaMemory = initialMemory();
  /** The streaming-standby set the stream check last woke the loop for (one nudge per change). */
  #lastStandbySet: string | undefined;
  #pg: LocalPg | undefined;
  #timing: Timing;
  #lastReason = '';
  /** The parts of the local config file that a reload (POST /reload, SIGHUP) may change. */
  #local: { identity: MemberIdentity; parameters: AgentOptions['localParameters']; callbacks: CallbackRunner | undefined };
  /** A restart scheduled through POST /restart {schedule}: kept locally and published in the member key, as Patroni does. */
  #scheduledRestart:
    | {
        readonly atWallMs: number;
        readonly record: NonNullable<MemberRecord['scheduled_restart']>;
        readonly role: string | undefined;
        readonly isPendingOnly: boolean;
      }
    | undefined;
  #commandSeq = 0;
  #pendingCommand: AgentCommand | undefined;
  /** Outcome sentence of each command the core acted on, by id (read by runCommand). */
  readonly #commandReasons = new Map<number, string>();
  /** Fingerprint of the GUCs last handed to PostgreSQL, so a config change is applied exactly once. */
  #appliedParameters: string | undefined;
  #snapshot: AgentSnapshot;
  #loopDone: Promise<void> | undefined;
  #watchDone: Promise<void> | undefined;
  #streamCheckDone: Promise<void> | undefined;

  constructor(options: AgentOptions) {
    this.#options = options;
    this.#local = { identity: options.identity, parameters: options.localParameters, callbacks: options.callbacks };
    this.#timing = options.timingOf(options.bootstrapConfig);
    this.#tasks = new TaskSlot(options.clock, options.log, () => this.#wakeup.nudge());
    this.#fence = new LeaseFence(options.clock, () => this.#onLeaseExpired());
    this.#snapshot = this.#buildSnapshot(undefined, true);
    options.pg.onUnexpectedExit(() => {
      options.log.warn({}, 'postmaster exited unexpectedly');
      this.#wakeup.nudge();
    });
  }

  /** The last cycle's snapshot, with the lock validity evaluated now: /primary must turn 503 the moment the deadline passes. */
  snapshot(): AgentSnapshot {
    const sentAt = this.#lock.lastRenewSentAtMs;
    const isLockValid = sentAt !== undefined && this.#options.clock.nowMs() < lockDeadlineMs(sentAt, this.#timing.ttlMs);
    if (isLockValid === this.#snapshot.isLeaderWithLock || !this.#snapshot.isLeaderWithLock) return this.#snapshot;
    return { ...this.#snapshot, isLeaderWithLock: false };
  }

  /** Applies a re-read local config: tags, local GUCs and callbacks; the name and addresses need a restart of the agent. */
  reloadLocalConfig(update: {
    readonly tags: MemberTags;
    readonly parameters: AgentOptions['localParameters'];
    readonly callbacks: CallbackRunner | undefined;
  }): void {
    this.#local = { identity: { ...this.#local.identity, tags: update.tags }, parameters: update.parameters, callbacks: update.callbacks };
    this.#appliedParameters = undefined;
    this.#options.log.info({ tags: update.tags }, 'reloaded the local configuration');
    this.#wakeup.nudge();
  }

  /** Schedules one restart at an ISO time; false when one is already scheduled. Role and pending filters are re-checked when it is due. */
  scheduleRestart(scheduleIso: string, filters: { readonly role?: string | undefined; readonly isPendingOnly: boolean }): boolean {
    if (this.#scheduledRestart !== undefined) return false;
    const record = {
      schedule: scheduleIso,
      ...(filters.role !== undefined ? { role: filters.role } : {}),
      ...(filters.isPendingOnly ? { restart_pending: true } : {}),
    };
    this.#scheduledRestart = { atWallMs: Date.parse(scheduleIso), record, role: filters.role, isPendingOnly: filters.isPendingOnly };
    this.#wakeup.nudge();
    return true;
  }

  cancelScheduledRestart(): boolean {
    const had = this.#scheduledRestart !== undefined;
    this.#scheduledRestart = undefined;
    return had;
  }

  /** Wake the loop now (API actions, tests). */
  nudge(): void {
    this.#wakeup.nudge();
  }

  /**
   * A manual restart or reinitialize from the REST API: the core decides whether it is allowed (once), the
   * executor runs it as the long task. Resolves with whether it ran and the core's sentence, after the restart
   * finished (reinitialize only waits until it started, as Patroni's API does).
   */
  async runCommand(kind: AgentCommand['kind'], timeoutMs: number): Promise<{ readonly isOk: boolean; readonly message: string }> {
    const id = ++this.#commandSeq;
    this.#pendingCommand = { id, kind };
    this.#wakeup.nudge();
    const { clock } = this.#options;
    const startedAt = clock.nowMs();
    while (!this.#commandReasons.has(id)) {
      if (clock.nowMs() - startedAt > timeoutMs) return { isOk: false, message: `${kind} was not picked up within ${timeoutMs} ms` };
      await clock.sleep(50);
    }
    const reason = this.#commandReasons.get(id)!;
    this.#commandReasons.delete(id);
    const task = this.#tasks.state();
    if (task.kind !== 'running' || task.name !== kind) return { isOk: false, message: reason };
    if (kind === 'reinitialize') return { isOk: true, message: 'reinitialize started' };
    while (this.#tasks.isRunning()) {
      if (clock.nowMs() - startedAt > timeoutMs) return { isOk: false, message: `${kind} still running after ${timeoutMs} ms` };
      await clock.sleep(50);
    }
    const done = this.#tasks.state();
    return done.kind === 'done' && done.isOk
      ? { isOk: true, message: 'restarted successfully' }
      : { isOk: false, message: 'restart failed' };
  }

  start(): void {
    this.#loopDone = this.#runLoop();
    this.#watchDone = this.#runWatch();
    this.#streamCheckDone = this.#runStreamCheck();
  }

  /** Graceful shutdown: stop PostgreSQL and release the lock so that failover starts without waiting for the TTL. */
  async stop(options: { readonly stopPostgres: boolean }): Promise<void> {
    this.#stopController.abort(new Error('agent stopping'));
    this.#wakeup.nudge();
    await this.#loopDone?.catch(() => undefined);
    await this.#tasks.cancel(5000);
    this.#fence.disarm();
    const { pg, dcs, log } = this.#options;
    if (options.stopPostgres) {
      const role = this.#pg?.isRunning === true ? (this.#pg.role ?? 'replica') : undefined;
      await pg
        .stop('fast', deadline(30_000))
        .catch((error: unknown) => log.error({ error: describeError(error) }, 'could not stop PostgreSQL'));
      if (role !== undefined) this.#local.callbacks?.fire('on_stop', role);
    }
    if (this.#lock.lastRenewSentAtMs !== undefined) {
      await dcs
        .releaseLeader(deadline(MAX_DCS_CALL_MS))
        .catch((error: unknown) => log.warn({ error: describeError(error) }, 'could not release the leader key'));
    }
    await this.#watchDone?.catch(() => undefined);
    await this.#streamCheckDone?.catch(() => undefined);
    await dcs.close();
    await pg.close();
  }

  async #runLoop(): Promise<void> {
    const signal = this.#stopController.signal;
    while (!signal.aborted) {
      let wakeAfterMs = this.#timing.loopWaitMs;
      try {
        wakeAfterMs = await this.#cycle();
      } catch (error) {
        this.#options.log.error({ error: describeError(error) }, 'HA cycle failed');
      }
      if (signal.aborted) break;
      await this.#wakeup.wait(wakeAfterMs);
    }
  }

  async #cycle(): Promise<number> {
    const { clock, dcs, pg, peers, log } = this.#options;
    const identity = this.#local.identity;
    const budget = this.#dcsBudgetMs();
    const [probedPg, dcsObservation] = await Promise.all([
      observePg(pg, PG_PROBE_BUDGET_MS, log, this.#pg),
      observeDcs(dcs, clock, budget, this.#dcsState, log),
    ]);
    if (probedPg === undefined) {
      this.#pg = undefined;
      return this.#timing.loopWaitMs;
    }
    const localPg = await this.#withHistoryCheck(probedPg, dcsObservation.kind === 'ok' ? dcsObservation.view : undefined);
    this.#pg = localPg;
    if (dcsObservation.kind === 'ok' && dcsObservation.view.config !== undefined) {
      const timing = this.#options.timingOf(dcsObservation.view.config);
      if (timing.ttlMs !== this.#timing.ttlMs) this.#options.onTimingChanged?.(timing);
      this.#timing = timing;
    }
    const view = dcsObservation.kind === 'ok' ? dcsObservation.view : undefined;
    if (view?.config !== undefined) await this.#applyParameters(view.config);
    const [peerStatuses, leaderProbe] =
      view === undefined
        ? [[], undefined]
        : await Promise.all([
            observePeers(view, identity.name, peers),
            observeLeaderProbe(view, identity.name, localPg, peers, this.#options.isFastDeadLeaderEnabled),
          ]);
    const config = view?.config ?? this.#options.bootstrapConfig;
    const observation: Observation = {
      nowMs: clock.nowMs(),
      wallIso: clock.wallIso(),
      self: { name: identity.name, tags: identity.tags, canBootstrap: this.#options.canBootstrap },
      pg: localPg,
      dcs: dcsObservation,
      lock: { lastRenewSentAtMs: this.#lock.lastRenewSentAtMs },
      peers: peerStatuses,
      task: this.#tasks.state(),
      timing: this.#timing,
      maximumLagOnFailover: config.maximum_lag_on_failover,
      useRewind: config.postgresql?.use_pg_rewind ?? true,
      useSlots: config.postgresql?.use_slots ?? true,
      isPaused: config.pause === true,
      leaderProbe,
      command: this.#pendingCommand,
      sync: syncSettingsOf(config),
      configuredSynchronousStandbyNames: configuredSsn({ ...(config.postgresql?.parameters ?? {}), ...this.#local.parameters }),
    };
    const decision = decide(observation, this.#memory);
    this.#memory = decision.memory;
    const pending = this.#pendingCommand;
    if (pending !== undefined && (decision.memory.handledCommandId ?? 0) >= pending.id) {
      this.#commandReasons.set(pending.id, decision.reason);
      this.#pendingCommand = undefined;
    }
    if (decision.reason !== this.#lastReason || decision.actions.length > 0) {
      log.info({ actions: decision.actions.map((action) => action.kind) }, decision.reason);
    }
    this.#lastReason = decision.reason;
    if (decision.actions.length > 0) {
      await executeActions(
        decision.actions,
        {
          member: identity.name,
          dcs,
          pg,
          clock,
          log,
          tasks: this.#tasks,
          lock: this.#lock,
          bootstrapConfig: this.#options.bootstrapConfig,
          callbacks: this.#local.callbacks,
          onLockRenewed: (sentAtMs) => this.#onLockRenewed(sentAtMs),
        },
        { view, dcsBudgetMs: this.#dcsBudgetMs(), pgBudgetMs: PG_COMMAND_BUDGET_MS },
      );
    }
    this.#runDueRestart(observation.isPaused);
    const isPaused = observation.isPaused;
    const state = pgStateOf(this.#pg, this.#tasks.state());
    if (dcsObservation.kind === 'ok') {
      const record = buildMemberRecord(identity, this.#pg, state, isPaused, this.#scheduledRestart?.record);
      await dcs
        .touchMember(record, deadline(this.#dcsBudgetMs()))
        .catch((error: unknown) => log.warn({ error: describeError(error) }, 'could not publish the member key'));
    }
    this.#snapshot = this.#buildSnapshot(view ?? this.#dcsState.view, dcsObservation.kind === 'ok');
    return decision.wakeAfterMs;
  }

  /** A due scheduled restart becomes an ordinary restart command (the core still decides whether it is allowed). */
  #runDueRestart(isPaused: boolean): void {
    const scheduled = this.#scheduledRestart;
    if (scheduled === undefined || Date.now() < scheduled.atWallMs) return;
    this.#scheduledRestart = undefined;
    const pg = this.#pg;
    const role = pg?.isRunning === true ? pg.role : undefined;
    if (
      isPaused ||
      (scheduled.role !== undefined && scheduled.role !== role) ||
      (scheduled.isPendingOnly && pg?.isPendingRestart !== true)
    ) {
      this.#options.log.info({ schedule: scheduled.record.schedule }, 'scheduled restart skipped: its conditions are not satisfied');
      return;
    }
    void this.runCommand('restart', 120_000).then((outcome) =>
      this.#options.log.info({ schedule: scheduled.record.schedule, ok: outcome.isOk }, `scheduled restart: ${outcome.message}`),
    );
  }

  /**
   * A replica that cannot stream while on the leader's timeline number may have promoted itself to that same ID
   * (a promotion cut short): pg_rewind sees "same timeline" and does nothing, so compare the history files.
   */
  async #withHistoryCheck(localPg: LocalPg, view: ClusterView | undefined): Promise<LocalPg> {
    const leader = view?.leader?.name;
    const leaderMember = view?.members.find((member) => member.name === leader);
    if (
      leaderMember === undefined ||
      leader === this.#local.identity.name ||
      !localPg.isRunning ||
      localPg.role !== 'replica' ||
      localPg.isStreaming
    )
      return localPg;
    if (localPg.timeline === undefined || leaderMember.timeline !== localPg.timeline) return localPg;
    const isHistoryDivergent = await this.#options.pg
      .isHistoryDivergent({ name: leader!, connUrl: leaderMember.conn_url }, localPg.timeline, deadline(PG_PROBE_BUDGET_MS))
      .catch(() => undefined);
    return { ...localPg, isHistoryDivergent };
  }

  /** Dynamic postgresql.parameters reach PostgreSQL by a reload; restart-only ones are then reported as pending_restart. */
  async #applyParameters(config: DynamicConfig): Promise<void> {
    const parameters = { ...(config.postgresql?.parameters ?? {}), ...this.#local.parameters };
    const fingerprint = JSON.stringify(Object.entries(parameters).sort(([a], [b]) => a.localeCompare(b)));
    if (fingerprint === this.#appliedParameters) return;
    try {
      const isFirst = this.#appliedParameters === undefined;
      await this.#options.pg.reconfigure(parameters, deadline(PG_COMMAND_BUDGET_MS));
      this.#appliedParameters = fingerprint;
      if (!isFirst && this.#pg?.isRunning === true) this.#local.callbacks?.fire('on_reload', this.#pg.role ?? 'replica');
    } catch (error) {
      this.#options.log.warn({ error: describeError(error) }, 'could not apply the PostgreSQL parameters of the dynamic configuration');
    }
  }

  /** A DCS call must finish before the lock's deadline, or the answer would arrive too late to matter. */
  #dcsBudgetMs(): number {
    const budget = Math.min(MAX_DCS_CALL_MS, this.#timing.retryTimeoutMs);
    const sentAt = this.#lock.lastRenewSentAtMs;
    if (sentAt === undefined) return budget;
    const left = lockDeadlineMs(sentAt, this.#timing.ttlMs) - this.#options.clock.nowMs();
    return Math.max(MIN_DCS_CALL_MS, Math.min(budget, left));
  }

  #onLockRenewed(sentAtMs: number | undefined): void {
    if (sentAtMs === undefined) {
      this.#fence.disarm();
      return;
    }
    this.#fence.arm(lockDeadlineMs(sentAtMs, this.#timing.ttlMs));
  }

  /** Backstop at the lock deadline: a primary whose lock was not renewed in time stops immediately. */
  #onLeaseExpired(): void {
    const { log, pg } = this.#options;
    this.#lock.lastRenewSentAtMs = undefined;
    if (this.#pg?.isRunning === true && this.#pg.role === 'primary') {
      log.error({}, 'leader lock deadline passed without a renewal: stopping PostgreSQL immediately');
      pg.stop('immediate', deadline(PG_COMMAND_BUDGET_MS)).catch((error: unknown) =>
        log.error({ error: describeError(error) }, 'fence stop failed'),
      );
    }
    this.#wakeup.nudge();
  }

  /** Follows the DCS so a leader change wakes the loop at once instead of after loop_wait. */
  async #runWatch(): Promise<void> {
    const signal = this.#stopController.signal;
    while (!signal.aborted) {
      const revision = this.#dcsState.view?.revision;
      if (revision === undefined) {
        await this.#options.clock.sleep(200, signal).catch(() => undefined);
        continue;
      }
      try {
        await this.#options.dcs.watch(revision, AbortSignal.any([signal, AbortSignal.timeout(this.#timing.ttlMs)]));
        this.#wakeup.nudge();
      } catch {
        // A broken or timed-out watch is harmless: the loop wakes on its own schedule. Back off briefly.
        await this.#options.clock.sleep(500, signal).catch(() => undefined);
      }
    }
  }

  /**
   * Between cycles: refreshes the WAL positions the REST API reports (switchover candidates are judged on them), and
   * wakes the loop when a streaming replica's WAL receiver stops streaming (the usual first sign of a dead primary).
   */
  async #runStreamCheck(): Promise<void> {
    const signal = this.#stopController.signal;
    const { clock, pg } = this.#options;
    while (!signal.aborted) {
      await clock.sleep(STREAM_CHECK_INTERVAL_MS, signal).catch(() => undefined);
      const last = this.#pg;
      if (signal.aborted || last === undefined || !last.isRunning || this.#tasks.isRunning()) continue;
      const status = await pg.walStatus(deadline(PG_PROBE_BUDGET_MS));
      const current = this.#pg;
      if (status === undefined || current === undefined || !current.isRunning || this.#tasks.isRunning()) continue;
      const isPrimary = current.role === 'primary';
      if (isPrimary === (status.writeLsn !== undefined)) {
        const positions = isPrimary
          ? { writeLsn: status.writeLsn }
          : { receivedLsn: status.receivedLsn ?? current.receivedLsn, replayedLsn: status.replayedLsn ?? current.replayedLsn };
        this.#snapshot = { ...this.#snapshot, pg: { ...this.#snapshot.pg, ...positions } };
      }
      if (current.role === 'replica' && current.isStreaming && !status.isStreaming) {
        this.#options.log.info({}, 'WAL receiver stopped streaming: checking the cluster now');
        // Mark the last observation as not streaming so the check does not fire again before the loop re-probes.
        this.#pg = { ...current, isStreaming: false };
        this.#wakeup.nudge();
      }
      if (isPrimary && status.streamingStandbys !== undefined) {
        const before = current.replication
          .filter((row) => row.state === 'streaming')
          .map((row) => row.application_name)
          .sort()
          .join(',');
        const now = status.streamingStandbys.join(',');
        if (before !== now && now !== this.#lastStandbySet) {
          // A standby came or went: in synchronous mode the primary may be waiting on one that is gone, or strict
          // mode may be blocking writes that a newly arrived standby can unblock. Decide now, not at loop_wait.
          this.#options.log.info({ standbys: now }, 'streaming standbys changed: checking synchronous replication now');
          this.#lastStandbySet = now;
          this.#wakeup.nudge();
        }
      }
    }
  }

  #buildSnapshot(view: AgentSnapshot['view'], isDcsReachable: boolean): AgentSnapshot {
    const { clock } = this.#options;
    const identity = this.#local.identity;
    const sentAt = this.#lock.lastRenewSentAtMs;
    const isLockValid = sentAt !== undefined && clock.nowMs() < lockDeadlineMs(sentAt, this.#timing.ttlMs);
    const isLeaderWithLock = isLockValid && (view === undefined || view.leader?.name === identity.name);
    const tags: MemberTags = identity.tags;
    const config = view?.config ?? this.#options.bootstrapConfig;
    const pg: LocalPg = this.#pg ?? STOPPED_PG;
    return {
      name: identity.name,
      scope: this.#options.scope,
      version: identity.version,
      tags,
      state: pgStateOf(this.#pg, this.#tasks.state()),
      pg,
      view,
      isDcsReachable,
      dcsLastSeenEpochS: this.#dcsState.lastOkWallEpochS,
      isLeaderWithLock,
      isPaused: config.pause === true,
      task: this.#tasks.state(),
      lastCycleAtMs: clock.nowMs(),
      ttlMs: this.#timing.ttlMs,
      lastReason: this.#lastReason,
    };
  }
}

function configuredSsn(parameters: Readonly<Record<string, unknown>>): string {
  const value = parameters.synchronous_standby_names;
  return typeof value === 'string' ? value : '';
}
