// The simulated cluster: N real Agents (the agent's own shell, cycle, executor and core) on simulated time, each with
// a MemoryDcs client of one shared store, a node of the in-memory PostgreSQL model and peers that answer from the
// real REST status document. Faults and operator actions come from a seeded PRNG; invariants are checked after every
// step of simulated time.
import { Agent } from '../../src/agent/loop.js';
import { statusDocument } from '../../src/api/routes.js';
import { decide, RULES } from '../../src/core/decide.js';
import { checkKeepsAcknowledged, checkWritablePrimaries, type InvariantViolation } from '../../src/core/invariants.js';
import { lockDeadlineOf } from '../../src/core/lease.js';
import type { FailsafeRequest, PeerClient } from '../../src/core/ports.js';
import { guaranteeOf } from '../../src/core/sync-standby-names.js';
import type { DynamicConfig, MemberRecord, PeerStatus, SyncSettings } from '../../src/core/types.js';
import { ClusterKeys } from '../../src/dcs/keys.js';
import { MemoryDcs, MemoryDcsStore } from '../../src/dcs/memory/memory-dcs.js';
import { peerStatusFromDocument } from '../../src/peers/http-peer-client.js';
import { PgwardenError } from '../../src/util/errors.js';
import type { Log } from '../../src/util/log.js';
import { mulberry32 } from '../../src/util/prng.js';
import { MemoryPgCluster } from '../../src/postgres/memory/memory-pg.js';
import { SimFence } from './sim-fence.js';
import { SimProcess, SimRuntime } from './sim-runtime.js';

export const SIM_TIMING = { ttlMs: 5000, loopWaitMs: 1000, retryTimeoutMs: 2000 };
const SCOPE = 'sim';
const NAMESPACE = '/service';
/** The world's physics step: primaries write, replicas replay. */
const PHYSICS_STEP_MS = 100;
/** How late a running agent may act on its own deadline: its fence fires at the deadline, the stop lands a moment later. */
const DEADLINE_GRACE_MS = 150;
/** A resumed agent's overdue fence timer fires at once (SIGCONT); its stop needs one slot to land. */
const RESUME_GRACE_MS = 200;

export interface SimOptions {
  readonly sync?: SyncSettings | undefined;
  /** Rule names to leave out of decide(): proves each safety rule is needed. */
  readonly withoutRules?: readonly string[] | undefined;
  /** Runs the agents without their lease fence, so the rules alone must keep the invariants. */
  readonly withoutFence?: boolean | undefined;
  /**
   * Runs the nodes without their fence process: a frozen or killed agent's primary then stays writable beside the
   * next one (what the strict one-writable-primary invariant catches).
   */
  readonly withoutFenceProcess?: boolean | undefined;
  /**
   * Checks that no two members are ever writable at once (default: when the fence process runs; without it a frozen
   * agent's primary stays writable, which the rule-mutation runs do not judge).
   */
  readonly checksOneWritable?: boolean | undefined;
  /** A change to what decide() sees or returns (a safety rule weakened), to prove the invariants catch it. */
  readonly mutateDecide?: ((decideFunction: typeof decide) => typeof decide) | undefined;
  /** failsafe_mode: true in the dynamic config (Patroni 3.0+). */
  readonly failsafeMode?: boolean | undefined;
}

export interface SimNode {
  readonly name: string;
  process: SimProcess;
  agent: Agent;
  /** The node's DCS client without the gate, to cut it off from the store (a partition). */
  dcs: MemoryDcs;
  isPartitioned: boolean;
  /** A silent host (power loss, blackhole): cut off from the DCS and from every peer, both ways; nothing refuses. */
  isSilent?: boolean;
  /** Its writes time out while its reads still work (a one-way partition, an overloaded etcd leader). */
  areWritesCut: boolean;
  /** The node's fence process: it outlives agent restarts, as the real one outlives its agent. */
  readonly fence: SimFence;
}

