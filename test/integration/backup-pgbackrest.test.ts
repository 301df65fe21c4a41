// Issue 16 on real processes: a cluster with a backup: section configures pgBackRest itself (its config file, WAL
// archiving, the stanza); a replica re-created after a full backup is restored by pgBackRest, streams from the leader
// and has the rows; with the repository out of reach it falls back to pg_basebackup and says so.
import assert from 'node:assert/strict';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parse, stringify } from 'yaml';
import { backupRepositoryOf, type LocalCluster } from '../../src/local/local-cluster.js';
import { waitUntil } from '../../src/util/wait-until.js';
import { agentLogTail, runCli, sql, waitHealthy } from '../kit/cluster-kit.js';
import { startTestCluster, teardownCluster } from '../kit/fixtures.js';
import { postgresIds, runPgbackrest } from '../kit/pgbackrest.js';

const SCOPE = 'backrest';

/** pgbackrest for this test's stanza. */
const pgbackrest = (cluster: LocalCluster, member: string, args: readonly string[]): Promise<string> =>
  runPgbackrest(cluster, member, SCOPE, args);

function logLines(cluster: LocalCluster, member: string, pattern: RegExp): number {
  const text = existsSync(cluster.node(member).logFile) ? readFileSync(cluster.node(member).logFile, 'utf8') : '';
  return text.split('\n').filter((line) => pattern.test(line)).length;
}

async function reinitialize(cluster: LocalCluster, member: string): Promise<void> {
  const response = await fetch(`http://127.0.0.1:${cluster.node(member).apiPort}/reinitialize`, { method: 'POST', body: '{}' });
  assert.equal(response.status, 200, await response.text());
}

async function waitStreamingWithRows(cluster: LocalCluster, member: string, rows: number): Promise<void> {
  await waitUntil(
    async () =>
      (await sql<{ n: string }>(cluster, member, 'SELECT count(*) AS n FROM backrest_rows').catch(() => []))[0]?.n === String(rows),
    { timeoutMs: 60_000, intervalMs: 250, describe: `${rows} rows on ${member}` },
  );
  await waitUntil(
    async () =>
      (await sql<{ status: string }>(cluster, member, 'SELECT status FROM pg_stat_wal_receiver').catch(() => []))[0]?.status ===
      'streaming',
    { timeoutMs: 30_000, intervalMs: 250, describe: `${member} streaming from the leader` },
  );
}

