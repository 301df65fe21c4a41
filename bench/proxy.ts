// Proxy benchmark on a real local cluster: pgbench -S direct vs through the pgwarden proxy (userspace, kernel), the
// split listener (transaction pooling, reads on replicas), PgBouncer (Debian's 1.18, transaction pooling) and HAProxy,
// interleaved rounds; the share of split reads replicas served; the added p50 latency of a read that did not wait;
// how many clients 20 server connections hold; the switchover write gap through the proxy; the proxy's RSS with 1,000
// idle clients.
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer as createHttpServer } from 'node:http';
import { connect, createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs, promisify } from 'node:util';
import type pg from 'pg';
import { LocalCluster, type LocalProxy } from '../src/local/local-cluster.js';
import { PGBOUNCER, startPgBouncer, type RunningPgBouncer } from './pgbouncer.js';
import { pickFreePorts } from '../src/local/free-port.js';
import { spawnManaged, stopPid } from '../src/local/process.js';
import { waitUntil } from '../src/util/wait-until.js';
import { commitsPerMember, connectSuperuser, sql, waitHealthy } from '../test/kit/cluster-kit.js';
import { HAPROXY, haproxyConfig } from '../test/kit/haproxy.js';
import { longestWriteGap } from '../src/chaos/workload.js';
import { benchWriter } from './writer.js';
import { DEFAULT_DYNAMIC_CONFIG } from '../test/kit/fixtures.js';
import { PgwardenError } from '../src/util/errors.js';

const run = promisify(execFile);
const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '20' },
    clients: { type: 'string', default: '8' },
    threads: { type: 'string', default: '2' },
    rounds: { type: 'string', default: '2' },
    switchovers: { type: 'string', default: '3' },
    idle: { type: 'string', default: '1000' },
    /** Server connections per pool of the split listener and PgBouncer's default_pool_size in the throughput rounds. */
    'pool-size': { type: 'string', default: '20' },
    /** Reads per target and round for the latency figure (one client, no write before: no read-your-writes wait). */
    'latency-reads': { type: 'string', default: '2000' },
    /** Clients run by pgbench -S through 20 server connections: PgBouncer's pool of 20, the split's pools of 6 per member (3 members). */
    'held-clients': { type: 'string', default: '500' },
    /** Which parts to run (comma-separated): throughput, latency, held, switchover, idle. */
    parts: { type: 'string', default: 'throughput,latency,held,switchover,idle' },
  },
});
const parts = new Set(values.parts.split(','));
const PGBENCH = '/usr/lib/postgresql/15/bin/pgbench';
const CLI_ENTRY = fileURLToPath(new URL('../src/bin/pgwarden.js', import.meta.url));

async function pgbench(port: number, password: string, args: string[]): Promise<string> {
  const { stdout } = await run(PGBENCH, ['-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', ...args, 'postgres'], {
    env: { ...process.env, PGPASSWORD: password },
    maxBuffer: 16 * 1024 * 1024,
  });
  return stdout;
}

const tpsOf = (output: string): number => Number(/tps = ([\d.]+) \(without initial connection time\)/.exec(output)?.[1] ?? Number.NaN);
const median = (numbers: number[]): number => [...numbers].sort((a, b) => a - b)[Math.floor(numbers.length / 2)]!;
const rssKb = (pid: number): number => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? Number.NaN);

const SPLIT = 'pgwarden split (txn pool)';
const PGBOUNCER_NAME = 'PgBouncer 1.18 (txn pool)';

