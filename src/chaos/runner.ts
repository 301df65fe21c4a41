// `pgwarden chaos`: a seeded fault schedule against a fresh local cluster (real etcd, PostgreSQL and proxy), with a
// writer and readers through the proxy and the consistency checker at the end. As root, every etcd member and node
// runs in its own network namespace, so partitions, one-way loss and latency are real network faults.
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import type { ClusterView } from '../core/types.js';
import { LocalCluster } from '../local/local-cluster.js';
import { canUseNetns } from '../local/netns.js';
import { checkRun, type CheckReport } from './checker.js';
import { FAULT_KINDS, faultSchedule, NEEDS_NETNS, RELAY_FAULT_KINDS, type Fault, type FaultKind } from './schedule.js';
import { CHAOS_TABLE_SQL, ChaosReader, ChaosWriter } from './workload.js';

export interface ChaosOptions {
  readonly seed: number;
  readonly faults: number;
  readonly isSync: boolean;
  readonly kinds?: readonly FaultKind[];
  /**
   * auto (default): network namespaces when this machine allows them, else TCP relays between agents and etcd.
   * loopback: process faults only.
   */
  readonly network?: 'auto' | 'loopback' | 'netns' | 'relay';
  readonly keepDir?: boolean;
  readonly out: (line: string) => void;
}

export interface FaultOutcome {
  readonly index: number;
  readonly kind: FaultKind;
  readonly target: string;
  /**
   * The longest pause between two acknowledged writes that ends after the fault, until the cluster converged:
   * the outage the application saw. Undefined if no write was acknowledged after the fault.
   */
  readonly recoveryMs: number | undefined;
  readonly converged: boolean;
}

export interface ChaosReport extends Omit<CheckReport, 'dualWritable'> {
  readonly seed: number;
  readonly isSync: boolean;
  readonly faults: readonly FaultOutcome[];
  readonly dualWritable: number;
  readonly converged: boolean;
  readonly timelines: readonly number[];
  readonly writerErrors: number;
  readonly reads: { readonly ok: number; readonly failed: number };
  readonly network: 'loopback' | 'netns' | 'relay';
  readonly kinds: readonly FaultKind[];
  /** maximum_lag_on_failover of the run: in asynchronous mode lostWalBytes must stay within it. */
  readonly maximumLagOnFailover: number;
  readonly reportPath: string;
}

/** True when the run broke a promise: the exit status of `pgwarden chaos`. */
export function isViolation(report: ChaosReport): boolean {
  const lossBroken = report.isSync ? report.lost.length > 0 : report.lostWalBytes > report.maximumLagOnFailover;
  return report.dualWritable > 0 || report.divergentMembers.length > 0 || !report.converged || lossBroken;
}

/** Clusters of runs in progress, so a crash of the process can still stop them (see stopActiveClusters). */
const active = new Set<LocalCluster>();

/**
 * Stops every cluster a run in this process has started. For callers' uncaughtException handlers: without it a crash
 * would leave etcd, agents, postmasters, namespaces and tmpfs mounts behind.
 */
export async function stopActiveClusters(): Promise<void> {
  await Promise.all(
    [...active].map(async (cluster) => {
      await cluster.lab?.healAll().catch(() => undefined);
      await cluster.stop().catch(() => undefined);
    }),
  );
}

const TIMING = { ttl: 10, loop_wait: 1, retry_timeout: 3, maximum_lag_on_failover: 1048576 };
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

async function poll<T>(timeoutMs: number, probe: () => Promise<T | undefined>): Promise<T | undefined> {
  const giveUpAt = Date.now() + timeoutMs;
  while (Date.now() < giveUpAt) {
    const value = await probe().catch(() => undefined);
    if (value !== undefined) return value;
    await sleep(200);
  }
  return undefined;
}

function isHealthy(view: ClusterView, names: readonly string[]): string | undefined {
  const leader = view.leader?.name;
  const leaderMember = view.members.find((member) => member.name === leader);
  if (leader === undefined || leaderMember?.role !== 'primary' || leaderMember.state !== 'running') return undefined;
  const ok = names
    .filter((name) => name !== leader)
    .every((name) => {
      const member = view.members.find((candidate) => candidate.name === name);
      return member?.replication_state === 'streaming' && member.timeline === leaderMember.timeline;
    });
  return ok ? leader : undefined;
}

