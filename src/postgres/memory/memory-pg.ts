// An in-memory PostgreSQL cluster on an injected Clock: MemoryPg implements PgController for one node, long
// operations take simulated time, and MemoryPgCluster advances WAL, injects faults and lets a checker inspect state.
import type { Clock, PgController, StopMode, Upstream, UpstreamWatchEnd, WalStatus } from '../../core/ports.js';
import type { CustomBootstrap, ReplicaMethod, ReplicaMethodResult } from '../../core/replica-methods.js';
import type { SlotStep, SlotStepResult } from '../../core/slot-changes.js';
import { failedSlotSteps } from '../../core/slot-changes.js';
import { slotNameForMember } from '../../core/slot-names.js';
import type { LocalPg, PgRole } from '../../core/types.js';
import { PgwardenError, type ErrorCode } from '../../util/errors.js';
import type { GucValue } from '../conf-render.js';
import { stoppedLocalPg } from '../probe.js';
import { tryReplicaMethods } from '../replica-create.js';
import {
  catchUp,
  copyFrom,
  endRun,
  historyOf,
  INITDB_LSN,
  localPgOf,
  newNodeState,
  nextTimelineOf,
  streamingSourceOf,
  walLevelOf,
  wipe,
  type NodeState,
} from './memory-node.js';
import { applyStepsToNode } from './memory-slots.js';

/** How long each long operation takes, in clock milliseconds. */
export interface MemoryPgDurations {
  readonly initdb: number;
  readonly basebackup: number;
  readonly rewind: number;
  readonly start: number;
  readonly promote: number;
}

/** The simulator's durations: a bootstrap (initdb then start) takes 1.8 s, a promotion 60 ms. */
export const DEFAULT_DURATIONS: MemoryPgDurations = { initdb: 1500, basebackup: 1000, rewind: 500, start: 300, promote: 60 };

/** Operations a test can make fail once with failNext. */
export type MemoryPgOperation =
  | 'probe'
  | 'initdb'
  | 'startPrimary'
  | 'startReplica'
  | 'stop'
  | 'promote'
  | 'checkpoint'
  | 'basebackup'
  | 'rewind'
  | 'removeDataDir'
  | 'reconfigure'
  | 'followUpstream'
  | 'detachUpstream'
  | 'isHistoryDivergent'
  | 'applySlotPlan'
  | 'copyLogicalSlots'
  | 'setSynchronousStandbyNames'
  | 'walStatus';

export interface MemoryPgClusterOptions {
  readonly clock: Clock;
  /** Replication lag draws; pass the simulation's seeded PRNG for replayable runs. */
  readonly random: () => number;
  readonly durations?: Partial<MemoryPgDurations> | undefined;
  /**
   * How a promotion picks its timeline. 'per-node' is PostgreSQL's rule (one above the highest this node knows), so
   * two promotions cut short can pick the same ID with different histories. 'cluster-unique' gives every promotion a
   * new ID (the simulator's earlier model).
   */
  readonly timelineIds?: 'per-node' | 'cluster-unique' | undefined;
}

export interface MemoryPgNodeOptions {
  /** The GUCs the node renders (as PgControllerOptions.parameters); wal_level defaults to replica. */
  readonly parameters?: Readonly<Record<string, GucValue>> | undefined;
}

/** A read-only view of one node for invariant checkers. */
export interface MemoryPgInspection {
  readonly name: string;
  readonly dataDir: LocalPg['dataDir'];
  readonly isRunning: boolean;
  /** Frozen by the fence: running, but acknowledging nothing. */
  readonly isFrozen: boolean;
  readonly role: PgRole | undefined;
  readonly timeline: number;
  readonly lsn: bigint;
  readonly forks: ReadonlyMap<number, bigint>;
  readonly ssn: string;
  readonly upstream: string | undefined;
  readonly sysid: string | undefined;
  /** Replication slots on the node, by name and type. */
  readonly slots: readonly { readonly name: string; readonly type: 'physical' | 'logical' }[];
}

/** How the cluster reaches into a controller for faults, without widening the PgController surface. */
interface ControllerHooks {
  /** The agent process died. */
  readonly kill: () => void;
  /** The postmaster died on its own. */
  readonly noteCrash: () => void;
}

