// `pgwarden chaos`: a seeded fault schedule against a fresh local cluster (real etcd, PostgreSQL and proxy), with a
// writer and readers through the proxy and the consistency checker at the end. As root, every etcd member and node
// runs in its own network namespace, so partitions, one-way loss and latency are real network faults.
import { redactSecrets } from '../util/redact.js';
import { createRestClient } from '../util/rest-client.js';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { describeView, healthyTopology } from '../local/cluster-health.js';
import { LocalCluster } from '../local/local-cluster.js';
import { canUseNetns } from '../local/netns.js';
import { signalAll } from '../local/process.js';
import { PgwardenError } from '../util/errors.js';
import { isWaitTimeout, waitUntil, type WaitOptions } from '../util/wait-until.js';
import {
  checkRun,
  judgeFault,
  kindSummaryTable,
  summarizeByKind,
  type CheckReport,
  type FaultOutcome,
  type KindSummary,
} from './checker.js';
import { checkFaultKinds, FAULT_TABLE, faultKindsFor, pickReplica, type ChaosNetwork, type FaultContext } from './faults.js';
import { LeaderWatch, leaderChangesWithin } from './leader-watch.js';
import { faultSchedule, type Fault, type FaultKind } from './schedule.js';
import { ackTableSql, Reader, Writer } from './workload.js';

export type { FaultOutcome } from './checker.js';