describe('backups with pgBackRest (backup: section)', { timeout: 600_000 }, () => {
  let cluster: LocalCluster | undefined;
  let restored: LocalCluster | undefined;
  let scriptDir: string | undefined;
  /** When the full backup of the restore test started and ended (epoch seconds). */
  let backupWindowS: { from: number; to: number } | undefined;

  before(async () => {
    cluster = await startTestCluster(SCOPE, { nodes: 2, backup: true });
  });

  after(async () => {
    if (cluster !== undefined) await chmod(backupRepositoryOf(cluster.dir), 0o750).catch(() => undefined);
    await teardownCluster(restored);
    await teardownCluster(cluster);
    if (scriptDir !== undefined) await rm(scriptDir, { recursive: true, force: true });
  });

  it('configures pgBackRest: its config file (0600, postgres), WAL archiving, the stanza on the primary', async () => {
    const local = cluster!;
    const { leader } = await waitHealthy(local, 120_000);
    const configFile = join(local.node(leader).nodeDir, `pgbackrest-${leader}.conf`);
    const info = statSync(configFile);
    assert.equal(info.mode & 0o777, 0o600);
    if (process.getuid?.() === 0) assert.equal(info.uid, postgresIds().uid);
    assert.match(readFileSync(configFile, 'utf8'), new RegExp(`^repo1-path=${backupRepositoryOf(local.dir)}$`, 'm'));
    const archiveCommand = (
      await sql<{ setting: string }>(local, leader, "SELECT setting FROM pg_settings WHERE name = 'archive_command'")
    )[0];
    assert.equal(archiveCommand?.setting, `pgbackrest --config=${configFile} --stanza=${SCOPE} archive-push %p`);
    await waitUntil(async () => logLines(local, leader, /pgBackRest stanza is ready/) > 0, {
      timeoutMs: 120_000,
      describe: 'stanza-create on the primary',
      lastState: () => agentLogTail(local, leader, /pgBackRest|stanza/),
    });
  });

  it('restores a reinitialized replica from the latest backup; it streams from the leader and has the rows', async () => {
    const local = cluster!;
    const { leader, replicas } = await waitHealthy(local, 60_000);
    const replica = replicas[0]!;
    await sql(local, leader, 'CREATE TABLE backrest_rows AS SELECT generate_series(1, 1000) AS id');
    const backupFromS = Math.floor(Date.now() / 1000);
    await pgbackrest(local, leader, ['--type=full', 'backup']);
    backupWindowS = { from: backupFromS, to: Math.ceil(Date.now() / 1000) };
    await sql(local, leader, 'INSERT INTO backrest_rows SELECT generate_series(1001, 1500)');
    const restoredBefore = logLines(local, replica, /replica created with pgbackrest/);
    // The first clone found no backup yet: pg_basebackup, said so (pgbackrest skipped).
    assert.ok(logLines(local, replica, /replica method pgbackrest skipped: .*no backup.*falling back to basebackup/) > 0);
    const clonedBefore = logLines(local, replica, /replica created with basebackup/);
    await reinitialize(local, replica);
    await waitUntil(async () => logLines(local, replica, /replica created with pgbackrest/) > restoredBefore, {
      timeoutMs: 180_000,
      describe: `${replica} restored by pgBackRest`,
      lastState: () => agentLogTail(local, replica, /replica|pgbackrest|task/),
    });
    assert.equal(logLines(local, replica, /replica created with basebackup/), clonedBefore, 'not the pg_basebackup path');
    // pgBackRest's own record of the restore, in the member's work directory.
    const restoreLog = readFileSync(join(local.node(replica).nodeDir, `pgbackrest-${replica}`, 'log', `${SCOPE}-restore.log`), 'utf8');
    assert.match(restoreLog, /restore command end: completed successfully/);
    await waitStreamingWithRows(local, replica, 1500);
    await sql(local, leader, 'INSERT INTO backrest_rows SELECT generate_series(1501, 1600)');
    await waitStreamingWithRows(local, replica, 1600);
  });

  it("the leader's /metrics shows the backup's finish time (pgbackrest info) and WAL archived by pg_stat_archiver", async () => {
    const local = cluster!;
    const window = backupWindowS ?? assert.fail('the backup of the restore test did not run');
    const { leader } = await waitHealthy(local, 60_000);
    const metric = async (name: string): Promise<number | undefined> => {
      const response = await fetch(`http://${local.node(leader).host}:${local.node(leader).apiPort}/metrics`, {
        signal: AbortSignal.timeout(3000),
      });
      const value = new RegExp(`^${name}\\{[^}]*\\} (\\S+)$`, 'm').exec(await response.text())?.[1];
      return value === undefined ? undefined : Number(value);
    };
    // Read every 20 s while no backup was seen, then every 2 minutes: the backup shows within a read or two.
    const stopS = await waitUntil(
      async () => {
        const value = await metric('pgwarden_backup_last_completed_time_seconds');
        return value !== undefined && value > 0 ? value : undefined;
      },
      { timeoutMs: 150_000, intervalMs: 1000, describe: 'pgwarden_backup_last_completed_time_seconds on the leader' },
    );
    assert.ok(stopS >= window.from && stopS <= window.to, `backup stop ${stopS} within ${JSON.stringify(window)}`);
    assert.equal(await metric('pgwarden_archive_enabled'), 1);
    assert.ok((await metric('pgwarden_archive_archived_count'))! > 0, 'WAL was archived (the backup waits for it)');
    assert.ok((await metric('pgwarden_archive_last_archived_time_seconds'))! >= window.from - 600);
    assert.ok((await metric('pgwarden_backup_count'))! >= 1);
    const firstRecoverable = (await metric('pgwarden_backup_first_recoverable_time_seconds'))!;
    assert.ok(firstRecoverable > 0 && firstRecoverable <= stopS, `first recoverable ${firstRecoverable}, newest stop ${stopS}`);
    assert.equal(await metric('pgwarden_archive_failing'), 0);
    const listed = await runCli(['-c', local.node(leader).configPath, 'list']);
    assert.equal(listed.code, 0, listed.stderr);
    assert.match(listed.stdout, /\n Backups: last full \d{8}-\d{6}F finished .* ago\); \d+ in the repository; recoverable from /);
    assert.match(listed.stdout, /\n WAL archive: last [0-9A-F]{24}\S* archived \S+ ago; \d+ failed attempts/);
  });

  it("a failing archive_command is logged once, with pgBackRest's own error; list and /metrics show it; then that it works again", async () => {
    const local = cluster!;
    const { leader } = await waitHealthy(local, 60_000);
    const failingBefore = logLines(local, leader, /WAL archiving fails/);
    const worksBefore = logLines(local, leader, /WAL archiving works again/);
    const archiverRow = async (): Promise<{ failed: number; wal: string | null }> =>
      (
        await sql<{ failed: number; wal: string | null }>(
          local,
          leader,
          'SELECT failed_count::int AS failed, last_failed_wal AS wal FROM pg_stat_archiver',
        )
      )[0]!;
    const failedBefore = (await archiverRow()).failed;
    await chmod(backupRepositoryOf(local.dir), 0o000);
    try {
      await sql(local, leader, 'CREATE TABLE archive_failure_rows AS SELECT 1 AS id');
      await sql(local, leader, 'SELECT pg_switch_wal()');
      // PostgreSQL tries each segment three times in a row: wait for those retries, then check it was said once.
      await waitUntil(async () => (await archiverRow()).failed >= failedBefore + 3, {
        timeoutMs: 60_000,
        intervalMs: 500,
        describe: 'three failed archive attempts',
      });
      await waitUntil(async () => logLines(local, leader, /WAL archiving fails/) > failingBefore, {
        timeoutMs: 30_000,
        describe: 'the archive failure logged',
        lastState: () => agentLogTail(local, leader, /archiv/),
      });
      const line = agentLogTail(local, leader, /WAL archiving fails/, 1);
      assert.match(line, /WAL archiving fails \([0-9A-F]{24}\): \[\d+\]: /, 'pgBackRest\u2019s own error with its code');
      assert.equal(logLines(local, leader, /WAL archiving fails/), failingBefore + 1, 'one line for several failed attempts');
      const listed = await runCli(['-c', local.node(leader).configPath, 'list']);
      assert.match(listed.stdout, /\n WAL archive: FAILING on [0-9A-F]{24} since .*: \[\d+\]: /);
      const metrics = await (await fetch(`http://${local.node(leader).host}:${local.node(leader).apiPort}/metrics`)).text();
      assert.match(metrics, /^pgwarden_archive_failing\{[^}]*\} 1$/m);
    } finally {
      await chmod(backupRepositoryOf(local.dir), 0o750);
    }
    // A new segment wakes the archiver from the minute it sleeps after three failures (a switch with nothing written
    // since the last one makes no segment).
    await sql(local, leader, 'INSERT INTO archive_failure_rows VALUES (2)');
    await sql(local, leader, 'SELECT pg_switch_wal()');
    await waitUntil(async () => logLines(local, leader, /WAL archiving works again/) > worksBefore, {
      timeoutMs: 120_000,
      describe: 'archiving working again, logged',
      lastState: () => agentLogTail(local, leader, /archiv/),
    });
  });

  it('falls back to pg_basebackup when the repository cannot be read, and says so', async () => {
    const local = cluster!;
    const { replicas } = await waitHealthy(local, 60_000);
    const replica = replicas[0]!;
    const fallbackBefore = logLines(local, replica, /replica method pgbackrest failed: .*falling back to basebackup/);
    const clonedBefore = logLines(local, replica, /replica created with basebackup/);
    await chmod(backupRepositoryOf(local.dir), 0o000);
    try {
      await reinitialize(local, replica);
      await waitUntil(async () => logLines(local, replica, /replica created with basebackup/) > clonedBefore, {
        timeoutMs: 180_000,
        describe: `${replica} cloned with pg_basebackup`,
        lastState: () => agentLogTail(local, replica, /replica|pgbackrest|task/),
      });
    } finally {
      await chmod(backupRepositoryOf(local.dir), 0o750);
    }
    assert.ok(logLines(local, replica, /replica method pgbackrest failed: .*falling back to basebackup/) > fallbackBefore);
    await waitStreamingWithRows(local, replica, 1600);
  });

  it("runs a Patroni user's method unchanged: its command as postgres, keep_data (a --delta restore), no_params", async () => {
    const local = cluster!;
    const { leader, replicas } = await waitHealthy(local, 60_000);
    const replica = replicas[0]!;
    const node = local.node(replica);
    const configFile = join(node.nodeDir, `pgbackrest-${replica}.conf`);
    const command = `pgbackrest --config=${configFile} --stanza=${SCOPE} --delta restore`;
    await local.stopAgent(replica);
    const config = parse(readFileSync(node.configPath, 'utf8')) as { postgresql: Record<string, unknown> };
    config.postgresql.create_replica_methods = ['pgbackrest', 'basebackup'];
    config.postgresql.pgbackrest = { command, keep_data: true, no_params: true };
    await writeFile(node.configPath, stringify(config), { mode: 0o600 });
    local.startAgent(replica);
    await waitUntil(
      async () => {
        const response = await fetch(`http://127.0.0.1:${node.apiPort}/replica`).catch(() => undefined);
        return response?.status === 200;
      },
      { timeoutMs: 120_000, intervalMs: 250, describe: `${replica}'s agent back, serving as a replica` },
    );
    await sql(local, leader, 'INSERT INTO backrest_rows SELECT generate_series(1601, 1700)');
    const before = logLines(local, replica, /replica created with pgbackrest: pgbackrest \(.*--delta restore\) made the data dir/);
    await reinitialize(local, replica);
    await waitUntil(
      async () => logLines(local, replica, /replica created with pgbackrest: pgbackrest \(.*--delta restore\) made the data dir/) > before,
      {
        timeoutMs: 180_000,
        describe: `${replica} restored by the user's pgbackrest command`,
        lastState: () => agentLogTail(local, replica, /replica|pgbackrest|task/),
      },
    );
    const restoreLog = readFileSync(join(node.nodeDir, `pgbackrest-${replica}`, 'log', `${SCOPE}-restore.log`), 'utf8');
    assert.match(restoreLog, /restore command begin [^\n]*--delta/);
    await waitStreamingWithRows(local, replica, 1700);
  });

  it('bootstraps a new cluster from the repository with a custom bootstrap.method (recovery_conf, promoted)', async () => {
    const local = cluster!;
    const { leader } = await waitHealthy(local, 60_000);
    // Every row in the archive: the segment holding the last insert is switched out and archived.
    const [{ wal }] = (await sql<{ wal: string }>(local, leader, 'SELECT pg_walfile_name(pg_switch_wal()) AS wal')) as [{ wal: string }];
    await waitUntil(
      async () =>
        ((await sql<{ last: string | null }>(local, leader, 'SELECT last_archived_wal AS last FROM pg_stat_archiver'))[0]?.last ?? '') >=
        wal,
      { timeoutMs: 60_000, intervalMs: 250, describe: `WAL ${wal} archived` },
    );
    // A Patroni user's bootstrap script: it reads --datadir (and --scope) and restores the backup there.
    scriptDir = await mkdtemp(join(tmpdir(), 'pgw-brboot-'));
    await chmod(scriptDir, 0o755);
    const repo = backupRepositoryOf(local.dir);
    const common = `--repo1-path=${repo} --stanza=${SCOPE} --lock-path=${scriptDir}/lock --log-level-file=off --log-level-console=warn`;
    const script = join(scriptDir, 'restore.sh');
    await writeFile(
      script,
      [
        '#!/bin/sh',
        'for arg; do case "$arg" in --datadir=*) datadir="${arg#--datadir=}";; esac; done',
        `exec pgbackrest ${common} --pg1-path="$datadir" restore`,
        '',
      ].join('\n'),
      { mode: 0o755 },
    );
    restored = await startTestCluster('brboot', {
      nodes: 1,
      bootstrapExtra: {
        method: 'restore',
        restore: { command: script, recovery_conf: { restore_command: `pgbackrest ${common} archive-get %f "%p"` } },
      },
    });
    const { leader: newLeader } = await waitHealthy(restored, 180_000);
    assert.ok(logLines(restored, newLeader, /bootstrapped with bootstrap\.method restore/) > 0);
    assert.ok(logLines(restored, newLeader, /recovering the copy until it is promoted/) > 0);
    const rows = await sql<{ n: string }>(restored, newLeader, 'SELECT count(*) AS n FROM backrest_rows');
    assert.equal(rows[0]?.n, '1700', 'every archived row, replayed from the repository');
    await sql(restored, newLeader, 'INSERT INTO backrest_rows VALUES (0)');
  });
});