/** What a MemoryPg needs from its cluster; not exported, so only this module builds controllers. */
interface ClusterCore {
  readonly clock: Clock;
  readonly durations: MemoryPgDurations;
  find(name: string): NodeState | undefined;
  resolve(upstream: Upstream): NodeState | undefined;
  standbysOf(node: NodeState): NodeState[];
  isStreaming(node: NodeState): boolean;
  takeFailure(name: string, operation: MemoryPgOperation): Error | undefined;
  newSysid(): string;
  newTimeline(node: NodeState): number;
  /** A new controller hands the cluster its fault hooks. */
  register(controller: MemoryPg, hooks: ControllerHooks): void;
}

/** Waits `ms` on the clock; an abort rejects with the signal's reason at once (even if the clock ignores signals). */
function pause(clock: Clock, ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.reject(signal.reason as Error);
  if (ms <= 0) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason as Error);
    signal.addEventListener('abort', onAbort, { once: true });
    clock.sleep(ms, signal).then(
      () => {
        signal.removeEventListener('abort', onAbort);
        resolve();
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(error instanceof Error ? error : new Error(String(error)));
      },
    );
  });
}

/** The agent-side controller of one node. A killed agent's controller is dead: its operations never land. */
export class MemoryPg implements PgController {
  readonly name: string;
  readonly #core: ClusterCore;
  readonly #node: NodeState;
  readonly #listeners: (() => void)[] = [];
  /** Aborted when the agent is killed: everything it had in flight dies with it. */
  readonly #life = new AbortController();
  #crashedAtMs: number | undefined;

  /** Built by MemoryPgCluster.node, which keeps the hooks. */
  constructor(core: ClusterCore, node: NodeState) {
    this.#core = core;
    this.#node = node;
    this.name = node.name;
    core.register(this, {
      kill: () => this.#life.abort(new Error(`the agent of ${this.name} was killed`)),
      noteCrash: () => {
        this.#crashedAtMs = this.#core.clock.nowMs();
        for (const listener of this.#listeners) listener();
      },
    });
  }

  // ----- helpers -----

  #error(code: ErrorCode, message: string): PgwardenError {
    return new PgwardenError(code, `[${this.name}] ${message}`, { context: { member: this.name } });
  }

  /** A killed agent's controller can do nothing more: the process that held it is gone. */
  #assertAlive(): void {
    if (this.#life.signal.aborted) throw this.#life.signal.reason as Error;
  }

  #inject(operation: MemoryPgOperation): void {
    this.#assertAlive();
    // A frozen postmaster answers nothing: every call times out, except a stop, which kills it (postgres/postmaster.ts).
    if (this.#node.isFrozen && operation !== 'stop')
      throw this.#error('PGW_PG_TIMEOUT', `${operation}: PostgreSQL does not answer (frozen by the fence)`);
    const failure = this.#core.takeFailure(this.name, operation);
    if (failure !== undefined) throw failure;
  }

