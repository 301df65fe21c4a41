// Idle footprint of the agent, side by side with Patroni 3.0.2 on the same machine and in the same time window:
// RSS, CPU, threads and the CPU of each agent's PostgreSQL connection over an idle window, then GET /patroni latency.
// Prints figures; asserts nothing. Both clusters share one etcd (different scopes) and are measured interleaved.
import { readFileSync } from 'node:fs';
import { chmod, mkdtemp, readFile, rm } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { fencePidPathOf } from '../src/fence/fence-paths.js';
import { LocalCluster } from '../src/local/local-cluster.js';
import type { LocalTiming } from '../src/local/node-config.js';
import { PatroniCluster } from './patroni-cluster.js';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '60' },
    requests: { type: 'string', default: '200' },
    /** default (ttl 30, loop_wait 10, retry_timeout 10), fast (ttl 10, loop_wait 1, retry_timeout 4) or both. */
    profile: { type: 'string', default: 'both' },
    /** Idle windows per profile (each followed by its latency run); more windows, less noise. */
    windows: { type: 'string', default: '1' },
    /** Seconds to wait after both clusters are healthy before measuring (start-up work, JIT warm-up). */
    settle: { type: 'string', default: '20' },
    /** pgwarden, patroni or both. */
    only: { type: 'string', default: 'both' },
    /**
     * dist/ directory of another pgwarden build (e.g. an older commit built with tsc): its local cluster runs in the
     * same windows, with its own etcd, and is reported as pgwarden@<baseline-label>, for before/after in one run.
     */
    baseline: { type: 'string' },
    'baseline-label': { type: 'string', default: 'before' },
    /**
     * The silent-leader detector's fence window in seconds (dynamic key fence_window; 0 turns the detector off and
     * with it the leader's heartbeat, about 4 etcd writes a second). Default: the product's default (on).
     */
    'fence-window': { type: 'string' },
    /** Keep the clusters' directories (logs) after the run. */
    keep: { type: 'boolean', default: false },
  },
});

const PROFILES: Readonly<Record<string, LocalTiming>> = {
  default: { ttl: 30, loop_wait: 10, retry_timeout: 10 },
  fast: { ttl: 10, loop_wait: 1, retry_timeout: 4 },
};
const TICKS_PER_SECOND = 100;
const seconds = Number(values.seconds);
const requests = Number(values.requests);
const windows = Number(values.windows);
const settleMs = Number(values.settle) * 1000;
const profiles = values.profile === 'both' ? ['default', 'fast'] : [values.profile];
const runsPgwarden = values.only !== 'patroni';
const runsPatroni = values.only !== 'pgwarden';

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

interface ProcSample {
  readonly rssKb: number;
  readonly anonKb: number;
  /** Unique set size: pages no other process maps (what its exit would give back). */
  readonly ussKb: number;
  readonly threads: number;
  readonly cpuTicks: number;
}

async function readProc(pid: number): Promise<ProcSample> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const field = (name: string): number => Number(new RegExp(`^${name}:\\s+(\\d+)`, 'm').exec(status)?.[1] ?? Number.NaN);
  // Fields 14 and 15 (utime, stime) are at index 11 and 12 after the ") " that ends the comm field.
  const stat = (await readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1]!.split(' ');
  const rollup = await readFile(`/proc/${pid}/smaps_rollup`, 'utf8');
  const rollupField = (name: string): number => Number(new RegExp(`^${name}:\\s+(\\d+)`, 'm').exec(rollup)?.[1] ?? Number.NaN);
  return {
    rssKb: field('VmRSS'),
    anonKb: field('RssAnon'),
    ussKb: rollupField('Private_Clean') + rollupField('Private_Dirty'),
    threads: field('Threads'),
    cpuTicks: Number(stat[11]) + Number(stat[12]),
  };
}

async function cpuTicksOf(pid: number): Promise<number | undefined> {
  try {
    return (await readProc(pid)).cpuTicks;
  } catch {
    return undefined;
  }
}

/** One measured agent: its PID, REST port and how to find its PostgreSQL connections. */
interface Target {
  readonly impl: string;
  readonly role: 'leader' | 'replica';
  readonly name: string;
  readonly pid: number;
  /** pgwarden's fence process (fence/), a second process per member that the agent feeds. */
  readonly fencePid?: number;
  readonly apiPort: number;
  readonly pgPort: number;
  readonly password: string;
  /** Its log, quoted when the process is gone mid-measurement. */
  readonly logFile: string;
}

