// Issue 16 point 3 on real processes: archiving stays complete across a failover. The primary's archiving is made to
// fail (archive_command = false by ALTER SYSTEM, on the primary only), a few segments pile up as .ready, the primary is
// SIGKILLed (agent and postmaster). The new primary pushes the old timeline's segments its pg_wal still has (the
// standby had marked them .done without archiving them), PostgreSQL archives 00000002.history, `pgbackrest check`
// passes on the new primary, and a standby restored from the backup taken BEFORE the crash replays through the old
// timeline into the new one and sees rows written after the failover: no gap. The old primary, rejoining by
// pg_rewind, pushes its .ready WAL first (the same segments: the archive compares and finds them equal).
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { chown, mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { pickFreePorts } from '../../src/local/free-port.js';
import { runCommand } from '../../src/postgres/runner.js';
import { pushWalFiles } from '../../src/postgres/wal-archive-push.js';
import { backupRepositoryOf, type LocalCluster } from '../../src/local/local-cluster.js';
import { waitUntil } from '../../src/util/wait-until.js';
import { agentLogTail, runCli, sql, waitHealthy, writableAmong } from '../kit/cluster-kit.js';
import { startTestCluster, teardownCluster } from '../kit/fixtures.js';
import { archivedWalNames, postgresIds, runPgbackrest } from '../kit/pgbackrest.js';

const SCOPE = 'brfail';
const BIN = '/usr/lib/postgresql/15/bin';

/** pgbackrest for this test's stanza. */
const pgbackrest = (cluster: LocalCluster, member: string, args: readonly string[], timeoutMs?: number): Promise<string> =>
  runPgbackrest(cluster, member, SCOPE, args, timeoutMs);

function logLines(cluster: LocalCluster, member: string, pattern: RegExp): string[] {
  const text = existsSync(cluster.node(member).logFile) ? readFileSync(cluster.node(member).logFile, 'utf8') : '';
  return text.split('\n').filter((line) => pattern.test(line));
}

const archivedNames = (cluster: LocalCluster): Set<string> => archivedWalNames(cluster, SCOPE);

function readyFiles(cluster: LocalCluster, member: string): string[] {
  const dir = join(cluster.node(member).dataDir, 'pg_wal', 'archive_status');
  return existsSync(dir)
    ? readdirSync(dir)
        .filter((name) => name.endsWith('.ready'))
        .map((name) => name.slice(0, -'.ready'.length))
        .sort()
    : [];
}

describe('WAL archiving across a failover (pgBackRest)', { timeout: 900_000 }, () => {
  let cluster: LocalCluster | undefined;
  let intruder: LocalCluster | undefined;
  let restored: ChildProcess | undefined;
  const restoreDir = `/tmp/pgw-arfo-${process.pid}`;

  before(async () => {
    cluster = await startTestCluster(SCOPE, { nodes: 2, backup: true });
  });

  after(async () => {
    if (restored?.pid !== undefined && restored.exitCode === null) {
      restored.kill('SIGQUIT');
      await waitUntil(() => restored?.exitCode !== null, { timeoutMs: 10_000, describe: 'the restored postgres to stop' }).catch(() =>
        restored?.kill('SIGKILL'),
      );
    }
    await teardownCluster(intruder);
    await teardownCluster(cluster);
    await rm(restoreDir, { recursive: true, force: true });
  });

  it('closes the archive gap of a crashed primary: the new primary pushes the old timeline, a restore reaches the new one', async (t) => {
    const local = cluster!;
    const { leader: oldPrimary, replicas } = await waitHealthy(local, 120_000);
    const standby = replicas[0]!;
    await waitUntil(async () => logLines(local, oldPrimary, /pgBackRest stanza is ready/).length > 0, {
      timeoutMs: 120_000,
      describe: 'stanza-create on the primary',
      lastState: () => agentLogTail(local, oldPrimary, /pgBackRest|stanza/),
    });
    await sql(local, oldPrimary, "CREATE TABLE arfo (id int, note text); INSERT INTO arfo VALUES (1, 'before the backup')");
    const backup = await runCli(['-c', local.node(oldPrimary).configPath, 'backup', '--wait', '--from', 'primary'], 300_000);
    assert.equal(backup.code, 0, backup.stderr);
    const label = /Backup finished: (\d{8}-\d{6}F)/.exec(backup.stdout)?.[1];
    assert.ok(label !== undefined, backup.stdout);

    // Archiving fails on the primary only: ALTER SYSTEM lives in its own postgresql.auto.conf, the standby keeps its own.
    await sql(local, oldPrimary, "ALTER SYSTEM SET archive_command = 'false'");
    await sql(local, oldPrimary, 'SELECT pg_reload_conf()');
    for (let i = 0; i < 3; i++) {
      await sql(local, oldPrimary, `INSERT INTO arfo SELECT 100 + ${i}, 'unarchived ' || g FROM generate_series(1, 1000) g`);
      await sql(local, oldPrimary, 'SELECT pg_switch_wal()');
    }
    await sql(local, oldPrimary, "INSERT INTO arfo VALUES (2, 'just before the crash')");
    const ready = await waitUntil(
      async () => {
        const files = readyFiles(local, oldPrimary).filter((name) => /^[0-9A-F]{24}$/.test(name));
        return files.length >= 3 ? files : undefined;
      },
      { timeoutMs: 30_000, describe: `3 segments .ready on ${oldPrimary}`, lastState: () => readyFiles(local, oldPrimary).join(',') },
    );
    const archivedBefore = archivedNames(local);
    for (const file of ready) assert.ok(!archivedBefore.has(file), `${file} must not be archived yet`);
    // The standby has every byte (so the failover loses nothing); only the archive lacks them.
    const [{ lsn } = { lsn: '' }] = await sql<{ lsn: string }>(local, oldPrimary, 'SELECT pg_current_wal_flush_lsn()::text AS lsn');
    await waitUntil(
      async () =>
        (await sql<{ ok: boolean }>(local, standby, 'SELECT pg_last_wal_receive_lsn() >= $1::pg_lsn AS ok', [lsn]))[0]?.ok === true,
      { timeoutMs: 30_000, intervalMs: 200, describe: `${standby} received up to ${lsn}` },
    );

    const postmaster = await local.postmasterPid(oldPrimary);
    const killedAtMs = Date.now();
    local.killAgent(oldPrimary, 'SIGKILL');
    if (postmaster !== undefined) process.kill(postmaster, 'SIGKILL');
    const newPrimary = await waitUntil(() => writableAmong(local, [standby]), {
      timeoutMs: 90_000,
      intervalMs: 250,
      describe: `${standby} promoted`,
    });
    await sql(local, newPrimary, "INSERT INTO arfo VALUES (3, 'after the failover')");
    t.diagnostic(`${newPrimary} writable ${Date.now() - killedAtMs} ms after the kill`);

    // The new primary pushed the old timeline's segments; PostgreSQL archived the history file itself.
    await waitUntil(
      async () => {
        const archived = archivedNames(local);
        return ready.every((file) => archived.has(file)) && archived.has('00000002.history');
      },
      {
        timeoutMs: 60_000,
        describe: 'the old timeline segments and 00000002.history in the archive',
        lastState: () =>
          `archive: ${[...archivedNames(local)].sort().join(',')}; ${newPrimary}: ${agentLogTail(local, newPrimary, /archiv|timeline/)}`,
      },
    );
    // The summary line comes once the last push returned.
    const catchUp = await waitUntil(
      () => {
        const lines = logLines(local, newPrimary, /archived earlier timelines' WAL after the promotion to timeline 2/);
        return lines.length > 0 ? lines : undefined;
      },
      { timeoutMs: 30_000, describe: `${newPrimary} to log its catch-up`, lastState: () => agentLogTail(local, newPrimary, /archiv/) },
    );
    assert.equal(catchUp.length, 1, 'one catch-up per promotion');
    const promotedAt = logLines(local, newPrimary, /"msg":"promoted"/)[0];
    const timeOf = (line: string | undefined): number => Date.parse(/"time":"([^"]+)"/.exec(line ?? '')?.[1] ?? '');
    t.diagnostic(`.ready on the crashed primary: ${ready.join(', ')}`);
    t.diagnostic(`catch-up finished ${timeOf(catchUp[0]) - timeOf(promotedAt)} ms after the promotion: ${catchUp[0]!}`);
    assert.match(
      catchUp[0]!,
      new RegExp(`"pushed":\\[[^\\]]*"${ready[0]!}"`),
      'the first unarchived segment was pushed by the new primary',
    );

    // check switches WAL and waits for it in the archive: the row written after the failover is archived with it.
    const check = await pgbackrest(local, newPrimary, ['check']);
    assert.doesNotMatch(check, /ERROR/);

    // A standby restored from the backup taken BEFORE the crash replays the whole chain into timeline 2.
    await mkdir(join(restoreDir, 'data'), { recursive: true, mode: 0o700 });
    const ids = postgresIds();
    await chown(restoreDir, ids.uid, ids.gid);
    await chown(join(restoreDir, 'data'), ids.uid, ids.gid);
    await pgbackrest(local, newPrimary, ['restore', `--set=${label}`, `--pg1-path=${join(restoreDir, 'data')}`, '--type=standby']);
    const hba = join(restoreDir, 'hba.conf');
    await writeFile(hba, 'local all all trust\n');
    await chown(hba, ids.uid, ids.gid);
    const [port] = await pickFreePorts(1);
    restored = spawn(
      join(BIN, 'postgres'),
      [
        '-D',
        join(restoreDir, 'data'),
        '-c',
        `port=${port!}`,
        '-c',
        'listen_addresses=',
        '-c',
        `unix_socket_directories=${restoreDir}`,
        '-c',
        `hba_file=${hba}`,
        '-c',
        'archive_mode=off',
        '-c',
        'primary_conninfo=',
        '-c',
        'primary_slot_name=',
        '-c',
        'synchronous_standby_names=',
        '-c',
        'logging_collector=off',
      ],
      { ...ids, stdio: ['ignore', 'pipe', 'pipe'], cwd: '/' },
    );
    let restoredLog = '';
    restored.stdout?.on('data', (chunk: Buffer) => (restoredLog += chunk.toString()));
    restored.stderr?.on('data', (chunk: Buffer) => (restoredLog += chunk.toString()));
    const query = async (text: string): Promise<Record<string, unknown>[]> => {
      const client = new pg.Client({ host: restoreDir, port, user: 'postgres', database: 'postgres', connectionTimeoutMillis: 2000 });
      client.on('error', () => undefined);
      await client.connect();
      try {
        return (await client.query(text)).rows as Record<string, unknown>[];
      } finally {
        await client.end().catch(() => undefined);
      }
    };
    const rows = await waitUntil(
      async () => {
        const found = await query("SELECT count(*)::int AS n FROM arfo WHERE note = 'after the failover'").catch(() => undefined);
        return found?.[0]?.n === 1 ? found : undefined;
      },
      {
        timeoutMs: 120_000,
        intervalMs: 500,
        describe: 'the restored standby to replay into timeline 2',
        lastState: () => restoredLog.split('\n').slice(-12).join('\n'),
      },
    );
    assert.ok(rows.length === 1);
    const counts = await query("SELECT count(*)::int AS n FROM arfo WHERE note LIKE 'unarchived %' OR id = 2");
    assert.equal(counts[0]?.n, 3001, 'every row of the segments the old primary never archived');
    assert.match(restoredLog, /restored log file "00000002\.history" from archive/);
    assert.match(restoredLog, new RegExp(`restored log file "${ready[0]!}" from archive`));

    // The old primary rejoins by pg_rewind and pushes its .ready WAL first: the same segments, found equal.
    local.startAgent(oldPrimary);
    await waitUntil(async () => logLines(local, oldPrimary, /archived \.ready WAL before pg_rewind/).length > 0, {
      timeoutMs: 120_000,
      describe: `${oldPrimary} to archive its .ready WAL before pg_rewind`,
      lastState: () => agentLogTail(local, oldPrimary, /archiv|rewind/),
    });
    const pushedReady = logLines(local, oldPrimary, /archived \.ready WAL before pg_rewind/)[0]!;
    t.diagnostic(`before pg_rewind: ${pushedReady}`);
    for (const file of ready) assert.match(pushedReady, new RegExp(`"${file}"`), `${file} pushed (or found equal) before pg_rewind`);
    assert.match(pushedReady, /"different":\[\]/);
    assert.match(pushedReady, /"failed":\[\]/);
    const healthy = await waitHealthy(local, 120_000);
    assert.equal(healthy.leader, newPrimary);
    assert.ok(healthy.replicas.includes(oldPrimary));
    const rewound = logLines(local, oldPrimary, /pg_rewind finished|archiving \d+ \.ready WAL/);
    assert.ok(rewound.length >= 2, agentLogTail(local, oldPrimary, /rewind|archiv/));
  });

  it('refuses a repository whose stanza holds another system: one clear error, and /metrics says so', async () => {
    const local = cluster!;
    // A new cluster (its own initdb, so another system identifier) pointed at the first cluster's stanza.
    intruder = await startTestCluster('brintruder', { nodes: 1, backup: { repository: backupRepositoryOf(local.dir), stanza: SCOPE } });
    const { leader } = await waitHealthy(intruder, 120_000);
    const line = await waitUntil(() => logLines(intruder!, leader, /PGW_BACKUP_FOREIGN_SYSTEM/)[0], {
      timeoutMs: 120_000,
      describe: 'the foreign-system error',
      lastState: () => agentLogTail(intruder!, leader, /pgBackRest|stanza/),
    });
    assert.match(
      line,
      new RegExp(`the pgBackRest repository ${backupRepositoryOf(local.dir)} \\(stanza ${SCOPE}\\) holds another database system`),
    );
    assert.match(line, /use a new stanza \(backup\.stanza\) or another repository \(backup\.repository\)/);
    // The snapshot /metrics reads is refreshed by the next HA cycle.
    const metricOf = async (target: LocalCluster, member: string): Promise<string | undefined> => {
      const text = await (await fetch(`http://127.0.0.1:${target.node(member).apiPort}/metrics`)).text();
      return /^pgwarden_backup_repository_foreign_system\{[^}]*\} (\d)$/m.exec(text)?.[1];
    };
    await waitUntil(async () => (await metricOf(intruder!, leader)) === '1', {
      timeoutMs: 30_000,
      intervalMs: 500,
      describe: 'pgwarden_backup_repository_foreign_system 1 on the intruder',
    });
    assert.equal(await metricOf(local, (await waitHealthy(local, 60_000)).leader), '0', 'the owner of the stanza is fine');
    // pgBackRest itself refuses the intruder (its archive-push too): nothing of it reaches the archive.
    await assert.rejects(pgbackrest(intruder, leader, ['check'], 60_000), /do not match|\[028\]|\[044\]/);
  });
});

