// pgwarden upgrade --major, the in-place run, on a real 3-member cluster (real etcd, Debian's PostgreSQL 15 and
// pg_upgrade, the pgwarden proxy) on the 15 -> 15 test path (the same orchestration as across majors):
// - a NEW bin dir whose initdb breaks on --sync-only (pg_upgrade's last step, after it renamed the old
//   global/pg_control to pg_control.old and linked every file) fails the run for real after the check passed: the
//   rollback leaves the old cluster running untouched;
// - the upgrade with a writer through the proxy: data checked, the new system identifier in the DCS, replicas
//   re-cloned and streaming, bin_dir switched, statistics and the permanent slot back, the pgBackRest stanza upgraded
//   (the new WAL archived) and a full backup taken, the write pause printed; then a
//   failover on the upgraded cluster;
// - an interrupted run (the CLI killed): rolled back with --rollback before the point of no return, continued by a
//   re-run after it (where --rollback is refused).
// With PGWARDEN_TEST_BIN_<major> naming a newer major's bin dir (full tool set on every member's host, i.e. this one),
// the same upgrade runs across majors instead.
import assert from 'node:assert/strict';
import { chmod, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { longestWriteGap, Writer } from '../../src/chaos/workload.js';
import type { LocalCluster } from '../../src/local/local-cluster.js';
import { waitUntil } from '../../src/util/wait-until.js';
import { runCli, runCliUntil, sql, waitHealthy } from '../kit/cluster-kit.js';
import { DEBIAN_PG15_BIN, mixedBinDir } from '../kit/embedded-postgres.js';
import { startTestCluster, stopOnInterrupt, teardownCluster } from '../kit/fixtures.js';

interface PatroniStatus {
  readonly state?: string;
  readonly role?: string;
  readonly bin_dir?: string;
  readonly replication_state?: string;
  readonly database_system_identifier?: string;
  readonly server_version?: number;
}

async function statusOf(cluster: LocalCluster, name: string): Promise<PatroniStatus> {
  const response = await fetch(`http://127.0.0.1:${cluster.node(name).apiPort}/patroni`);
  return (await response.json()) as PatroniStatus;
}

/** The row count and a checksum of the whole table, in id order. */
async function fingerprint(cluster: LocalCluster, name: string): Promise<string> {
  const [row] = await sql<{ n: number; sum: string }>(
    cluster,
    name,
    "SELECT count(*)::int AS n, md5(string_agg(id::text || ':' || payload, ',' ORDER BY id)) AS sum FROM upgrade_data",
  );
  return `${row?.n} rows, md5 ${row?.sum}`;
}

/** The newer major named by PGWARDEN_TEST_BIN_<major> (the highest), when one is set. */
function newerMajor(): { major: number; binDir: string } | undefined {
  const found = Object.entries(process.env)
    .map(([key, value]) => [/^PGWARDEN_TEST_BIN_(\d+)$/.exec(key)?.[1], value] as const)
    .filter((entry): entry is readonly [string, string] => entry[0] !== undefined && entry[1] !== undefined && entry[1] !== '')
    .map(([major, binDir]) => ({ major: Number(major), binDir }))
    .filter((entry) => entry.major > 15)
    .sort((a, b) => b.major - a.major);
  return found[0];
}

/** What the upgrade leaves beside a data directory while it runs (the new cluster, pg_upgrade's work directory). */
async function upgradeLeftovers(cluster: LocalCluster, name: string): Promise<string[]> {
  const dataDir = cluster.node(name).dataDir;
  const entries = await readdir(dirname(dataDir));
  return entries.filter((entry) => entry === `${basename(dataDir)}.pg_upgrade_new` || entry === `${basename(dataDir)}.pg_upgrade_work`);
}

describe('pgwarden upgrade --major in place (real etcd, PostgreSQL, pg_upgrade and proxy)', { timeout: 1_200_000 }, () => {
  let cluster: LocalCluster | undefined;
  let binRoot: string;
  let config: string;
  let newBin: string;
  let brokenBin: string;
  let to: number;
  let releaseInterrupt: (() => void) | undefined;
  let writer: Writer | undefined;
  const across = newerMajor();

  before(async () => {
    binRoot = await mkdtemp(join(tmpdir(), 'pgw-major-bins-'));
    // mkdtemp makes it 0700: the postgres OS user runs the binaries through it.
    await chmod(binRoot, 0o755);
    releaseInterrupt = stopOnInterrupt(() => rm(binRoot, { recursive: true, force: true }));
    const realNew = across?.binDir ?? DEBIAN_PG15_BIN;
    to = across?.major ?? 15;
    // A path of its own even on the 15 -> 15 path, so the switch of bin_dir shows.
    newBin = await mixedBinDir(join(binRoot, `pg${to}-new`), realNew, realNew, []);
    // The same binaries, but initdb fails when pg_upgrade runs it with --sync-only: after pg_upgrade renamed the old
    // cluster's global/pg_control and hard-linked the data files. --check and the schema test never run that.
    brokenBin = join(binRoot, `pg${to}-broken-sync`);
    await mixedBinDir(brokenBin, realNew, realNew, []);
    await rm(join(brokenBin, 'initdb'));
    await writeFile(
      join(brokenBin, 'initdb'),
      `#!/bin/sh\ncase " $* " in *" --sync-only "*) echo "initdb: could not fsync: Input/output error (broken on purpose)" >&2; exit 1;; esac\nexec ${join(realNew, 'initdb')} "$@"\n`,
      { mode: 0o755 },
    );
    cluster = await startTestCluster('majorupgrade', {
      restAuth: true,
      proxies: 1,
      proxySettings: { hold_timeout: 120 },
      backup: true,
    });
    const { leader } = await waitHealthy(cluster, 120_000);
    config = cluster.node(leader).configPath;
    await cluster.patchConfig({ slots: { upgrade_keep: { type: 'physical' } } });
    await sql(cluster, leader, 'CREATE TABLE upgrade_data (id int PRIMARY KEY, payload text NOT NULL)');
    await sql(cluster, leader, 'INSERT INTO upgrade_data SELECT g, md5(g::text) FROM generate_series(1, 20000) g');
    await sql(cluster, leader, 'CREATE TABLE upgrade_writes (id bigint PRIMARY KEY)');
    // ALTER SYSTEM's file, which pg_upgrade leaves behind: the run carries it into the new cluster.
    await sql(cluster, leader, "ALTER SYSTEM SET work_mem = '7MB'");
    await sql(cluster, leader, 'SELECT pg_reload_conf()');
    await waitUntil(
      async () => (await sql(cluster!, leader, "SELECT 1 FROM pg_replication_slots WHERE slot_name = 'upgrade_keep'")).length === 1,
      { timeoutMs: 30_000, describe: 'the permanent slot upgrade_keep on the leader' },
    );
  });

  after(async () => {
    await writer?.stop();
    await teardownCluster(cluster);
    await rm(binRoot, { recursive: true, force: true });
    releaseInterrupt?.();
  });

  it('a run that pg_upgrade fails after linking (pg_control.old) rolls back: the old cluster runs again untouched', async () => {
    const local = cluster!;
    const before = await waitHealthy(local, 60_000);
    const sysidBefore = (await local.view()).initialize;
    const dataBefore = await fingerprint(local, before.leader);
    const args = [
      '-c',
      config,
      'upgrade',
      '--major',
      '--to',
      String(to),
      '--bin-dir',
      brokenBin,
      ...(across ? [] : ['--allow-same-major']),
    ];
    const result = await runCli(args, 600_000);
    const output = result.stdout + result.stderr;
    process.stdout.write(`--- failed run\n${output}`);
    assert.notEqual(result.code, 0, output);
    assert.match(output, /check passed in/, 'the check did not see it');
    assert.match(output, /FAILED at pgUpgrade:/);
    assert.match(output, /broken on purpose/, "pg_upgrade's own failure is printed");
    assert.match(output, /before the point of no return: rolling back/);
    assert.match(output, /global\/pg_control\.old renamed back to pg_control/, 'pg_upgrade had disabled the old cluster');
    assert.match(output, /was rolled back/);
    assert.doesNotMatch(output, /POINT OF NO RETURN/);

    const after = await waitHealthy(local, 60_000);
    assert.equal(after.leader, before.leader, 'the same primary');
    const view = await local.view();
    assert.equal(view.initialize, sysidBefore, 'the same system identifier in the DCS');
    assert.equal(view.config?.pause, undefined, 'the cluster is resumed');
    assert.equal(await fingerprint(local, after.leader), dataBefore, 'the same data');
    await sql(local, after.leader, 'INSERT INTO upgrade_data VALUES (0, $1)', ['after the rollback']);
    for (const node of local.nodes) {
      const status = await statusOf(local, node.name);
      assert.equal(status.bin_dir, DEBIAN_PG15_BIN, `${node.name} keeps its bin_dir`);
      assert.equal(status.database_system_identifier, sysidBefore, node.name);
      if (node.name !== after.leader) assert.equal(status.replication_state, 'streaming', `${node.name} streams`);
    }
    assert.deepEqual(await upgradeLeftovers(local, before.leader), [], 'the new cluster is removed');
    const rollback = await runCli(['-c', config, 'upgrade', '--major', '--to', String(to), '--bin-dir', brokenBin, '--rollback']);
    assert.match(rollback.stdout, /No major upgrade in progress/, 'the record is gone');
  });

  it('upgrades in place with a writer through the proxy: data, new system identifier, replicas re-cloned, then a failover', async () => {
    const local = cluster!;
    const before = await waitHealthy(local, 60_000);
    const sysidBefore = (await local.view()).initialize;
    const dataBefore = await fingerprint(local, before.leader);
    const proxy = local.proxies[0]!;
    const proxied = new Writer({
      firstId: 1,
      targets: [{ host: '127.0.0.1', port: proxy.primaryPort }],
      password: local.superuserPassword,
      table: 'upgrade_writes',
      connection: 'per-write',
      intervalMs: 20,
      reconnectDelayMs: 10,
      connectTimeoutMs: 150_000,
      queryTimeoutMs: 150_000,
    });
    writer = proxied;
    proxied.start();
    await waitUntil(() => proxied.acks.length >= 20, { timeoutMs: 20_000, describe: '20 writes through the proxy' });
    const startedAt = performance.now();
    const args = [
      ...['-c', config, 'upgrade', '--major', '--to', String(to), '--bin-dir', newBin, '--timeout', '300'],
      ...(across ? [] : ['--allow-same-major']),
    ];
    const result = await runCli(args, 900_000);
    const output = result.stdout + result.stderr;
    process.stdout.write(`--- upgrade\n${output}`);
    assert.equal(result.code, 0, output);
    assert.match(output, /POINT OF NO RETURN/);
    assert.match(output, /shut down cleanly; shutdown checkpoint at [0-9A-F]+\/[0-9A-F]+/);
    for (const node of local.nodes.filter((candidate) => candidate.name !== before.leader))
      assert.match(output, new RegExp(`${node.name} replayed to \\d+`));
    assert.match(output, /pg_upgrade --link took [\d.]+ s/);
    assert.match(output, /writes were held [\d.]+ s/);
    assert.match(output, /vacuumdb --analyze-in-stages took/);
    assert.match(output, /create the replicas' and the permanent slots on \S+: ok .*upgrade_keep/);
    assert.match(output, /upgrade_keep exist again/);
    // With a backup: section: the stanza learns the new cluster once writes flow again, and a full backup ends the run.
    assert.match(output, /pgBackRest stanza-upgrade on \S+ .*: ok .*holds the new cluster/);
    assert.match(output, /a full pgBackRest backup of the new cluster .*: ok .*Backup finished: \S+F \(full/);
    const finishedAt = performance.now();
    await waitUntil(() => proxied.acks.some((ack) => ack.atMs > finishedAt), { timeoutMs: 30_000, describe: 'a write after the upgrade' });
    await proxied.stop();

    const after = await waitHealthy(local, 120_000);
    assert.equal(after.leader, before.leader, 'the primary was upgraded in place');
    const view = await local.view();
    assert.ok(view.initialize !== undefined && view.initialize !== sysidBefore, `a new system identifier in the DCS (${view.initialize})`);
    assert.equal(view.config?.pause, undefined, 'the cluster is resumed');
    const [control] = await sql<{ sysid: string }>(local, after.leader, 'SELECT system_identifier::text AS sysid FROM pg_control_system()');
    assert.equal(control?.sysid, view.initialize, 'the primary runs the new cluster');
    assert.equal(await fingerprint(local, after.leader), dataBefore, 'the same rows, the same checksum');
    const [workMem] = await sql<{ work_mem: string }>(local, after.leader, 'SHOW work_mem');
    assert.equal(workMem?.work_mem, '7MB', 'the ALTER SYSTEM setting came over (postgresql.auto.conf)');
    assert.match(output, /ALTER SYSTEM\s+ok\s+carried into the new cluster: work_mem/);
    for (const node of local.nodes) {
      const status = await statusOf(local, node.name);
      assert.equal(status.bin_dir, newBin, `${node.name} runs from the new bin_dir`);
      assert.equal(status.database_system_identifier, view.initialize, node.name);
      assert.equal(Math.floor((status.server_version ?? 0) / 10000), to, node.name);
      if (node.name !== after.leader) {
        assert.equal(status.replication_state, 'streaming', `${node.name} streams from the new primary`);
        assert.equal(await fingerprint(local, node.name), dataBefore, `${node.name} has the data`);
      }
    }
    const [stats] = await sql<{ n: number }>(
      local,
      after.leader,
      "SELECT count(*)::int AS n FROM pg_stats WHERE tablename = 'upgrade_data'",
    );
    assert.ok((stats?.n ?? 0) > 0, 'statistics after vacuumdb --analyze-in-stages');
    assert.equal((await sql(local, after.leader, "SELECT 1 FROM pg_replication_slots WHERE slot_name = 'upgrade_keep'")).length, 1);
    assert.deepEqual(await upgradeLeftovers(local, after.leader), []);
    // The repository takes the new cluster's WAL: a segment switched now is archived.
    const [switched] = await sql<{ wal: string }>(local, after.leader, 'SELECT pg_walfile_name(pg_switch_wal()) AS wal');
    await waitUntil(
      async () => {
        const [archiver] = await sql<{ last: string | null }>(
          local,
          after.leader,
          'SELECT last_archived_wal AS last FROM pg_stat_archiver',
        );
        return archiver?.last !== null && archiver?.last !== undefined && archiver.last >= switched!.wal;
      },
      { timeoutMs: 30_000, describe: `the new cluster's WAL ${switched?.wal} archived by pgBackRest` },
    );

    const onLeader = new Set(
      (await sql<{ id: string }>(local, after.leader, 'SELECT id FROM upgrade_writes')).map((row) => Number(row.id)),
    );
    const lost = proxied.acks.filter((ack) => !onLeader.has(ack.id));
    const connectFailures = proxied.failures.filter((failure) => failure.phase === 'connect');
    const gapMs = longestWriteGap(proxied.acks, startedAt) ?? Number.NaN;
    process.stdout.write(
      `major upgrade through the proxy: ${proxied.acks.length} acknowledged writes, write pause (longest gap) ${(gapMs / 1000).toFixed(1)} s, ${connectFailures.length} failed connects, ${proxied.failures.length - connectFailures.length} failed writes, ${lost.length} lost\n`,
    );
    assert.deepEqual(lost, [], 'no acknowledged write is lost');

    // A failover on the upgraded cluster: the primary's agent and PostgreSQL killed, a re-cloned replica takes over.
    local.killAgent(after.leader);
    await local.killPostmaster(after.leader);
    const survivors = local.nodes.map((node) => node.name).filter((name) => name !== after.leader);
    const promoted = await waitUntil(
      async () => {
        const current = await local.view().catch(() => undefined);
        const name = current?.leader?.name;
        if (name === undefined || name === after.leader) return undefined;
        const status = await statusOf(local, name).catch(() => undefined);
        return status?.role === 'master' || status?.role === 'primary' ? name : undefined;
      },
      { timeoutMs: 90_000, describe: 'a new leader after killing the upgraded primary' },
    );
    assert.ok(survivors.includes(promoted));
    await sql(local, promoted, 'INSERT INTO upgrade_data VALUES (-1, $1)', ['after the failover']);
    const [count] = await sql<{ n: number }>(local, promoted, 'SELECT count(*)::int AS n FROM upgrade_data');
    assert.equal(count?.n, 20_002, 'the 20000 rows, the one written after the rollback and the one after the failover');
  });

  it('an interrupted run: rolled back before the point of no return, continued by a re-run after it', async () => {
    const local = cluster!;
    // The member killed by the failover above comes back (its data is the upgraded cluster's: it rejoins).
    for (const node of local.nodes) local.startAgent(node.name);
    await waitHealthy(local, 180_000);
    const before = await waitHealthy(local, 60_000);
    const leaderConfig = local.node(before.leader).configPath;
    const sysidBefore = (await local.view()).initialize;
    const dataBefore = await fingerprint(local, before.leader);
    const args = [
      ...['-c', leaderConfig, 'upgrade', '--major', '--to', String(to), '--bin-dir', newBin, '--timeout', '300'],
      ...(across ? [] : ['--allow-same-major']),
    ];

    const first = await runCliUntil(args, /\[5\/\d+\] verify .*: ok in/, 300_000);
    assert.ok(first.wasKilled, first.stdout);
    const rollback = await runCli([...args, '--rollback'], 300_000);
    process.stdout.write(`--- killed after the replay check\n${first.stdout}--- --rollback\n${rollback.stdout}${rollback.stderr}`);
    assert.equal(rollback.code, 0, rollback.stdout + rollback.stderr);
    assert.match(rollback.stdout, /start the old primary on \S+ again: ok/);
    assert.match(rollback.stdout, /rolled back: \S+ runs the old cluster again/);
    const afterRollback = await waitHealthy(local, 60_000);
    assert.equal(afterRollback.leader, before.leader);
    assert.equal((await local.view()).initialize, sysidBefore);
    assert.equal(await fingerprint(local, before.leader), dataBefore);

    const second = await runCliUntil(args, /\[8\/\d+\] start the new primary .*: ok in/, 300_000);
    assert.ok(second.wasKilled, second.stdout);
    const refused = await runCli([...args, '--rollback'], 60_000);
    assert.notEqual(refused.code, 0);
    assert.match(refused.stdout + refused.stderr, /past its point of no return/);
    const resumed = await runCli(args, 600_000);
    process.stdout.write(`--- killed after the new primary started\n${second.stdout}--- re-run\n${resumed.stdout}${resumed.stderr}`);
    assert.equal(resumed.code, 0, resumed.stdout + resumed.stderr);
    assert.match(resumed.stdout, /resuming the upgrade to PostgreSQL \d+ started .* \(8 step\(s\) done/);
    assert.doesNotMatch(resumed.stdout, /pg_upgrade --link on/, 'the steps done are not repeated');
    assert.match(resumed.stdout, /writes were held|route to/);
    const after = await waitHealthy(local, 120_000);
    const view = await local.view();
    assert.ok(view.initialize !== sysidBefore, 'a new system identifier');
    assert.equal(await fingerprint(local, after.leader), dataBefore);
    for (const node of local.nodes) {
      const status = await statusOf(local, node.name);
      assert.equal(status.database_system_identifier, view.initialize, node.name);
      if (node.name !== after.leader) assert.equal(status.replication_state, 'streaming', node.name);
    }
  });
});