const DCS_WRITES = new Set([
  'acquireLeader',
  'renewLeader',
  'releaseLeader',
  'touchMember',
  'deleteLeaderIfUnchanged',
  'setStatus',
  'setHistory',
  'setSync',
  'setFailover',
  'setConfig',
  'initialize',
  'setInitialize',
  'setFailsafe',
  'beatHeartbeat',
  'deleteSilentLeader',
]);

/** The DCS as `node` reaches it: every write fails as unavailable while its writes are cut. */
function withCuttableWrites(dcs: MemoryDcs, isCut: () => boolean): MemoryDcs {
  return new Proxy(dcs, {
    get: (target, property, receiver) => {
      const value: unknown = Reflect.get(target, property, receiver);
      if (typeof value !== 'function') return value;
      const method = value as (...args: unknown[]) => Promise<unknown>;
      if (typeof property === 'string' && DCS_WRITES.has(property)) {
        return async (...args: unknown[]) => {
          if (isCut()) throw new PgwardenError('PGW_DCS_UNAVAILABLE', `simulated write timeout (${property})`, { isRetryable: true });
          return method.apply(target, args);
        };
      }
      return method.bind(target);
    },
  });
}

export interface Violation {
  readonly atMs: number;
  readonly invariant: string;
  readonly message: string;
}

/** A Log that keeps what the agent says: errors carrying an `invariant` are the agent's own safety checks failing. */
const isVerbose = process.env.PGWARDEN_SIM_VERBOSE === '1';

function simLog(world: SimWorld, name: string): Log {
  const say = (level: string) => (fields: Record<string, unknown>, message: string) => {
    const dump = process.env.PGWARDEN_SIM_DUMP;
    if (isVerbose && dump !== undefined && message.includes(dump)) {
      const agent = world.nodes.find((node) => node.name === name)?.agent;
      world.events.push(
        `${world.runtime.nowMs}: DUMP sync=${world.store.get(world.keys.sync)?.value ?? 'none'} lock=${JSON.stringify(agent?.lock())} peers=${JSON.stringify(agent?.lastObservation()?.peers, (_k, v: unknown) => (typeof v === 'bigint' ? String(v) : v))} pg=${world.nodes.map((other) => `${other.name}:${world.pg.inspect(other.name).lsn}/snap:${other.agent.snapshot().pg.receivedLsn}/${other.agent.snapshot().pg.replayedLsn}/${other.agent.snapshot().pg.isStreaming}/at${other.agent.snapshot().lastCycleAtMs}`).join(',')}`,
      );
    }
    if (isVerbose)
      world.events.push(
        `${world.runtime.nowMs}: ${name} ${level} ${message} ${JSON.stringify(fields, (_k, v: unknown) => (typeof v === 'bigint' ? String(v) : v))}`,
      );
  };
  const log: Log = {
    info: say('info'),
    warn: (fields: Record<string, unknown>, message: string) => {
      say('warn')(fields, message);
      world.warnings.push({ name, message, fields });
    },
    debug: () => undefined,
    error: (fields: Record<string, unknown>, message: string) => {
      say('error')(fields, message);
      if (typeof fields.invariant === 'string') world.recordViolation({ invariant: fields.invariant, message: `${name}: ${message}` });
    },
    child: () => log,
  } as unknown as Log;
  return log;
}