async function query<T extends Record<string, unknown>>(cluster: LocalCluster, name: string, text: string): Promise<T[]> {
  const client = new pg.Client({
    host: cluster.node(name).host,
    port: cluster.node(name).pgPort,
    user: 'postgres',
    password: cluster.superuserPassword,
    database: 'postgres',
    connectionTimeoutMillis: 3000,
    query_timeout: 10_000,
  });
  client.on('error', () => undefined);
  await client.connect();
  try {
    return (await client.query<T>(text)).rows;
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** The postmaster and all its children (backends, walsenders...): SIGSTOP must freeze the whole server. */
async function processTree(root: number): Promise<number[]> {
  const children = new Map<number, number[]>();
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = await readFile(`/proc/${entry}/stat`, 'utf8').catch(() => '');
    const parent = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    if (Number.isInteger(parent)) children.set(parent, [...(children.get(parent) ?? []), Number(entry)]);
  }
  const tree: number[] = [];
  const visit = (pid: number): void => {
    tree.push(pid);
    for (const child of children.get(pid) ?? []) visit(child);
  };
  visit(root);
  return tree;
}

const signalAll = (pids: readonly number[], signal: NodeJS.Signals): void => {
  for (const pid of pids) {
    try {
      process.kill(pid, signal);
    } catch {
      // already gone
    }
  }
};

export async function runChaos(options: ChaosOptions): Promise<ChaosReport> {
  const { out } = options;
  const wanted = options.network ?? 'auto';
  let network: 'loopback' | 'netns' | 'relay' = wanted === 'auto' ? 'netns' : wanted;
  if (network === 'netns') {
    const check = await canUseNetns();
    if (!check.ok) {
      if (wanted === 'netns') throw new Error(`--network netns: this machine does not allow network namespaces: ${check.reason}`);
      out(`chaos: no network namespaces here (${check.reason}): partitions go through TCP relays between the agents and etcd instead`);
      network = 'relay';
    }
  }
  const usable = (kind: FaultKind): boolean =>
    network === 'netns' || !NEEDS_NETNS.has(kind) || (network === 'relay' && RELAY_FAULT_KINDS.has(kind));
  const unusable = options.kinds?.filter((kind) => !usable(kind)) ?? [];
  if (unusable.length > 0)
    throw new Error(
      `fault kinds ${unusable.join(', ')} need every member in its own network namespace (root); on this ${network} run choose from ${FAULT_KINDS.filter(usable).join(', ')}`,
    );
  const kinds = options.kinds ?? FAULT_KINDS.filter(usable);
  const schedule = faultSchedule(options.seed, options.faults, kinds);
  const dir = await mkdtemp(join(tmpdir(), 'pgw-chaos-'));
  const described = {
    netns: 'one network namespace per member',
    relay: 'loopback, agents reach etcd through fault relays',
    loopback: 'loopback',
  }[network];
  out(
    `chaos: seed ${options.seed}, ${options.faults} faults, ${options.isSync ? 'synchronous' : 'asynchronous'} replication, ${described}, cluster in ${dir}`,
  );
  out(`chaos: fault kinds (replay with the same list): --kinds ${kinds.join(',')}`);
  // As root every node's directory (data, pg_wal, logs) is a tmpfs of its own, so one can be filled.
  const cluster = await LocalCluster.start({
    dir,
    timing: TIMING,
    scope: 'chaos',
    proxies: 1,
    network,
    ...(network === 'netns' ? { nodeTmpfsMb: 1024 } : {}),
  });
  active.add(cluster);
  const names = cluster.nodes.map((node) => node.name);
  let writer: ChaosWriter | undefined;
  let reader: ChaosReader | undefined;
  const stopped: number[] = [];
  // Ctrl-C or a CI timeout must not leave etcd, agents or postmasters behind.
  const onSignal = (signal: NodeJS.Signals): void => {
    out(`chaos: ${signal}: stopping the cluster`);
    signalAll(stopped, 'SIGCONT');
    void cluster.stop().finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    const healthy = async (timeoutMs: number): Promise<string | undefined> =>
      poll(timeoutMs, async () => isHealthy(await cluster.view(), names));
    const first = await healthy(120_000);
    if (first === undefined) throw new Error('the local cluster did not become healthy within 120 s');
    await query(cluster, first, CHAOS_TABLE_SQL);
    if (options.isSync) {
      const response = await fetch(`http://${cluster.node(first).host}:${cluster.node(first).apiPort}/config`, {
        method: 'PATCH',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ synchronous_mode: true }),
      });
      if (response.status !== 200) throw new Error(`could not enable synchronous_mode: ${response.status} ${await response.text()}`);
      await poll(60_000, async () => ((await cluster.view()).sync?.sync_standby ? true : undefined));
    }
    const proxy = cluster.proxies[0]!;
    writer = new ChaosWriter(proxy.primaryPort, cluster.superuserPassword);
    writer.start();
    reader = new ChaosReader(proxy.replicaPort, cluster.superuserPassword);
    reader.start();
    const outcomes: FaultOutcome[] = [];
    for (const fault of schedule) {
      await sleep(fault.settleS * 1000);
      const leader = (await healthy(90_000)) ?? (await cluster.view()).leader?.name ?? first;
      const injectedAt = performance.now();
      const { target, heal } = await inject(cluster, fault, leader, stopped);
      await heal();
      const converged = (await healthy(120_000)) !== undefined;
      // Writes must be flowing again after convergence, or the longest pause is not over yet.
      const convergedAt = performance.now();
      await poll(60_000, async () => writer?.acks.find((ack) => ack.atMs > convergedAt));
      const outcome: FaultOutcome = {
        index: fault.index,
        kind: fault.kind,
        target,
        recoveryMs: longestPauseAfter(writer.acks, injectedAt),
        converged,
      };
      outcomes.push(outcome);
      out(
        `  fault ${fault.index + 1}/${schedule.length}: ${fault.kind} on ${target}: longest write pause ${outcome.recoveryMs ?? 'never (no write after the fault)'} ms, ${converged ? 'converged' : 'NOT converged'}`,
      );
    }
    await sleep(1000);
    await writer.stop();
    await reader.stop();
    const finalLeader = await healthy(120_000);
    const converged = finalLeader !== undefined;
    const leader = finalLeader ?? (await cluster.view()).leader?.name ?? first;
    const ids = new Set((await query<{ id: string }>(cluster, leader, 'SELECT id FROM chaos_acks')).map((row) => Number(row.id)));
    const leaderCount = ids.size;
    const fingerprints = new Map<string, string>();
    for (const name of names) {
      const fingerprint = await poll(30_000, async () => {
        const rows = await query<{ n: string; digest: string | null }>(
          cluster,
          name,
          "SELECT count(*) AS n, md5(string_agg(id::text, ',' ORDER BY id)) AS digest FROM chaos_acks",
        );
        return Number(rows[0]?.n) === leaderCount || name === leader ? `${rows[0]?.n}:${rows[0]?.digest ?? ''}` : undefined;
      });
      fingerprints.set(name, fingerprint ?? 'unreachable or behind');
    }
    const checked = checkRun(writer.acks, ids, fingerprints);
    const timelines = [...new Set(writer.acks.map((ack) => ack.timeline))].sort((a, b) => a - b);
    const reportPath = join(options.keepDir === true ? dir : tmpdir(), `pgwarden-chaos-seed${options.seed}.json`);
    const report: ChaosReport = {
      ...checked,
      dualWritable: checked.dualWritable.length,
      seed: options.seed,
      isSync: options.isSync,
      faults: outcomes,
      converged,
      timelines,
      writerErrors: writer.errors,
      reads: { ok: reader.ok, failed: reader.failed },
      network,
      kinds,
      maximumLagOnFailover: TIMING.maximum_lag_on_failover,
      reportPath,
    };
    await writeFile(
      reportPath,
      `${JSON.stringify({ ...report, lost: checked.lost, dualWritableDetails: checked.dualWritable }, null, 2)}\n`,
    );
    printSummary(report, out);
    return report;
  } finally {
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
    signalAll(stopped, 'SIGCONT');
    await writer?.stop();
    await reader?.stop();
    await cluster.lab?.healAll().catch(() => undefined);
    await cluster.stop();
    active.delete(cluster);
    if (options.keepDir !== true) await rm(dir, { recursive: true, force: true });
  }
}