interface WindowResult {
  readonly rssMb: number;
  readonly anonMb: number;
  readonly ussMb: number;
  readonly threads: number;
  readonly cpuPercent: number;
  /** CPU of the PostgreSQL backends serving the agent's own connections (its probes and checks). */
  readonly backendCpuPercent: number;
  readonly fenceRssMb: number | undefined;
  readonly fenceCpuPercent: number | undefined;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
}

async function withPg<T>(target: Target, run: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({
    host: '127.0.0.1',
    port: target.pgPort,
    user: 'postgres',
    password: target.password,
    database: 'postgres',
    application_name: 'footprint-bench',
    connectionTimeoutMillis: 3000,
  });
  await client.connect();
  try {
    return await run(client);
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** PIDs of the client backends the agent opened (pgwarden: application_name pgwarden; Patroni: Patroni...). */
async function agentBackends(target: Target): Promise<number[]> {
  const rows = await withPg(target, async (client) =>
    (
      await client.query<{ pid: number }>(
        "SELECT pid FROM pg_stat_activity WHERE backend_type = 'client backend' AND (application_name = 'pgwarden' OR application_name LIKE 'Patroni%')",
      )
    ).rows.map((row) => row.pid),
  ).catch(() => []);
  return rows;
}

function getOnce(port: number, path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const startedAt = performance.now();
    // A new connection per request, as HAProxy checks and patronictl do (Patroni answers HTTP/1.0 and closes anyway).
    const req = request({ host: '127.0.0.1', port, path, agent: false }, (response) => {
      response.resume();
      response.on('end', () =>
        response.statusCode === 200 ? resolve(performance.now() - startedAt) : reject(new Error(`${path} ${response.statusCode}`)),
      );
    });
    req.setTimeout(5000, () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

async function getJson(port: number, path: string): Promise<Record<string, unknown> | undefined> {
  try {
    const response = await fetch(`http://127.0.0.1:${port}${path}`, { signal: AbortSignal.timeout(2000) });
    return (await response.json()) as Record<string, unknown>;
  } catch {
    return undefined;
  }
}

/** Healthy the same way for both: one member says master/primary with every other member streaming from it. */
async function waitHealthyByRest(
  label: string,
  nodes: readonly { name: string; apiPort: number }[],
  timeoutMs: number,
): Promise<{ leader: string; replicas: string[] }> {
  const giveUpAt = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < giveUpAt) {
    const documents = await Promise.all(nodes.map((node) => getJson(node.apiPort, '/patroni')));
    const leaderIndex = documents.findIndex((doc) => doc?.role === 'master' || doc?.role === 'primary');
    const leaderDoc = documents[leaderIndex];
    const streaming = ((leaderDoc?.replication as { state?: string }[] | undefined) ?? []).filter((row) => row.state === 'streaming');
    const isRunning = documents.every((doc) => doc?.state === 'running');
    if (leaderIndex >= 0 && isRunning && streaming.length === nodes.length - 1) {
      return { leader: nodes[leaderIndex]!.name, replicas: nodes.filter((_node, index) => index !== leaderIndex).map((node) => node.name) };
    }
    last = documents.map((doc, index) => `${nodes[index]!.name}=${String(doc?.role)}/${String(doc?.state)}`).join(' ');
    await sleep(500);
  }
  throw new Error(`${label} did not become healthy within ${timeoutMs / 1000} s (last: ${last})`);
}

/** /proc of a target; a target that exited is an error that quotes the end of its log. */
async function readTarget(target: Target): Promise<ProcSample> {
  try {
    return await readProc(target.pid);
  } catch (error) {
    const tail = (await readFile(target.logFile, 'utf8').catch(() => '')).split('\n').slice(-12).join('\n');
    throw new Error(`${target.impl} ${target.role} ${target.name} (pid ${target.pid}) is gone; the end of ${target.logFile}:\n${tail}`, {
      cause: error,
    });
  }
}

async function measureWindow(targets: readonly Target[]): Promise<WindowResult[]> {
  const backends = await Promise.all(targets.map(agentBackends));
  const backendStart = await Promise.all(backends.map((pids) => Promise.all(pids.map(cpuTicksOf))));
  const start = await Promise.all(targets.map(readTarget));
  const fenceOf = (target: Target): Promise<ProcSample | undefined> =>
    target.fencePid === undefined ? Promise.resolve(undefined) : readProc(target.fencePid).catch(() => undefined);
  const fenceStart = await Promise.all(targets.map(fenceOf));
  const startedAt = performance.now();
  const peakRssKb = start.map((sample) => sample.rssKb);
  const peakThreads = start.map((sample) => sample.threads);
  const endAt = startedAt + seconds * 1000;
  // Sampled once a second so a transient peak shows; the agents do not notice a read of /proc.
  while (performance.now() < endAt) {
    await sleep(Math.min(1000, endAt - performance.now()));
    const samples = await Promise.all(targets.map(readTarget));
    samples.forEach((sample, index) => {
      peakRssKb[index] = Math.max(peakRssKb[index]!, sample.rssKb);
      peakThreads[index] = Math.max(peakThreads[index]!, sample.threads);
    });
  }
  const end = await Promise.all(targets.map(readTarget));
  const fenceEnd = await Promise.all(targets.map(fenceOf));
  const elapsedS = (performance.now() - startedAt) / 1000;
  const backendEnd = await Promise.all(backends.map((pids) => Promise.all(pids.map(cpuTicksOf))));

  // Latency after the idle window, interleaved across all targets so that machine noise hits each the same.
  const latencies: number[][] = targets.map(() => []);
  for (let index = 0; index < requests; index++) {
    for (let at = 0; at < targets.length; at++) latencies[at]!.push(await getOnce(targets[at]!.apiPort, '/patroni'));
  }
  return targets.map((_target, index) => {
    const sorted = [...latencies[index]!].sort((a, b) => a - b);
    const pick = (p: number): number => sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
    let backendTicks = 0;
    backendStart[index]!.forEach((ticks, at) => {
      const after = backendEnd[index]![at];
      if (ticks !== undefined && after !== undefined) backendTicks += after - ticks;
    });
    return {
      rssMb: end[index]!.rssKb / 1024,
      anonMb: end[index]!.anonKb / 1024,
      ussMb: end[index]!.ussKb / 1024,
      threads: Math.max(peakThreads[index]!, end[index]!.threads),
      cpuPercent: ((end[index]!.cpuTicks - start[index]!.cpuTicks) / TICKS_PER_SECOND / elapsedS) * 100,
      backendCpuPercent: (backendTicks / TICKS_PER_SECOND / elapsedS) * 100,
      fenceRssMb: fenceEnd[index] === undefined ? undefined : fenceEnd[index].rssKb / 1024,
      fenceCpuPercent:
        fenceStart[index] === undefined || fenceEnd[index] === undefined
          ? undefined
          : ((fenceEnd[index].cpuTicks - fenceStart[index].cpuTicks) / TICKS_PER_SECOND / elapsedS) * 100,
      p50Ms: pick(50),
      p99Ms: pick(99),
      maxMs: sorted[sorted.length - 1]!,
    };
  });
}

const median = (xs: readonly number[]): number => {
  const sorted = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
};

function printTable(profile: string, timing: LocalTiming, targets: readonly Target[], results: readonly WindowResult[][]): void {
  console.log(
    `\n== ${profile} profile (ttl ${timing.ttl}, loop_wait ${timing.loop_wait}, retry_timeout ${timing.retry_timeout}; silent-leader detector ${values['fence-window'] === undefined ? 'on (default)' : Number(values['fence-window']) > 0 ? `fence_window ${values['fence-window']}` : 'off'}): ${windows} idle window(s) of ${seconds} s, then ${requests} sequential GET /patroni each (new connection per request); medians over windows`,
  );
  const header = [
    'agent',
    'role',
    'RSS MB',
    'anon MB',
    'USS MB',
    'CPU %',
    'PG conn CPU %',
    'fence RSS MB',
    'fence CPU %',
    'threads',
    'REST p50 ms',
    'REST p99 ms',
    'REST max ms',
  ];
  const rows = targets.map((target, index) => {
    const of = (pick: (result: WindowResult) => number): number => median(results.map((window) => pick(window[index]!)));
    const optional = (pick: (result: WindowResult) => number | undefined, digits: number): string => {
      const values = results.map((window) => pick(window[index]!)).filter((value) => value !== undefined);
      return values.length === 0 ? '-' : median(values).toFixed(digits);
    };
    return [
      target.impl,
      target.role,
      of((r) => r.rssMb).toFixed(1),
      of((r) => r.anonMb).toFixed(1),
      of((r) => r.ussMb).toFixed(1),
      of((r) => r.cpuPercent).toFixed(2),
      of((r) => r.backendCpuPercent).toFixed(2),
      optional((r) => r.fenceRssMb, 1),
      optional((r) => r.fenceCpuPercent, 2),
      String(of((r) => r.threads)),
      of((r) => r.p50Ms).toFixed(2),
      of((r) => r.p99Ms).toFixed(2),
      of((r) => r.maxMs).toFixed(2),
    ];
  });
  const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => row[column]!.length)));
  const line = (cells: readonly string[]): string =>
    `| ${cells.map((cell, column) => (column < 2 ? cell.padEnd(widths[column]!) : cell.padStart(widths[column]!))).join(' | ')} |`;
  console.log(line(header));
  console.log(`|${widths.map((width, column) => (column < 2 ? `:${'-'.repeat(width + 1)}` : `${'-'.repeat(width + 1)}:`)).join('|')}|`);
  for (const row of rows) console.log(line(row));
  console.log(
    '  RSS = VmRSS (includes the interpreter binary and libraries mapped from disk, shared with every process running them); anon = RssAnon (heap, stacks); USS = pages no other process maps; CPU = utime+stime of the agent process; PG conn CPU = its PostgreSQL backends; fence = the fence process of that member (Patroni has none)',
  );
  if (windows > 1) {
    for (const [index, target] of targets.entries()) {
      console.log(
        `  ${target.impl} ${target.role} per window: CPU % ${results.map((window) => window[index]!.cpuPercent.toFixed(2)).join(' ')}; RSS MB ${results.map((window) => window[index]!.rssMb.toFixed(1)).join(' ')}; p99 ms ${results.map((window) => window[index]!.p99Ms.toFixed(2)).join(' ')}`,
      );
    }
  }
}

