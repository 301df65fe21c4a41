// The fault injectors as one table: for every fault kind, the networks a run needs for it, how to inject it, how
// long it stays, and how to heal it. The runner only walks the schedule and calls the row of each fault.
import { createRestClient } from '../util/rest-client.js';
import { setTimeout as sleep } from 'node:timers/promises';
import type { LocalCluster } from '../local/local-cluster.js';
import { processTree, signalAll } from '../local/process.js';
import { PgwardenError } from '../util/errors.js';
import { isWaitTimeout, waitUntil } from '../util/wait-until.js';
import type { FailoverExpectation } from './checker.js';
import { FAULT_KINDS, type Fault, type FaultKind } from './schedule.js';

/** How the run's members reach each other (see ChaosOptions.network). */
export type ChaosNetwork = 'loopback' | 'netns' | 'relay';

export interface FaultContext {
  readonly cluster: LocalCluster;
  readonly fault: Fault;
  /** The leader when the fault is injected. */
  readonly leader: string;
  /** The replica `fault.pick` chooses among the sorted non-leaders (the leader when there is none). */
  readonly replica: string;
  /** The run's ttl in seconds. */
  readonly ttlS: number;
  /** Processes under SIGSTOP right now: an interrupted run resumes them before it stops the cluster. */
  readonly stopped: Set<number>;
}

export interface Injected<S> {
  /** What the fault hit, for the report: a member, an etcd member, or a description. */
  readonly target: string;
  /** What heal needs to undo this injection. */
  readonly state: S;
}

export interface FaultInjector<S> {
  /** The networks on which this fault can be made; the default kinds of a run are those its network allows. */
  readonly runsOn: readonly ChaosNetwork[];
  /** What a run needs for it, for the error when it was asked for on another network. */
  readonly needs: string;
  /** Whether the fault must cause a failover, must not (quorum intact: a false failover), or may. */
  readonly failover: FailoverExpectation;
  /** How long the fault stays in place between inject and heal (at most, when `hold` ends it earlier). */
  holdMs(context: FaultContext): number;
  inject(context: FaultContext): Promise<Injected<S>>;
  /** What happens between inject and heal, when it is more than waiting holdMs (the default). */
  hold?(context: FaultContext, state: S): Promise<void>;
  heal(context: FaultContext, state: S): Promise<void>;
  /** The target for the report once healed, when the fault hit more than what inject returned (repeated kills). */
  describe?(state: S): string;
}

const ANY_NETWORK: readonly ChaosNetwork[] = ['loopback', 'relay', 'netns'];
const NETNS_ONLY: readonly ChaosNetwork[] = ['netns'];
const NEEDS_NOTHING = 'nothing beyond a local cluster';
const NEEDS_NETNS = 'every member in its own network namespace (root)';

/**
 * A killed process stays down this long before it is started again: the others notice it is gone, and the rejoin
 * happens while the failover may still be settling, which is where rejoin bugs hide.
 */
const RESTART_DELAY_MS = 2000;
/** Longer than the lease: the primary must have fenced itself and another member taken over before the heal. */
const pastTtlMs = (context: FaultContext): number => (context.ttlS + 3) * 1000;
/** Network degradation short of a lease loss: long enough for several renewals and replication round trips. */
const DEGRADED_MS = 8000;
/** A full disk stays full this long: writes fail for a while, and the agent must keep running through it. */
const FULL_DISK_MS = 10_000;
const QUORUM_BACK_TIMEOUT_MS = 30_000;
/** A fault that must force a failover stays this long after the new leader is seen: the old primary rejoins later. */
const AFTER_FAILOVER_MS = 2000;
/** kill-etcd-leader: how many raft leaders one fault kills, and the pause between a restart and the next kill. */
const ETCD_LEADER_KILLS = 3;
const ETCD_BETWEEN_KILLS_MS = 2000;
/** An etcd cluster with quorum elects a leader within a few election timeouts (1 s here). */
const ETCD_LEADER_TIMEOUT_MS = 15_000;

/** Keeps each row's state type while the table holds rows of different states (heal is a method: bivariant). */
const row = <S>(injector: FaultInjector<S>): FaultInjector<unknown> => injector;

