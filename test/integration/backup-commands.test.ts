// Issue 16 point 4 on real processes: `pgwarden backup --wait` takes a backup on the streaming standby (pgBackRest
// --backup-standby against the leader), `pgwarden backup list -f json` shows it; a second POST /backup while one runs
// gets 409 naming the member that runs it; after a switchover the next backup runs on the new layout.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { backupRepositoryOf, type LocalCluster } from '../../src/local/local-cluster.js';
import { chmod, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { waitUntil } from '../../src/util/wait-until.js';
import { agentLogTail, runCli, sql, waitHealthy } from '../kit/cluster-kit.js';
import { startTestCluster, teardownCluster } from '../kit/fixtures.js';

const SCOPE = 'brcmd';

function logLines(cluster: LocalCluster, member: string, pattern: RegExp): number {
  const text = existsSync(cluster.node(member).logFile) ? readFileSync(cluster.node(member).logFile, 'utf8') : '';
  return text.split('\n').filter((line) => pattern.test(line)).length;
}

interface Row {
  readonly label: string;
  readonly type: string;
  readonly walStart?: string;
  readonly sizeBytes?: number;
}

describe('backups as commands (pgwarden backup, POST /backup, GET /backups)', { timeout: 600_000 }, () => {
  let cluster: LocalCluster | undefined;
  let config: string[] = [];

  const cli = async (args: readonly string[]): Promise<{ code: number; stdout: string; stderr: string }> =>
    runCli([...config, ...args], 300_000);
  const list = async (): Promise<Row[]> => {
    const result = await cli(['backup', 'list', '-f', 'json']);
    assert.equal(result.code, 0, result.stderr);
    return JSON.parse(result.stdout) as Row[];
  };

  before(async () => {
    cluster = await startTestCluster(SCOPE, { nodes: 2, backup: true });
    config = ['-c', cluster.node('node1').configPath];
  });

  let scheduled: LocalCluster | undefined;
  const scheduledRepository = join(tmpdir(), `pgw-brsched-repo-${process.pid}`);

  after(async () => {
    if (cluster !== undefined) await chmod(backupRepositoryOf(cluster.dir), 0o750).catch(() => undefined);
    await teardownCluster(scheduled);
    await teardownCluster(cluster);
    await rm(scheduledRepository, { recursive: true, force: true });
  });

  it('takes a full backup on the streaming standby with --wait; backup list shows it', async () => {
    const local = cluster!;
    const { leader, replicas } = await waitHealthy(local, 120_000);
    const replica = replicas[0]!;
    await waitUntil(async () => logLines(local, leader, /pgBackRest stanza is ready/) > 0, {
      timeoutMs: 120_000,
      describe: 'stanza-create on the primary',
      lastState: () => agentLogTail(local, leader, /pgBackRest|stanza/),
    });
    await sql(local, leader, 'CREATE TABLE brcmd_rows AS SELECT generate_series(1, 1000) AS id');
    await waitUntil(
      async () =>
        (await sql<{ status: string }>(local, replica, 'SELECT status FROM pg_stat_wal_receiver').catch(() => []))[0]?.status ===
        'streaming',
      { timeoutMs: 60_000, intervalMs: 250, describe: `${replica} streaming` },
    );
    assert.deepEqual(await list(), [], 'no backup yet');
    const result = await cli(['backup', '--wait']);
    assert.equal(result.code, 0, `${result.stderr}\n${agentLogTail(local, replica, /backup/)}`);
    assert.match(result.stdout, new RegExp(`Backup started: full on ${replica} \\(standby\\)`));
    assert.match(result.stdout, /Backup finished: \d{8}-\d{6}F \(full, /);
    const rows = await list();
    assert.equal(rows.length, 1);
    assert.equal(rows[0]?.type, 'full');
    assert.match(rows[0]?.walStart ?? '', /^[0-9A-F]{24}$/);
    assert.ok(logLines(local, replica, /full backup finished in/) > 0, 'the standby logged it');
    // pgBackRest's own record: taken from the standby.
    const pretty = await cli(['backup', 'list']);
    assert.match(pretty.stdout, new RegExp(`\\| ${rows[0]?.label ?? ''} +\\| full `));
  });

  it('answers 409 to a second POST /backup while one runs, naming the member running it', async () => {
    const local = cluster!;
    const { leader, replicas } = await waitHealthy(local, 60_000);
    const replica = replicas[0]!;
    const post = (member: string, type: string): Promise<Response> =>
      fetch(`http://127.0.0.1:${local.node(member).apiPort}/backup`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ type }),
      });
    const first = await post(replica, 'full');
    assert.equal(first.status, 202, await first.text());
    const second = await post(leader, 'incr');
    assert.equal(second.status, 409);
    assert.match(await second.text(), new RegExp(`already running on ${replica}`));
    const cliBusy = await cli(['backup', '--type', 'incr']);
    assert.equal(cliBusy.code, 1);
    assert.match(cliBusy.stderr, new RegExp(`Error: a full backup is already running on ${replica}`));
    await waitUntil(
      async () => {
        const status = (await (await fetch(`http://127.0.0.1:${local.node(replica).apiPort}/backup`)).json()) as { running: unknown };
        return status.running === null;
      },
      { timeoutMs: 180_000, intervalMs: 500, describe: 'the backup lock released' },
    );
    assert.equal((await list()).filter((row) => row.type === 'full').length, 2);
  });

  it('after a switchover, the next backup (incr) runs on the new layout', async () => {
    const local = cluster!;
    const { leader, replicas } = await waitHealthy(local, 60_000);
    const candidate = replicas[0]!;
    const switched = await cli(['switchover', '--candidate', candidate, '--force']);
    assert.equal(switched.code, 0, switched.stderr);
    await waitUntil(
      async () => (await waitHealthy(local, 60_000)).leader === candidate && (await waitHealthy(local, 60_000)).replicas.includes(leader),
      {
        timeoutMs: 120_000,
        intervalMs: 500,
        describe: `${candidate} leads and ${leader} streams from it`,
      },
    );
    await waitUntil(
      async () =>
        (await sql<{ status: string }>(local, leader, 'SELECT status FROM pg_stat_wal_receiver').catch(() => []))[0]?.status ===
        'streaming',
      { timeoutMs: 60_000, intervalMs: 250, describe: `${leader} streaming from ${candidate}` },
    );
    await sql(local, candidate, 'INSERT INTO brcmd_rows SELECT generate_series(1001, 2000)');
    const result = await cli(['backup', '--type', 'incr', '--wait']);
    assert.equal(result.code, 0, `${result.stderr}\n${agentLogTail(local, leader, /backup/)}`);
    assert.match(result.stdout, new RegExp(`Backup started: incr on ${leader} \\(standby\\)`));
    const rows = await list();
    assert.equal(rows[rows.length - 1]?.type, 'incr');
    const primaryBackup = await cli(['backup', '--type', 'diff', '--from', 'primary', '--wait']);
    assert.equal(primaryBackup.code, 0, primaryBackup.stderr);
    assert.match(primaryBackup.stdout, new RegExp(`Backup started: diff on ${candidate} \\(primary\\)`));
    assert.equal((await list()).at(-1)?.type, 'diff');
  });

  it('backup.schedule: the leader starts the scheduled backup when its minute comes (one member: on itself)', async () => {
    const local = await startTestCluster('brsched', {
      nodes: 1,
      backup: { repository: scheduledRepository, schedule: { incr: '* * * * *' } },
    });
    scheduled = local;
    const { leader } = await waitHealthy(local, 120_000);
    await waitUntil(async () => logLines(local, leader, /scheduled incr backup started on/) > 0, {
      timeoutMs: 150_000,
      intervalMs: 1000,
      describe: 'a scheduled backup started by the leader',
      lastState: () => agentLogTail(local, leader, /backup|stanza/),
    });
    await waitUntil(async () => logLines(local, leader, /backup finished in/) > 0, {
      timeoutMs: 120_000,
      intervalMs: 1000,
      describe: 'the scheduled backup finished',
      lastState: () => agentLogTail(local, leader, /backup|stanza/),
    });
  });
});