async function throughput(cluster: LocalCluster, leader: string, targets: Readonly<Record<string, number>>): Promise<void> {
  const password = cluster.superuserPassword;
  const results: Record<string, number[]> = Object.fromEntries(Object.keys(targets).map((name) => [name, []]));
  const args = ['-S', '-c', values.clients, '-j', values.threads, '-T', values.seconds, '-n'];
  console.log(`pgbench ${args.join(' ')} (scale 10), ${values.rounds} interleaved rounds; pool size ${values['pool-size']}`);
  const onReplicas = { replicas: 0, total: 0 };
  // A short warm-up per target first: pools filled, pg_proc read, caches warm (not what the rounds measure).
  for (const port of Object.values(targets))
    await pgbench(port, password, ['-S', '-c', values.clients, '-j', values.threads, '-T', '2', '-n']);
  for (let round = 1; round <= Number(values.rounds); round++) {
    for (const [name, port] of Object.entries(targets)) {
      const before = name === SPLIT ? await commitsPerMember(cluster) : undefined;
      const tps = tpsOf(await pgbench(port, password, args));
      results[name]!.push(tps);
      let share = '';
      if (before !== undefined) {
        const after = await commitsPerMember(cluster);
        for (const node of cluster.nodes) {
          const delta = after.get(node.name)! - before.get(node.name)!;
          onReplicas.total += delta;
          if (node.name !== leader) onReplicas.replicas += delta;
        }
        share = ` (replicas served ${((100 * onReplicas.replicas) / onReplicas.total).toFixed(1)} % so far)`;
      }
      console.log(`  round ${round} ${name.padEnd(28)} ${tps.toFixed(0)} tps${share}`);
    }
  }
  const direct = median(results.direct!);
  for (const name of Object.keys(targets)) {
    const value = median(results[name]!);
    console.log(`${name.padEnd(28)} median ${value.toFixed(0)} tps = ${(value / direct).toFixed(2)}x direct`);
  }
  if (targets[SPLIT] !== undefined)
    console.log(
      `split listener: replicas served ${onReplicas.replicas} of ${onReplicas.total} committed transactions on all members during its rounds (${((100 * onReplicas.replicas) / onReplicas.total).toFixed(1)} %)`,
    );
}

const percentile = (sorted: readonly number[], p: number): number => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!;

/**
 * One client, simple protocol, a pgbench_accounts read per round trip: direct to a replica, direct to the primary,
 * through the split listener (a session that never wrote: no read-your-writes wait) and through PgBouncer, in
 * interleaved blocks. The split's added latency is against a replica (where its reads go), PgBouncer's against the
 * primary (where it points).
 */
async function latency(cluster: LocalCluster, leader: string, splitPort: number, pgbouncerPort: number | undefined): Promise<void> {
  const replica = cluster.nodes.find((node) => node.name !== leader)!;
  const targets: Record<string, number> = {
    'direct replica': replica.pgPort,
    'direct primary': cluster.node(leader).pgPort,
    [SPLIT]: splitPort,
    ...(pgbouncerPort === undefined ? {} : { [PGBOUNCER_NAME]: pgbouncerPort }),
  };
  const samples: Record<string, number[]> = Object.fromEntries(Object.keys(targets).map((name) => [name, []]));
  const servedBy = new Map<number, number>();
  const perBlock = Math.max(1, Math.floor(Number(values['latency-reads']) / 4));
  const clients: Record<string, pg.Client> = {};
  try {
    for (const [name, port] of Object.entries(targets)) {
      clients[name] = await connectSuperuser(cluster, port);
    }
    for (let block = 0; block < 4; block++) {
      for (const [name, client] of Object.entries(clients)) {
        for (let index = 0; index < perBlock; index++) {
          const aid = 1 + Math.floor(Math.random() * 1_000_000);
          const startedAt = performance.now();
          const result = await client.query(`SELECT abalance, inet_server_port() AS port FROM pgbench_accounts WHERE aid = ${aid}`);
          samples[name]!.push(performance.now() - startedAt);
          if (name === SPLIT) {
            const port = Number((result.rows[0] as { port: number }).port);
            servedBy.set(port, (servedBy.get(port) ?? 0) + 1);
          }
        }
      }
    }
  } finally {
    for (const client of Object.values(clients)) await client.end().catch(() => undefined);
  }
  const p50 = (name: string): number =>
    percentile(
      [...samples[name]!].sort((a, b) => a - b),
      0.5,
    );
  const p99 = (name: string): number =>
    percentile(
      [...samples[name]!].sort((a, b) => a - b),
      0.99,
    );
  console.log(`read latency, one client, ${perBlock * 4} reads per target in 4 interleaved blocks:`);
  for (const name of Object.keys(targets))
    console.log(`  ${name.padEnd(28)} p50 ${(p50(name) * 1000).toFixed(0)} µs, p99 ${(p99(name) * 1000).toFixed(0)} µs`);
  const replicaPorts = new Set(cluster.nodes.filter((node) => node.name !== leader).map((node) => node.pgPort));
  const onReplicas = [...servedBy].filter(([port]) => replicaPorts.has(port)).reduce((sum, [, n]) => sum + n, 0);
  console.log(
    `split listener, a read that did not wait: +${((p50(SPLIT) - p50('direct replica')) * 1000).toFixed(0)} µs p50 over a direct replica read (${(p50(SPLIT) / p50('direct replica')).toFixed(2)}x); ${onReplicas} of ${perBlock * 4} served by replicas`,
  );
  if (pgbouncerPort !== undefined)
    console.log(
      `PgBouncer: +${((p50(PGBOUNCER_NAME) - p50('direct primary')) * 1000).toFixed(0)} µs p50 over a direct primary read (${(p50(PGBOUNCER_NAME) / p50('direct primary')).toFixed(2)}x)`,
    );
}