async function killAgentAndPostmaster(cluster: LocalCluster, name: string): Promise<void> {
  const postmaster = await cluster.postmasterPid(name);
  cluster.killAgent(name, 'SIGKILL');
  if (postmaster !== undefined) signalAll([postmaster], 'SIGKILL');
}

function labOf(context: FaultContext): NonNullable<LocalCluster['lab']> {
  const lab = context.cluster.lab;
  if (lab === undefined)
    throw new PgwardenError('PGW_CHAOS_FAULT', `fault ${context.fault.kind} needs the cluster in network namespaces`, {
      context: { fault: context.fault.kind, index: context.fault.index, hint: 'run with --network netns (as root)' },
    });
  return lab;
}

const etcdAddresses = (cluster: LocalCluster): string[] => cluster.etcd.members.map((member) => new URL(member.clientUrl).hostname);

/** Two of three etcd members stopped (chosen by the fault's pick): no quorum. Returns their indexes for the heal. */
async function stopEtcdQuorum(cluster: LocalCluster, fault: Fault): Promise<readonly number[]> {
  const size = cluster.etcd.members.length;
  const victims = [fault.pick % size, (fault.pick + 1) % size];
  for (const index of victims) await cluster.etcd.stopMember(index);
  return victims;
}

async function restoreEtcdQuorum(cluster: LocalCluster, victims: readonly number[]): Promise<void> {
  // Started together: a lone restarted member waits for a quorum that only the other one can complete.
  for (const index of victims) void cluster.etcd.startMember(index).catch(() => undefined);
  await waitUntil(async () => (await cluster.view()).leader !== undefined, {
    timeoutMs: QUORUM_BACK_TIMEOUT_MS,
    intervalMs: 200,
    describe: 'a leader key once etcd quorum is back',
  }).catch((error: unknown) => {
    // Not converging is what the runner measures next; it reports it.
    if (!isWaitTimeout(error)) throw error;
  });
}

/** SIGSTOP, remembered so that an interrupted run resumes them; returns the PIDs for the heal. */
function freeze(pids: readonly number[], stopped: Set<number>): readonly number[] {
  signalAll(pids, 'SIGSTOP');
  for (const pid of pids) stopped.add(pid);
  return pids;
}

/** SIGCONT for what a freeze stopped. */
const resumeStopped = async ({ stopped }: FaultContext, pids: readonly number[]): Promise<void> => {
  signalAll(pids, 'SIGCONT');
  for (const pid of pids) stopped.delete(pid);
};

/** Restarts the agent of the member the fault took down. */
const restartAgent = async ({ cluster }: FaultContext, name: string): Promise<void> => void cluster.startAgent(name);

/** SIGKILLs the etcd raft leader (once the running members agree on one) and returns its index. */
async function killEtcdLeader(cluster: LocalCluster): Promise<number> {
  const index = await waitUntil(() => cluster.etcd.leaderIndex(), {
    timeoutMs: ETCD_LEADER_TIMEOUT_MS,
    intervalMs: 100,
    describe: 'an etcd raft leader',
  });
  await cluster.etcd.killMember(index);
  return index;
}

/** Holds until the DCS names a leader other than the one the fault hit (at most holdMs), then AFTER_FAILOVER_MS more. */
async function holdUntilFailover(context: FaultContext, maxMs: number): Promise<void> {
  await waitUntil(
    async () => ((await context.cluster.view(1000).catch(() => undefined))?.leader?.name ?? context.leader) !== context.leader,
    {
      timeoutMs: maxMs,
      intervalMs: 200,
      describe: `a leader other than ${context.leader}`,
    },
  ).catch((error: unknown) => {
    // No failover within the hold: the checker reports it (missed failover); the fault is healed all the same.
    if (!isWaitTimeout(error)) throw error;
  });
  await sleep(AFTER_FAILOVER_MS);
}

