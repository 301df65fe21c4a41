// An in-memory model of a group of PostgreSQL nodes (data directories, postmasters, streaming, timelines, slots) whose
// nodes implement PgController; long operations take time on an injected Clock. For the simulator and the unit tier.
import type { Clock, PgController, StopMode, Upstream, WalStatus } from '../../core/ports.js';
import type { SlotStep, SlotStepResult } from '../../core/slot-changes.js';
import type { SlotState } from '../../core/slot-plan.js';
import type { GucValue, LocalPg, PgRole } from '../../core/types.js';
import { PgwardenError } from '../../util/errors.js';

/** How long each operation takes (ms): the simulator's defaults, close to small real clusters. */
export interface MemoryPgDurations {
  readonly initdb: number;
  readonly start: number;
  readonly stop: number;
  readonly promote: number;
  readonly basebackup: number;
  readonly rewind: number;
}

export const DEFAULT_DURATIONS: MemoryPgDurations = { initdb: 1500, start: 300, stop: 20, promote: 60, basebackup: 1000, rewind: 500 };

/** GUCs PostgreSQL applies only at a restart (a subset of context=postmaster, enough to model pending_restart). */
const RESTART_ONLY = new Set(['max_connections', 'shared_buffers', 'wal_level', 'max_wal_senders', 'max_replication_slots', 'port']);

export type MemoryPgOperation = 'initdb' | 'start' | 'stop' | 'promote' | 'basebackup' | 'rewind' | 'probe' | 'reconfigure';

/** One node's state, as an invariant checker reads it. */
export interface MemoryPgState {
  readonly dataDir: LocalPg['dataDir'];
  readonly isRunning: boolean;
  readonly role: PgRole | undefined;
  readonly timeline: number;
  readonly lsn: bigint;
  /** timeline -> LSN at which this node's history left it (its promotions and those it inherited). */
  readonly forks: ReadonlyMap<number, bigint>;
  readonly synchronousStandbyNames: string;
  readonly upstream: string | undefined;
}

interface NodeState {
  dataDir: LocalPg['dataDir'];
  isRunning: boolean;
  role: PgRole | undefined;
  timeline: number;
  lsn: bigint;
  forks: Map<number, bigint>;
  ssn: string;
  upstream: string | undefined;
  crashedAtMs: number | undefined;
  controlState: string | undefined;
  sysid: string | undefined;
  startedAtMs: number | undefined;
  slots: Map<string, SlotState>;
  appliedParameters: Readonly<Record<string, GucValue>>;
  runningParameters: Readonly<Record<string, GucValue>>;
}

const failure = (member: string, operation: string, message: string, hint?: string): PgwardenError =>
  new PgwardenError('PGW_PG_COMMAND_FAILED', `${member}: ${operation} failed: ${message}`, {
    context: { member, command: [operation], ...(hint !== undefined ? { hint } : {}) },
  });

export class MemoryPgCluster {
  readonly #clock: Clock;
  readonly #random: () => number;
  readonly #durations: MemoryPgDurations;
  readonly #nodes = new Map<string, MemoryPg>();
  /** Timeline IDs are unique across the model (two real nodes can promote to the same ID; the model does not). */
  #nextTimeline = 2;
  #nextSysid = 7_000_000_000_000_000_001n;

  constructor(options: { readonly clock: Clock; readonly random: () => number; readonly durations?: Partial<MemoryPgDurations> }) {
    this.#clock = options.clock;
    this.#random = options.random;
    this.#durations = { ...DEFAULT_DURATIONS, ...options.durations };
  }

  get durations(): MemoryPgDurations {
    return this.#durations;
  }