/**
 * pgbench -S with many clients through few server connections; the peak of server connections sampled every
 * 100 ms while it runs, and the failed transactions.
 */
async function held(cluster: LocalCluster, name: string, port: number, serverConnections: () => Promise<number>): Promise<void> {
  const clients = Number(values['held-clients']);
  let peak = 0;
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      peak = Math.max(peak, await serverConnections().catch(() => 0));
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  })();
  let output = '';
  try {
    // Long enough that the logins (SCRAM for every client, one at a time through PgBouncer) leave time to run.
    const seconds = String(Math.max(30, Number(values.seconds)));
    output = await pgbench(port, cluster.superuserPassword, ['-S', '-c', String(clients), '-j', '2', '-T', seconds, '-n']);
  } finally {
    sampling = false;
    await sampler;
  }
  const failed = /number of failed transactions: (\d+)/.exec(output)?.[1] ?? '0';
  const done = /number of transactions actually processed: (\d+)/.exec(output)?.[1] ?? '?';
  const connecting = /initial connection time = ([\d.]+) ms/.exec(output)?.[1] ?? '?';
  console.log(
    `${name.padEnd(28)} ${clients} clients (all logged in after ${connecting} ms) ran ${done} transactions (${tpsOf(output).toFixed(0)} tps, ${failed} failed) on at most ${peak} server connections: ${((clients * 20) / Math.max(1, peak)).toFixed(0)} clients per 20 server connections`,
  );
}

/** The split listener's pooled server connections (idle and busy), from its /metrics. */
async function splitServerConnections(apiPort: number): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${apiPort}/metrics`)).text();
  let total = 0;
  for (const match of text.matchAll(/^pgwarden_proxy_split_server_connections\{state="(?:idle|busy)"\} (\d+)/gm)) total += Number(match[1]);
  return total;
}

async function startSplitProxy(cluster: LocalCluster, dir: string, poolSize: number, maxClientConn: number): Promise<LocalProxy> {
  const authFile = join(dir, `split-userlist-${poolSize}.txt`);
  await writeFile(authFile, `"postgres" "${cluster.superuserPassword}"\n`, { mode: 0o600 });
  const proxy = await cluster.startProxy({}, { authFile, settings: { pool_size: poolSize, max_client_conn: maxClientConn } });
  await waitUntil(
    async () => {
      const status = (await (await fetch(`http://127.0.0.1:${proxy.apiPort}/status`)).json()) as { replicas: { members?: string[] } };
      return status.replicas.members?.length === cluster.nodes.length - 1;
    },
    { timeoutMs: 60_000, describe: 'the split listener to route reads to every replica' },
  );
  return proxy;
}