/** Cut off from etcd and the other members (both ways), or unable to send to etcd while it still hears it. */
function partitionPrimary(isOneWay: boolean): FaultInjector<unknown> {
  return row<{ readonly undo: () => Promise<void> }>({
    runsOn: ['relay', 'netns'],
    needs: `${NEEDS_NETNS}, or TCP relays between the agents and etcd (network: relay)`,
    failover: 'required',
    holdMs: pastTtlMs,
    async inject(context) {
      // Either way it cannot renew its lock. Clients and the proxy still reach it, which is what makes this dangerous.
      const { cluster, leader } = context;
      const relays = cluster.relays.get(leader);
      if (cluster.lab === undefined && relays !== undefined) {
        // Without namespaces only the agent-to-etcd path can be cut; replication to the peers goes on.
        for (const relay of relays) relay.setMode(isOneWay ? 'drop-outbound' : 'blackhole');
        return {
          target: `${leader} (from etcd, by relay)`,
          state: { undo: async () => relays.forEach((relay) => relay.setMode('pass')) },
        };
      }
      const lab = labOf(context);
      const peers = isOneWay
        ? etcdAddresses(cluster)
        : [...etcdAddresses(cluster), ...cluster.nodes.filter((node) => node.name !== leader).map((node) => node.host)];
      await lab.partition(leader, peers, isOneWay ? 'outbound' : 'both');
      return { target: leader, state: { undo: () => lab.heal(leader) } };
    },
    heal: async (_context, state) => state.undo(),
  });
}

