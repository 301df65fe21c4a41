// Issue 16 point 5 on real processes (etcd, PostgreSQL 15, pgBackRest): `pgwarden restore --target-time T` in place.
// Rows are committed in batches with the server's clock read around them, across two real failovers (the primary's
// agent and postmaster SIGKILLed while its archiving fails on purpose, so its last segments are not in the archive:
// the new primary's catch-up or the old one's push before pg_rewind has to put them there); T lies between two batches on the middle timeline. After the
// restore the cluster holds exactly the rows committed before T, on every member (the re-cloned replicas replay the
// archive along the new timeline's history, so an abandoned future shows there first), and is healthy again: one
// leader on a new timeline, the others streaming, no longer paused, and a new full backup. Bad targets and a wrong
// confirmation change nothing.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { backupRepositoryOf, type LocalCluster } from '../../src/local/local-cluster.js';
import { healthyTopology } from '../../src/local/cluster-health.js';
import { waitUntil } from '../../src/util/wait-until.js';
import { agentLogTail, runCli, runCliWithInput, sql, waitHealthy, writableAmong } from '../kit/cluster-kit.js';
import { startTestCluster, teardownCluster } from '../kit/fixtures.js';
import { archivedWalNames } from '../kit/pgbackrest.js';

const SCOPE = 'pitr';
const CONFIRM = `${SCOPE}\nYes I am aware\n`;

const range = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, index) => from + index);

