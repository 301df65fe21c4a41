// Single-writer commit throughput and latency on a real 3-node cluster: asynchronous, synchronous (priority, one
// standby) and quorum (ANY 1 of two) replication, interleaved in one run so the machine's state is shared.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { guaranteeOf } from '../src/core/sync-standby-names.js';
import { LocalCluster } from '../src/local/local-cluster.js';
import { waitUntil } from '../src/util/wait-until.js';
import { sql, waitHealthy } from '../test/kit/cluster-kit.js';
import { DEFAULT_DYNAMIC_CONFIG } from '../test/kit/fixtures.js';
import { PgwardenError } from '../src/util/errors.js';

const { values } = parseArgs({ options: { seconds: { type: 'string', default: '10' }, rounds: { type: 'string', default: '2' } } });

interface Mode {
  readonly label: string;
  readonly config: Record<string, unknown>;
  /** What synchronous_standby_names must read back as on the leader before measuring. */
  readonly isReady: (ssn: string) => boolean;
}

const MODES: readonly Mode[] = [
  { label: 'async', config: { synchronous_mode: false }, isReady: (ssn) => ssn === '' },
  {
    label: 'sync (priority, 1 standby)',
    config: { synchronous_mode: true, synchronous_node_count: 1 },
    isReady: (ssn) => /^"[^"]+"$/.test(ssn),
  },
  {
    label: 'quorum (ANY 1 of 2)',
    config: { synchronous_mode: 'quorum', synchronous_node_count: 1 },
    isReady: (ssn) => ssn.startsWith('ANY 1 (') && guaranteeOf(ssn).names.length === 2,
  },
];

const percentile = (sorted: number[], p: number): number => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;

async function measure(port: number, password: string, seconds: number): Promise<number[]> {
  const client = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', password, database: 'postgres' });
  await client.connect();
  try {
    const latencies: number[] = [];
    const endAt = performance.now() + seconds * 1000;
    let id = Math.floor(Math.random() * 1e9);
    while (performance.now() < endAt) {
      const startedAt = performance.now();
      await client.query('INSERT INTO bench_sync (id) VALUES ($1)', [id++]);
      latencies.push(performance.now() - startedAt);
    }
    return latencies;
  } finally {
    await client.end();
  }
}

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'pgw-bench-sync-'));
  const cluster = await LocalCluster.start({ dir, timing: DEFAULT_DYNAMIC_CONFIG, scope: 'benchsync' });
  try {
    const { leader } = await waitHealthy(cluster, 120_000);
    await sql(cluster, leader, 'CREATE TABLE bench_sync (id bigint PRIMARY KEY)');
    const results = new Map<string, number[][]>();
    for (let round = 1; round <= Number(values.rounds); round++) {
      for (const mode of MODES) {
        const response = await fetch(`http://127.0.0.1:${cluster.node(leader).apiPort}/config`, {
          method: 'PATCH',
          body: JSON.stringify(mode.config),
          headers: { 'content-type': 'application/json' },
        });
        if (response.status !== 200)
          throw new PgwardenError('PGW_BENCH_SETUP', `PATCH /config for ${mode.label}: ${response.status} ${await response.text()}`, {
            context: { member: leader, key: 'config', mode: mode.label },
          });
        const switchedAt = performance.now();
        await waitUntil(
          async () => {
            const rows = await sql<{ value: string }>(cluster, leader, "SELECT current_setting('synchronous_standby_names') AS value");
            return mode.isReady(rows[0]?.value ?? '') ? true : undefined;
          },
          { timeoutMs: 60_000, intervalMs: 100, describe: `synchronous_standby_names for ${mode.label}` },
        );
        const readyMs = performance.now() - switchedAt;
        const latencies = await measure(cluster.node(leader).pgPort, cluster.superuserPassword, Number(values.seconds));
        const perRound = results.get(mode.label) ?? [];
        perRound.push(latencies);
        results.set(mode.label, perRound);
        const sorted = [...latencies].sort((a, b) => a - b);
        console.log(
          `round ${round} ${mode.label.padEnd(28)} ${Math.round(latencies.length / Number(values.seconds))} commits/s, p50 ${percentile(sorted, 50).toFixed(3)} ms, p99 ${percentile(sorted, 99).toFixed(3)} ms, max ${sorted.at(-1)!.toFixed(1)} ms (mode in effect after ${Math.round(readyMs)} ms)`,
        );
      }
    }
    console.log('\nsingle writer, autocommit INSERT, all rounds pooled:');
    console.log('| mode | commits/s | p50 ms | p99 ms |');
    console.log('|---|---|---|---|');
    for (const [label, rounds] of results) {
      const all = rounds.flat().sort((a, b) => a - b);
      console.log(
        `| ${label} | ${Math.round(all.length / (rounds.length * Number(values.seconds)))} | ${percentile(all, 50).toFixed(3)} | ${percentile(all, 99).toFixed(3)} |`,
      );
    }
  } finally {
    await cluster.stop();
    if (process.env.PGW_BENCH_KEEP === undefined) await rm(dir, { recursive: true, force: true });
    else console.log(`kept ${dir}`);
  }
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.stack : error);
  process.exitCode = 1;
});
