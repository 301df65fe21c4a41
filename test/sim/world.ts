// A deterministic model of N agents, their PostgreSQL and an etcd, driven by the real decide(); faults come from a seeded PRNG.
import { decide, initialMemory } from '../../src/core/decide.js';
import { lockDeadlineMs } from '../../src/core/lease.js';
import type { Clock } from '../../src/core/ports.js';
import type {
  Action,
  ClusterView,
  Decision,
  HaMemory,
  LocalPg,
  MemberRecord,
  Observation,
  PeerStatus,
  TaskName,
  TaskState,
} from '../../src/core/types.js';
import { buildClusterView, encodeMember } from '../../src/dcs/codec.js';
import { ClusterKeys } from '../../src/dcs/keys.js';
import { MemoryDcsStore } from '../../src/dcs/memory/memory-dcs.js';
import { mulberry32 } from '../../src/util/prng.js';
import { SYNC_OFF } from '../../src/core/sync-plan.js';
import { guaranteeOf } from '../../src/core/sync-standby-names.js';
import type { SyncSettings } from '../../src/core/types.js';

export { mulberry32 };

export const SIM_TIMING = { ttlMs: 5000, loopWaitMs: 1000, retryTimeoutMs: 2000 };

interface SimPg {
  dataDir: LocalPg['dataDir'];
  isRunning: boolean;
  role: 'primary' | 'replica' | undefined;
  timeline: number;
  lsn: bigint;
  upstream: string | undefined;
  crashedAtMs: number | undefined;
  /** timeline -> LSN at which this node's history left it (its promotions and those it inherited). */
  forks: Map<number, bigint>;
  /** synchronous_standby_names as set by the agent (persisted, like ALTER SYSTEM). */
  ssn: string;
}

interface SimTask {
  name: TaskName;
  doneAtMs: number;
  apply: () => void;
}

export interface SimNode {
  readonly name: string;
  pg: SimPg;
  isAgentAlive: boolean;
  pausedUntilMs: number;
  isPartitioned: boolean;
  partitionedSinceMs: number | undefined;
  wakeAtMs: number;
  memory: HaMemory;
  lastRenewSentAtMs: number | undefined;
  task: SimTask | undefined;
  taskState: TaskState;
  lastView: ClusterView | undefined;
}

export interface Violation {
  readonly atMs: number;
  readonly message: string;
}

export class SimWorld {
  nowMs = 0;
  readonly nodes: SimNode[];
  readonly violations: Violation[] = [];
  readonly log: string[] = [];
  #nextTimeline = 2;
  readonly #random: () => number;
  /**
   * The DCS is the same in-memory store that passes the DCS conformance suite, on the world's clock. Requests
   * take effect the moment they are sent (no latency): the tightest case for the lock-deadline arithmetic.
   */
  readonly #store: MemoryDcsStore;
  readonly #keys = new ClusterKeys('/service', 'sim');
  readonly #leases = new Map<string, number>();
  #lastLeader: string | undefined;
  /** Synchronous replication settings every agent sees in the dynamic config. */
  readonly sync: SyncSettings;
  /** timeline -> highest WAL position a primary on it acknowledged to a client as committed. */
  readonly #acked = new Map<number, bigint>();
  ackedCommits = 0;

  constructor(seed: number, names: readonly string[], sync: SyncSettings = SYNC_OFF) {
    this.sync = sync;
    this.#random = mulberry32(seed);
    const clock: Clock = {
      nowMs: () => this.nowMs,
      wallIso: () => new Date(this.nowMs).toISOString(),
      sleep: () => Promise.resolve(),
      deadline: () => new AbortController().signal,
      setTimer: () => () => undefined,
    };
    this.#store = new MemoryDcsStore(clock);
    this.nodes = names.map((name) => ({
      name,
      pg: {
        dataDir: 'missing',
        isRunning: false,
        role: undefined,
        timeline: 1,
        lsn: 0n,
        upstream: undefined,
        crashedAtMs: undefined,
        forks: new Map(),
        ssn: '',
      },
      isAgentAlive: true,
      pausedUntilMs: 0,
      isPartitioned: false,
      partitionedSinceMs: undefined,
      wakeAtMs: Math.floor(this.#random() * 200),
      memory: initialMemory(),
      lastRenewSentAtMs: undefined,
      task: undefined,
      taskState: { kind: 'idle' },
      lastView: undefined,
    }));
  }

  random(): number {
    return this.#random();
  }

  node(name: string): SimNode {
    return this.nodes.find((node) => node.name === name)!;
  }

  // ----- the DCS -----

  #leaderName(): string | undefined {
    const name = this.#store.get(this.#keys.leader)?.value;
    if (name !== this.#lastLeader && name === undefined && this.#lastLeader !== undefined)
      this.log.push(`${this.nowMs}: leader key of ${this.#lastLeader} is gone`);
    this.#lastLeader = name;
    return name;
  }

  /** The node's lease, kept alive; a lease that expired is replaced (as the etcd backend does). */
  #lease(node: SimNode): number {
    const current = this.#leases.get(node.name);
    if (current !== undefined && this.#store.keepAlive(current)) return current;
    const lease = this.#store.grant(SIM_TIMING.ttlMs);
    this.#leases.set(node.name, lease);
    return lease;
  }

  #memberRecord(node: SimNode): MemberRecord {
    return {
      name: node.name,
      conn_url: `postgres://${node.name}:5432/postgres`,
      api_url: `http://${node.name}:8008/patroni`,
      state: node.pg.isRunning ? 'running' : 'stopped',
      role: node.pg.role ?? 'uninitialized',
      timeline: node.pg.timeline,
      xlog_location: Number(node.pg.lsn),
    };
  }

