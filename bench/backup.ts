// Building a replica three ways on one real cluster with backups on and a database of about 1 GB (pgbench -i -s 70):
// pg_basebackup from the leader, a pgBackRest restore (process-max > 1), and a pgBackRest --delta restore over the
// replica's old data dir (create_replica_methods with keep_data, as after `pgwarden reinit`). Also the full backup's
// throughput. Prints figures; asserts nothing.
import { execFile, execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { parse, stringify } from 'yaml';
import { LocalCluster } from '../src/local/local-cluster.js';
import { PgwardenError } from '../src/util/errors.js';
import { waitUntil } from '../src/util/wait-until.js';
import { runCli, sql, waitHealthy } from '../test/kit/cluster-kit.js';
import { FAST_TIMING } from '../test/kit/fixtures.js';

const { values } = parseArgs({
  options: {
    scale: { type: 'string', default: '70' },
    'process-max': { type: 'string', default: '2' },
    compress: { type: 'string', default: 'lz4' },
  },
});
const scale = Number(values.scale);
const processMax = Number(values['process-max']);
const BIN_DIR = '/usr/lib/postgresql/15/bin';
/** A replica build of a few GB on a slow shared disk still finishes within this. */
const BUILD_TIMEOUT_MS = 30 * 60_000;

const postgresIds = (): { uid: number; gid: number } => ({
  uid: Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim()),
  gid: Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim()),
});

/** pgbench as the postgres OS user, over TCP with the superuser password. */
function pgbench(cluster: LocalCluster, member: string, args: readonly string[]): Promise<void> {
  const node = cluster.node(member);
  return new Promise((resolve, reject) => {
    execFile(
      join(BIN_DIR, 'pgbench'),
      ['-h', node.host, '-p', String(node.pgPort), '-U', 'postgres', ...args, 'postgres'],
      {
        ...(process.getuid?.() === 0 ? postgresIds() : {}),
        cwd: '/',
        timeout: BUILD_TIMEOUT_MS,
        maxBuffer: 16 * 1024 * 1024,
        env: { ...process.env, PGPASSWORD: cluster.superuserPassword },
      },
      (error, _stdout, stderr) =>
        error === null
          ? resolve()
          : reject(
              new PgwardenError('PGW_BENCH_SETUP', `pgbench ${args.join(' ')} failed: ${stderr.trim().split('\n').slice(-3).join(' | ')}`, {
                context: { member, command: ['pgbench', ...args] },
              }),
            ),
    );
  });
}

function logLines(cluster: LocalCluster, member: string, pattern: RegExp): number {
  const file = cluster.node(member).logFile;
  return existsSync(file)
    ? readFileSync(file, 'utf8')
        .split('\n')
        .filter((line) => pattern.test(line)).length
    : 0;
}

/** Restarts `member`'s agent with these create_replica_methods settings (read at start, not on reload). */
async function setReplicaMethods(cluster: LocalCluster, member: string, postgresql: Record<string, unknown>): Promise<void> {
  const node = cluster.node(member);
  await cluster.stopAgent(member);
  const config = parse(readFileSync(node.configPath, 'utf8')) as { postgresql: Record<string, unknown> };
  delete config.postgresql.pgbackrest;
  Object.assign(config.postgresql, postgresql);
  await writeFile(node.configPath, stringify(config), { mode: 0o600 });
  cluster.startAgent(member);
  await waitUntil(async () => (await fetch(`http://${node.host}:${node.apiPort}/replica`).catch(() => undefined))?.status === 200, {
    timeoutMs: 180_000,
    intervalMs: 250,
    describe: `${member}'s agent back, serving as a replica`,
  });
}

interface Build {
  readonly createdS: number;
  readonly streamingS: number;
  readonly detail: string;
}

/** POST /reinitialize on `member`, timed until its agent logs the data dir made by `method`, then until it streams. */
async function reinitialize(cluster: LocalCluster, member: string, method: string): Promise<Build> {
  const node = cluster.node(member);
  const pattern = new RegExp(`replica created with ${method}: `);
  const before = logLines(cluster, member, pattern);
  const startedAt = performance.now();
  const response = await fetch(`http://${node.host}:${node.apiPort}/reinitialize`, { method: 'POST', body: '{}' });
  if (response.status !== 200)
    throw new PgwardenError('PGW_BENCH_SETUP', `POST /reinitialize on ${member}: ${response.status} ${await response.text()}`, {
      context: { member },
    });
  await waitUntil(() => logLines(cluster, member, pattern) > before, {
    timeoutMs: BUILD_TIMEOUT_MS,
    intervalMs: 200,
    describe: `${member}: replica created with ${method}`,
  });
  const createdS = (performance.now() - startedAt) / 1000;
  await waitHealthy(cluster, BUILD_TIMEOUT_MS);
  const streamingS = (performance.now() - startedAt) / 1000;
  const text = readFileSync(node.logFile, 'utf8');
  const detail =
    text
      .split('\n')
      .filter((line) => pattern.test(line))
      .at(-1) ?? '';
  return { createdS, streamingS, detail: /"msg":"([^"]*)"/.exec(detail)?.[1] ?? detail.slice(0, 200) };
}