  #signal(signal: AbortSignal): AbortSignal {
    return AbortSignal.any([signal, this.#life.signal]);
  }

  #requireRunning(what: string): void {
    if (!this.#node.isRunning) throw this.#error('PGW_PG_QUERY_FAILED', `${what} failed: PostgreSQL is not running`);
  }

  #reachable(upstream: Upstream): NodeState {
    const source = this.#core.resolve(upstream);
    if (source === undefined || !source.isRunning)
      throw this.#error(
        'PGW_PG_UNREACHABLE',
        `${upstream.name} does not answer at ${upstream.connUrl}: is it running, and reachable from this host?`,
      );
    return source;
  }

  onUnexpectedExit(listener: () => void): void {
    this.#listeners.push(listener);
  }

  // ----- observation -----

  async probe(_signal: AbortSignal): Promise<LocalPg> {
    this.#assertAlive();
    // As the real probe (postgres/controller.ts): a live postmaster that does not answer reads as not running.
    if (this.#node.isFrozen)
      return {
        ...stoppedLocalPg({ dataDir: this.#node.dataDir, upstream: this.#node.upstream, crashedAtMs: this.#crashedAtMs }, undefined),
        controlState: 'running',
        isFrozen: true,
      };
    this.#inject('probe');
    return localPgOf(this.#node, {
      crashedAtMs: this.#crashedAtMs,
      standbys: this.#core.standbysOf(this.#node),
      isStreaming: this.#core.isStreaming(this.#node),
    });
  }

  async walStatus(_signal: AbortSignal): Promise<WalStatus | undefined> {
    if (this.#life.signal.aborted || this.#core.takeFailure(this.name, 'walStatus') !== undefined || !this.#node.isRunning)
      return undefined;
    const isPrimary = this.#node.role === 'primary';
    return {
      isStreaming: this.#core.isStreaming(this.#node),
      writeLsn: isPrimary ? this.#node.lsn : undefined,
      receivedLsn: isPrimary ? undefined : this.#node.lsn,
      replayedLsn: isPrimary ? undefined : this.#node.lsn,
      streamingStandbys: this.#core
        .standbysOf(this.#node)
        .map((standby) => standby.name)
        .sort(),
    };
  }

  async watchUpstream(upstream: Upstream, signal: AbortSignal): Promise<UpstreamWatchEnd> {
    this.#assertAlive();
    const source = this.#core.resolve(upstream);
    if (source === undefined || !source.isRunning) return 'unavailable';
    const combined = this.#signal(signal);
    return new Promise<UpstreamWatchEnd>((resolve) => {
      const onEnd = (): void => {
        combined.removeEventListener('abort', onAbort);
        resolve('closed');
      };
      const onAbort = (): void => {
        source.sessionsEnded.delete(onEnd);
        // A killed agent's call never returns; an aborted one says so.
        if (!this.#life.signal.aborted) resolve('aborted');
      };
      source.sessionsEnded.add(onEnd);
      combined.addEventListener('abort', onAbort, { once: true });
      if (combined.aborted) onAbort();
    });
  }

  async isHistoryDivergent(upstream: Upstream, timeline: number, _signal: AbortSignal): Promise<boolean | undefined> {
    this.#inject('isHistoryDivergent');
    if (timeline <= 1) return false;
    const local = historyOf(this.#node, timeline);
    if (local === undefined) return undefined;
    const source = this.#core.resolve(upstream);
    const remote = source !== undefined && source.isRunning ? historyOf(source, timeline) : undefined;
    return remote === undefined ? undefined : remote !== local;
  }

  // ----- data dir -----

  async initdb(signal: AbortSignal): Promise<void> {
    this.#assertAlive();
    const node = this.#node;
    if (node.dataDir === 'initialized') throw this.#error('PGW_PG_COMMAND_FAILED', 'refusing initdb: the data dir already holds a cluster');
    wipe(node, 'empty');
    await pause(this.#core.clock, this.#core.durations.initdb, this.#signal(signal));
    this.#inject('initdb');
    node.dataDir = 'initialized';
    node.role = 'primary';
    node.timeline = 1;
    node.lsn = INITDB_LSN;
    node.sysid = this.#core.newSysid();
    node.isCleanShutdown = true;
  }

  async basebackup(from: Upstream, signal: AbortSignal): Promise<void> {
    this.#assertAlive();
    const node = this.#node;
    if (node.isRunning)
      throw this.#error('PGW_PG_COMMAND_FAILED', 'refusing basebackup into the data dir of a running PostgreSQL: stop it first');
    wipe(node, 'empty');
    this.#reachable(from);
    await pause(this.#core.clock, this.#core.durations.basebackup, this.#signal(signal));
    this.#inject('basebackup');
    const source = this.#core.resolve(from);
    if (source === undefined || !source.isRunning)
      throw this.#error('PGW_PG_COMMAND_FAILED', `pg_basebackup: ${from.name} went away during the copy`);
    copyFrom(node, source);
    node.dataDir = 'initialized';
    // pg_control comes from the source: a copy of a primary says 'in production' until it first starts.
    node.role = source.role;
    node.isCleanShutdown = false;
    node.upstream = from.name;
  }

  /** The model runs no commands: a custom bootstrap fails as a failing command does, leaving an empty data dir. */
  async bootstrapFrom(method: CustomBootstrap, signal: AbortSignal): Promise<void> {
    this.#assertAlive();
    const node = this.#node;
    if (node.dataDir === 'initialized')
      throw this.#error('PGW_PG_COMMAND_FAILED', `refusing bootstrap.method ${method.name}: the data dir holds a cluster`);
    await pause(this.#core.clock, 0, this.#signal(signal));
    wipe(node, 'empty');
    throw this.#error('PGW_PG_COMMAND_FAILED', `bootstrap.method ${method.name}: the memory model runs no commands`);
  }

  /** basebackup as above; the model runs no commands or backup tools, so those methods fail and the next one runs. */
  async createReplica(from: Upstream, methods: readonly ReplicaMethod[], signal: AbortSignal): Promise<readonly ReplicaMethodResult[]> {
    return tryReplicaMethods(this.name, methods, signal, async (method) => {
      if (method.kind !== 'basebackup') {
        this.#assertAlive();
        if (this.#node.isRunning)
          throw this.#error('PGW_PG_COMMAND_FAILED', `refusing ${method.name} into the data dir of a running PostgreSQL`);
        if (!method.keepData) wipe(this.#node, 'empty');
        throw this.#error('PGW_PG_COMMAND_FAILED', `${method.name}: the memory model runs no commands or backup tools`);
      }
      await this.basebackup(from, signal);
      return { outcome: 'ok', detail: `copied ${from.name} with pg_basebackup` };
    });
  }

  async rewind(from: Upstream, signal: AbortSignal): Promise<void> {
    const node = this.#node;
    await this.stop('fast', signal);
    if (node.dataDir !== 'initialized') throw this.#error('PGW_PG_COMMAND_FAILED', 'pg_controldata: no data dir to rewind');
    // Crash recovery in single-user mode leaves a cleanly shut down data dir behind.
    node.isCleanShutdown = true;
    const source = this.#reachable(from);
    if (source.sysid !== node.sysid)
      throw this.#error('PGW_PG_COMMAND_FAILED', `pg_rewind: source and target clusters are from different systems (${from.name})`);
    await pause(this.#core.clock, this.#core.durations.rewind, this.#signal(signal));
    this.#inject('rewind');
    if (!source.isRunning) throw this.#error('PGW_PG_UNREACHABLE', `pg_rewind: ${from.name} went away during the rewind`);
    copyFrom(node, source);
    node.role = 'replica';
    node.isCleanShutdown = false;
    node.upstream = from.name;
  }

  async removeDataDir(signal: AbortSignal): Promise<void> {
    if (signal.aborted) throw this.#error('PGW_PG_TIMEOUT', 'aborted before removing the data dir');
    this.#inject('removeDataDir');
    await this.stop('immediate', signal);
    wipe(this.#node, 'missing');
  }

  async reconfigure(parameters: Readonly<Record<string, string | number | boolean>>, _signal: AbortSignal): Promise<void> {
    this.#inject('reconfigure');
    this.#node.parameters = parameters;
  }

  // ----- process -----

  async #start(upstream: Upstream | undefined, isReplica: boolean, signal: AbortSignal): Promise<void> {
    this.#assertAlive();
    const node = this.#node;
    if (node.isRunning) throw this.#error('PGW_PG_COMMAND_FAILED', 'PostgreSQL is already running; stop it first');
    if (node.dataDir !== 'initialized') throw this.#error('PGW_PG_COMMAND_FAILED', `no data dir to start (it is ${node.dataDir})`);
    node.upstream = isReplica ? upstream?.name : undefined;
    endRun(node);
    const runId = node.runId;
    await pause(this.#core.clock, this.#core.durations.start, this.#signal(signal));
    this.#inject(isReplica ? 'startReplica' : 'startPrimary');
    if (node.runId !== runId || node.dataDir !== 'initialized')
      throw this.#error('PGW_PG_COMMAND_FAILED', 'postgres exited during start-up (the data dir changed under it)');
    if (walLevelOf(node.parameters) !== 'logical' && [...node.slots.values()].some((slot) => slot.type === 'logical'))
      throw this.#error(
        'PGW_PG_COMMAND_FAILED',
        'postgres exited during start-up: logical replication slot exists, but wal_level < logical',
      );
    node.isRunning = true;
    node.role = isReplica ? 'replica' : 'primary';
    node.runningParameters = node.parameters;
    node.startedAtWall = this.#core.clock.wallIso();
    this.#crashedAtMs = undefined;
  }

  startPrimary(signal: AbortSignal): Promise<void> {
    return this.#start(undefined, false, signal);
  }

  startReplica(upstream: Upstream | undefined, signal: AbortSignal): Promise<void> {
    return this.#start(upstream, true, signal);
  }

  async stop(mode: StopMode, _signal: AbortSignal): Promise<void> {
    this.#inject('stop');
    const node = this.#node;
    // Also ends a start in flight: the postmaster it spawned is stopped before it accepts connections.
    endRun(node);
    if (!node.isRunning) return;
    if (node.isFrozen) {
      // Killed while frozen: nothing more is sent or acknowledged, as after an immediate stop.
      node.isFrozen = false;
      node.isRunning = false;
      node.isCleanShutdown = false;
      return;
    }
    if (mode !== 'immediate' && node.role === 'primary') {
      // A clean (smart/fast) shutdown sends all WAL up to the shutdown checkpoint to the standbys streaming from the
      // primary before the postmaster exits; an immediate one does not.
      for (const standby of this.#core.standbysOf(node)) {
        if (standby.timeline === node.timeline && standby.lsn < node.lsn) standby.lsn = node.lsn;
      }
    }
    node.isRunning = false;
    node.isCleanShutdown = mode !== 'immediate';
  }

  /** The promotion proceeds once signalled, as pg_promote does: an abort stops the wait, not the promotion. */
  async promote(signal: AbortSignal): Promise<void> {
    this.#inject('promote');
    const node = this.#node;
    this.#requireRunning('pg_promote');
    if (node.role !== 'replica') throw this.#error('PGW_PG_QUERY_FAILED', 'pg_promote failed: recovery is not in progress');
    const runId = node.runId;
    let isPromoted = false;
    const duration = this.#core.durations.promote;
    const promotion = (duration > 0 ? this.#core.clock.sleep(duration) : Promise.resolve()).then(() => {
      // Signalled, the startup process finishes the promotion even if the agent dies; only a stopped server does not.
      if (node.runId !== runId || !node.isRunning || node.role !== 'replica') return;
      node.forks.set(node.timeline, node.lsn);
      node.timeline = this.#core.newTimeline(node);
      node.role = 'primary';
      node.upstream = undefined;
      isPromoted = true;
    });
    const combined = this.#signal(signal);
    await new Promise<void>((resolve, reject) => {
      const onAbort = (): void => reject(combined.reason as Error);
      combined.addEventListener('abort', onAbort, { once: true });
      void promotion.then(() => {
        combined.removeEventListener('abort', onAbort);
        resolve();
      });
    });
    if (!isPromoted) throw this.#error('PGW_PG_QUERY_FAILED', 'pg_promote failed: the server stopped before the promotion finished');
  }

  async checkpoint(_signal: AbortSignal): Promise<void> {
    this.#inject('checkpoint');
    this.#requireRunning('CHECKPOINT');
  }

  // ----- following -----

  async detachUpstream(_signal: AbortSignal): Promise<void> {
    this.#inject('detachUpstream');
    // The config is rewritten first; the reload then needs a running server (as the real controller does).
    this.#node.upstream = undefined;
    this.#requireRunning('pg_reload_conf');
  }

  async followUpstream(upstream: Upstream, _signal: AbortSignal): Promise<void> {
    this.#inject('followUpstream');
    this.#node.upstream = upstream.name;
    this.#requireRunning('pg_reload_conf');
  }

  async setSynchronousStandbyNames(value: string, _signal: AbortSignal): Promise<void> {
    this.#inject('setSynchronousStandbyNames');
    this.#requireRunning('ALTER SYSTEM');
    this.#node.ssn = value;
  }

  // ----- slots -----

  async applySlotPlan(steps: readonly SlotStep[], _signal: AbortSignal): Promise<readonly SlotStepResult[]> {
    if (this.#life.signal.aborted) return failedSlotSteps(steps, `the agent of ${this.name} was killed`);
    const failure = this.#core.takeFailure(this.name, 'applySlotPlan');
    if (failure !== undefined) return failedSlotSteps(steps, failure.message);
    if (!this.#node.isRunning) return failedSlotSteps(steps, `[${this.name}] query failed: PostgreSQL is not running`);
    const active = new Set(this.#core.standbysOf(this.#node).map((standby) => slotNameForMember(standby.name)));
    return applyStepsToNode(this.#node, steps, active);
  }

  async copyLogicalSlots(from: Upstream, slotNames: readonly string[], signal: AbortSignal): Promise<void> {
    this.#inject('copyLogicalSlots');
    const source = this.#reachable(from);
    const copies = slotNames.map((name) => {
      const slot = source.slots.get(name);
      if (slot === undefined || slot.type !== 'logical')
        throw this.#error('PGW_PG_COMMAND_FAILED', `logical slot ${name} is not on ${from.name} (any more): nothing to copy`);
      return { ...slot };
    });
    await this.stop('fast', signal);
    for (const copy of copies) this.#node.slots.set(copy.name, copy);
    try {
      await this.startReplica(from, signal);
    } catch (error) {
      // A copy PostgreSQL refuses (e.g. wal_level is not logical here) must not keep the replica down.
      for (const copy of copies) this.#node.slots.delete(copy.name);
      await this.startReplica(from, signal).catch(() => undefined);
      throw error;
    }
  }

  async close(): Promise<void> {
    // Nothing to release: the model lives in the cluster.
  }
}

/**
 * Several nodes' PostgreSQL in memory, on one Clock. The caller drives WAL with advance() (the simulator every
 * <= 100 ms of simulated time) and lets pending promises settle after moving its clock.
 */
export class MemoryPgCluster {
  readonly #clock: Clock;
  readonly #random: () => number;
  readonly #durations: MemoryPgDurations;
  readonly #timelineIds: 'per-node' | 'cluster-unique';
  readonly #nodes = new Map<string, NodeState>();
  readonly #controllers = new Map<string, { readonly controller: MemoryPg; readonly hooks: ControllerHooks }>();
  readonly #failures = new Map<string, Error[]>();
  #sysids = 0;
  #nextTimeline = 2;
  readonly #core: ClusterCore;

  constructor(options: MemoryPgClusterOptions) {
    this.#clock = options.clock;
    this.#random = options.random;
    this.#durations = { ...DEFAULT_DURATIONS, ...options.durations };
    this.#timelineIds = options.timelineIds ?? 'per-node';
    this.#core = {
      clock: this.#clock,
      durations: this.#durations,
      find: (name) => this.#nodes.get(name),
      resolve: (upstream) => this.#nodes.get(upstream.name) ?? this.#nodes.get(hostOf(upstream.connUrl)),
      standbysOf: (node) => this.#standbysOf(node),
      isStreaming: (node) => this.#sourceOf(node) !== undefined,
      takeFailure: (name, operation) => this.#failures.get(`${name}/${operation}`)?.shift(),
      newSysid: () => String(7_300_000_000_000_000_000n + BigInt(++this.#sysids)),
      newTimeline: (node) => this.#newTimeline(node),
      register: (controller, hooks) => this.#controllers.set(controller.name, { controller, hooks }),
    };
  }

  /** The controller of `name`, creating the node (no data dir yet) on first use; a killed agent's is replaced. */
  node(name: string, options: MemoryPgNodeOptions = {}): MemoryPg {
    let state = this.#nodes.get(name);
    if (state === undefined) {
      state = newNodeState(name, options.parameters ?? {});
      this.#nodes.set(name, state);
    }
    const current = this.#controllers.get(name);
    if (current !== undefined) return current.controller;
    return new MemoryPg(this.#core, state);
  }

  names(): string[] {
    return [...this.#nodes.keys()];
  }

  #state(name: string): NodeState {
    const state = this.#nodes.get(name);
    if (state === undefined) throw new PgwardenError('PGW_INTERNAL', `no in-memory PostgreSQL node named ${name}`);
    return state;
  }

  #sourceOf(node: NodeState): NodeState | undefined {
    return streamingSourceOf(node, (name) => this.#nodes.get(name));
  }

  #standbysOf(node: NodeState): NodeState[] {
    if (!node.isRunning || node.role !== 'primary') return [];
    return [...this.#nodes.values()].filter((other) => other !== node && this.#sourceOf(other) === node);
  }

  #newTimeline(node: NodeState): number {
    if (this.#timelineIds === 'per-node') return nextTimelineOf(node);
    const timeline = Math.max(this.#nextTimeline, nextTimelineOf(node));
    this.#nextTimeline = timeline + 1;
    return timeline;
  }

  // ----- time -----

  /** One step of physics: running primaries write `stepMs` bytes, then every streaming replica catches up. */
  advance(stepMs: number): void {
    const bytes = BigInt(Math.max(0, Math.round(stepMs)));
    for (const node of this.#nodes.values()) if (node.isRunning && node.role === 'primary' && !node.isFrozen) node.lsn += bytes;
    for (const node of this.#nodes.values()) {
      const source = this.#sourceOf(node);
      if (source !== undefined) catchUp(node, source, this.#random);
    }
  }

  /** A client commit of `bytes` on a running primary (beyond the steady writes of advance). */
  write(name: string, bytes = 1000): void {
    const node = this.#state(name);
    if (!node.isRunning || node.role !== 'primary' || node.isFrozen)
      throw new PgwardenError('PGW_PG_QUERY_FAILED', `[${name}] cannot write: not a running primary`);
    node.lsn += BigInt(bytes);
  }

  /** The fence's SIGSTOP of the whole postmaster tree: false when nothing runs as a primary there. */
  freeze(name: string): boolean {
    const node = this.#state(name);
    if (!node.isRunning || node.role !== 'primary' || node.isFrozen) return false;
    node.isFrozen = true;
    return true;
  }

  thaw(name: string): void {
    this.#state(name).isFrozen = false;
  }

  /** The fence's SIGKILL of a frozen tree: a crash the agent hears of. */
  killFrozen(name: string): void {
    const node = this.#state(name);
    if (!node.isFrozen) return;
    node.isFrozen = false;
    this.crash(name);
  }

  // ----- faults -----

  /** The postmaster dies on its own: the agent hears of it (onUnexpectedExit) and probes show crashedAtMs. */
  crash(name: string): void {
    const node = this.#state(name);
    if (!node.isRunning) return;
    node.isRunning = false;
    node.isCleanShutdown = false;
    endRun(node);
    this.#controllers.get(name)?.hooks.noteCrash();
  }

  /**
   * The agent process dies (with its postmaster unless keepPostmaster): nothing is notified, its operations in
   * flight never land, and the next node(name) is a new agent's controller.
   */
  kill(name: string, options: { readonly keepPostmaster?: boolean } = {}): void {
    const node = this.#state(name);
    this.#controllers.get(name)?.hooks.kill();
    this.#controllers.delete(name);
    if (options.keepPostmaster === true || !node.isRunning) return;
    node.isRunning = false;
    node.isCleanShutdown = false;
    endRun(node);
  }

  /** The next call of `operation` on `name` rejects with `error` (long operations after their duration, state as a real failure leaves it). */
  failNext(name: string, operation: MemoryPgOperation, error: Error): void {
    const key = `${name}/${operation}`;
    this.#failures.set(key, [...(this.#failures.get(key) ?? []), error]);
  }

  // ----- inspection -----

  inspect(name: string): MemoryPgInspection {
    const node = this.#state(name);
    return {
      name,
      dataDir: node.dataDir,
      isRunning: node.isRunning,
      isFrozen: node.isFrozen,
      role: node.role,
      timeline: node.timeline,
      lsn: node.lsn,
      forks: new Map(node.forks),
      ssn: node.ssn,
      upstream: node.upstream,
      sysid: node.sysid,
      slots: [...node.slots.values()].map((slot) => ({ name: slot.name, type: slot.type })),
    };
  }

  /** Names of the replicas streaming from `name` right now (empty unless it is a running primary). */
  standbysOf(name: string): string[] {
    return this.#standbysOf(this.#state(name)).map((node) => node.name);
  }

  /** The node `name` streams from right now, if any. */
  streamingSource(name: string): string | undefined {
    return this.#sourceOf(this.#state(name))?.name;
  }
}

function hostOf(connUrl: string): string {
  try {
    return new URL(connUrl).hostname;
  } catch {
    return '';
  }
}