  #view(): ClusterView {
    this.#leaderName();
    const view = buildClusterView(this.#keys, this.#store.range(this.#keys.prefix), String(this.#store.revision));
    const sync =
      this.sync.mode === 'off'
        ? {}
        : {
            synchronous_mode: this.sync.mode === 'quorum' ? 'quorum' : true,
            synchronous_mode_strict: this.sync.isStrict,
            synchronous_node_count: this.sync.nodeCount,
          };
    return {
      ...view,
      config: {
        ttl: SIM_TIMING.ttlMs / 1000,
        loop_wait: SIM_TIMING.loopWaitMs / 1000,
        retry_timeout: SIM_TIMING.retryTimeoutMs / 1000,
        maximum_lag_on_failover: 1048576,
        ...sync,
      },
    };
  }

  // ----- PostgreSQL model -----

  #streamingSource(node: SimNode): SimNode | undefined {
    const pg = node.pg;
    if (!pg.isRunning || pg.role !== 'replica' || pg.upstream === undefined) return undefined;
    const source = this.node(pg.upstream);
    if (!source.pg.isRunning || (source.pg.role !== 'primary' && source.pg.role !== 'replica')) return undefined;
    if (source.pg.role === 'replica' || source.name === node.name) return undefined;
    if (pg.timeline === source.pg.timeline) return pg.lsn <= source.pg.lsn ? source : undefined;
    const fork = source.pg.forks.get(pg.timeline);
    return pg.timeline < source.pg.timeline && fork !== undefined && pg.lsn <= fork ? source : undefined;
  }

  #localPg(node: SimNode): LocalPg {
    const pg = node.pg;
    const isStreaming = this.#streamingSource(node) !== undefined;
    return {
      dataDir: pg.dataDir,
      isRunning: pg.isRunning,
      role: pg.dataDir === 'initialized' ? pg.role : undefined,
      sysid: pg.dataDir === 'initialized' ? '1' : undefined,
      timeline: pg.dataDir === 'initialized' ? pg.timeline : undefined,
      writeLsn: pg.isRunning && pg.role === 'primary' ? pg.lsn : undefined,
      receivedLsn: pg.isRunning && pg.role === 'replica' ? pg.lsn : undefined,
      replayedLsn: pg.isRunning && pg.role === 'replica' ? pg.lsn : undefined,
      isStreaming,
      upstream: pg.upstream,
      crashedAtMs: pg.crashedAtMs,
      controlState: undefined,
      serverVersion: 150000,
      postmasterStartTime: undefined,
      replayedTimestamp: null,
      isReplayPaused: false,
      replication: this.#standbysOf(node).map((standby) => ({
        usename: 'replicator',
        application_name: standby.name,
        client_addr: null,
        state: 'streaming',
        sync_state: 'async',
        sync_priority: 0,
      })),
      isPendingRestart: false,
      synchronousStandbyNames: pg.isRunning ? pg.ssn : undefined,
      standbyFlushLsn: Object.fromEntries(this.#standbysOf(node).map((standby) => [standby.name, standby.pg.lsn])),
    };
  }

  #standbysOf(node: SimNode): SimNode[] {
    if (!node.pg.isRunning || node.pg.role !== 'primary') return [];
    return this.nodes.filter((other) => other !== node && this.#streamingSource(other) === node);
  }

  /** What a running primary has acknowledged: everything (async), up to its sync standbys' flush, or nothing new (blocked). */
  #recordAcks(): void {
    for (const node of this.nodes) {
      if (!node.pg.isRunning || node.pg.role !== 'primary') continue;
      const guarantee = guaranteeOf(node.pg.ssn);
      let ackedTo: bigint | undefined;
      if (guarantee.isBlocking) ackedTo = undefined;
      else if (guarantee.count === 0) ackedTo = node.pg.lsn;
      else {
        const flushes = this.#standbysOf(node)
          .filter((standby) => guarantee.names.includes(standby.name))
          .map((standby) => standby.pg.lsn)
          .sort((a, b) => (a > b ? -1 : a < b ? 1 : 0));
        ackedTo = flushes.length >= guarantee.count ? flushes[guarantee.count - 1] : undefined;
      }
      const previous = this.#acked.get(node.pg.timeline) ?? 0n;
      if (ackedTo !== undefined && ackedTo > previous) {
        this.#acked.set(node.pg.timeline, ackedTo);
        this.ackedCommits++;
      }
    }
  }

  /** Time passes: primaries write, streaming replicas catch up, finished tasks take effect. */
  advanceTo(targetMs: number): void {
    while (this.nowMs < targetMs) {
      const step = Math.min(100, targetMs - this.nowMs);
      this.nowMs += step;
      for (const node of this.nodes) {
        if (node.pg.isRunning && node.pg.role === 'primary') node.pg.lsn += BigInt(step);
      }
      for (const node of this.nodes) {
        const source = this.#streamingSource(node);
        if (source !== undefined) {
          // Replicas trail a little on the same timeline, so which standby holds which commit matters.
          const lag = BigInt(Math.floor(this.#random() * 40));
          node.pg.lsn =
            node.pg.timeline === source.pg.timeline && source.pg.lsn - lag > node.pg.lsn
              ? source.pg.lsn - lag
              : node.pg.timeline === source.pg.timeline
                ? node.pg.lsn
                : source.pg.lsn;
          node.pg.timeline = source.pg.timeline;
          node.pg.forks = new Map(source.pg.forks);
        }
        if (node.task !== undefined && node.task.doneAtMs <= this.nowMs) {
          const task = node.task;
          node.task = undefined;
          task.apply();
          node.taskState = { kind: 'done', name: task.name, isOk: true, endedAtMs: this.nowMs };
          node.wakeAtMs = Math.min(node.wakeAtMs, this.nowMs);
        }
      }
      this.#recordAcks();
      this.checkInvariants();
    }
  }

  // ----- faults -----

  crashPostmaster(node: SimNode): void {
    if (!node.pg.isRunning) return;
    node.pg.isRunning = false;
    node.pg.crashedAtMs = this.nowMs;
    node.wakeAtMs = Math.min(node.wakeAtMs, this.nowMs + 1);
    this.log.push(`${this.nowMs}: FAULT postmaster of ${node.name} crashed`);
  }

  killAgent(node: SimNode, withPostmaster: boolean): void {
    node.isAgentAlive = false;
    node.task = undefined;
    if (withPostmaster) node.pg.isRunning = false;
    this.log.push(`${this.nowMs}: FAULT agent of ${node.name} killed${withPostmaster ? ' with its postmaster' : ''}`);
  }

  restartAgent(node: SimNode): void {
    if (node.isAgentAlive) return;
    node.isAgentAlive = true;
    // A new agent process has a new lease; the old one (and keys bound to it) expires on its own.
    this.#leases.delete(node.name);
    node.memory = initialMemory();
    node.lastRenewSentAtMs = undefined;
    node.taskState = { kind: 'idle' };
    node.wakeAtMs = this.nowMs + 10;
    this.log.push(`${this.nowMs}: agent of ${node.name} restarted`);
  }

  pauseAgent(node: SimNode, forMs: number): void {
    // A second SIGSTOP does not shorten the first one.
    node.pausedUntilMs = Math.max(node.pausedUntilMs, this.nowMs + forMs);
    node.wakeAtMs = Math.max(node.wakeAtMs, node.pausedUntilMs);
    this.log.push(`${this.nowMs}: FAULT agent of ${node.name} paused for ${forMs} ms`);
  }

  partition(node: SimNode, isPartitioned: boolean): void {
    node.isPartitioned = isPartitioned;
    node.partitionedSinceMs = undefined;
    this.log.push(`${this.nowMs}: FAULT ${node.name} ${isPartitioned ? 'cut off from' : 'reconnected to'} the DCS`);
  }

  // ----- one agent cycle -----

  #observe(node: SimNode): Observation {
    const isReachable = !node.isPartitioned;
    let dcs: Observation['dcs'];
    if (isReachable) {
      const view = this.#view();
      node.lastView = view;
      node.partitionedSinceMs = undefined;
      dcs = { kind: 'ok', view };
    } else {
      node.partitionedSinceMs ??= this.nowMs;
      dcs = { kind: 'unreachable', sinceMs: node.partitionedSinceMs, lastView: node.lastView };
    }
    const peers: PeerStatus[] =
      dcs.kind === 'ok' && dcs.view.leader === undefined
        ? this.nodes
            .filter((other) => other !== node)
            .map((other) => {
              const pg = this.#localPg(other);
              const isReachable = other.isAgentAlive && this.nowMs >= other.pausedUntilMs;
              return {
                name: other.name,
                isReachable,
                role: pg.isRunning ? pg.role : undefined,
                isRunning: pg.isRunning,
                walPosition: pg.isRunning ? other.pg.lsn : undefined,
                timeline: other.pg.timeline,
                tags: {},
                isStreaming: pg.isStreaming,
              };
            })
        : [];
    return {
      nowMs: this.nowMs,
      wallIso: new Date(this.nowMs).toISOString(),
      self: { name: node.name, tags: {}, canBootstrap: true },
      pg: this.#localPg(node),
      dcs,
      lock:
        node.lastRenewSentAtMs === undefined
          ? { lastRenewSentAtMs: undefined }
          : { lastRenewSentAtMs: node.lastRenewSentAtMs, ttlMs: SIM_TIMING.ttlMs },
      peers,
      task: node.task === undefined ? node.taskState : { kind: 'running', name: node.task.name, startedAtMs: this.nowMs },
      timing: SIM_TIMING,
      maximumLagOnFailover: 1048576,
      useRewind: true,
      useSlots: false,
      isPaused: false,
      leaderProbe: undefined,
      sync: this.sync,
    };
  }

  /** Runs one decision of `node` and applies its actions per the execution contract. */
  cycle(node: SimNode): Decision {
    const observation = this.#observe(node);
    const decision = decide(observation, node.memory);
    node.memory = decision.memory;
    this.#checkDecision(node, observation, decision);
    for (const action of decision.actions) {
      if (!this.#apply(node, action)) break;
    }
    if (!node.isPartitioned) this.#store.put(this.#keys.member(node.name), encodeMember(this.#memberRecord(node)), this.#lease(node));
    node.wakeAtMs = this.nowMs + Math.max(1, decision.wakeAfterMs) + Math.floor(this.#random() * 20);
    return decision;
  }

  #startTask(node: SimNode, name: TaskName, durationMs: number, apply: () => void): boolean {
    if (node.task !== undefined) return false;
    node.task = { name, doneAtMs: this.nowMs + durationMs, apply };
    node.taskState = { kind: 'running', name, startedAtMs: this.nowMs };
    return true;
  }

  #cloneFrom(node: SimNode, source: SimNode): void {
    node.pg = {
      ...node.pg,
      dataDir: 'initialized',
      isRunning: true,
      role: 'replica',
      timeline: source.pg.timeline,
      lsn: source.pg.lsn,
      upstream: source.name,
      crashedAtMs: undefined,
      forks: new Map(source.pg.forks),
    };
  }

  #apply(node: SimNode, action: Action): boolean {
    const sentAt = this.nowMs;
    const dcsOk = !node.isPartitioned;
    const leader = this.#keys.leader;
    switch (action.kind) {
      case 'acquireLeader':
        if (!dcsOk) return false;
        if (this.#store.get(leader) !== undefined) return false;
        this.#store.put(leader, node.name, this.#lease(node));
        node.lastRenewSentAtMs = sentAt;
        if (node.pg.isRunning && node.pg.role === 'primary') this.#checkKeepsAcked(node, 'took the lock back as a running primary');
        return true;
      case 'renewLeader':
        if (!dcsOk) return false;
        {
          const lease = this.#lease(node);
          const current = this.#store.get(leader);
          if (current?.value !== node.name) {
            node.lastRenewSentAtMs = undefined;
            return false;
          }
          if (current.lease !== lease) this.#store.put(leader, node.name, lease);
        }
        node.lastRenewSentAtMs = sentAt;
        return true;
      case 'releaseLeader':
        if (!dcsOk) return false;
        if (this.#leaderName() === node.name) this.#store.delete(leader);
        node.lastRenewSentAtMs = undefined;
        return true;
      case 'deleteStaleLeader':
        if (!dcsOk || String(this.#store.get(leader)?.modRevision) !== action.leader.modRevision) return false;
        return this.#store.delete(leader);
      case 'initializeCluster':
        if (!dcsOk || this.#store.get(this.#keys.initialize) !== undefined) return false;
        this.#store.put(this.#keys.initialize, '');
        return true;
      case 'publishInitialize':
        if (!dcsOk) return false;
        this.#store.put(this.#keys.initialize, action.sysid);
        return true;
      case 'abortBootstrap':
        if (this.#leaderName() === node.name) this.#store.delete(leader);
        this.#store.delete(this.#keys.initialize);
        node.pg = { ...node.pg, dataDir: 'missing', isRunning: false };
        return true;
      case 'publishStatus':
        if (!dcsOk) return false;
        this.#store.put(this.#keys.status, JSON.stringify({ optime: action.optime }));
        return true;
      case 'setSynchronousStandbyNames':
        if (!node.pg.isRunning) return false;
        node.pg.ssn = action.value;
        return true;
      case 'writeSync': {
        if (!dcsOk) return false;
        const current = this.#store.get(this.#keys.sync);
        if (String(current?.modRevision ?? 0) !== (node.lastView?.syncRevision ?? '0')) return false;
        if (action.state === undefined) this.#store.delete(this.#keys.sync);
        else this.#store.put(this.#keys.sync, JSON.stringify(action.state));
        return true;
      }
      case 'writeBootstrapConfig':
      case 'writeHistory':
      case 'clearFailover':
      case 'manageSlots':
        return dcsOk || action.kind === 'manageSlots';
      case 'copyLogicalSlots':
      case 'clearScheduledRestart':
      case 'reconfigure':
        return true;
      case 'detachUpstream':
        node.pg.upstream = undefined;
        return true;
      case 'followLeader':
        node.pg.upstream = action.upstream;
        return true;
      case 'demote':
        node.task = undefined;
        node.pg.isRunning = false;
        if ((action.mode === 'immediate' || action.mode === 'graceful') && this.#leaderName() === node.name && dcsOk)
          this.#store.delete(leader);
        this.log.push(`${this.nowMs}: ${node.name} demoted (${action.mode})`);
        return true;
      case 'bootstrap':
        return this.#startTask(node, 'bootstrap', 1500, () => {
          node.pg = {
            ...node.pg,
            dataDir: 'initialized',
            isRunning: true,
            role: 'primary',
            timeline: 1,
            lsn: 100n,
            upstream: undefined,
            crashedAtMs: undefined,
          };
        });
      case 'basebackup':
      case 'reinitialize': {
        const source = this.node(action.from);
        return this.#startTask(node, action.kind === 'basebackup' ? 'basebackup' : 'reinitialize', 1000, () => {
          if (source.pg.isRunning) this.#cloneFrom(node, source);
        });
      }
      case 'rewind': {
        const source = this.node(action.from);
        node.pg.isRunning = false;
        return this.#startTask(node, 'rewind', 500, () => {
          if (source.pg.isRunning && source.pg.role === 'primary') this.#cloneFrom(node, source);
        });
      }
      case 'promote':
        return this.#startTask(node, 'promote', 60, () => {
          if (!node.pg.isRunning) return;
          this.#checkKeepsAcked(node, 'promoted');
          const timeline = this.#nextTimeline++;
          node.pg.forks.set(node.pg.timeline, node.pg.lsn);
          node.pg = { ...node.pg, role: 'primary', timeline, upstream: undefined };
          this.log.push(`${this.nowMs}: ${node.name} promoted to timeline ${timeline}`);
        });
      case 'restart':
        node.pg.isRunning = false;
        return this.#startTask(node, 'restart', 300, () => {
          node.pg = {
            ...node.pg,
            isRunning: true,
            role: action.asPrimary ? 'primary' : 'replica',
            crashedAtMs: undefined,
            upstream: action.upstream,
          };
        });
      case 'startPrimary':
        return this.#startTask(node, 'start', 300, () => {
          node.pg = { ...node.pg, isRunning: true, role: 'primary', crashedAtMs: undefined, upstream: undefined };
        });
      case 'startReplica':
        return this.#startTask(node, 'start', 300, () => {
          node.pg = {
            ...node.pg,
            isRunning: true,
            role: node.pg.role === 'primary' && node.pg.isRunning ? 'primary' : 'replica',
            crashedAtMs: undefined,
            upstream: action.upstream,
          };
        });
    }
  }

  // ----- invariants -----

  /** Synchronous mode: a node that becomes the writable leader must hold every commit any primary acknowledged. */
  #checkKeepsAcked(node: SimNode, what: string): void {
    if (this.sync.mode === 'off') return;
    for (const [timeline, acked] of this.#acked) {
      const reached = node.pg.timeline === timeline ? node.pg.lsn : node.pg.forks.get(timeline);
      if (reached === undefined || reached < acked) {
        this.violations.push({
          atMs: this.nowMs,
          message: `${node.name} ${what} on timeline ${node.pg.timeline} at ${node.pg.lsn}, but commits up to ${acked} were acknowledged on timeline ${timeline} (reached ${reached ?? 'never'}): lost`,
        });
      }
    }
  }

  #hasValidDeadline(node: SimNode): boolean {
    return node.lastRenewSentAtMs !== undefined && this.nowMs < lockDeadlineMs(node.lastRenewSentAtMs, SIM_TIMING.ttlMs);
  }

  #checkDecision(node: SimNode, observation: Observation, decision: Decision): void {
    const view = observation.dcs.kind === 'ok' ? observation.dcs.view : undefined;
    for (const action of decision.actions) {
      const startsPrimary = action.kind === 'promote' || action.kind === 'startPrimary' || (action.kind === 'restart' && action.asPrimary);
      if (startsPrimary && (!this.#hasValidDeadline(node) || view?.leader?.name !== node.name)) {
        this.violations.push({
          atMs: this.nowMs,
          message: `${node.name} decided ${action.kind} without holding the lock (${decision.reason})`,
        });
      }
      if (action.kind === 'acquireLeader' && view?.leader !== undefined) {
        this.violations.push({ atMs: this.nowMs, message: `${node.name} raced although ${view.leader.name} holds the lock` });
      }
    }
  }

  /**
   * After every step: (1) at most one writable primary among nodes whose lock deadline is valid; (2) a writable
   * primary whose agent runs (not killed, not paused) never outlives its deadline by more than one scheduling slot.
   */
  checkInvariants(): void {
    const writable = this.nodes.filter((node) => node.pg.isRunning && node.pg.role === 'primary');
    const withLock = writable.filter((node) => this.#hasValidDeadline(node));
    if (withLock.length > 1)
      this.violations.push({
        atMs: this.nowMs,
        message: `two writable primaries with valid locks: ${withLock.map((node) => node.name).join(', ')}`,
      });
    for (const node of writable) {
      // A resumed agent's overdue fence timer fires at once (SIGCONT); give its first cycle one slot to run.
      const isAgentRunning = node.isAgentAlive && this.nowMs >= node.pausedUntilMs + 200;
      if (!isAgentRunning || node.lastRenewSentAtMs === undefined) continue;
      if (this.nowMs > lockDeadlineMs(node.lastRenewSentAtMs, SIM_TIMING.ttlMs) + 150) {
        this.violations.push({ atMs: this.nowMs, message: `${node.name} is a writable primary past its lock deadline` });
      }
    }
    // Stronger, real-world form: a second node may be writable only after the first one's lock could have expired.
    if (writable.length > 1) {
      const holder = this.#store.get(this.#keys.leader)?.value;
      const others = writable.filter((node) => node.name !== holder && this.#hasValidDeadline(node));
      if (others.length > 0)
        this.violations.push({
          atMs: this.nowMs,
          message: `writable primary ${others.map((node) => node.name).join(', ')} believes it holds a lock that ${holder ?? 'nobody'} holds`,
        });
    }
  }

  /** Exactly one primary holding the lock; everyone else a running replica streaming from it. */
  convergence(): string | undefined {
    const leader = this.#store.get(this.#keys.leader)?.value;
    if (leader === undefined) return 'no leader';
    const primary = this.node(leader);
    if (!primary.pg.isRunning || primary.pg.role !== 'primary') return `leader ${leader} is not a running primary`;
    for (const node of this.nodes) {
      if (node === primary) continue;
      if (!node.pg.isRunning || node.pg.role !== 'replica') return `${node.name} is not a running replica`;
      if (this.#streamingSource(node) !== primary) return `${node.name} does not stream from ${leader}`;
    }
    return undefined;
  }
}
