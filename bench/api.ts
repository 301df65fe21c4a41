// REST API benchmark on a real local cluster: GET /primary latency and throughput, and the write gap of a planned switchover.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { Agent, request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
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

const { values } = parseArgs({
  options: {
    requests: { type: 'string', default: '5000' },
    seconds: { type: 'string', default: '5' },
    connections: { type: 'string', default: '8' },
    switchovers: { type: 'string', default: '3' },
  },
});

const agent = new Agent({ keepAlive: true, maxSockets: 64 });

function get(port: number, path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, agent }, (response) => {
      response.resume();
      response.on('end', () => resolve(response.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end();
  });
}

const percentile = (sorted: number[], p: number): number => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'pgw-bench-api-'));
  const cluster = await LocalCluster.start({ dir, timing: DEFAULT_DYNAMIC_CONFIG, scope: 'benchapi' });
  try {
    let { leader } = await waitHealthy(cluster, 120_000);
    const port = cluster.node(leader).apiPort;
    for (let i = 0; i < 500; i++) await get(port, '/primary');
    const latencies: number[] = [];
    for (let i = 0; i < Number(values.requests); i++) {
      const startedAt = performance.now();
      await get(port, '/primary');
      latencies.push(performance.now() - startedAt);
    }
    latencies.sort((a, b) => a - b);
    console.log(
      `GET /primary sequential, ${latencies.length} requests, keep-alive: p50 ${percentile(latencies, 50).toFixed(3)} ms, p99 ${percentile(latencies, 99).toFixed(3)} ms`,
    );

    const seconds = Number(values.seconds);
    const endAt = performance.now() + seconds * 1000;
    let completed = 0;
    await Promise.all(
      Array.from({ length: Number(values.connections) }, async () => {
        while (performance.now() < endAt) {
          await get(port, '/primary');
          completed++;
        }
      }),
    );
    console.log(
      `GET /primary with ${values.connections} concurrent keep-alive connections: ${Math.round(completed / seconds)} requests/s (client and server share this 2-core machine)`,
    );

    await sql(cluster, leader, 'CREATE TABLE bench_sw (id int primary key)');
    await sql(cluster, leader, 'CREATE TABLE bench_sw_haproxy (id int primary key)');
    const [writePort, readPort] = (await pickFreePorts(2)) as [number, number];
    await writeFile(join(dir, 'haproxy.cfg'), haproxyConfig(cluster, writePort, readPort, 100));
    const haproxyPid = spawnManaged({
      command: HAPROXY,
      args: ['-db', '-f', join(dir, 'haproxy.cfg')],
      logFile: join(dir, 'haproxy.log'),
    }).pid;
    const writer = benchWriter(
      cluster.nodes.map((node) => ({ host: '127.0.0.1', port: node.pgPort })),
      cluster.superuserPassword,
      'bench_sw',
    );
    const viaHaproxy = benchWriter([{ host: '127.0.0.1', port: writePort }], cluster.superuserPassword, 'bench_sw_haproxy');
    writer.start();
    viaHaproxy.start();
    await new Promise((resolve) => setTimeout(resolve, 3000));
    const gaps: number[] = [];
    const haproxyGaps: number[] = [];
    for (let run = 0; run < Number(values.switchovers); run++) {
      const view = await cluster.view();
      const candidate = view.members.find((member) => member.name !== leader)!.name;
      const startedAt = performance.now();
      const response = await fetch(`http://127.0.0.1:${cluster.node(leader).apiPort}/switchover`, {
        method: 'POST',
        body: JSON.stringify({ leader, candidate }),
      });
      const answer = await response.text();
      if (!response.ok)
        throw new PgwardenError(
          'PGW_BENCH_SETUP',
          `switchover ${run + 1} (${leader} -> ${candidate}) refused: HTTP ${response.status} ${answer}`,
          {
            context: { member: leader, candidate, hint: `see ${cluster.node(leader).logFile}` },
          },
        );
      const failedAt = await waitUntil(async () => writer.failures.find((failure) => failure.atMs > startedAt)?.atMs, {
        timeoutMs: 30_000,
        intervalMs: 10,
        describe: 'the writer to notice the switchover',
      }).catch(() => startedAt);
      const recovered = await waitUntil(
        async () => writer.acks.find((ack) => ack.atMs > failedAt && ack.port === cluster.node(candidate).pgPort),
        { timeoutMs: 60_000, intervalMs: 10, describe: 'a write on the new primary' },
      );
      const gap = longestWriteGap(writer.acks, startedAt, recovered.atMs) ?? Number.NaN;
      gaps.push(gap);
      // Through HAProxy the writer always dials the same port; the outage ends with its first write after its first error.
      const haproxyFailedAt = await waitUntil(async () => viaHaproxy.failures.find((failure) => failure.atMs > startedAt)?.atMs, {
        timeoutMs: 30_000,
        intervalMs: 10,
        describe: 'the HAProxy writer to notice',
      }).catch(() => startedAt);
      const haproxyRecovered = await waitUntil(async () => viaHaproxy.acks.find((ack) => ack.atMs > haproxyFailedAt), {
        timeoutMs: 60_000,
        intervalMs: 10,
        describe: 'a write through HAProxy',
      });
      const haproxyGap = longestWriteGap(viaHaproxy.acks, startedAt, haproxyRecovered.atMs) ?? Number.NaN;
      haproxyGaps.push(haproxyGap);
      console.log(
        `switchover ${run + 1}: ${leader} -> ${candidate}: API answered "${answer}" after ${Math.round(performance.now() - startedAt)} ms; write gap through libpq-style multi-host ${Math.round(gap)} ms, through HAProxy (inter 100ms fall 2 rise 1) ${Math.round(haproxyGap)} ms`,
      );
      leader = candidate;
      await waitHealthy(cluster, 60_000);
      await new Promise((resolve) => setTimeout(resolve, 2000));
    }
    await writer.stop();
    await viaHaproxy.stop();
    await stopPid(haproxyPid, { signal: 'SIGTERM', graceMs: 3000 });
    const present = new Set((await sql<{ id: number }>(cluster, leader, 'SELECT id FROM bench_sw')).map((row) => row.id));
    const presentHaproxy = new Set((await sql<{ id: number }>(cluster, leader, 'SELECT id FROM bench_sw_haproxy')).map((row) => row.id));
    const sorted = [...gaps].sort((a, b) => a - b);
    const sortedHaproxy = [...haproxyGaps].sort((a, b) => a - b);
    console.log(
      `switchover write gap, libpq multi-host: median ${Math.round(percentile(sorted, 50))} ms, max ${Math.round(sorted[sorted.length - 1]!)} ms; acknowledged writes ${writer.acks.length}, lost ${writer.acks.filter((ack) => !present.has(ack.id)).length}`,
    );
    console.log(
      `switchover write gap, through HAProxy: median ${Math.round(percentile(sortedHaproxy, 50))} ms, max ${Math.round(sortedHaproxy[sortedHaproxy.length - 1]!)} ms; acknowledged writes ${viaHaproxy.acks.length}, lost ${viaHaproxy.acks.filter((ack) => !presentHaproxy.has(ack.id)).length}`,
    );
  } finally {
    agent.destroy();
    await cluster.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