  /** The node named `name` (created empty on first use). */
  node(name: string): MemoryPg {
    let node = this.#nodes.get(name);
    if (node === undefined) {
      node = new MemoryPg(this, name, this.#clock);
      this.#nodes.set(name, node);
    }
    return node;
  }

  /** Resolves an upstream by its member name, else by the host of its conn_url. */
  resolve(upstream: Upstream): MemoryPg | undefined {
    const byName = this.#nodes.get(upstream.name);
    if (byName !== undefined) return byName;
    try {
      return this.#nodes.get(new URL(upstream.connUrl).hostname);
    } catch {
      return undefined;
    }
  }

  takeTimeline(): number {
    return this.#nextTimeline++;
  }

  takeSysid(): string {
    return String(this.#nextSysid++);
  }

  /** Where `name` streams from right now: its upstream, if that is a running primary whose history contains ours. */
  streamingSource(name: string): string | undefined {
    const node = this.#nodes.get(name)?.raw();
    if (node === undefined || !node.isRunning || node.role !== 'replica' || node.upstream === undefined) return undefined;
    const source = this.#nodes.get(node.upstream)?.raw();
    if (source === undefined || source === node || !source.isRunning || source.role !== 'primary') return undefined;
    if (node.timeline === source.timeline) return node.lsn <= source.lsn ? node.upstream : undefined;
    const fork = source.forks.get(node.timeline);
    return node.timeline < source.timeline && fork !== undefined && node.lsn <= fork ? node.upstream : undefined;
  }

  /** Every standby streaming from `name` receives all of its WAL (a clean shutdown's last act). */
  flushToStandbys(name: string): void {
    const primary = this.#nodes.get(name)?.raw();
    if (primary === undefined) return;
    for (const standby of this.standbysOf(name)) {
      const state = this.#nodes.get(standby)!.raw();
      if (state.timeline === primary.timeline && state.lsn < primary.lsn) state.lsn = primary.lsn;
    }
  }

  standbysOf(name: string): string[] {
    const node = this.#nodes.get(name)?.raw();
    if (node === undefined || !node.isRunning || node.role !== 'primary') return [];
    return [...this.#nodes.keys()].filter((other) => other !== name && this.streamingSource(other) === name);
  }

  /** Time passes: running primaries write, streaming replicas catch up (a little behind, so which holds what matters). */
  advance(stepMs: number): void {
    for (const node of this.#nodes.values()) {
      const state = node.raw();
      if (state.isRunning && state.role === 'primary') state.lsn += BigInt(Math.max(0, Math.round(stepMs)));
    }
    for (const [name, node] of this.#nodes) {
      const sourceName = this.streamingSource(name);
      if (sourceName === undefined) continue;
      const state = node.raw();
      const source = this.#nodes.get(sourceName)!.raw();
      const lag = BigInt(Math.floor(this.#random() * 40));
      if (state.timeline === source.timeline) {
        if (source.lsn - lag > state.lsn) state.lsn = source.lsn - lag;
      } else {
        state.lsn = source.lsn;
        state.timeline = source.timeline;
      }
      state.forks = new Map(source.forks);
    }
  }

  inspect(name: string): MemoryPgState {
    const state = this.node(name).raw();
    return {
      dataDir: state.dataDir,
      isRunning: state.isRunning,
      role: state.role,
      timeline: state.timeline,
      lsn: state.lsn,
      forks: state.forks,
      synchronousStandbyNames: state.ssn,
      upstream: state.upstream,
    };
  }

  /** The postmaster dies on its own (OOM kill, segfault): the agent hears of it. */
  crash(name: string): void {
    this.node(name).crash(true);
  }

  /** The postmaster dies together with its agent: nobody is told. */
  kill(name: string): void {
    this.node(name).crash(false);
  }

  /** The next `operation` on `name` fails with `message` (a full disk, a missing binary...). */
  failNext(name: string, operation: MemoryPgOperation, message: string): void {
    this.node(name).failNext(operation, message);
  }
}

export class MemoryPg implements PgController {
  readonly #cluster: MemoryPgCluster;
  readonly #name: string;
  readonly #clock: Clock;
  readonly #state: NodeState = {
    dataDir: 'missing',
    isRunning: false,
    role: undefined,
    timeline: 1,
    lsn: 0n,
    forks: new Map(),
    ssn: '',
    upstream: undefined,
    crashedAtMs: undefined,
    controlState: undefined,
    sysid: undefined,
    startedAtMs: undefined,
    slots: new Map(),
    appliedParameters: {},
    runningParameters: {},
  };
  readonly #listeners: (() => void)[] = [];
  readonly #failures = new Map<MemoryPgOperation, string>();

  constructor(cluster: MemoryPgCluster, name: string, clock: Clock) {
    this.#cluster = cluster;
    this.#name = name;
    this.#clock = clock;
  }

  /** The mutable state (the cluster model moves WAL; nothing else may touch it). */
  raw(): NodeState {
    return this.#state;
  }

  crash(isNoticed: boolean): void {
    if (!this.#state.isRunning) return;
    this.#state.isRunning = false;
    this.#state.crashedAtMs = this.#clock.nowMs();
    this.#state.controlState = this.#state.role === 'primary' ? 'in production' : 'in archive recovery';
    if (isNoticed) for (const listener of this.#listeners) listener();
  }

  failNext(operation: MemoryPgOperation, message: string): void {
    this.#failures.set(operation, message);
  }

  #injected(operation: MemoryPgOperation): void {
    const message = this.#failures.get(operation);
    if (message === undefined) return;
    this.#failures.delete(operation);
    throw failure(this.#name, operation, message);
  }

  /** Waits `ms` of the clock, failing with the signal's reason when aborted: the state changes only after it. */
  async #takes(operation: MemoryPgOperation, ms: number, signal: AbortSignal): Promise<void> {
    if (signal.aborted) throw signal.reason as Error;
    await this.#clock.sleep(ms, signal);
    this.#injected(operation);
  }

  #requireData(operation: string): void {
    if (this.#state.dataDir !== 'initialized')
      throw failure(this.#name, operation, 'the data directory is not initialized', 'bootstrap or clone this member first');
  }

  #requireRunning(operation: string): void {
    if (!this.#state.isRunning) throw failure(this.#name, operation, 'PostgreSQL is not running');
  }

  #source(upstream: Upstream, operation: string, wantPrimary: boolean): NodeState {
    const source = this.#cluster.resolve(upstream)?.raw();
    if (source === undefined || !source.isRunning || (wantPrimary && source.role !== 'primary'))
      throw failure(this.#name, operation, `could not connect to ${upstream.name} (${upstream.connUrl})`, 'is the upstream running?');
    return source;
  }

  onUnexpectedExit(listener: () => void): void {
    this.#listeners.push(listener);
  }

  async probe(signal: AbortSignal): Promise<LocalPg> {
    if (signal.aborted) throw signal.reason as Error;
    this.#injected('probe');
    const state = this.#state;
    const isInitialized = state.dataDir === 'initialized';
    const isRunning = state.isRunning;
    const isPrimary = isRunning && state.role === 'primary';
    const isReplica = isRunning && state.role === 'replica';
    const standbys = this.#cluster.standbysOf(this.#name);
    return {
      dataDir: state.dataDir,
      isRunning,
      role: isInitialized ? state.role : undefined,
      sysid: isInitialized ? state.sysid : undefined,
      timeline: isInitialized ? state.timeline : undefined,
      writeLsn: isPrimary ? state.lsn : undefined,
      receivedLsn: isReplica ? state.lsn : undefined,
      replayedLsn: isReplica ? state.lsn : undefined,
      isStreaming: this.#cluster.streamingSource(this.#name) !== undefined,
      upstream: state.upstream,
      crashedAtMs: state.crashedAtMs,
      controlState: isRunning ? undefined : state.controlState,
      serverVersion: isRunning ? 150000 : undefined,
      postmasterStartTime: isRunning && state.startedAtMs !== undefined ? new Date(state.startedAtMs).toISOString() : undefined,
      replayedTimestamp: isReplica ? null : undefined,
      isReplayPaused: false,
      replication: standbys.map((standby) => ({
        usename: 'replicator',
        application_name: standby,
        client_addr: null,
        state: 'streaming',
        sync_state: 'async',
        sync_priority: 0,
      })),
      isPendingRestart: isRunning && this.#isPendingRestart(),
      synchronousStandbyNames: isRunning ? state.ssn : undefined,
      walLevel: isRunning ? 'replica' : undefined,
      slots: isRunning ? [...state.slots.values()] : undefined,
      standbyFlushLsn: Object.fromEntries(standbys.map((standby) => [standby, this.#cluster.inspect(standby).lsn])),
    };
  }

  #isPendingRestart(): boolean {
    const { appliedParameters, runningParameters } = this.#state;
    return [...RESTART_ONLY].some((name) => appliedParameters[name] !== runningParameters[name]);
  }

  async initdb(signal: AbortSignal): Promise<void> {
    if (this.#state.dataDir === 'initialized') throw failure(this.#name, 'initdb', 'the data directory is not empty');
    await this.#takes('initdb', this.#cluster.durations.initdb, signal);
    Object.assign(this.#state, {
      dataDir: 'initialized',
      role: 'primary',
      timeline: 1,
      lsn: 100n,
      forks: new Map(),
      sysid: this.#cluster.takeSysid(),
      controlState: 'shut down',
      slots: new Map(),
    });
  }

  async #start(role: PgRole, upstream: Upstream | undefined, signal: AbortSignal): Promise<void> {
    this.#requireData('start');
    if (this.#state.isRunning) {
      if (this.#state.role === role) return;
      throw failure(this.#name, 'start', `PostgreSQL is already running as ${this.#state.role ?? 'unknown'}`);
    }
    await this.#takes('start', this.#cluster.durations.start, signal);
    const state = this.#state;
    if (role === 'primary' && state.role === 'replica') {
      // A standby's data directory started without standby.signal ends recovery on a new timeline.
      state.forks.set(state.timeline, state.lsn);
      state.timeline = this.#cluster.takeTimeline();
    }
    Object.assign(state, {
      isRunning: true,
      role,
      upstream: role === 'replica' ? upstream?.name : undefined,
      crashedAtMs: undefined,
      controlState: undefined,
      startedAtMs: this.#clock.nowMs(),
      runningParameters: state.appliedParameters,
    });
  }

  startPrimary(signal: AbortSignal): Promise<void> {
    return this.#start('primary', undefined, signal);
  }

  startReplica(upstream: Upstream | undefined, signal: AbortSignal): Promise<void> {
    return this.#start('replica', upstream, signal);
  }

  async isHistoryDivergent(upstream: Upstream, timeline: number, signal: AbortSignal): Promise<boolean | undefined> {
    if (signal.aborted) throw signal.reason as Error;
    const source = this.#cluster.resolve(upstream)?.raw();
    if (source === undefined || !source.isRunning) return undefined;
    for (const [forked, lsn] of this.#state.forks) if (forked < timeline && source.forks.get(forked) !== lsn) return true;
    return false;
  }

  async detachUpstream(signal: AbortSignal): Promise<void> {
    if (signal.aborted) throw signal.reason as Error;
    this.#state.upstream = undefined;
  }

  async followUpstream(upstream: Upstream, signal: AbortSignal): Promise<void> {
    if (signal.aborted) throw signal.reason as Error;
    this.#requireRunning('follow');
    this.#state.upstream = upstream.name;
  }

  async stop(mode: StopMode, signal: AbortSignal): Promise<void> {
    if (!this.#state.isRunning) return;
    await this.#takes('stop', this.#cluster.durations.stop, signal);
    const state = this.#state;
    // A clean (smart/fast) shutdown of a primary sends all its WAL, up to the shutdown checkpoint, to the standbys
    // streaming from it before the postmaster exits; an immediate one does not.
    if (mode !== 'immediate' && state.role === 'primary') this.#cluster.flushToStandbys(this.#name);
    state.isRunning = false;
    state.crashedAtMs = undefined;
    state.controlState = state.role === 'primary' ? 'shut down' : 'shut down in recovery';
  }

  async promote(signal: AbortSignal): Promise<void> {
    this.#requireRunning('promote');
    if (this.#state.role === 'primary') return;
    await this.#takes('promote', this.#cluster.durations.promote, signal);
    const state = this.#state;
    if (!state.isRunning) throw failure(this.#name, 'promote', 'PostgreSQL stopped while promoting');
    state.forks.set(state.timeline, state.lsn);
    Object.assign(state, { role: 'primary', timeline: this.#cluster.takeTimeline(), upstream: undefined });
  }

  async checkpoint(signal: AbortSignal): Promise<void> {
    if (signal.aborted) throw signal.reason as Error;
    this.#requireRunning('checkpoint');
  }

  async basebackup(from: Upstream, signal: AbortSignal): Promise<void> {
    if (this.#state.dataDir === 'initialized') throw failure(this.#name, 'basebackup', 'the data directory is not empty');
    this.#source(from, 'basebackup', false);
    await this.#takes('basebackup', this.#cluster.durations.basebackup, signal);
    const source = this.#source(from, 'basebackup', false);
    Object.assign(this.#state, {
      dataDir: 'initialized',
      isRunning: false,
      role: 'replica',
      timeline: source.timeline,
      lsn: source.lsn,
      forks: new Map(source.forks),
      sysid: source.sysid,
      controlState: 'in archive recovery',
      slots: new Map(),
      crashedAtMs: undefined,
    });
  }

  async rewind(from: Upstream, signal: AbortSignal): Promise<void> {
    this.#requireData('rewind');
    if (this.#state.isRunning) throw failure(this.#name, 'rewind', 'PostgreSQL must be stopped before pg_rewind');
    const before = this.#source(from, 'rewind', true);
    if (before.sysid !== this.#state.sysid) throw failure(this.#name, 'rewind', 'source and target clusters are from different systems');
    await this.#takes('rewind', this.#cluster.durations.rewind, signal);
    const source = this.#source(from, 'rewind', true);
    Object.assign(this.#state, {
      role: 'replica',
      timeline: source.timeline,
      lsn: source.lsn,
      forks: new Map(source.forks),
      controlState: 'in archive recovery',
    });
  }

  async removeDataDir(signal: AbortSignal): Promise<void> {
    if (signal.aborted) throw signal.reason as Error;
    if (this.#state.isRunning) throw failure(this.#name, 'remove data directory', 'PostgreSQL is running');
    Object.assign(this.#state, { dataDir: 'missing', role: undefined, sysid: undefined, slots: new Map(), controlState: undefined });
  }

  async reconfigure(parameters: Readonly<Record<string, GucValue>>, signal: AbortSignal): Promise<void> {
    if (signal.aborted) throw signal.reason as Error;
    this.#injected('reconfigure');
    this.#state.appliedParameters = parameters;
    if (!this.#state.isRunning) this.#state.runningParameters = parameters;
  }

  async applySlotPlan(steps: readonly SlotStep[], signal: AbortSignal): Promise<readonly SlotStepResult[]> {
    const state = this.#state;
    return steps.map((step): SlotStepResult => {
      if (signal.aborted || !state.isRunning) return { step, status: 'failed', error: `${this.#name}: PostgreSQL is not running` };
      const existing = state.slots.get(step.slot.name);
      switch (step.kind) {
        case 'create':
          if (existing !== undefined) return { step, status: 'failed', error: `replication slot "${step.slot.name}" already exists` };
          if (step.slot.type === 'logical' && state.role !== 'primary')
            return { step, status: 'failed', error: 'logical decoding cannot be used while in recovery' };
          state.slots.set(step.slot.name, {
            ...step.slot,
            isActive: false,
            restartLsn: state.lsn,
            confirmedFlushLsn: step.slot.type === 'logical' ? state.lsn : undefined,
            retainedBytes: 0,
            walStatus: 'reserved',
          });
          return { step, status: 'ok' };
        case 'drop':
          if (existing === undefined) return { step, status: 'failed', error: `replication slot "${step.slot.name}" does not exist` };
          state.slots.delete(step.slot.name);
          return { step, status: 'ok' };
        case 'advance':
          if (existing === undefined) return { step, status: 'failed', error: `replication slot "${step.slot.name}" does not exist` };
          state.slots.set(step.slot.name, {
            ...existing,
            restartLsn: step.lsn,
            ...(existing.type === 'logical' ? { confirmedFlushLsn: step.lsn } : {}),
          });
          return { step, status: 'ok' };
      }
      return { step, status: 'failed', error: 'unknown step' };
    });
  }

  async copyLogicalSlots(from: Upstream, slotNames: readonly string[], signal: AbortSignal): Promise<void> {
    const source = this.#source(from, 'copy logical slots', true);
    await this.stop('fast', signal);
    for (const name of slotNames) {
      const slot = source.slots.get(name);
      if (slot !== undefined) this.#state.slots.set(name, { ...slot, isActive: false });
    }
    await this.startReplica(from, signal);
  }

  async setSynchronousStandbyNames(value: string, signal: AbortSignal): Promise<void> {
    if (signal.aborted) throw signal.reason as Error;
    this.#requireRunning('set synchronous_standby_names');
    this.#state.ssn = value;
  }

  async walStatus(signal: AbortSignal): Promise<WalStatus | undefined> {
    if (signal.aborted) throw signal.reason as Error;
    const state = this.#state;
    if (!state.isRunning) return undefined;
    const isPrimary = state.role === 'primary';
    return {
      isStreaming: this.#cluster.streamingSource(this.#name) !== undefined,
      writeLsn: isPrimary ? state.lsn : undefined,
      receivedLsn: isPrimary ? undefined : state.lsn,
      replayedLsn: isPrimary ? undefined : state.lsn,
      ...(isPrimary ? { streamingStandbys: this.#cluster.standbysOf(this.#name).sort() } : {}),
    };
  }

  async close(): Promise<void> {
    this.#listeners.length = 0;
  }
}