function fencePidOf(dataDir: string): { fencePid?: number } {
  try {
    const pid = Number(readFileSync(fencePidPathOf(dataDir), 'utf8').trim());
    return Number.isInteger(pid) && pid > 0 ? { fencePid: pid } : {};
  } catch {
    return {};
  }
}

let pgwardenCluster: LocalCluster | undefined;
let baselineCluster: LocalCluster | undefined;
let patroniCluster: PatroniCluster | undefined;
let isStopping = false;

async function stopAll(): Promise<void> {
  const stops: Promise<void>[] = [];
  if (patroniCluster !== undefined) stops.push(patroniCluster.stop().catch((error: unknown) => console.error('stopping Patroni:', error)));
  if (baselineCluster !== undefined)
    stops.push(baselineCluster.stop().catch((error: unknown) => console.error('stopping the baseline:', error)));
  await Promise.all(stops);
  baselineCluster = undefined;
  // pgwarden's cluster owns the shared etcd: stop it last so Patroni can release its keys first.
  await pgwardenCluster?.stop().catch((error: unknown) => console.error('stopping pgwarden:', error));
  patroniCluster = undefined;
  pgwardenCluster = undefined;
}

async function runProfile(profile: string): Promise<void> {
  const timing = PROFILES[profile];
  if (timing === undefined) throw new Error(`--profile: unknown profile ${profile} (default, fast or both)`);
  const dir = await mkdtemp(join(tmpdir(), 'pgw-footprint-'));
  // PostgreSQL and Patroni run as the postgres user and must traverse it.
  await chmod(dir, 0o755);
  // Both pgwarden builds run with the same dynamic settings, or the comparison measures the settings.
  const bootstrapDcs = values['fence-window'] !== undefined ? { bootstrapDcs: { fence_window: Number(values['fence-window']) } } : {};
  try {
    // The pgwarden cluster brings the etcd both clusters use (3 members, scopes footprint and patroni-footprint).
    pgwardenCluster = await LocalCluster.start({
      dir: join(dir, 'pgwarden'),
      timing,
      scope: 'footprint',
      ...bootstrapDcs,
    });
    const cluster = pgwardenCluster;
    if (runsPatroni) {
      patroniCluster = await PatroniCluster.start({
        dir: join(dir, 'patroni'),
        etcdEndpoints: cluster.etcd.endpoints,
        scope: 'patroni-footprint',
        timing,
        superuserPassword: cluster.superuserPassword,
      });
    }
    if (values.baseline !== undefined) {
      const module = (await import(pathToFileURL(join(resolve(values.baseline), 'src/local/local-cluster.js')).href)) as {
        LocalCluster: typeof LocalCluster;
      };
      baselineCluster = await module.LocalCluster.start({
        dir: join(dir, 'baseline'),
        timing,
        scope: 'footprint-baseline',
        ...bootstrapDcs,
      });
    }
    const patroni = patroniCluster;
    const baseline = baselineCluster;
    const [pgwHealthy, patroniHealthy, baselineHealthy] = await Promise.all([
      runsPgwarden ? waitHealthyByRest('pgwarden', cluster.nodes, 180_000) : Promise.resolve(undefined),
      patroni === undefined ? Promise.resolve(undefined) : waitHealthyByRest('Patroni', patroni.nodes, 180_000),
      baseline === undefined ? Promise.resolve(undefined) : waitHealthyByRest('the baseline', baseline.nodes, 180_000),
    ]);
    const targets: Target[] = [];
    const pgwardenTargets = (impl: string, of: LocalCluster, healthy: { leader: string; replicas: string[] }): void => {
      for (const [role, name] of [
        ['leader', healthy.leader],
        ['replica', healthy.replicas[0]!],
      ] as const) {
        const node = of.node(name);
        targets.push({
          impl,
          role,
          name,
          pid: node.agentPid!,
          ...fencePidOf(node.dataDir),
          apiPort: node.apiPort,
          pgPort: node.pgPort,
          password: of.superuserPassword,
          logFile: node.logFile,
        });
      }
    };
    if (baseline !== undefined && baselineHealthy !== undefined)
      pgwardenTargets(`pgwarden@${values['baseline-label']}`, baseline, baselineHealthy);
    if (pgwHealthy !== undefined) pgwardenTargets('pgwarden', cluster, pgwHealthy);
    if (patroni !== undefined && patroniHealthy !== undefined) {
      for (const [role, name] of [
        ['leader', patroniHealthy.leader],
        ['replica', patroniHealthy.replicas[0]!],
      ] as const) {
        const node = patroni.nodes.find((candidate) => candidate.name === name)!;
        targets.push({
          impl: 'Patroni',
          role,
          name,
          pid: node.pid!,
          apiPort: node.apiPort,
          pgPort: node.pgPort,
          password: patroni.superuserPassword,
          logFile: node.logFile,
        });
      }
    }
    console.log(
      `${profile}: healthy (${targets.map((target) => `${target.impl} ${target.role} ${target.name} pid ${target.pid}`).join(', ')}); settling ${settleMs / 1000} s`,
    );
    await sleep(settleMs);
    const results: WindowResult[][] = [];
    for (let window = 0; window < windows; window++) {
      results.push(await measureWindow(targets));
      console.log(`${profile}: window ${window + 1}/${windows} done`);
    }
    printTable(profile, timing, targets, results);
  } finally {
    await stopAll();
    if (values.keep) console.log(`kept ${dir}`);
    else await rm(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.on(signal, () => {
      if (isStopping) return;
      isStopping = true;
      console.error(`\n${signal}: stopping both clusters`);
      void stopAll().finally(() => process.exit(130));
    });
  }
  console.log(
    `footprint benchmark: node ${process.version}, ${(await readFile('/proc/cpuinfo', 'utf8')).match(/^processor/gm)?.length ?? '?'} CPUs, load ${(await readFile('/proc/loadavg', 'utf8')).split(' ').slice(0, 3).join(' ')}`,
  );
  for (const profile of profiles) await runProfile(profile);
}

main().catch(async (error: unknown) => {
  console.error(error);
  await stopAll();
  process.exitCode = 1;
});
