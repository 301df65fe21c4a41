// The agent's asynchronous shell around the HA cycle: the loop and its wake-ups (DCS watch, stream check, postmaster
// exit, API), the lease fence, the command inbox and the snapshot the REST API reads. It decides nothing itself.
import { setMaxListeners } from 'node:events';
import type { Clock, Dcs, ExternalFence, LeaderLockTimer, PeerClient, PgController, WalStatus } from '../core/ports.js';
import { syncSettingsOf } from '../core/sync-plan.js';
import type { RestoreTarget } from '../core/restore-target.js';
import type { AgentCommand, TaskName, LocalPg, LockObservation, MemberTags, Observation } from '../core/types.js';
import { describeError, PgwardenError } from '../util/errors.js';
import type { Log } from '../util/log.js';
import type { CallbackRunner } from './callbacks.js';
import { CommandInbox } from './command-inbox.js';
import {
  currentSnapshot,
  enforceLeaseDeadline,
  initialCycleState,
  receiveFailsafe,
  runHaCycle,
  type FailsafeReceipt,
  type CyclePorts,
  type CycleSettings,
  type CycleState,
  type DecideFunction,
} from './cycle.js';
import { runDcsWatch } from './dcs-watch.js';
import { FenceFeed } from './fence-feed.js';
import type { WalCatchUp } from './wal-catch-up.js';
import type { WatchdogFeed } from './watchdog-feed.js';
import { runLeaderHeartbeat } from './leader-heartbeat.js';
import { LeaderSilenceMonitor } from './leader-silence.js';
import { LeaseFence } from './lease-fence.js';
import { LivePositions } from './live-positions.js';
import type { MemberIdentity } from './member-record.js';
import type { AgentSnapshot } from './snapshot.js';
import { upstreamOf } from './execute.js';
import { Notifier } from './notifier.js';
import { runStreamCheck } from './stream-check.js';
import { TaskSlot } from './tasks.js';
import { Wakeup } from './wakeup.js';

const STOP_DCS_BUDGET_MS = 3000;
const COMMAND_RESULT_POLL_MS = 50;

/** The long task each manual command runs as. */
const COMMAND_TASKS: Readonly<Record<AgentCommand['kind'], TaskName>> = {
  restart: 'restart',
  reinitialize: 'reinitialize',
  stop: 'stop',
  restore: 'restore',
};

export interface AgentOptions extends CycleSettings {
  readonly identity: MemberIdentity;
  readonly callbacks?: CallbackRunner | undefined;
  /** postgresql.parameters of the local file: they win over the dynamic configuration's. */
  readonly localParameters: Readonly<Record<string, string | number | boolean>>;
  /** postgresql.recovery_conf of the local file (restore_command, ...), used whenever this member runs as a replica. */
  readonly recoveryConf?: Readonly<Record<string, string | number | boolean>> | undefined;
  readonly dcs: Dcs;
  readonly pg: PgController;
  readonly peers: PeerClient;
  readonly clock: Clock;
  readonly log: Log;
  /** The decision function (decide() unless a test proves a rule is needed by running without it). */
  readonly decide?: DecideFunction | undefined;
  /**
   * The lease fence is on unless a test turns it off to see what the core's rules guarantee on their own (the fence
   * is a second line of defence and would mask a missing rule).
   */
  readonly isLeaseFenceEnabled?: boolean | undefined;
  /** The fence process (src/fence): stops a primary at the lock deadline even while this agent is stalled. */
  readonly externalFence?: ExternalFence | undefined;
  /** watchdog.mode automatic/required: a Linux watchdog device kept alive while this member leads. */
  readonly watchdog?: WatchdogFeed | undefined;
  /** The leader lock's lease time left (the DCS adapter): read when the leader's stream breaks (agent/old-lease.ts). */
  readonly leaseTimer?: LeaderLockTimer | undefined;
  /** WAL archiving across failover (agent/wal-catch-up.ts): absent, core plans no archiving steps. */
  readonly walCatchUp?: WalCatchUp | undefined;
}

/**
 * A scrape's WAL positions may be this old: a replica's lag is the leader's position minus its own, each scraped within
 * about a second of the other (Patroni reads both per request); several Prometheus servers share one query.
 */
const METRICS_POSITIONS_MAX_AGE_MS = 1000;