async function switchoverGap(cluster: LocalCluster, leader: string, proxyPort: number, label: string): Promise<string> {
  const table = `bench_proxy_sw_${label.replace(/\W+/g, '_')}`;
  await sql(cluster, leader, `CREATE TABLE ${table} (id int primary key)`);
  const writer = benchWriter([{ host: '127.0.0.1', port: proxyPort }], cluster.superuserPassword, table);
  writer.start();
  await new Promise((resolve) => setTimeout(resolve, 2000));
  const gaps: number[] = [];
  for (let index = 0; index < Number(values.switchovers); index++) {
    const candidate = cluster.nodes.find((node) => node.name !== leader)!.name;
    const startedAt = performance.now();
    const response = await fetch(`http://127.0.0.1:${cluster.node(leader).apiPort}/switchover`, {
      method: 'POST',
      body: JSON.stringify({ leader, candidate }),
    });
    const answer = await response.text();
    if (!response.ok)
      throw new PgwardenError('PGW_BENCH_SETUP', `switchover ${leader} -> ${candidate} refused: HTTP ${response.status} ${answer}`, {
        context: { member: leader, candidate, hint: `see ${cluster.node(leader).logFile}` },
      });
    // The API answers once the new leader holds the lock; give the writer a moment, then take the longest silence.
    await new Promise((resolve) => setTimeout(resolve, 1500));
    const gap = longestWriteGap(writer.acks, startedAt, performance.now()) ?? Number.NaN;
    gaps.push(gap);
    console.log(
      `switchover ${index + 1}: ${leader} -> ${candidate}: write gap through the ${label} ${Math.round(gap)} ms (errors seen by the writer: ${writer.failures.filter((failure) => failure.atMs > startedAt).length})`,
    );
    leader = candidate;
    await waitHealthy(cluster, 60_000);
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
  await writer.stop();
  const present = new Set((await sql<{ id: number }>(cluster, leader, `SELECT id FROM ${table}`)).map((row) => row.id));
  console.log(
    `switchover write gap through the ${label}: median ${Math.round(median(gaps))} ms, max ${Math.round(Math.max(...gaps))} ms; acknowledged ${writer.acks.length}, lost ${writer.acks.filter((ack) => !present.has(ack.id)).length}`,
  );
  return leader;
}

/** A proxy in front of a stand-in cluster (keys in the same etcd, a TCP sink as "PostgreSQL"): memory per idle client. */
async function idleMemory(cluster: LocalCluster, dir: string): Promise<void> {
  const sinkSockets: Socket[] = [];
  const sink = createServer((socket) => {
    sinkSockets.push(socket);
    socket.on('error', () => undefined);
  });
  const api = createHttpServer((_request, response) => {
    response.writeHead(200);
    response.end('{}');
  });
  await new Promise<void>((resolve) => sink.listen(0, '127.0.0.1', resolve));
  await new Promise<void>((resolve) => api.listen(0, '127.0.0.1', resolve));
  const sinkPort = (sink.address() as { port: number }).port;
  const apiPort = (api.address() as { port: number }).port;
  const endpoint = cluster.etcd.endpoints[0]!;
  const put = (key: string, value: string): Promise<unknown> =>
    run('etcdctl', ['--endpoints', endpoint, 'put', `${cluster.namespace}/rss/${key}`, value], {
      env: { ...process.env, ETCDCTL_API: '3' },
    });
  await put('config', JSON.stringify(DEFAULT_DYNAMIC_CONFIG));
  await put(
    'members/sink',
    JSON.stringify({
      conn_url: `postgres://127.0.0.1:${sinkPort}/postgres`,
      api_url: `http://127.0.0.1:${apiPort}/patroni`,
      state: 'running',
      role: 'primary',
    }),
  );
  await put('leader', 'sink');
  const [primaryPort, apiListen] = (await pickFreePorts(2)) as [number, number];
  const configPath = join(dir, 'rss-proxy.yml');
  await writeFile(
    configPath,
    `scope: rss\nnamespace: ${cluster.namespace}\netcd3:\n  hosts: ${endpoint.replace(/^https?:\/\//, '')}\nproxy:\n  primary_listen: 127.0.0.1:${primaryPort}\n  api_listen: 127.0.0.1:${apiListen}\n`,
  );
  const pid = spawnManaged({ command: process.execPath, args: [CLI_ENTRY, 'proxy', configPath], logFile: join(dir, 'rss-proxy.log') }).pid;
  const clients: Socket[] = [];
  try {
    await waitUntil(async () => (await fetch(`http://127.0.0.1:${apiListen}/health`)).status === 200, {
      timeoutMs: 15_000,
      intervalMs: 100,
      describe: 'the stand-in proxy to route',
    });
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const before = rssKb(pid);
    const count = Number(values.idle);
    for (let index = 0; index < count; index++) {
      const socket = connect({ host: '127.0.0.1', port: primaryPort });
      socket.on('error', () => undefined);
      clients.push(socket);
      // A PostgreSQL SSLRequest, as a client would send first; then the connection stays idle.
      socket.write(Buffer.from([0, 0, 0, 8, 4, 210, 22, 47]));
      if (index % 100 === 99) await new Promise((resolve) => setTimeout(resolve, 20));
    }
    await waitUntil(async () => (sinkSockets.length >= count ? true : undefined), {
      timeoutMs: 30_000,
      intervalMs: 100,
      describe: 'every idle client to reach the backend',
    });
    await new Promise((resolve) => setTimeout(resolve, 2000));
    const after = rssKb(pid);
    console.log(
      `proxy RSS: ${(before / 1024).toFixed(1)} MB idle, ${(after / 1024).toFixed(1)} MB with ${count} idle client connections (${(((after - before) * 1024) / count / 1024).toFixed(1)} kB per client+backend pair)`,
    );
  } finally {
    for (const socket of clients) socket.destroy();
    await stopPid(pid, { signal: 'SIGTERM', graceMs: 5000 });
    for (const socket of sinkSockets) socket.destroy();
    sink.close();
    api.close();
  }
}

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'pgw-bench-proxy-'));
  const cluster = await LocalCluster.start({ dir, timing: DEFAULT_DYNAMIC_CONFIG, scope: 'benchproxy', proxies: 1 });
  let haproxyPid: number | undefined;
  let pgbouncer: RunningPgBouncer | undefined;
  let heldBouncer: RunningPgBouncer | undefined;
  try {
    let { leader } = await waitHealthy(cluster, 120_000);
    const proxy = cluster.proxies[0]!;
    const [writePort, readPort] = (await pickFreePorts(2)) as [number, number];
    await writeFile(join(dir, 'haproxy.cfg'), haproxyConfig(cluster, writePort, readPort, 100));
    haproxyPid = spawnManaged({ command: HAPROXY, args: ['-db', '-f', join(dir, 'haproxy.cfg')], logFile: join(dir, 'haproxy.log') }).pid;
    await waitUntil(async () => (await fetch(`http://127.0.0.1:${proxy.apiPort}/health`)).status === 200, {
      timeoutMs: 20_000,
      intervalMs: 100,
      describe: 'the proxy to route to the leader',
    });
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const proxyPorts: Record<string, number> = { 'pgwarden proxy userspace': proxy.primaryPort };
    // The kernel data path (nftables DNAT) needs root; without it the benchmark says so and measures the rest.
    let kernelProxy: typeof proxy | undefined;
    if (process.getuid?.() === 0) {
      kernelProxy = await cluster.startProxy({ data_path: 'kernel' });
      await waitUntil(async () => (await fetch(`http://127.0.0.1:${kernelProxy!.apiPort}/health`)).status === 200, {
        timeoutMs: 20_000,
        intervalMs: 100,
        describe: 'the kernel-path proxy to route to the leader',
      });
      proxyPorts['pgwarden proxy kernel'] = kernelProxy.primaryPort;
    } else console.log('pgwarden proxy kernel: skipped (data_path: kernel needs root for nftables)');
    const poolSize = Number(values['pool-size']);
    const split = await startSplitProxy(cluster, dir, poolSize, 100);
    if (existsSync(PGBOUNCER)) {
      pgbouncer = await startPgBouncer({
        dir,
        name: 'pgbouncer',
        serverPort: cluster.node(leader).pgPort,
        password: cluster.superuserPassword,
        poolSize,
        maxClientConn: 100,
      });
    } else console.log(`PgBouncer: skipped (${PGBOUNCER} is missing; scripts/ensure-deps.sh installs Debian's pgbouncer)`);
    await pgbench(cluster.node(leader).pgPort, cluster.superuserPassword, ['-i', '-s', '10', '-q']);
    if (parts.has('throughput'))
      await throughput(cluster, leader, {
        direct: cluster.node(leader).pgPort,
        ...proxyPorts,
        [SPLIT]: split.splitPort!,
        ...(pgbouncer === undefined ? {} : { [PGBOUNCER_NAME]: pgbouncer.port }),
        'HAProxy 2.6': writePort,
      });
    if (parts.has('latency')) await latency(cluster, leader, split.splitPort!, pgbouncer?.port);
    if (parts.has('held')) {
      // 20 server connections: PgBouncer's pool of 20 to the primary; the split listener's pools of 6 per member (3 members).
      const clients = Number(values['held-clients']);
      const heldSplit = await startSplitProxy(cluster, dir, Math.floor(20 / cluster.nodes.length), clients + 10);
      await held(cluster, `${SPLIT}, pool_size ${Math.floor(20 / cluster.nodes.length)}`, heldSplit.splitPort!, () =>
        splitServerConnections(heldSplit.apiPort),
      );
      if (existsSync(PGBOUNCER)) {
        heldBouncer = await startPgBouncer({
          dir,
          name: 'pgbouncer-held',
          serverPort: cluster.node(leader).pgPort,
          password: cluster.superuserPassword,
          poolSize: 20,
          maxClientConn: clients + 10,
        });
        await held(cluster, `${PGBOUNCER_NAME}, pool 20`, heldBouncer.port, () => heldBouncer!.serverConnections());
      }
    }
    if (parts.has('switchover')) {
      leader = await switchoverGap(cluster, leader, proxy.primaryPort, 'pgwarden proxy userspace');
      if (kernelProxy !== undefined) leader = await switchoverGap(cluster, leader, kernelProxy.primaryPort, 'pgwarden proxy kernel');
    }
    if (parts.has('idle')) await idleMemory(cluster, dir);
  } finally {
    await pgbouncer?.stop();
    await heldBouncer?.stop();
    if (haproxyPid !== undefined) await stopPid(haproxyPid, { signal: 'SIGTERM', graceMs: 3000 });
    await cluster.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