export class SimWorld {
  readonly runtime = new SimRuntime();
  readonly nodes: SimNode[] = [];
  readonly violations: Violation[] = [];
  /** Every warning an agent logged: tests assert what an operator is told. */
  readonly warnings: { readonly name: string; readonly message: string; readonly fields: Record<string, unknown> }[] = [];
  readonly events: string[] = [];
  readonly sync: SyncSettings;
  readonly pg: MemoryPgCluster;
  readonly store: MemoryDcsStore;
  readonly keys = new ClusterKeys(NAMESPACE, SCOPE);
  readonly #random: () => number;
  readonly #options: SimOptions;
  readonly #config: DynamicConfig;
  /** timeline -> highest WAL position a primary on it acknowledged to a client as committed. */
  readonly #acked = new Map<number, bigint>();
  ackedCommits = 0;
  /** Promotions seen (a node reaching a timeline higher than any before). */
  promotions = 0;
  #highestTimeline = 1;
  /** Who was the confirmed writable leader at the last step (a new one must hold every acknowledged commit). */
  #lastWritableLeader: string | undefined;

  constructor(seed: number, names: readonly string[], options: SimOptions = {}) {
    this.#options = options;
    this.sync = options.sync ?? { mode: 'off', isStrict: false, nodeCount: 1 };
    this.#random = mulberry32(seed);
    const worldClock = this.runtime.clockFor(undefined);
    this.store = new MemoryDcsStore(worldClock);
    this.pg = new MemoryPgCluster({ clock: worldClock, random: this.#random, timelineIds: 'cluster-unique' });
    this.#config = {
      ttl: SIM_TIMING.ttlMs / 1000,
      loop_wait: SIM_TIMING.loopWaitMs / 1000,
      retry_timeout: SIM_TIMING.retryTimeoutMs / 1000,
      maximum_lag_on_failover: 1048576,
      ...(this.sync.mode === 'off'
        ? {}
        : {
            synchronous_mode: this.sync.mode === 'quorum' ? 'quorum' : true,
            synchronous_mode_strict: this.sync.isStrict,
            synchronous_node_count: this.sync.nodeCount,
          }),
      slots: { permanent_physical: { type: 'physical' } },
      ...(options.failsafeMode === true ? { failsafe_mode: true } : {}),
    };
    for (const name of names) this.nodes.push(this.#startAgent(name, undefined));
  }

  random(): number {
    return this.#random();
  }

  node(name: string): SimNode {
    return this.nodes.find((node) => node.name === name)!;
  }

  recordViolation(violation: Omit<Violation, 'atMs'>): void {
    this.violations.push({ atMs: this.runtime.nowMs, ...violation });
  }

  #decide(): typeof decide | undefined {
    const without = this.#options.withoutRules ?? [];
    const mutate = this.#options.mutateDecide;
    if (without.length === 0 && mutate === undefined) return undefined;
    const rules = RULES.filter(([name]) => !without.includes(name));
    const base: typeof decide = (obs, mem) => decide(obs, mem, rules);
    return mutate === undefined ? base : mutate(base);
  }

  #startAgent(name: string, previous: SimNode | undefined): SimNode {
    const process = new SimProcess(this.runtime, name);
    const dcs = new MemoryDcs(this.store, { namespace: NAMESPACE, scope: SCOPE, member: name });
    if (previous?.isPartitioned === true || this.#isDcsDown) dcs.setReachable(false);
    let node: SimNode | undefined;
    const fence =
      previous?.fence ?? new SimFence(this.runtime, this.pg, name, (message) => this.events.push(`${this.runtime.nowMs}: ${message}`));
    const agent = new Agent({
      identity: {
        name,
        connUrl: `postgres://${name}:5432/postgres`,
        apiUrl: `http://${name}:8008/patroni`,
        version: '3.0.2',
        tags: {},
      },
      scope: SCOPE,
      canBootstrap: true,
      bootstrapConfig: this.#config,
      isFastDeadLeaderEnabled: true,
      isCheckingInvariants: true,
      localParameters: {},
      dcs: process.gatePort(withCuttableWrites(dcs, () => node?.areWritesCut === true)),
      pg: process.gatePort(this.pg.node(name)),
      peers: process.gatePort(new SimPeers(this, name)),
      clock: process.clock(),
      log: simLog(this, name),
      decide: this.#decide(),
      isLeaseFenceEnabled: this.#options.withoutFence !== true,
      externalFence: this.#options.withoutFenceProcess === true ? undefined : fence,
    });
    agent.start();
    if (previous === undefined) {
      node = { name, process, agent, dcs, isPartitioned: false, areWritesCut: false, fence };
      return node;
    }
    node = previous;
    return { ...previous, process, agent, dcs };
  }

  #physicsAtMs = 0;

  /** Primaries write and replicas replay, in steps of at most PHYSICS_STEP_MS, up to `toMs`. */
  #passTime(toMs: number): void {
    while (this.#physicsAtMs < toMs) {
      const step = Math.min(PHYSICS_STEP_MS, toMs - this.#physicsAtMs);
      this.#physicsAtMs += step;
      this.pg.advance(step);
      this.#recordAcks();
    }
  }

  /** Runs the world until `targetMs`, checking the invariants after every step. */
  async runUntil(targetMs: number): Promise<void> {
    await this.runtime.runUntil(
      targetMs,
      () => this.checkInvariants(),
      (toMs) => this.#passTime(toMs),
    );
  }

  // ----- faults and operator actions -----

  crashPostmaster(node: SimNode): void {
    if (!this.pg.inspect(node.name).isRunning) return;
    this.pg.crash(node.name);
    this.events.push(`${this.runtime.nowMs}: FAULT postmaster of ${node.name} crashed`);
  }

  killAgent(node: SimNode, withPostmaster: boolean): void {
    if (!node.process.isAlive) return;
    node.process.isAlive = false;
    if (withPostmaster) this.pg.kill(node.name);
    this.events.push(`${this.runtime.nowMs}: FAULT agent of ${node.name} killed${withPostmaster ? ' with its postmaster' : ''}`);
  }

  restartAgent(node: SimNode): void {
    if (node.process.isAlive) return;
    // A new agent process has a new lease; the old one (and keys bound to it) expires on its own.
    const restarted = this.#startAgent(node.name, node);
    Object.assign(node, restarted);
    this.events.push(`${this.runtime.nowMs}: agent of ${node.name} restarted`);
  }

  pauseAgent(node: SimNode, forMs: number): void {
    // A second SIGSTOP does not shorten the first one.
    node.process.pausedUntilMs = Math.max(node.process.pausedUntilMs, this.runtime.nowMs + forMs);
    this.events.push(`${this.runtime.nowMs}: FAULT agent of ${node.name} frozen for ${forMs} ms`);
  }

  #isDcsDown = false;

  /** The whole DCS is gone for everyone (etcd quorum lost), on top of any single-node partition. */
  dcsOutage(isDown: boolean): void {
    this.#isDcsDown = isDown;
    for (const node of this.nodes) node.dcs.setReachable(!node.isPartitioned && !isDown);
    this.events.push(`${this.runtime.nowMs}: FAULT the DCS is ${isDown ? 'down for every member' : 'back'}`);
  }

  partition(node: SimNode, isPartitioned: boolean): void {
    node.isPartitioned = isPartitioned;
    node.dcs.setReachable(!isPartitioned && !this.#isDcsDown);
    this.events.push(`${this.runtime.nowMs}: FAULT ${node.name} ${isPartitioned ? 'cut off from' : 'reconnected to'} the DCS`);
  }

  /** A silent host: the DCS and every peer stop hearing it, and it them; its processes run on (its fence too). */
  silence(node: SimNode, isSilent: boolean): void {
    node.isSilent = isSilent;
    node.isPartitioned = isSilent;
    node.dcs.setReachable(!isSilent && !this.#isDcsDown);
    this.events.push(`${this.runtime.nowMs}: FAULT ${node.name} ${isSilent ? 'went silent (blackhole)' : 'is heard again'}`);
  }

  /** What an operator does with `pgwarden pause` / `resume`: the dynamic config's pause flag. */
  setMaintenance(isPaused: boolean): void {
    const current = this.store.get(this.keys.config);
    if (current === undefined) return;
    const config = JSON.parse(current.value) as Record<string, unknown>;
    this.store.put(this.keys.config, JSON.stringify({ ...config, pause: isPaused }));
    this.events.push(`${this.runtime.nowMs}: operator ${isPaused ? 'paused' : 'resumed'} the cluster`);
  }

  cutWrites(node: SimNode, isCut: boolean): void {
    node.areWritesCut = isCut;
    this.events.push(`${this.runtime.nowMs}: FAULT ${node.name}'s DCS writes ${isCut ? 'time out' : 'work again'}`);
  }

  /** What `pgwarden edit-config --set ttl=N` does: a new ttl in the dynamic config. */
  raiseTtl(ttlSeconds: number): void {
    const current = this.store.get(this.keys.config);
    if (current === undefined) return;
    const config = JSON.parse(current.value) as Record<string, unknown>;
    this.store.put(this.keys.config, JSON.stringify({ ...config, ttl: ttlSeconds }));
    this.events.push(`${this.runtime.nowMs}: operator set ttl to ${ttlSeconds} s`);
  }

  /** Another tool writing the config key directly (no REST validation): `patch` merged into it. */
  writeConfigDirectly(patch: Readonly<Record<string, unknown>>): void {
    const current = this.store.get(this.keys.config);
    if (current === undefined) return;
    const config = JSON.parse(current.value) as Record<string, unknown>;
    this.store.put(this.keys.config, JSON.stringify({ ...config, ...patch }));
    this.events.push(`${this.runtime.nowMs}: another tool wrote ${JSON.stringify(patch)} into the config key`);
  }

  /** What POST /switchover writes (after the API's own checks): the failover key, to any or a named member. */
  requestSwitchover(candidate: string | undefined): void {
    const leader = this.store.get(this.keys.leader)?.value;
    if (leader === undefined || this.store.get(this.keys.failover) !== undefined || candidate === leader) return;
    this.store.put(this.keys.failover, JSON.stringify({ leader, ...(candidate !== undefined ? { member: candidate } : {}) }));
    this.events.push(`${this.runtime.nowMs}: operator asked for a switchover from ${leader} to ${candidate ?? 'anyone'}`);
  }

  /** What POST /restart {schedule} does on one member. */
  scheduleRestart(node: SimNode, inMs: number, role: string | undefined): void {
    if (!node.process.isAlive) return;
    const at = new Date(Date.parse(this.runtime.wallIso()) + inMs).toISOString();
    if (node.agent.scheduleRestart(at, { role, isPendingOnly: false })) {
      this.events.push(
        `${this.runtime.nowMs}: operator scheduled a restart of ${node.name} at ${at}${role !== undefined ? ` (${role})` : ''}`,
      );
    }
  }

  // ----- invariants -----

  /** What a running primary has acknowledged: everything (async), up to its sync standbys' flush, or nothing (blocked). */
  #recordAcks(): void {
    for (const node of this.nodes) {
      const pg = this.pg.inspect(node.name);
      if (!pg.isRunning || pg.role !== 'primary') continue;
      const guarantee = guaranteeOf(pg.ssn);
      let ackedTo: bigint | undefined;
      if (guarantee.isBlocking) ackedTo = undefined;
      else if (guarantee.count === 0) ackedTo = pg.lsn;
      else {
        const flushes = this.pg
          .standbysOf(node.name)
          .filter((standby) => guarantee.names.includes(standby))
          .map((standby) => this.pg.inspect(standby).lsn)
          .sort((a, b) => (a > b ? -1 : a < b ? 1 : 0));
        ackedTo = flushes.length >= guarantee.count ? flushes[guarantee.count - 1] : undefined;
      }
      const previous = this.#acked.get(pg.timeline) ?? 0n;
      if (ackedTo !== undefined && ackedTo > previous) {
        this.#acked.set(pg.timeline, ackedTo);
        this.ackedCommits++;
      }
    }
  }

  #lockDeadline(node: SimNode): number | undefined {
    return lockDeadlineOf(node.agent.lock());
  }

  checkInvariants(): void {
    const now = this.runtime.nowMs;
    const states = this.nodes.map((node) => {
      const pg = this.pg.inspect(node.name);
      return {
        name: node.name,
        isWritablePrimary: pg.isRunning && pg.role === 'primary' && !pg.isFrozen,
        lockDeadlineMs: this.#lockDeadline(node),
        isAgentRunning: node.process.isAlive && now >= node.process.pausedUntilMs + RESUME_GRACE_MS,
      };
    });
    for (const node of this.nodes) {
      const timeline = this.pg.inspect(node.name).timeline;
      if (timeline > this.#highestTimeline) {
        this.#highestTimeline = timeline;
        this.promotions++;
        this.events.push(`${now}: ${node.name} promoted to timeline ${timeline}`);
      }
    }
    const found: InvariantViolation[] = [...checkWritablePrimaries(states, now, DEADLINE_GRACE_MS)];
    // Whatever its agent does (frozen, killed), a node's primary stops at the deadline its fence enforces, and so no
    // write is ever acknowledged by one member while another is writable.
    if (this.#options.withoutFenceProcess !== true)
      for (const node of this.nodes) {
        if (states.find((state) => state.name === node.name)?.isWritablePrimary !== true) continue;
        // The lock deadline kills; the heartbeat window freezes: past either, the node must not be writable.
        const instants = [
          ['no-primary-past-fence-deadline', node.fence.deadlineMs, 'its fence deadline'],
          ['no-primary-past-heartbeat-window', node.fence.freezeAtMs, 'its heartbeat window (its fence should have frozen it)'],
        ] as const;
        for (const [invariant, atMs, what] of instants)
          if (atMs !== undefined && now > atMs + DEADLINE_GRACE_MS)
            found.push({ invariant, message: `${node.name} is a writable primary past ${what}` });
      }
    const writableNow = states.filter((state) => state.isWritablePrimary);
    const checksOneWritable = this.#options.checksOneWritable ?? this.#options.withoutFenceProcess !== true;
    if (checksOneWritable && writableNow.length > 1)
      found.push({
        invariant: 'one-writable-primary',
        message: `${writableNow.map((state) => state.name).join(' and ')} are writable primaries at the same time`,
      });
    // Stronger, real-world form: a second node may be writable only after the first one's lock could have expired.
    const holder = this.store.get(this.keys.leader)?.value;
    const writable = states.filter((state) => state.isWritablePrimary);
    if (writable.length > 1) {
      const others = writable.filter((state) => state.name !== holder && state.lockDeadlineMs !== undefined && now < state.lockDeadlineMs);
      if (others.length > 0) {
        found.push({
          invariant: 'single-writable-primary',
          message: `writable primary ${others.map((state) => state.name).join(', ')} believes it holds a lock that ${holder ?? 'nobody'} holds`,
        });
      }
    }
    const leader = writable.find((state) => state.name === holder && state.lockDeadlineMs !== undefined && now < state.lockDeadlineMs);
    if (leader !== undefined && leader.name !== this.#lastWritableLeader && this.sync.mode !== 'off') {
      const pg = this.pg.inspect(leader.name);
      found.push(...checkKeepsAcknowledged(leader.name, { timeline: pg.timeline, lsn: pg.lsn, forks: pg.forks }, this.#acked));
    }
    this.#lastWritableLeader = leader?.name ?? (holder === undefined ? undefined : this.#lastWritableLeader);
    for (const violation of found) this.recordViolation(violation);
  }

  /** Exactly one primary holding the lock; everyone else a running replica streaming from it. */
  convergence(): string | undefined {
    const leader = this.store.get(this.keys.leader)?.value;
    if (leader === undefined) return 'no leader';
    const primary = this.pg.inspect(leader);
    if (!primary.isRunning || primary.role !== 'primary') return `leader ${leader} is not a running primary`;
    for (const node of this.nodes) {
      if (node.name === leader) continue;
      const pg = this.pg.inspect(node.name);
      if (!pg.isRunning || pg.role !== 'replica') return `${node.name} is not a running replica`;
      if (this.pg.streamingSource(node.name) !== leader) return `${node.name} does not stream from ${leader}`;
    }
    return undefined;
  }

  /** Ends the run: every agent process is gone, so no promise chain of theirs runs again. */
  stop(): void {
    for (const node of this.nodes) node.process.isAlive = false;
  }

  leaderName(): string | undefined {
    return this.store.get(this.keys.leader)?.value;
  }
}

function abortedBy(signal: AbortSignal): Promise<never> {
  return new Promise((_resolve, reject) => {
    const fail = (): void => reject(signal.reason instanceof Error ? signal.reason : new Error('aborted'));
    if (signal.aborted) fail();
    else signal.addEventListener('abort', fail, { once: true });
  });
}

/** Peers as the agent's HTTP peer client sees them: the other agent's real /patroni document, or no answer. */
class SimPeers implements PeerClient {
  readonly #world: SimWorld;
  readonly #self: string;

  constructor(world: SimWorld, self: string) {
    this.#world = world;
    this.#self = self;
  }

  /** Whether the network between this agent and `node` drops everything (either one is a silent host). */
  #isCutFrom(node: SimNode): boolean {
    return node.isSilent === true || this.#world.nodes.find((candidate) => candidate.name === this.#self)?.isSilent === true;
  }

  async fetchStatus(member: MemberRecord, signal: AbortSignal): Promise<PeerStatus> {
    const node = this.#world.nodes.find((candidate) => candidate.name === member.name);
    if (node !== undefined && member.name !== this.#self && this.#isCutFrom(node)) await abortedBy(signal);
    if (node === undefined || !node.process.isRunning() || member.name === this.#self) {
      return {
        name: member.name,
        isReachable: false,
        role: undefined,
        isRunning: false,
        walPosition: undefined,
        timeline: undefined,
        tags: {},
      };
    }
    // The peer reads its positions per request, as its REST API does; a peer frozen meanwhile answers nothing in time.
    const snapshot = await Promise.race([node.agent.freshSnapshot(), abortedBy(signal)]);
    return peerStatusFromDocument(member, statusDocument(snapshot));
  }

  /** POST /failsafe to the other agent's real handler; a dead agent refuses at once, a frozen one never answers in time. */
  async postFailsafe(apiUrl: string, request: FailsafeRequest, signal: AbortSignal): Promise<boolean> {
    const node = this.#world.nodes.find((candidate) => apiUrl === `http://${candidate.name}:8008/patroni`);
    if (node === undefined || !node.process.isAlive || node.name === this.#self) return false;
    if (!node.process.isRunning() || this.#isCutFrom(node)) return abortedBy(signal).catch(() => false);
    const receipt = node.agent.receiveFailsafe(request);
    return receipt.status === 200 && receipt.message === 'Accepted';
  }

  /** A dead agent's API port refuses; a frozen one accepts (the kernel does) but never answers. */
  async probeRefused(member: MemberRecord): Promise<{ readonly isApiRefused: boolean; readonly isPgRefused: boolean }> {
    const node = this.#world.nodes.find((candidate) => candidate.name === member.name);
    if (node === undefined) return { isApiRefused: true, isPgRefused: true };
    // Dropped packets are not refusals: a silent host never looks dead to this fast path.
    if (this.#isCutFrom(node)) return { isApiRefused: false, isPgRefused: false };
    return { isApiRefused: !node.process.isAlive, isPgRefused: !this.#world.pg.inspect(member.name).isRunning };
  }
}