const mbPerS = (bytes: number, seconds: number): string => (bytes / 1024 / 1024 / seconds).toFixed(1);

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'pgw-bench-backup-'));
  const cluster = await LocalCluster.start({
    dir,
    timing: FAST_TIMING,
    scope: 'benchbackup',
    nodes: 2,
    backup: {
      repository: join(dir, 'pgbackrest-repo'),
      options: { 'process-max': processMax, 'compress-type': values.compress },
    },
    postgresqlExtra: { create_replica_methods: ['basebackup'] },
  });
  try {
    const { leader, replicas } = await waitHealthy(cluster, 180_000);
    const replica = replicas[0]!;
    console.log(`cluster up: leader ${leader}, replica ${replica}; pgbench -i -s ${scale} ...`);
    let startedAt = performance.now();
    await pgbench(cluster, leader, ['-i', '-s', String(scale), '-q']);
    const initS = (performance.now() - startedAt) / 1000;
    const size = await sql<{ bytes: string }>(cluster, leader, 'SELECT sum(pg_database_size(oid))::text AS bytes FROM pg_database');
    const bytes = Number(size[0]!.bytes);
    console.log(`database: ${mbPerS(bytes, 1)} MB in all databases (pgbench -i took ${initS.toFixed(1)} s)`);
    await waitHealthy(cluster, BUILD_TIMEOUT_MS);

    startedAt = performance.now();
    const backup = await runCli(
      ['-c', cluster.node(leader).configPath, 'backup', '--type', 'full', '--wait', '--timeout', '3600'],
      BUILD_TIMEOUT_MS,
    );
    const backupS = (performance.now() - startedAt) / 1000;
    if (backup.code !== 0)
      throw new PgwardenError('PGW_BENCH_SETUP', `pgwarden backup failed: ${backup.stderr || backup.stdout}`, {
        context: { member: leader },
      });
    console.log(`full backup: ${backupS.toFixed(1)} s, ${mbPerS(bytes, backupS)} MB/s (${backup.stdout.trim().split('\n').at(-1) ?? ''})`);

    const basebackup = await reinitialize(cluster, replica, 'basebackup');
    console.log(`basebackup: data dir in ${basebackup.createdS.toFixed(1)} s, streaming after ${basebackup.streamingS.toFixed(1)} s`);

    await setReplicaMethods(cluster, replica, { create_replica_methods: ['pgbackrest', 'basebackup'] });
    const restore = await reinitialize(cluster, replica, 'pgbackrest');
    console.log(`pgbackrest restore: data dir in ${restore.createdS.toFixed(1)} s, streaming after ${restore.streamingS.toFixed(1)} s`);

    // Some changes since the backup, so the delta restore has something to do besides checksumming.
    await pgbench(cluster, leader, ['-c', '2', '-t', '2000']);
    await setReplicaMethods(cluster, replica, {
      create_replica_methods: ['pgbackrest', 'basebackup'],
      pgbackrest: { keep_data: true },
    });
    const delta = await reinitialize(cluster, replica, 'pgbackrest');
    console.log(`pgbackrest --delta: data dir in ${delta.createdS.toFixed(1)} s, streaming after ${delta.streamingS.toFixed(1)} s`);
    if (!/--delta/.test(delta.detail)) console.log(`  (note: the agent did not say --delta: ${delta.detail})`);

    console.log(
      `\nreplica build, ${mbPerS(bytes, 1)} MB database (pgbench -s ${scale}), pgBackRest process-max=${processMax}, compress-type=${values.compress}:`,
    );
    console.log('| method | data dir made (s) | streaming (s) | MB/s |');
    console.log('|---|---|---|---|');
    for (const [label, build] of [
      ['pg_basebackup', basebackup],
      ['pgBackRest restore', restore],
      ['pgBackRest --delta (keep_data, after reinit)', delta],
    ] as const)
      console.log(`| ${label} | ${build.createdS.toFixed(1)} | ${build.streamingS.toFixed(1)} | ${mbPerS(bytes, build.createdS)} |`);
    console.log(`| full backup (pgBackRest, from the standby) | ${backupS.toFixed(1)} | | ${mbPerS(bytes, backupS)} |`);
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