export class Agent {
  readonly #options: AgentOptions;
  readonly #wakeup: Wakeup;
  readonly #tasks: TaskSlot;
  readonly #fence: LeaseFence;
  readonly #inbox = new CommandInbox();
  readonly #state: CycleState;
  readonly #ports: CyclePorts;
  readonly #stopController = new AbortController();
  readonly #livePositions: LivePositions;
  /** Fired after every cycle and every stream-loss mark: what the stream check waits on instead of polling the view. */
  readonly #viewChanged = new Notifier();
  readonly #silence: LeaderSilenceMonitor;
  readonly #fenceFeed: FenceFeed;
  #running: Promise<unknown>[] = [];
  /** Told after every HA cycle (the REST API's dashboard stream): a new snapshot may be there. */
  readonly #cycleListeners = new Set<() => void>();

  constructor(options: AgentOptions) {
    this.#options = options;
    const { clock, log } = options;
    // The agent's long-lived loops (watches, stream check, heartbeat, silence detector, sleeps) each wait on the stop
    // signal: about a dozen at once, bounded, not a leak (deadlines share one listener per parent: util/abort.ts).
    setMaxListeners(30, this.#stopController.signal);
    this.#wakeup = new Wakeup(clock);
    this.#tasks = new TaskSlot(clock, log, () => this.#wakeup.nudge());
    this.#fence = new LeaseFence(clock, () => this.#onLeaseExpired());
    this.#state = initialCycleState(
      options,
      { identity: options.identity, parameters: options.localParameters, callbacks: options.callbacks, recoveryConf: options.recoveryConf },
      this.#tasks,
      clock.nowMs(),
    );
    this.#fenceFeed = new FenceFeed(options.externalFence);
    this.#silence = new LeaderSilenceMonitor({
      dcs: options.dcs,
      clock,
      context: () => {
        const view = this.#state.dcsRead.view;
        return {
          settings: this.#state.timing.silence,
          self: this.#state.local.identity.name,
          leader: view?.leader,
          isPaused: view?.config?.pause === true,
          revision: view?.revision,
        };
      },
      onSilent: () => this.#wakeup.nudge(),
      nextCycle: (stop) => this.#viewChanged.next(stop),
    });
    this.#ports = {
      dcs: options.dcs,
      pg: options.pg,
      peers: options.peers,
      clock,
      log,
      tasks: this.#tasks,
      inbox: this.#inbox,
      onLockChanged: (lock) => {
        if (options.isLeaseFenceEnabled !== false) this.#fence.follow(lock);
        this.#fenceFeed.onLock(lock);
        options.watchdog?.onLock(lock);
      },
      watchdogVetoAcquire: options.watchdog && ((ttlMs) => options.watchdog?.vetoAcquire(ttlMs)),
      decide: options.decide,
      silence: this.#silence,
      walCatchUp: options.walCatchUp,
      leaseTimer: options.leaseTimer,
    };
    this.#livePositions = new LivePositions({
      pg: options.pg,
      clock,
      isApplicable: () => this.#state.pg?.isRunning === true && !this.#tasks.isRunning(),
      apply: (status) => this.#applyWalStatus(status),
    });
    options.pg.onUnexpectedExit(() => {
      log.warn({}, 'postmaster exited unexpectedly');
      this.#wakeup.nudge();
    });
  }

  /** Calls `listener` after every HA cycle (each DCS watch event runs one) until the returned function is called. */
  onCycle(listener: () => void): () => void {
    this.#cycleListeners.add(listener);
    return () => this.#cycleListeners.delete(listener);
  }

  /** The last cycle's snapshot, with the lock validity evaluated now. */
  snapshot(): AgentSnapshot {
    return currentSnapshot(this.#state, this.#options.clock.nowMs());
  }

  /** The snapshot with WAL positions read now (for the REST API and peers): what Patroni reports per request. */
  async freshSnapshot(): Promise<AgentSnapshot> {
    await this.#livePositions.refresh();
    return this.snapshot();
  }

  /**
   * GET /metrics: WAL positions no older than METRICS_POSITIONS_MAX_AGE_MS (the probe's, or one shared query), and the
   * fence's and the silent-leader detector's state as of now. Nothing else a scrape shows costs a query.
   */
  async metricsSnapshot(): Promise<AgentSnapshot> {
    await this.#livePositions.refresh(METRICS_POSITIONS_MAX_AGE_MS);
    const nowMs = this.#options.clock.nowMs();
    return {
      ...currentSnapshot(this.#state, nowMs),
      guards: { fence: this.#fenceFeed.status(nowMs), silence: this.#silence.status() },
    };
  }

  #applyWalStatus(status: WalStatus): void {
    const state = this.#state;
    if (state.pg?.role === 'primary') {
      state.snapshot = { ...state.snapshot, pg: { ...state.snapshot.pg, writeLsn: status.writeLsn ?? state.snapshot.pg.writeLsn } };
      return;
    }
    const positions = {
      receivedLsn: status.receivedLsn ?? state.snapshot.pg.receivedLsn,
      replayedLsn: status.replayedLsn ?? state.snapshot.pg.replayedLsn,
    };
    if (!status.isStreaming && state.pg?.isStreaming === true) this.#onStreamLost(positions);
    else state.snapshot = { ...state.snapshot, pg: { ...state.snapshot.pg, ...positions } };
  }

  /**
   * Marks the last observation as not streaming (with the positions read with that fact) so no check fires again
   * before the loop re-probes, and so the snapshot never pairs "stopped" with older positions; then decides now.
   */
  #onStreamLost(positions: Pick<LocalPg, 'receivedLsn' | 'replayedLsn'>): void {
    const state = this.#state;
    if (state.pg !== undefined) state.pg = { ...state.pg, ...positions, isStreaming: false };
    state.snapshot = { ...state.snapshot, pg: { ...state.snapshot.pg, ...positions, isStreaming: false } };
    this.#viewChanged.fire();
    this.#wakeup.nudge();
  }

  /** The lock as this agent holds it (send time of its last renewal and that lease's TTL): the simulator checks it. */
  lock(): LockObservation {
    return this.#state.lock.current;
  }

  /** What the last decision was made from (the simulator prints it when it replays a seed). */
  lastObservation(): Observation | undefined {
    return this.#state.lastObservation;
  }

  /** Applies a re-read local config: tags, local GUCs and callbacks; the name and addresses need a restart of the agent. */
  reloadLocalConfig(update: {
    readonly tags: MemberTags;
    readonly parameters: AgentOptions['localParameters'];
    readonly callbacks: CallbackRunner | undefined;
    readonly recoveryConf?: AgentOptions['recoveryConf'];
  }): void {
    const state = this.#state;
    state.local = {
      identity: { ...state.local.identity, tags: update.tags },
      parameters: update.parameters,
      callbacks: update.callbacks,
      recoveryConf: update.recoveryConf,
    };
    state.appliedParameters = undefined;
    this.#options.log.info({ tags: update.tags }, 'reloaded the local configuration');
    this.#wakeup.nudge();
  }

  /** Schedules one restart at an ISO time; false when one is already scheduled. The core re-checks its filters when due. */
  scheduleRestart(scheduleIso: string, filters: { readonly role?: string | undefined; readonly isPendingOnly: boolean }): boolean {
    const record = {
      schedule: scheduleIso,
      ...(filters.role !== undefined ? { role: filters.role } : {}),
      ...(filters.isPendingOnly ? { restart_pending: true } : {}),
    };
    const isScheduled = this.#inbox.schedule({
      due: { atIso: scheduleIso, role: filters.role, isPendingOnly: filters.isPendingOnly },
      record,
    });
    if (isScheduled) this.#wakeupAt(Date.parse(scheduleIso) - Date.parse(this.#options.clock.wallIso()));
    return isScheduled;
  }

  cancelScheduledRestart(): boolean {
    return this.#inbox.cancelScheduled();
  }

  /** POST /failsafe from a leader running without the DCS (failsafe_mode): the core decides whether to confirm it. */
  receiveFailsafe(body: unknown): FailsafeReceipt {
    return receiveFailsafe(this.#options, this.#state, this.#tasks, body, this.#options.clock.nowMs(), this.#options.log);
  }

  /** Wake the loop now (API actions, tests). */
  nudge(): void {
    this.#wakeup.nudge();
  }

  /**
   * A manual restart or reinitialize from the REST API: the core decides whether it is allowed (once), the executor
   * runs it as the long task. Resolves with whether it ran and the core's sentence, after the restart finished
   * (reinitialize only waits until it started, as Patroni's API does).
   */
  async runCommand(
    kind: AgentCommand['kind'],
    timeoutMs: number,
    target?: RestoreTarget,
  ): Promise<{ readonly isOk: boolean; readonly message: string }> {
    const { clock } = this.#options;
    const startedAt = clock.nowMs();
    const { id, handled } = this.#inbox.submit(kind, target);
    this.#wakeup.nudge();
    const pickup = await Promise.race([handled, clock.sleep(timeoutMs).then(() => undefined)]);
    if (pickup === undefined) {
      this.#inbox.withdraw(id);
      return { isOk: false, message: `${kind} was not picked up within ${timeoutMs} ms` };
    }
    const taskName = COMMAND_TASKS[kind];
    const task = this.#tasks.state();
    if (task.kind !== 'running' || task.name !== taskName) return { isOk: false, message: pickup };
    // A re-clone or a restore may take hours: the caller follows it through GET /patroni.
    if (kind === 'reinitialize' || kind === 'restore') return { isOk: true, message: `${kind} started` };
    while (this.#tasks.isRunning()) {
      if (clock.nowMs() - startedAt > timeoutMs) return { isOk: false, message: `${kind} still running after ${timeoutMs} ms` };
      await clock.sleep(COMMAND_RESULT_POLL_MS);
    }
    const done = this.#tasks.state();
    const isOk = done.kind === 'done' && done.isOk;
    if (kind === 'stop')
      return {
        isOk,
        message: isOk ? 'stopped successfully' : `stop failed${done.kind === 'done' && done.error !== undefined ? `: ${done.error}` : ''}`,
      };
    return isOk ? { isOk: true, message: 'restarted successfully' } : { isOk: false, message: 'restart failed' };
  }

  start(): void {
    const stop = this.#stopController.signal;
    const { dcs, pg, clock, log } = this.#options;
    const state = this.#state;
    this.#running = [
      this.#runLoop(),
      runDcsWatch(
        {
          dcs,
          clock,
          revision: () => state.dcsRead.view?.revision,
          maxWatchMs: () => state.timing.ttlMs,
          onChange: () => this.#wakeup.nudge(),
        },
        stop,
      ),
      this.#silence.run(stop),
      runLeaderHeartbeat(
        {
          dcs,
          clock,
          log,
          settings: () => state.timing.silence,
          isLeading: () =>
            state.lock.current.lastRenewSentAtMs !== undefined &&
            state.pg?.isRunning === true &&
            state.pg.role === 'primary' &&
            state.dcsRead.view?.config?.pause !== true,
          term: () => {
            const leader = state.dcsRead.view?.leader;
            return leader?.name === state.local.identity.name ? (leader.createRevision ?? leader.modRevision) : undefined;
          },
          isPrimaryRunning: () => state.pg?.isRunning === true && state.pg.role === 'primary',
          isFenced: () => this.#fenceFeed.isConnected(),
          setFreezeAt: (freezeAtMs) => this.#fenceFeed.onBeatProof(freezeAtMs),
          onLockLost: () => this.#wakeup.nudge(),
          nextCycle: (stop) => this.#viewChanged.next(stop),
        },
        stop,
      ),
      runStreamCheck(
        {
          pg,
          clock,
          log,
          view: () => ({
            pg: state.pg,
            isTaskRunning: this.#tasks.isRunning(),
            isSyncMode: syncSettingsOf(state.dcsRead.view?.config).mode !== 'off',
            upstream: upstreamOf(state.dcsRead.view, state.pg?.upstream),
          }),
          viewChanged: (signal) => this.#viewChanged.next(signal),
          onStreamLost: (positions) => this.#onStreamLost(positions),
          onStandbysChanged: () => this.#wakeup.nudge(),
        },
        stop,
      ),
    ];
  }

  /**
   * Graceful shutdown: release the lock so that failover starts without waiting for the TTL, and stop PostgreSQL
   * when asked to.
   */
  async stop(options: { readonly stopPostgres: boolean }): Promise<void> {
    this.#stopController.abort(
      new PgwardenError('PGW_AGENT_STOPPING', 'the agent is stopping', { context: { member: this.#state.local.identity.name } }),
    );
    this.#wakeup.nudge();
    await Promise.allSettled(this.#running.slice(0, 1));
    await this.#tasks.cancel(5000);
    this.#fence.disarm();
    const { pg, dcs, log, clock, externalFence } = this.#options;
    const state = this.#state;
    // Maintenance mode: operators restart the agent under pause expecting PostgreSQL and the lock to stay, as in Patroni.
    if (state.dcsRead.view?.config?.pause === true) {
      log.info({}, 'Leader key is not deleted and PostgreSQL is not shut down because of running in maintenance mode');
      externalFence?.disarm();
      await externalFence?.close({ exit: true });
      this.#options.watchdog?.close();
      await Promise.allSettled(this.#running);
      await dcs.close();
      await pg.close();
      return;
    }
    if (options.stopPostgres) {
      const role = state.pg?.isRunning === true ? (state.pg.role ?? 'replica') : undefined;
      await pg
        .stop('fast', clock.deadline(30_000))
        .catch((error: unknown) => log.error({ error: describeError(error) }, 'could not stop PostgreSQL'));
      if (role !== undefined) state.local.callbacks?.fire('on_stop', role);
    }
    // PostgreSQL stopped: nothing left to fence. Left running, the fence keeps the last deadline and enforces it.
    await externalFence?.close({ exit: options.stopPostgres });
    if (state.lock.current.lastRenewSentAtMs !== undefined) {
      await dcs
        .releaseLeader(clock.deadline(STOP_DCS_BUDGET_MS))
        .catch((error: unknown) => log.warn({ error: describeError(error) }, 'could not release the leader key'));
    }
    await Promise.allSettled(this.#running);
    // PostgreSQL stopped or left running under pause alike: nothing must reset this host once the agent is gone.
    this.#options.watchdog?.close();
    this.#options.walCatchUp?.close();
    await dcs.close();
    await pg.close();
  }

  async #runLoop(): Promise<void> {
    const signal = this.#stopController.signal;
    while (!signal.aborted) {
      let wakeAfterMs = this.#state.timing.loopWaitMs;
      const cancelStallReport = this.#reportStalls(this.#options.clock.nowMs());
      try {
        wakeAfterMs = await runHaCycle(this.#ports, this.#options, this.#state);
        const probedAtMs = this.#state.lastObservation?.nowMs;
        if (probedAtMs !== undefined) this.#livePositions.noteProbe(probedAtMs);
      } catch (error) {
        this.#options.log.error({ error: describeError(error) }, 'HA cycle failed');
      } finally {
        cancelStallReport();
      }
      this.#viewChanged.fire();
      for (const listener of this.#cycleListeners) listener();
      // Wanted while this member holds the lock (a promotion may still run) or runs a primary (a demotion may still run);
      // disabled under maintenance mode, as in Patroni.
      const isPaused = this.#state.dcsRead.view?.config?.pause === true;
      const isPrimaryRunning = this.#state.pg?.isRunning === true && this.#state.pg.role === 'primary';
      const isLockHeld = this.#state.lock.current.lastRenewSentAtMs !== undefined;
      this.#options.watchdog?.afterCycle(!isPaused && (isLockHeld || isPrimaryRunning));
      if (signal.aborted) break;
      await this.#wakeup.wait(wakeAfterMs);
    }
  }

  /**
   * Every step of a cycle has a deadline, so a cycle still running after a ttl is a bug: it is logged (with the step)
   * every ttl until it ends, never silent.
   */
  #reportStalls(startedAtMs: number): () => void {
    const { clock, log } = this.#options;
    let cancel: () => void = () => undefined;
    const arm = (): void => {
      cancel = clock.setTimer(this.#state.timing.ttlMs, () => {
        log.error(
          { step: this.#state.cycleStep, stalled_ms: Math.round(clock.nowMs() - startedAtMs) },
          `HA cycle has not finished: stuck in ${this.#state.cycleStep}`,
        );
        arm();
      });
    };
    arm();
    return () => cancel();
  }

  /** A scheduled restart must be looked at when it falls due, not up to loop_wait later. */
  #wakeupAt(inMs: number): void {
    if (!(inMs > 0)) {
      this.#wakeup.nudge();
      return;
    }
    this.#options.clock.setTimer(inMs, () => this.#wakeup.nudge());
  }

  #onLeaseExpired(): void {
    enforceLeaseDeadline(this.#ports, this.#state);
    this.#wakeup.nudge();
  }
}