describe('pushing WAL with a user archive_command (no backup: section)', () => {
  const dir = `/tmp/pgw-arcmd-${process.pid}`;
  after(async () => rm(dir, { recursive: true, force: true }));

  it('runs the command per file with %p and %f, marks .ready as .done, and stops at the first failure', async () => {
    await mkdir(join(dir, 'data', 'pg_wal', 'archive_status'), { recursive: true });
    await mkdir(join(dir, 'archive'));
    const files = ['000000010000000000000005', '000000010000000000000006'];
    for (const file of files) {
      await writeFile(join(dir, 'data', 'pg_wal', file), `wal ${file}`);
      await writeFile(join(dir, 'data', 'pg_wal', 'archive_status', `${file}.ready`), '');
    }
    const command = `test ! -f ${dir}/archive/%f && cp %p ${dir}/archive/%f`;
    const deps = {
      dataDir: join(dir, 'data'),
      backup: undefined,
      run: (argv: readonly string[], signal: AbortSignal, hint: string) =>
        runCommand({ member: 'test', argv, signal, runAs: undefined, hint }),
    };
    const first = await pushWalFiles(files, { kind: 'command', command }, deps, AbortSignal.timeout(10_000));
    assert.deepEqual(
      first.map((step) => step.outcome),
      ['pushed', 'pushed'],
    );
    for (const file of files) {
      assert.equal(readFileSync(join(dir, 'archive', file), 'utf8'), `wal ${file}`);
      assert.ok(existsSync(join(dir, 'data', 'pg_wal', 'archive_status', `${file}.done`)), `${file} marked .done`);
    }
    // The command refuses a file it already has (as PostgreSQL's docs advise): the first failure ends the run.
    const again = await pushWalFiles(files, { kind: 'command', command }, deps, AbortSignal.timeout(10_000));
    assert.deepEqual(
      again.map((step) => [step.file, step.outcome]),
      [
        [files[0], 'failed'],
        [files[1], 'failed'],
      ],
    );
    assert.match(again[1]!.detail, /not tried after 000000010000000000000005 failed/);
  });
});