describe('point-in-time recovery in place (pgwarden restore)', { timeout: 900_000 }, () => {
  let cluster: LocalCluster | undefined;
  let restored: LocalCluster | undefined;
  let scoped: LocalCluster | undefined;
  let config: string[] = [];
  /** The target of the in-place restore, reused by the new cluster. */
  let targetTime = '';
  const local = (): LocalCluster => cluster!;
  const names = (): string[] => local().nodes.map((node) => node.name);

  const cli = (args: readonly string[]): Promise<{ code: number; stdout: string; stderr: string }> => runCli([...config, ...args], 300_000);
  /** The server's clock, epoch milliseconds (with its microseconds as the fraction). */
  const serverNowMs = async (member: string): Promise<number> =>
    Number(
      (await sql<{ us: string }>(local(), member, 'SELECT (extract(epoch FROM clock_timestamp()) * 1000000)::bigint::text AS us'))[0]!.us,
    ) / 1000;
  /** Inserts each id in its own transaction; resolves with the server's clock after the last commit. */
  const commitBatch = async (member: string, batch: string, ids: readonly number[]): Promise<number> => {
    for (const id of ids) await sql(local(), member, 'INSERT INTO pitr_rows (id, batch) VALUES ($1, $2)', [id, batch]);
    return serverNowMs(member);
  };
  const rowIds = async (member: string): Promise<number[]> =>
    (await sql<{ id: number }>(local(), member, 'SELECT id FROM pitr_rows ORDER BY id')).map((row) => row.id);
  /** Completes the current WAL segment and waits until the archiver pushed it to the repository. */
  const switchWalAndWaitArchived = async (member: string): Promise<void> => {
    const wal = (await sql<{ wal: string }>(local(), member, 'SELECT pg_walfile_name(pg_switch_wal()) AS wal'))[0]!.wal;
    let last = '';
    await waitUntil(
      async () => {
        const row = (await sql<{ last: string | null }>(local(), member, 'SELECT last_archived_wal AS last FROM pg_stat_archiver'))[0];
        last = row?.last ?? 'none';
        return /^[0-9A-F]{24}$/.test(last) && last >= wal;
      },
      { timeoutMs: 60_000, intervalMs: 250, describe: `${wal} archived by ${member}`, lastState: () => `last archived ${last}` },
    );
  };
  /**
   * A real failover: waits until every replica received the leader's last flushed WAL (so the failover loses no
   * committed row), SIGKILLs the leader's agent and postmaster, waits for a writable primary among the others, then
   * starts the killed member's agent again (it rejoins by pg_rewind) and waits for a healthy cluster. Resolves with the
   * new leader.
   */
  const failover = async (leader: string): Promise<string> => {
    const survivors = names().filter((name) => name !== leader);
    const [{ lsn } = { lsn: '' }] = await sql<{ lsn: string }>(local(), leader, 'SELECT pg_current_wal_flush_lsn()::text AS lsn');
    for (const member of survivors)
      await waitUntil(
        async () =>
          (await sql<{ ok: boolean }>(local(), member, 'SELECT pg_last_wal_receive_lsn() >= $1::pg_lsn AS ok', [lsn]))[0]?.ok === true,
        { timeoutMs: 30_000, intervalMs: 100, describe: `${member} received up to ${lsn}` },
      );
    const postmaster = await local().postmasterPid(leader);
    local().killAgent(leader, 'SIGKILL');
    if (postmaster !== undefined) process.kill(postmaster, 'SIGKILL');
    const promoted = await waitUntil(() => writableAmong(local(), survivors), {
      timeoutMs: 90_000,
      intervalMs: 200,
      describe: `a new writable primary among ${survivors.join(', ')} after ${leader} was killed`,
    });
    local().startAgent(leader);
    await waitUntil(async () => healthyTopology(await local().view(), names())?.leader === promoted, {
      timeoutMs: 180_000,
      intervalMs: 250,
      describe: `${promoted} leading a healthy cluster, ${leader} rejoined`,
      lastState: () => agentLogTail(local(), leader, /rewind|reinit|start|error/i),
    });
    // Its own archive_command again, should it become primary later (ALTER SYSTEM writes no WAL: fine on a standby).
    await sql(local(), leader, 'ALTER SYSTEM RESET archive_command');
    await sql(local(), leader, 'SELECT pg_reload_conf()');
    return promoted;
  };
  /**
   * Makes archiving fail on `member` (archive_command = false, its own postgresql.auto.conf only), then completes the
   * current segment and waits until the archiver tried and failed it: the segment stays .ready, not in the archive.
   * Resolves with its name.
   */
  const switchWalUnarchived = async (member: string): Promise<string> => {
    await sql(local(), member, "ALTER SYSTEM SET archive_command = 'false'");
    await sql(local(), member, 'SELECT pg_reload_conf()');
    const wal = (await sql<{ wal: string }>(local(), member, 'SELECT pg_walfile_name(pg_switch_wal()) AS wal'))[0]!.wal;
    let failed = '';
    await waitUntil(
      async () => {
        const row = (await sql<{ failed: string | null }>(local(), member, 'SELECT last_failed_wal AS failed FROM pg_stat_archiver'))[0];
        failed = row?.failed ?? 'none';
        return failed === wal;
      },
      {
        timeoutMs: 30_000,
        intervalMs: 200,
        describe: `the archiver of ${member} failing ${wal}`,
        lastState: () => `last failed ${failed}`,
      },
    );
    assert.ok(!archivedWalNames(local(), SCOPE).has(wal), `${wal} is not in the archive before the crash`);
    return wal;
  };

  before(async () => {
    cluster = await startTestCluster(SCOPE, { nodes: 3, backup: true });
    config = ['-c', cluster.node('node1').configPath];
  });

  after(async () => {
    await teardownCluster(scoped);
    await teardownCluster(restored);
    await teardownCluster(cluster);
  });

  it('refuses bad targets, a repository without a backup and a wrong confirmation, changing nothing', async () => {
    const { leader } = await waitHealthy(local(), 120_000);
    const logFile = local().node(leader).logFile;
    await waitUntil(async () => existsSync(logFile) && /pgBackRest stanza is ready/.test(readFileSync(logFile, 'utf8')), {
      timeoutMs: 120_000,
      describe: 'stanza-create on the primary',
      lastState: () => agentLogTail(local(), leader, /pgBackRest|stanza/),
    });
    const refusals: [string[], RegExp][] = [
      [['restore'], /say where recovery stops: one of --target-time, --target-lsn, --target-name or --immediate/],
      [['restore', '--target-time', 'yesterday'], /--target-time "yesterday" is not a timestamp with a time zone/],
      [['restore', '--target-time', '2026-12-07 10:00:00'], /is not a timestamp with a time zone/],
      [['restore', '--target-time', '2026-02-30T10:00:00Z'], /is not a real date and time/],
      [['restore', '--target-lsn', '12'], /--target-lsn "12" is not an LSN/],
      [['restore', '--target-lsn', '0/1', '--immediate'], /give one recovery target, not --target-lsn and --immediate/],
      [['restore', '--target-name', "it's"], /is not a restore point name/],
      [['restore', '--immediate'], /the repository holds no backup to restore from/],
    ];
    for (const [args, message] of refusals) {
      const result = await runCliWithInput([...config, ...args], CONFIRM);
      assert.equal(result.code, 1, `${args.join(' ')}: ${result.stdout}${result.stderr}`);
      assert.match(result.stderr, message, args.join(' '));
      assert.doesNotMatch(result.stdout, /\[1\//, 'no step ran');
    }
    await sql(
      local(),
      leader,
      'CREATE TABLE pitr_rows (id int PRIMARY KEY, batch text NOT NULL, committed_at timestamptz NOT NULL DEFAULT clock_timestamp())',
    );
    const backup = await cli(['backup', '--wait']);
    assert.equal(backup.code, 0, backup.stderr);
    const wrong = await runCliWithInput([...config, 'restore', '--immediate'], 'not-the-name\n');
    assert.equal(wrong.code, 1);
    assert.match(wrong.stderr, /Cluster names specified do not match/);
    const unaware = await runCliWithInput([...config, 'restore', '--immediate'], `${SCOPE}\nyes\n`);
    assert.match(unaware.stderr, /You did not exactly type "Yes I am aware"/);
    const future = await runCliWithInput([...config, 'restore', '--target-time', '2099-01-01T00:00:00Z'], CONFIRM);
    assert.match(future.stderr, /is in the future/);
    const view = await local().view();
    assert.notEqual(view.config?.pause, true, 'the cluster was not paused');
    assert.equal(healthyTopology(view, names())?.leader, leader, 'nothing was stopped');
  });

  it('restores to a time between two failovers: exactly the rows committed before it, on every member', async (t) => {
    const { leader: first } = await waitHealthy(local(), 60_000);
    await commitBatch(first, 'A', range(1, 5));
    const segmentA = await switchWalUnarchived(first);
    const second = await failover(first);
    const afterB = await commitBatch(second, 'B', range(6, 10));
    // T a second after B's last commit; C is committed only once the server's clock has passed it.
    const targetMs = Math.ceil(afterB) + 1000;
    const target = new Date(targetMs).toISOString();
    targetTime = target;
    await waitUntil(async () => (await serverNowMs(second)) > targetMs + 500, {
      timeoutMs: 10_000,
      intervalMs: 100,
      describe: `the server clock past ${target}`,
    });
    await commitBatch(second, 'C', range(11, 15));
    const segmentC = await switchWalUnarchived(second);
    const third = await failover(second);
    await commitBatch(third, 'D', range(16, 20));
    await switchWalAndWaitArchived(third);
    // Both killed primaries' last segments, which they never archived, reached the archive (pushed by the new
    // primary's catch-up or by the old one before its rewind): recovery to T reads through A's segment on timeline 1
    // and C's on timeline 2.
    await waitUntil(
      () => {
        const archived = archivedWalNames(local(), SCOPE);
        return archived.has(segmentA) && archived.has(segmentC);
      },
      {
        timeoutMs: 60_000,
        describe: `${segmentA} and ${segmentC} in the archive`,
        lastState: () => [...archivedWalNames(local(), SCOPE)].sort().join(','),
      },
    );
    t.diagnostic(`failovers: ${first} -> ${second} -> ${third}`);
    const timelineBefore = (await local().view()).members.find((member) => member.name === third)?.timeline ?? 0;
    assert.ok(timelineBefore >= 3, `two failovers made timeline ${timelineBefore}`);
    // The stored commit clock agrees with the batches: A and B before T, C and D after it.
    const stored = await sql<{ id: number; ms: string }>(
      local(),
      third,
      'SELECT id, (extract(epoch FROM committed_at) * 1000)::text AS ms FROM pitr_rows ORDER BY id',
    );
    assert.deepEqual(
      stored.filter((row) => Number(row.ms) < targetMs).map((row) => row.id),
      range(1, 10),
    );

    const startedAt = Date.now();
    const result = await runCliWithInput([...config, 'restore', '--target-time', target, '--timeout', '300'], CONFIRM, 900_000);
    const restoreS = (Date.now() - startedAt) / 1000;
    t.diagnostic(`pgwarden restore took ${restoreS.toFixed(1)} s`);
    assert.equal(result.code, 0, `${result.stdout}\n${result.stderr}\n${agentLogTail(local(), third, /restor|pgbackrest|recover/i, 20)}`);
    assert.match(result.stdout, new RegExp(`restore ${third} to time .* on timeline 2 and promote it: ok`));
    assert.match(result.stdout, /take a full backup of the new timeline \(on the leader\): ok/);
    assert.match(result.stdout, /Success: cluster pitr restored/);

    const healthy = await waitHealthy(local(), 120_000);
    assert.equal(healthy.leader, third, 'the leader restored in place and kept the lock');
    const timelineAfter = healthy.view.members.find((member) => member.name === third)?.timeline ?? 0;
    assert.ok(timelineAfter > timelineBefore, `a new timeline: ${timelineAfter} after ${timelineBefore}`);
    assert.notEqual(healthy.view.config?.pause, true, 'resumed');
    // The new timeline branched from timeline 2, the one that held T: its history file's last line names 2 as parent.
    const history = await sql<{ text: string }>(
      local(),
      third,
      `SELECT pg_read_file('pg_wal/' || lpad(upper(to_hex($1::int)), 8, '0') || '.history') AS text`,
      [timelineAfter],
    );
    const lines = history[0]!.text.trim().split('\n');
    assert.match(lines[lines.length - 1]!, /^2\t[0-9A-F]+\/[0-9A-F]+\tbefore /, history[0]!.text);
    for (const member of names()) assert.deepEqual(await rowIds(member), range(1, 10), `rows on ${member}`);
    // The DCS history records the restore: the timeline the cluster left, by whom, why; patronictl's history shows it.
    const entry = await waitUntil(
      async () => {
        const last = (await local().view()).history.at(-1);
        return last?.[0] === timelineBefore ? last : undefined;
      },
      { timeoutMs: 30_000, describe: `a history entry for timeline ${timelineBefore}` },
    );
    assert.equal(entry[4], third);
    assert.match(entry[2], /^pgwarden restore to time \S+ \S+ on timeline 2$/);
    assert.ok(Date.parse(entry[3] ?? '') >= startedAt, `stamped after the restore began: ${entry[3]}`);
    const historyTable = await cli(['history']);
    assert.equal(historyTable.code, 0, historyTable.stderr);
    assert.match(historyTable.stdout, new RegExp(`\\|\\s+${timelineBefore}\\s+\\|.*pgwarden restore to time .*\\|\\s+${third}\\s+\\|`));
    // The restored cluster takes writes, and they reach the re-cloned replicas.
    await sql(local(), third, "INSERT INTO pitr_rows (id, batch) VALUES (100, 'after restore')");
    for (const member of names().filter((name) => name !== third))
      await waitUntil(async () => (await rowIds(member)).includes(100), {
        timeoutMs: 30_000,
        intervalMs: 200,
        describe: `the post-restore row on ${member}`,
      });
    const list = await cli(['backup', 'list', '-f', 'json']);
    const rows = JSON.parse(list.stdout) as { type: string; stop?: string }[];
    const fulls = rows.filter((row) => row.type === 'full');
    assert.equal(fulls.length, 2, list.stdout);
    assert.ok(Date.parse(fulls[1]!.stop ?? '') >= startedAt - 1000, 'the new full backup was taken after the restore');
  });

  it('bootstraps a new cluster from the old stanza at the same time (bootstrap.method: pgbackrest), the old one untouched', async () => {
    assert.notEqual(targetTime, '', 'the in-place restore ran first');
    const before = await rowIds(names()[0]!);
    restored = await startTestCluster('pitrnew', {
      nodes: 2,
      backup: { repository: backupRepositoryOf(local().dir) },
      bootstrapExtra: { method: 'pgbackrest', pgbackrest: { stanza: SCOPE, target_time: targetTime, target_timeline: 2 } },
    });
    const fresh = restored;
    const { leader, replicas } = await waitHealthy(fresh, 180_000);
    const ids = (member: string): Promise<number[]> =>
      sql<{ id: number }>(fresh, member, 'SELECT id FROM pitr_rows ORDER BY id').then((rows) => rows.map((row) => row.id));
    assert.deepEqual(await ids(leader), range(1, 10));
    assert.deepEqual(await ids(replicas[0]!), range(1, 10));
    // The restore's restore_command named the old stanza: it is gone from postgresql.auto.conf.
    const setting = await sql<{ sourcefile: string | null }>(
      fresh,
      leader,
      "SELECT sourcefile FROM pg_settings WHERE name = 'restore_command'",
    );
    assert.doesNotMatch(setting[0]?.sourcefile ?? '', /postgresql\.auto\.conf$/);
    assert.deepEqual(await rowIds(names()[0]!), before, 'the old cluster is untouched');
  });

  it('restore --scope NEW: checks the member configs, writes the bootstrap, and the new cluster holds exactly the rows up to T', async () => {
    assert.notEqual(targetTime, '', 'the in-place restore ran first');
    const before = await rowIds(names()[0]!);
    scoped = await startTestCluster('pitrscope', { nodes: 2, backup: { repository: backupRepositoryOf(local().dir) }, agents: [] });
    const fresh = scoped;
    const memberArgs = fresh.nodes.flatMap((node) => ['--member-config', node.configPath]);
    const restoreArgs = [...config, 'restore', '--target-time', targetTime, '--scope', 'pitrscope'];
    const confirm = 'pitrscope\nYes I am aware\n';
    // Refused before anything is written: its own scope, no members, a member config of the source cluster.
    const refusals: [string[], RegExp][] = [
      [[...config, 'restore', '--target-time', targetTime, '--scope', SCOPE, ...memberArgs], /is the source cluster's own scope/],
      [restoreArgs, /give the new cluster its members: --member-config/],
      [
        [...restoreArgs, '--member-config', local().node(names()[0]!).configPath],
        new RegExp(`has scope ${SCOPE}, not pitrscope.*its data dir .* is not empty.*backup.stanza ${SCOPE} is the source cluster's`),
      ],
      [[...config, 'restore', '--target-time', targetTime, ...memberArgs], /--member-config and --wait go with --scope/],
    ];
    for (const [args, message] of refusals) {
      const result = await runCliWithInput(args, confirm);
      assert.equal(result.code, 1, `${args.join(' ')}: ${result.stdout}${result.stderr}`);
      assert.match(result.stderr, message, args.join(' '));
    }
    const configBefore = readFileSync(fresh.nodes[0]!.configPath, 'utf8');
    const wrong = await runCliWithInput([...restoreArgs, ...memberArgs], 'pitr\n');
    assert.match(wrong.stderr, /Cluster names specified do not match/);
    assert.equal(readFileSync(fresh.nodes[0]!.configPath, 'utf8'), configBefore, 'nothing written without the confirmation');

    const run = runCliWithInput([...restoreArgs, ...memberArgs, '--wait', '--timeout', '300'], confirm, 400_000);
    // The operator starts the agents once the bootstrap is in their config files.
    await waitUntil(() => fresh.nodes.every((node) => /method: pgbackrest/.test(readFileSync(node.configPath, 'utf8'))), {
      timeoutMs: 60_000,
      intervalMs: 200,
      describe: "the restore bootstrap in the new members' config files",
    });
    for (const node of fresh.nodes) fresh.startAgent(node.name);
    const result = await run;
    assert.equal(result.code, 0, `${result.stdout}\n${result.stderr}`);
    assert.match(result.stdout, /write bootstrap\.method: pgbackrest \(stanza pitr, time .* on timeline 2\)/);
    assert.match(result.stdout, /Success: cluster pitrscope restored from pitr to time .*; pitr was not touched/);
    const { leader, replicas } = await waitHealthy(fresh, 60_000);
    const ids = (member: string): Promise<number[]> =>
      sql<{ id: number }>(fresh, member, 'SELECT id FROM pitr_rows ORDER BY id').then((rows) => rows.map((row) => row.id));
    assert.deepEqual(await ids(leader), range(1, 10));
    assert.deepEqual(await ids(replicas[0]!), range(1, 10));
    // The new cluster archives into a stanza of its own; the old one kept its rows and still takes writes.
    // (The repository is the old cluster's directory.)
    await waitUntil(() => archivedWalNames(local(), 'pitrscope').size > 0, {
      timeoutMs: 60_000,
      describe: 'WAL archived into stanza pitrscope',
      lastState: () => agentLogTail(fresh, leader, /archiv|stanza/),
    });
    const { leader: oldLeader } = await waitHealthy(local(), 30_000);
    assert.deepEqual(await rowIds(oldLeader), before, 'the old cluster is untouched');
    await sql(local(), oldLeader, "INSERT INTO pitr_rows (id, batch) VALUES (200, 'old cluster still writable')");
  });
});