export interface ChaosOptions {
  readonly seed: number;
  /** How many faults the seed's schedule has (it is drawn whole, so a slice keeps each fault's kind, pick and settle). */
  readonly faults: number;
  /**
   * Replay only faults `from`..`to` (1-based, inclusive; defaults: the whole schedule) of the seed's schedule, on a fresh
   * cluster: a regression found by one fault of a long run is replayed without the faults before it.
   */
  readonly only?: { readonly from: number; readonly to?: number | undefined } | undefined;
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

export interface ChaosReport extends Omit<CheckReport, 'dualWritable'> {
  readonly seed: number;
  readonly isSync: boolean;
  readonly faults: readonly FaultOutcome[];
  /** Per fault kind: failovers (false, missed), write pauses, writes acknowledged after a promotion. */
  readonly byKind: readonly KindSummary[];
  readonly dualWritable: number;
  readonly converged: boolean;
  readonly timelines: readonly number[];
  readonly writerErrors: number;
  /** Writes acknowledged to the multi-host client connected straight to the members (included in the checks). */
  readonly directAcknowledged: number;
  readonly reads: { readonly ok: number; readonly failed: number };
  readonly network: ChaosNetwork;
  readonly kinds: readonly FaultKind[];
  /** maximum_lag_on_failover of the run: in asynchronous mode lostWalBytes must stay within it. */
  readonly maximumLagOnFailover: number;
  readonly reportPath: string;
}

/** Faults `only.from`..`only.to` (1-based, inclusive) of a schedule, each unchanged (its index too). */
export function scheduleSlice(schedule: readonly Fault[], only: ChaosOptions['only']): readonly Fault[] {
  if (only === undefined) return schedule;
  const to = only.to ?? schedule.length;
  if (!Number.isInteger(only.from) || !Number.isInteger(to) || only.from < 1 || to < only.from || to > schedule.length)
    throw new PgwardenError('PGW_CHAOS_USAGE', `faults ${only.from}..${to} are not within the schedule's 1..${schedule.length}`, {
      context: { from: only.from, to, faults: schedule.length, hint: 'pass 1 <= --from-fault <= --to-fault <= --faults' },
    });
  return schedule.slice(only.from - 1, to);
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
const ACK_TABLE = 'chaos_acks';
/** The direct writer's ids start here, far above anything the proxy writer reaches in a run. */
const DIRECT_FIRST_ID = 1_000_000_000;

/** The value the wait ends with, or undefined once its deadline passed (then `onTimeout` hears what was last seen). */
async function valueWithin<T>(
  predicate: () => Promise<T>,
  options: WaitOptions,
  onTimeout: (message: string) => void = () => undefined,
): Promise<Exclude<T, undefined | null | false> | undefined> {
  try {
    return await waitUntil(predicate, options);
  } catch (error) {
    if (!isWaitTimeout(error)) throw error;
    onTimeout(error.message);
    return undefined;
  }
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

export async function runChaos(options: ChaosOptions): Promise<ChaosReport> {
  const { out } = options;
  const wanted = options.network ?? 'auto';
  let network: ChaosNetwork = wanted === 'auto' ? 'netns' : wanted;
  if (network === 'netns') {
    const check = await canUseNetns();
    if (!check.ok) {
      if (wanted === 'netns')
        throw new PgwardenError('PGW_CHAOS_USAGE', `--network netns: this machine does not allow network namespaces: ${check.reason}`, {
          context: { network: wanted, hint: 'run as root on Linux with iproute2, or use --network relay' },
        });
      out(`chaos: no network namespaces here (${check.reason}): partitions go through TCP relays between the agents and etcd instead`);
      network = 'relay';
    }
  }
  if (options.kinds !== undefined) checkFaultKinds(options.kinds, network);
  const kinds = options.kinds ?? faultKindsFor(network);
  const schedule = scheduleSlice(faultSchedule(options.seed, options.faults, kinds), options.only);
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
  if (options.only !== undefined)
    out(`chaos: only faults ${schedule[0]!.index + 1}..${schedule.at(-1)!.index + 1} of the ${options.faults} the seed draws`);
  // As root every node's directory (data, pg_wal, logs) is a tmpfs of its own, so one can be filled. 4 GB: PostgreSQL
  // keeps the segments of every old timeline until the WAL position passes them (wal_keep_size), 20–30 MB per failover
  // on each node, and a long run of a quiet cluster fails over dozens of times within its first hundred MB of WAL (1 GB
  // filled up after 85 faults). A tmpfs takes memory only for what is written.
  const cluster = await LocalCluster.start({
    dir,
    timing: TIMING,
    scope: 'chaos',
    proxies: 1,
    network,
    ...(network === 'netns' ? { nodeTmpfsMb: 4096 } : {}),
  });
  active.add(cluster);
  const names = cluster.nodes.map((node) => node.name);
  let writer: Writer | undefined;
  let directWriter: Writer | undefined;
  let reader: Reader | undefined;
  const watch = new LeaderWatch(() => cluster.view(1000));
  const stopped = new Set<number>();
  // Ctrl-C or a CI timeout must not leave etcd, agents or postmasters behind.
  const onSignal = (signal: NodeJS.Signals): void => {
    out(`chaos: ${signal}: stopping the cluster`);
    signalAll(stopped, 'SIGCONT');
    void cluster.stop().finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    const healthy = async (timeoutMs: number): Promise<string | undefined> => {
      let last = 'no DCS view yet';
      return valueWithin(
        async () => {
          const view = await cluster.view();
          last = describeView(view);
          return healthyTopology(view, names)?.leader;
        },
        {
          timeoutMs,
          intervalMs: 200,
          describe: 'a healthy cluster (a running leader, every other member streaming)',
          lastState: () => last,
        },
        (message) => out(`chaos: ${message}`),
      );
    };
    const first = await healthy(120_000);
    if (first === undefined)
      throw new PgwardenError('PGW_CHAOS_CLUSTER', `the local cluster did not become healthy within 120 s; see the agent logs in ${dir}`, {
        context: { path: dir, hint: 'run with --keep to keep the logs' },
      });
    await query(cluster, first, ackTableSql(ACK_TABLE));
    if (options.isSync) {
      const response = await createRestClient({}).request(`http://${cluster.node(first).host}:${cluster.node(first).apiPort}/config`, {
        method: 'PATCH',
        body: { synchronous_mode: true },
        signal: AbortSignal.timeout(10_000),
      });
      if (response.status !== 200)
        throw new PgwardenError('PGW_CHAOS_CLUSTER', `could not enable synchronous_mode: ${response.status} ${response.text}`, {
          context: { member: first, key: 'config', hint: `see ${cluster.node(first).logFile}` },
        });
      await valueWithin(async () => Boolean((await cluster.view()).sync?.sync_standby), {
        timeoutMs: 60_000,
        intervalMs: 200,
        describe: 'a synchronous standby in the sync key',
      });
    }
    const proxy = cluster.proxies[0]!;
    writer = new Writer({
      targets: [{ host: '127.0.0.1', port: proxy.primaryPort }],
      password: cluster.superuserPassword,
      table: ACK_TABLE,
    });
    writer.start();
    // A libpq multi-host client connected straight to the members' PostgreSQL (target_session_attrs=read-write): it
    // stays on a primary as long as that one answers, so a primary that should have stopped shows in its acks. Its
    // ids are disjoint from the proxy writer's: both are checked together (loss, dual writes).
    directWriter = new Writer({
      targets: cluster.nodes.map((node) => ({ host: node.host, port: node.pgPort })),
      password: cluster.superuserPassword,
      table: ACK_TABLE,
      connectTimeoutMs: 3000,
      firstId: DIRECT_FIRST_ID,
    });
    directWriter.start();
    reader = new Reader({ host: '127.0.0.1', port: proxy.replicaPort }, cluster.superuserPassword, ACK_TABLE);
    reader.start();
    watch.start();
    const outcomes: FaultOutcome[] = [];
    for (const fault of schedule) {
      await sleep(fault.settleS * 1000);
      const leader = (await healthy(90_000)) ?? (await cluster.view()).leader?.name ?? first;
      const injectedAt = performance.now();
      const injector = FAULT_TABLE[fault.kind];
      const context: FaultContext = {
        cluster,
        fault,
        leader,
        replica: pickReplica(cluster, fault, leader),
        ttlS: TIMING.ttl,
        stopped,
      };
      const injected = await injector.inject(context);
      if (injector.hold !== undefined) await injector.hold(context, injected.state);
      else await sleep(injector.holdMs(context));
      await injector.heal(context, injected.state);
      const target = injector.describe?.(injected.state) ?? injected.target;
      const converged = (await healthy(120_000)) !== undefined;
      // Writes must be flowing again after convergence, or the longest pause is not over yet: through the proxy and
      // (not waited for as long) straight to the members, whose client may be trying a dead host first.
      const convergedAt = performance.now();
      for (const [active, timeoutMs] of [
        [writer, 60_000],
        [directWriter, 30_000],
      ] as const)
        await valueWithin(async () => active.acks.find((ack) => ack.atMs > convergedAt), {
          timeoutMs,
          intervalMs: 200,
          describe: `a write acknowledged after fault ${fault.index + 1} converged`,
        });
      const endMs = performance.now();
      const outcome: FaultOutcome = {
        index: fault.index,
        kind: fault.kind,
        target,
        converged,
        ...judgeFault({
          startMs: injectedAt,
          endMs,
          leaderBefore: leader,
          leaderChanges: leaderChangesWithin(watch.changes, leader, injectedAt, endMs),
          proxyAcks: writer.acks,
          directAcks: directWriter.acks,
          expectation: injector.failover,
        }),
      };
      outcomes.push(outcome);
      out(`  fault ${fault.index + 1}/${options.faults}: ${fault.kind} on ${target}: ${describeOutcome(outcome)}`);
    }
    // Every fault already waited for writes after it converged: the writers stop at once.
    await writer.stop();
    await directWriter.stop();
    await reader.stop();
    await watch.stop();
    const finalLeader = await healthy(120_000);
    const converged = finalLeader !== undefined;
    const leader = finalLeader ?? (await cluster.view()).leader?.name ?? first;
    const ids = new Set((await query<{ id: string }>(cluster, leader, `SELECT id FROM ${ACK_TABLE}`)).map((row) => Number(row.id)));
    const leaderCount = ids.size;
    const fingerprints = new Map<string, string>();
    for (const name of names) {
      const fingerprint = await valueWithin(
        async () => {
          const rows = await query<{ n: string; digest: string | null }>(
            cluster,
            name,
            `SELECT count(*) AS n, md5(string_agg(id::text, ',' ORDER BY id)) AS digest FROM ${ACK_TABLE}`,
          );
          return Number(rows[0]?.n) === leaderCount || name === leader ? `${rows[0]?.n}:${rows[0]?.digest ?? ''}` : undefined;
        },
        { timeoutMs: 30_000, intervalMs: 200, describe: `${name} to hold the leader's ${leaderCount} rows` },
      );
      fingerprints.set(name, fingerprint ?? 'unreachable or behind');
    }
    const allAcks = [...writer.acks, ...directWriter.acks];
    const checked = checkRun(allAcks, ids, fingerprints);
    const timelines = [...new Set(allAcks.map((ack) => ack.timeline))].sort((a, b) => a - b);
    const reportPath = join(options.keepDir === true ? dir : tmpdir(), `pgwarden-chaos-seed${options.seed}.json`);
    const report: ChaosReport = {
      ...checked,
      dualWritable: checked.dualWritable.length,
      seed: options.seed,
      isSync: options.isSync,
      faults: outcomes,
      byKind: summarizeByKind(outcomes),
      converged,
      timelines,
      writerErrors: writer.failures.length,
      directAcknowledged: directWriter.acks.length,
      reads: { ok: reader.ok, failed: reader.failed },
      network,
      kinds,
      maximumLagOnFailover: TIMING.maximum_lag_on_failover,
      reportPath,
    };
    await writeFile(
      reportPath,
      // A report is shared (CI artifacts, issues): it goes through the one redaction like every other output.
      `${JSON.stringify(redactSecrets({ ...report, lost: checked.lost, dualWritableDetails: checked.dualWritable }), null, 2)}\n`,
    );
    printSummary(report, out);
    return report;
  } finally {
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
    signalAll(stopped, 'SIGCONT');
    await writer?.stop();
    await directWriter?.stop();
    await reader?.stop();
    await watch.stop();
    await cluster.lab?.healAll().catch(() => undefined);
    await cluster.stop();
    active.delete(cluster);
    if (options.keepDir !== true) await rm(dir, { recursive: true, force: true });
  }
}

/** One fault's line: the pauses, the failover (and whether the fault should have caused one), late acks. */
export function describeOutcome(outcome: FaultOutcome): string {
  const pause = (ms: number | undefined): string => (ms === undefined ? 'never ended (no write after the fault)' : `${ms} ms`);
  const failover = outcome.failover
    ? `failover to ${outcome.newLeaders.join(' then ') || 'a newer timeline'}${outcome.newLeaderMs === undefined ? '' : ` seen after ${outcome.newLeaderMs} ms`}${outcome.falseFailover ? ' (FALSE FAILOVER: quorum was intact)' : ''}`
    : `no failover${outcome.missedFailover ? ' (MISSED: the fault should have forced one)' : ''}`;
  const late = outcome.lateAcks.proxy + outcome.lateAcks.direct;
  return [
    `longest write pause ${pause(outcome.recoveryMs)} through the proxy, ${pause(outcome.directRecoveryMs)} direct`,
    failover,
    `${late === 0 ? 'no write' : `${late} WRITES (proxy ${outcome.lateAcks.proxy}, direct ${outcome.lateAcks.direct})`} acknowledged by a member after another was promoted`,
    outcome.converged ? 'converged' : 'NOT converged',
  ].join(', ');
}

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
  out('');
  for (const line of kindSummaryTable(report.byKind)) out(line);
  out('');
  if (!report.isSync)
    out(
      `asynchronous mode: lost writes spanned ${report.lostWalBytes} bytes of WAL; maximum_lag_on_failover is ${report.maximumLagOnFailover} (${report.lostWalBytes <= report.maximumLagOnFailover ? 'within' : 'EXCEEDED'})`,
    );
  out(`JSON report: ${report.reportPath}`);
}
