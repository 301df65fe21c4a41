// Proxy benchmark on a real local cluster: pgbench -S direct vs through the pgwarden proxy vs through HAProxy
// (interleaved rounds), the switchover write gap through the proxy, and the proxy's RSS with 1,000 idle clients.
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer as createHttpServer } from 'node:http';
import { connect, createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs, promisify } from 'node:util';
import { LocalCluster } from '../src/local/local-cluster.js';
import { pickFreePorts } from '../src/local/free-port.js';
import { spawnManaged, stopPid } from '../src/local/process.js';
import { waitUntil } from '../src/util/wait-until.js';
import { sql, waitHealthy } from '../test/kit/cluster-kit.js';
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
  },
});
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

async function throughput(
  cluster: LocalCluster,
  leader: string,
  proxyPorts: Readonly<Record<string, number>>,
  haproxyPort: number,
): Promise<void> {
  const password = cluster.superuserPassword;
  await pgbench(cluster.node(leader).pgPort, password, ['-i', '-s', '10', '-q']);
  const targets: Record<string, number> = { direct: cluster.node(leader).pgPort, ...proxyPorts, 'HAProxy 2.6': haproxyPort };
  const results: Record<string, number[]> = Object.fromEntries(Object.keys(targets).map((name) => [name, []]));
  const args = ['-S', '-c', values.clients, '-j', values.threads, '-T', values.seconds, '-n'];
  console.log(`pgbench ${args.join(' ')} (scale 10), ${values.rounds} interleaved rounds`);
  for (let round = 1; round <= Number(values.rounds); round++) {
    for (const [name, port] of Object.entries(targets)) {
      const tps = tpsOf(await pgbench(port, password, args));
      results[name]!.push(tps);
      console.log(`  round ${round} ${name.padEnd(24)} ${tps.toFixed(0)} tps`);
    }
  }
  const direct = median(results.direct!);
  for (const name of Object.keys(targets)) {
    const value = median(results[name]!);
    console.log(`${name.padEnd(24)} median ${value.toFixed(0)} tps = ${(value / direct).toFixed(2)}x direct`);
  }
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
    await throughput(cluster, leader, proxyPorts, writePort);
    leader = await switchoverGap(cluster, leader, proxy.primaryPort, 'pgwarden proxy userspace');
    if (kernelProxy !== undefined) leader = await switchoverGap(cluster, leader, kernelProxy.primaryPort, 'pgwarden proxy kernel');
    await idleMemory(cluster, dir);
  } finally {
    if (haproxyPid !== undefined) await stopPid(haproxyPid, { signal: 'SIGTERM', graceMs: 3000 });
    await cluster.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