/** The longest gap between consecutive acknowledged writes that ends after `sinceMs`. */
export function longestPauseAfter(acks: readonly { readonly atMs: number }[], sinceMs: number): number | undefined {
  let longest: number | undefined;
  for (let index = 1; index < acks.length; index++) {
    const ack = acks[index]!;
    if (ack.atMs <= sinceMs) continue;
    const gap = ack.atMs - acks[index - 1]!.atMs;
    longest = Math.max(longest ?? 0, gap);
  }
  return longest === undefined ? undefined : Math.round(longest);
}

async function inject(
  cluster: LocalCluster,
  fault: Fault,
  leader: string,
  stopped: number[],
): Promise<{ target: string; heal: () => Promise<void> }> {
  const replicas = cluster.nodes
    .map((node) => node.name)
    .filter((name) => name !== leader)
    .sort();
  const replica = replicas[fault.pick % replicas.length] ?? leader;
  const killBoth = async (name: string): Promise<void> => {
    const postmaster = await cluster.postmasterPid(name);
    cluster.killAgent(name, 'SIGKILL');
    if (postmaster !== undefined) signalAll([postmaster], 'SIGKILL');
  };
  const restartLater = (name: string) => async (): Promise<void> => {
    await sleep(2000);
    cluster.startAgent(name);
  };
  switch (fault.kind) {
    case 'kill-primary-agent':
      cluster.killAgent(leader, 'SIGKILL');
      return { target: leader, heal: restartLater(leader) };
    case 'kill-primary-postmaster':
      await cluster.killPostmaster(leader, 'SIGKILL');
      return { target: leader, heal: async () => undefined };
    case 'kill-primary-both':
      await killBoth(leader);
      return { target: leader, heal: restartLater(leader) };
    case 'kill-replica-both':
      await killBoth(replica);
      return { target: replica, heal: restartLater(replica) };
    case 'stop-primary': {
      const agent = cluster.node(leader).agentPid;
      const postmaster = await cluster.postmasterPid(leader);
      const pids = [...(agent !== undefined ? [agent] : []), ...(postmaster !== undefined ? await processTree(postmaster) : [])];
      signalAll(pids, 'SIGSTOP');
      stopped.push(...pids);
      await sleep((TIMING.ttl + 3) * 1000);
      return {
        target: leader,
        heal: async () => {
          signalAll(pids, 'SIGCONT');
          stopped.splice(0, stopped.length, ...stopped.filter((pid) => !pids.includes(pid)));
        },
      };
    }
    case 'kill-etcd-member': {
      const index = fault.pick % cluster.etcd.members.length;
      await cluster.etcd.stopMember(index);
      return {
        target: `etcd${index + 1}`,
        heal: async () => {
          await sleep(2000);
          await cluster.etcd.startMember(index);
        },
      };
    }
    case 'etcd-quorum-loss': {
      // Two of three members down for longer than ttl: no quorum, so the primary cannot renew its lock and must
      // stop taking writes before the lease it holds runs out; nobody can be elected until quorum is back.
      const size = cluster.etcd.members.length;
      const victims = [fault.pick % size, (fault.pick + 1) % size];
      for (const index of victims) await cluster.etcd.stopMember(index);
      await sleep((TIMING.ttl + 3) * 1000);
      return {
        target: victims.map((index) => `etcd${index + 1}`).join('+'),
        heal: async () => {
          for (const index of victims) void cluster.etcd.startMember(index).catch(() => undefined);
          await poll(30_000, async () => ((await cluster.view()).leader !== undefined ? true : undefined));
        },
      };
    }
    case 'partition-primary':
    case 'partition-primary-oneway': {
      // Cut off from etcd and the other members (both ways), or unable to send to etcd (it still hears it): either
      // way it cannot renew its lock. Clients and the proxy still reach it, which is what makes this dangerous.
      const isOneWay = fault.kind === 'partition-primary-oneway';
      const relays = cluster.relays.get(leader);
      if (cluster.lab === undefined && relays !== undefined) {
        // Without namespaces only the agent-to-etcd path can be cut; replication to the peers goes on.
        for (const relay of relays) relay.setMode(isOneWay ? 'drop-outbound' : 'blackhole');
        await sleep((TIMING.ttl + 3) * 1000);
        return {
          target: `${leader} (from etcd, by relay)`,
          heal: async () => {
            for (const relay of relays) relay.setMode('pass');
          },
        };
      }
      const lab = needLab(cluster);
      const peers = isOneWay
        ? etcdAddresses(cluster)
        : [...etcdAddresses(cluster), ...cluster.nodes.filter((node) => node.name !== leader).map((node) => node.host)];
      await lab.partition(leader, peers, isOneWay ? 'outbound' : 'both');
      await sleep((TIMING.ttl + 3) * 1000);
      return { target: leader, heal: async () => lab.heal(leader) };
    }
    case 'partition-etcd-minority': {
      const lab = needLab(cluster);
      const index = fault.pick % cluster.etcd.members.length;
      const name = `etcd${index + 1}`;
      const others = [
        ...etcdAddresses(cluster).filter((address) => address !== lab.host(name).ip),
        ...cluster.nodes.map((node) => node.host),
      ];
      await lab.partition(name, others, 'both');
      await sleep(8000);
      return { target: name, heal: async () => lab.heal(name) };
    }
    case 'latency-primary': {
      const lab = needLab(cluster);
      const applied = await lab.degrade(leader, 150, 5);
      await sleep(8000);
      return { target: `${leader} (${applied})`, heal: async () => lab.heal(leader) };
    }
    case 'full-disk-primary': {
      // The primary's disk (data, pg_wal and its agent's log) fills up: WAL and table writes fail until space is
      // freed. Nothing acknowledged may be lost, the agent must survive, and writes must come back afterwards.
      const { bytes, release } = await cluster.fillDisk(leader);
      await sleep(10_000);
      return { target: `${leader} (${Math.round(bytes / 1048576)} MB filled)`, heal: release };
    }
    case 'switchover-replica-kill': {
      await fetch(`http://${cluster.node(leader).host}:${cluster.node(leader).apiPort}/switchover`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ leader }),
        signal: AbortSignal.timeout(1000),
      }).catch(() => undefined);
      await killBoth(replica);
      return { target: `${leader} (switchover) + ${replica}`, heal: restartLater(replica) };
    }
  }
}