export const FAULT_TABLE: { readonly [K in FaultKind]: FaultInjector<unknown> } = {
  'kill-primary-agent': row({
    failover: 'allowed',
    runsOn: ANY_NETWORK,
    needs: NEEDS_NOTHING,
    holdMs: () => RESTART_DELAY_MS,
    async inject({ cluster, leader }) {
      cluster.killAgent(leader, 'SIGKILL');
      return { target: leader, state: leader };
    },
    heal: restartAgent,
  }),
  'kill-primary-postmaster': row({
    failover: 'allowed',
    runsOn: ANY_NETWORK,
    needs: NEEDS_NOTHING,
    // The agent itself must restart its PostgreSQL: there is nothing to heal.
    holdMs: () => 0,
    async inject({ cluster, leader }) {
      await cluster.killPostmaster(leader, 'SIGKILL');
      return { target: leader, state: undefined };
    },
    heal: async () => undefined,
  }),
  'kill-primary-both': row({
    failover: 'allowed',
    runsOn: ANY_NETWORK,
    needs: NEEDS_NOTHING,
    holdMs: () => RESTART_DELAY_MS,
    async inject({ cluster, leader }) {
      await killAgentAndPostmaster(cluster, leader);
      return { target: leader, state: leader };
    },
    heal: restartAgent,
  }),
  'stop-primary': row({
    failover: 'required',
    runsOn: ANY_NETWORK,
    needs: NEEDS_NOTHING,
    // Frozen past its lease, as a long GC pause or a stalled VM would, then woken up believing it is still primary.
    holdMs: pastTtlMs,
    async inject({ cluster, leader, stopped }) {
      const agent = cluster.node(leader).agentPid;
      const postmaster = await cluster.postmasterPid(leader);
      const pids = [...(agent !== undefined ? [agent] : []), ...(postmaster !== undefined ? await processTree(postmaster) : [])];
      return { target: leader, state: freeze(pids, stopped) };
    },
    heal: resumeStopped,
  }),
  'stop-primary-agent': row({
    failover: 'required',
    runsOn: ANY_NETWORK,
    needs: NEEDS_NOTHING,
    // The agent alone is frozen past the lease while PostgreSQL keeps serving the clients connected to it: only
    // something outside the agent (its fence process) can stop that primary before another member is promoted.
    holdMs: pastTtlMs,
    async inject({ cluster, leader, stopped }) {
      const agent = cluster.node(leader).agentPid;
      return { target: `${leader} (agent only)`, state: freeze(agent !== undefined ? [agent] : [], stopped) };
    },
    heal: resumeStopped,
  }),
  'kill-replica-both': row({
    failover: 'forbidden',
    runsOn: ANY_NETWORK,
    needs: NEEDS_NOTHING,
    holdMs: () => RESTART_DELAY_MS,
    async inject({ cluster, replica }) {
      await killAgentAndPostmaster(cluster, replica);
      return { target: replica, state: replica };
    },
    heal: restartAgent,
  }),
  'kill-etcd-member': row({
    failover: 'forbidden',
    runsOn: ANY_NETWORK,
    needs: NEEDS_NOTHING,
    holdMs: () => RESTART_DELAY_MS,
    async inject({ cluster, fault }) {
      const index = fault.pick % cluster.etcd.members.length;
      await cluster.etcd.stopMember(index);
      return { target: `etcd${index + 1}`, state: index };
    },
    heal: async ({ cluster }, index) => cluster.etcd.startMember(index),
  }),
  'switchover-replica-kill': row({
    failover: 'allowed',
    runsOn: ANY_NETWORK,
    needs: NEEDS_NOTHING,
    holdMs: () => RESTART_DELAY_MS,
    async inject({ cluster, leader, replica }) {
      // A switchover is asked for and, before it completes, a replica (maybe the candidate) dies.
      await createRestClient({})
        .request(`http://${cluster.node(leader).host}:${cluster.node(leader).apiPort}/switchover`, {
          method: 'POST',
          body: { leader },
          signal: AbortSignal.timeout(1000),
        })
        .catch(() => undefined);
      await killAgentAndPostmaster(cluster, replica);
      return { target: `${leader} (switchover) + ${replica}`, state: replica };
    },
    heal: restartAgent,
  }),
  'etcd-quorum-loss': row({
    failover: 'allowed',
    runsOn: ANY_NETWORK,
    needs: NEEDS_NOTHING,
    // No quorum for longer than ttl: the primary cannot renew its lock and must stop taking writes before the lease
    // it holds runs out; nobody can be elected until quorum is back.
    holdMs: pastTtlMs,
    async inject({ cluster, fault }) {
      const victims = await stopEtcdQuorum(cluster, fault);
      return { target: victims.map((index) => `etcd${index + 1}`).join('+'), state: victims };
    },
    heal: async ({ cluster }, victims) => restoreEtcdQuorum(cluster, victims),
  }),
  'etcd-quorum-loss-failsafe': row<readonly number[]>({
    failover: 'forbidden',
    runsOn: ANY_NETWORK,
    needs: NEEDS_NOTHING,
    // Longer than the lease: without failsafe_mode the primary would demote; with it, every member confirms it.
    holdMs: pastTtlMs,
    async inject({ cluster, fault }) {
      await cluster.patchConfig({ failsafe_mode: true });
      // The leader writes the failsafe key with its next renewal: only then does it know whom to ask.
      await waitUntil(async () => Object.keys((await cluster.view()).failsafe ?? {}).length === cluster.nodes.length, {
        timeoutMs: QUORUM_BACK_TIMEOUT_MS,
        intervalMs: 200,
        describe: 'the leader to publish the failsafe key',
      });
      const victims = await stopEtcdQuorum(cluster, fault);
      return { target: `${victims.map((index) => `etcd${index + 1}`).join('+')} (failsafe_mode)`, state: victims };
    },
    async heal({ cluster }, victims) {
      await restoreEtcdQuorum(cluster, victims);
      // The next faults run as configured before this one. The leader empties the failsafe key once it has taken the
      // change up: waiting for that keeps the next inject's wait for a full key a real proof that the mode is on again.
      await cluster.patchConfig({ failsafe_mode: false }).catch(() => undefined);
      await waitUntil(async () => Object.keys((await cluster.view()).failsafe ?? {}).length === 0, {
        timeoutMs: QUORUM_BACK_TIMEOUT_MS,
        intervalMs: 200,
        describe: 'the leader to empty the failsafe key',
      }).catch(() => undefined);
    },
  }),
  'partition-primary': partitionPrimary(false),
  'partition-primary-oneway': partitionPrimary(true),
  'partition-etcd-minority': row({
    failover: 'forbidden',
    runsOn: NETNS_ONLY,
    needs: NEEDS_NETNS,
    holdMs: () => DEGRADED_MS,
    async inject(context) {
      const { cluster, fault } = context;
      const lab = labOf(context);
      const index = fault.pick % cluster.etcd.members.length;
      const name = `etcd${index + 1}`;
      const others = [
        ...etcdAddresses(cluster).filter((address) => address !== lab.host(name).ip),
        ...cluster.nodes.map((node) => node.host),
      ];
      await lab.partition(name, others, 'both');
      return { target: name, state: name };
    },
    heal: async (context, name) => labOf(context).heal(name),
  }),
  'latency-primary': row({
    failover: 'forbidden',
    runsOn: NETNS_ONLY,
    needs: NEEDS_NETNS,
    holdMs: () => DEGRADED_MS,
    async inject(context) {
      const applied = await labOf(context).degrade(context.leader, 150, 5);
      return { target: `${context.leader} (${applied})`, state: context.leader };
    },
    heal: async (context, name) => labOf(context).heal(name),
  }),
  'blackhole-primary': row({
    runsOn: NETNS_ONLY,
    needs: NEEDS_NETNS,
    failover: 'required',
    // A power loss as the others see it: every packet to and from the primary's namespace dropped (etcd, peers,
    // proxies, direct clients, the gateway), no RST, no FIN. Held until another member leads (at most past the lease),
    // then healed: the old primary must find itself demoted and rejoin as a replica.
    holdMs: pastTtlMs,
    async inject(context) {
      await labOf(context).blackhole(context.leader);
      return { target: `${context.leader} (blackholed)`, state: context.leader };
    },
    hold: async (context) => holdUntilFailover(context, pastTtlMs(context)),
    heal: async (context, name) => labOf(context).heal(name),
  }),
  'kill-etcd-leader': row<{ readonly killed: number[] }>({
    runsOn: ANY_NETWORK,
    needs: NEEDS_NOTHING,
    failover: 'forbidden',
    // SIGKILL of the raft leader, restarted RESTART_DELAY_MS later, ETCD_LEADER_KILLS times: an election each time,
    // quorum intact throughout. PostgreSQL must keep its leader (a failover here is a false one).
    holdMs: () => RESTART_DELAY_MS,
    async inject({ cluster }) {
      const first = await killEtcdLeader(cluster);
      return { target: `etcd${first + 1} (raft leader)`, state: { killed: [first] } };
    },
    async hold({ cluster }, state) {
      for (let round = 1; round < ETCD_LEADER_KILLS; round++) {
        await sleep(RESTART_DELAY_MS);
        await cluster.etcd.startMember(state.killed.at(-1)!);
        await sleep(ETCD_BETWEEN_KILLS_MS);
        state.killed.push(await killEtcdLeader(cluster));
      }
      await sleep(RESTART_DELAY_MS);
    },
    heal: async ({ cluster }, state) => cluster.etcd.startMember(state.killed.at(-1)!),
    describe: (state) => `etcd raft leaders ${state.killed.map((index) => `etcd${index + 1}`).join(', ')} (SIGKILL, restarted)`,
  }),
  'full-disk-primary': row({
    failover: 'allowed',
    runsOn: NETNS_ONLY,
    needs: `${NEEDS_NETNS}, with a tmpfs per node`,
    holdMs: () => FULL_DISK_MS,
    async inject({ cluster, leader }) {
      // The primary's disk (data, pg_wal and its agent's log) fills up: WAL and table writes fail until space is
      // freed. Nothing acknowledged may be lost, the agent must survive, and writes must come back afterwards.
      const { bytes, release } = await cluster.fillDisk(leader);
      return { target: `${leader} (${Math.round(bytes / 1048576)} MB filled)`, state: release };
    },
    heal: async (_context, release) => release(),
  }),
};

