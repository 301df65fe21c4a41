// The in-place major upgrade's write pause through the pgwarden proxy: a 3-member cluster on Debian's PostgreSQL 15
// with a database of --major-size-mb, one INSERT every 10 ms through the proxy, `pgwarden upgrade --major` with
// pg_upgrade --link (15 -> 15 with --allow-same-major, or to PGWARDEN_TEST_BIN_<major> when set); prints the longest
// write gap, what the CLI reports as held, the pg_upgrade and re-clone times, and lost writes.
import { spawn } from 'node:child_process';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { longestWriteGap, Writer } from '../src/chaos/workload.js';
import { LocalCluster } from '../src/local/local-cluster.js';
import { PgwardenError } from '../src/util/errors.js';
import { waitUntil } from '../src/util/wait-until.js';
import { connectSuperuser, sql, waitHealthy } from '../test/kit/cluster-kit.js';
import { DEBIAN_PG15_BIN, mixedBinDir } from '../test/kit/embedded-postgres.js';
import { DEFAULT_DYNAMIC_CONFIG } from '../test/kit/fixtures.js';

const CLI_ENTRY = fileURLToPath(new URL('../src/bin/pgwarden.js', import.meta.url));
/** Rows of about 140 bytes on disk each (tuple header, an int and 96 characters): about 7,500 per MiB. */
const ROWS_PER_MB = 7500;
const ROWS_PER_STATEMENT = 500_000;

function runCli(args: readonly string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI_ENTRY, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    child.on('exit', (code) => resolve({ code: code ?? 1, stdout, stderr }));
  });
}

function newerMajor(): { major: number; binDir: string } | undefined {
  const found = Object.entries(process.env)
    .map(([key, value]) => ({ major: Number(/^PGWARDEN_TEST_BIN_(\d+)$/.exec(key)?.[1] ?? 0), binDir: value ?? '' }))
    .filter((entry) => entry.major > 15 && entry.binDir !== '')
    .sort((a, b) => b.major - a.major);
  return found[0];
}

export async function benchMajorUpgrade(sizeMb: number): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'pgw-bench-major-'));
  await chmod(dir, 0o755);
  const across = newerMajor();
  const to = across?.major ?? 15;
  const newBin = await mixedBinDir(join(dir, `pg${to}-new`), across?.binDir ?? DEBIAN_PG15_BIN, across?.binDir ?? DEBIAN_PG15_BIN, []);
  const cluster = await LocalCluster.start({
    dir: join(dir, 'cluster'),
    timing: DEFAULT_DYNAMIC_CONFIG,
    scope: 'benchmajor',
    proxies: 1,
    // The hold lasts the whole pg_upgrade: clients wait rather than fail.
    proxySettings: { hold_timeout: 600 },
  });
  let writer: Writer | undefined;
  try {
    const { leader } = await waitHealthy(cluster, 120_000);
    const proxy = cluster.proxies[0]!;
    await waitUntil(async () => (await fetch(`http://127.0.0.1:${proxy.apiPort}/health`)).status === 200, {
      timeoutMs: 20_000,
      describe: 'the proxy to route to the leader',
    });
    const client = await connectSuperuser(cluster, cluster.node(leader).pgPort);
    const fillStarted = performance.now();
    try {
      await client.query('CREATE TABLE bench_major_data (id int, payload text)');
      const rows = Math.max(1, Math.round(sizeMb * ROWS_PER_MB));
      for (let first = 1; first <= rows; first += ROWS_PER_STATEMENT) {
        const last = Math.min(rows, first + ROWS_PER_STATEMENT - 1);
        await client.query('INSERT INTO bench_major_data SELECT g, repeat(md5(g::text), 3) FROM generate_series($1::int, $2::int) g', [
          first,
          last,
        ]);
      }
      await client.query('CHECKPOINT');
    } finally {
      await client.end();
    }
    const [size] = await sql<{ bytes: string }>(cluster, leader, 'SELECT pg_database_size(current_database())::text AS bytes');
    const databaseMb = Number(size?.bytes ?? 0) / 1024 / 1024;
    console.log(
      `major upgrade: database of ${databaseMb.toFixed(0)} MiB written in ${((performance.now() - fillStarted) / 1000).toFixed(0)} s`,
    );
    await waitHealthy(cluster, 600_000);
    await sql(cluster, leader, 'CREATE TABLE bench_major_writes (id bigint PRIMARY KEY)');
    // The writer's own timeouts outlast the hold: a held client is not a failed one.
    writer = new Writer({
      targets: [{ host: '127.0.0.1', port: proxy.primaryPort }],
      password: cluster.superuserPassword,
      table: 'bench_major_writes',
      connection: 'per-write',
      intervalMs: 10,
      connectTimeoutMs: 600_000,
      queryTimeoutMs: 600_000,
    });
    writer.start();
    await waitUntil(() => writer!.acks.length >= 50, { timeoutMs: 30_000, describe: '50 writes through the proxy' });
    const config = cluster.node(leader).configPath;
    const startedAt = performance.now();
    const run = await runCli([
      ...['-c', config, 'upgrade', '--major', '--to', String(to), '--bin-dir', newBin, '--timeout', '7200'],
      ...(across === undefined ? ['--allow-same-major'] : []),
    ]);
    const endedAt = performance.now();
    if (run.code !== 0)
      throw new PgwardenError('PGW_BENCH_SETUP', `the major upgrade failed: ${run.stderr}`, { context: { hint: run.stdout } });
    await waitUntil(() => writer!.acks.some((ack) => ack.atMs > endedAt), { timeoutMs: 60_000, describe: 'a write after the upgrade' });
    await writer.stop();
    const gapMs = longestWriteGap(writer.acks, startedAt) ?? Number.NaN;
    const figure = (pattern: RegExp): string => pattern.exec(run.stdout)?.[1] ?? '?';
    const final = await waitHealthy(cluster, 120_000);
    const present = new Set(
      (await sql<{ id: string }>(cluster, final.leader, 'SELECT id FROM bench_major_writes')).map((row) => Number(row.id)),
    );
    const lost = writer.acks.filter((ack) => !present.has(ack.id)).length;
    console.log(
      `major upgrade 15 -> ${to} in place (pg_upgrade --link), ${databaseMb.toFixed(0)} MiB: ${((endedAt - startedAt) / 1000).toFixed(1)} s in all (check, prepare, upgrade, re-clones, analyze)`,
    );
    console.log(
      `  write pause through the proxy (longest gap between acknowledged writes): ${(gapMs / 1000).toFixed(1)} s; the CLI held writes ${figure(/writes were held ([\d.]+) s/)} s; pg_upgrade --link ${figure(/pg_upgrade --link took ([\d.]+) s/)} s`,
    );
    console.log(
      `  writer: ${writer.acks.length} acknowledged, ${writer.failures.length} failed, ${lost} lost; re-clones: ${[...run.stdout.matchAll(/re-clone (\S+) from \S+ on \S+: ok in ([\d.]+) s/g)].map((match) => `${match[1]} ${match[2]} s`).join(', ')}`,
    );
  } finally {
    await writer?.stop();
    await cluster.stop();
    await rm(dir, { recursive: true, force: true });
  }
}