function needLab(cluster: LocalCluster): NonNullable<LocalCluster['lab']> {
  if (cluster.lab === undefined) throw new Error('this fault needs the cluster in network namespaces (network: netns)');
  return cluster.lab;
}

const etcdAddresses = (cluster: LocalCluster): string[] => cluster.etcd.members.map((member) => new URL(member.clientUrl).hostname);

function printSummary(report: ChaosReport, out: (line: string) => void): void {
  const recoveries = report.faults
    .map((fault) => fault.recoveryMs)
    .filter((ms): ms is number => ms !== undefined)
    .sort((a, b) => a - b);
  const median = recoveries.length === 0 ? undefined : recoveries[Math.floor((recoveries.length - 1) / 2)];
  out('');
  out(
    '| seed | mode | network | faults | acknowledged | lost (WAL bytes) | dual-writable | divergent | converged | write pause median / max ms | reads ok / failed | timelines |',
  );
  out('|---|---|---|---|---|---|---|---|---|---|---|---|');
  out(
    `| ${report.seed} | ${report.isSync ? 'sync' : 'async'} | ${report.network} | ${report.faults.length} | ${report.acknowledged} | ${report.lost.length} (${report.lostWalBytes}) | ${report.dualWritable} | ${report.divergentMembers.join(',') || 'none'} | ${report.converged ? 'yes' : 'NO'} | ${median ?? '-'} / ${recoveries.at(-1) ?? '-'} | ${report.reads.ok} / ${report.reads.failed} | ${report.timelines.join(',')} |`,
  );
  if (!report.isSync)
    out(
      `asynchronous mode: lost writes spanned ${report.lostWalBytes} bytes of WAL; maximum_lag_on_failover is ${report.maximumLagOnFailover} (${report.lostWalBytes <= report.maximumLagOnFailover ? 'within' : 'EXCEEDED'})`,
    );
  out(`JSON report: ${report.reportPath}`);
}