/** The kinds a run on this network can make, in schedule order (the default kinds of such a run). */
export function faultKindsFor(network: ChaosNetwork): FaultKind[] {
  return FAULT_KINDS.filter((kind) => FAULT_TABLE[kind].runsOn.includes(network));
}

/** Refuses kinds this network cannot make, naming what each needs and what the run could use instead. */
export function checkFaultKinds(kinds: readonly FaultKind[], network: ChaosNetwork): void {
  const unusable = kinds.filter((kind) => !FAULT_TABLE[kind].runsOn.includes(network));
  if (unusable.length === 0) return;
  const needs = unusable.map((kind) => `${kind} needs ${FAULT_TABLE[kind].needs}`).join('; ');
  throw new PgwardenError('PGW_CHAOS_USAGE', `${needs}; on this ${network} run choose from ${faultKindsFor(network).join(', ')}`, {
    context: { kinds: unusable, network, hint: 'run as root with --network netns, or pick other --kinds' },
  });
}

/** The replica a fault's pick chooses: stable for a given leader and member set, so a seed replays the same target. */
export function pickReplica(cluster: LocalCluster, fault: Fault, leader: string): string {
  const replicas = cluster.nodes
    .map((node) => node.name)
    .filter((name) => name !== leader)
    .sort();
  return replicas[fault.pick % replicas.length] ?? leader;
}
