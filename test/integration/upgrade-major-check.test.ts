// pgwarden upgrade --major --check on a real 3-member cluster (real etcd, Debian's PostgreSQL 15 and pg_upgrade): the
// 15 -> 15 test path passes (pg_upgrade --check against the live primary, a scratch cluster removed afterwards, a
// schema-only restore), and refusals end to end: the same major without --allow-same-major, a bin dir without
// pg_upgrade, an extension whose control file the new binaries lack. The running cluster is unchanged after each.
import assert from 'node:assert/strict';
import { chmod, mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { MajorCheckFacts } from '../../src/core/major-upgrade-check.js';
import type { LocalCluster } from '../../src/local/local-cluster.js';
import { runCli, sql, waitHealthy } from '../kit/cluster-kit.js';
import { DEBIAN_PG15_BIN, mixedBinDir } from '../kit/embedded-postgres.js';
import { startTestCluster, stopOnInterrupt, teardownCluster } from '../kit/fixtures.js';

/** What must not change: the system identifier, the leader, and a row written before the check. */
async function identity(cluster: LocalCluster, leader: string): Promise<string> {
  const [row] = await sql<{ sysid: string; marker: string }>(
    cluster,
    leader,
    "SELECT (SELECT system_identifier::text FROM pg_control_system()) AS sysid, (SELECT string_agg(id::text, ',') FROM check_marker) AS marker",
  );
  return `${leader} ${row?.sysid} ${row?.marker}`;
}

/** HTTP Basic for the REST API's unsafe endpoints (the cluster is started with restAuth). */
function authHeader(cluster: LocalCluster): Record<string, string> {
  const credentials = cluster.restCredentials;
  assert.ok(credentials !== undefined, 'the cluster has REST credentials');
  return { authorization: `Basic ${Buffer.from(`${credentials.username}:${credentials.password}`).toString('base64')}` };
}

/** Scratch clusters of the check left beside a data directory (there must be none once it answered). */
async function leftovers(cluster: LocalCluster): Promise<string[]> {
  const found: string[] = [];
  for (const node of cluster.nodes) {
    const parent = dirname(node.dataDir);
    for (const name of await readdir(parent))
      if (name.startsWith(`.${basename(node.dataDir)}.major-check-`)) found.push(join(parent, name));
  }
  return found;
}

describe('pgwarden upgrade --major --check (Debian PostgreSQL 15 -> 15, real processes)', { timeout: 600_000 }, () => {
  let cluster: LocalCluster | undefined;
  let config: string;
  let leader: string;
  let before0: string;
  let binRoot: string;
  let releaseInterrupt: (() => void) | undefined;

  before(async () => {
    binRoot = await mkdtemp(join(tmpdir(), 'pgw-major-check-bins-'));
    // mkdtemp makes it 0700: the postgres OS user runs the binaries through it.
    await chmod(binRoot, 0o755);
    releaseInterrupt = stopOnInterrupt(() => rm(binRoot, { recursive: true, force: true }));
    // restAuth: the check runs programs on the primary's host, so its endpoint is an authenticated one.
    cluster = await startTestCluster('majorcheck', { restAuth: true });
    leader = (await waitHealthy(cluster, 120_000)).leader;
    config = cluster.node(leader).configPath;
    await sql(cluster, leader, 'CREATE EXTENSION IF NOT EXISTS pg_trgm');
    await sql(cluster, leader, 'CREATE TABLE check_marker (id int PRIMARY KEY, label text)');
    await sql(cluster, leader, "INSERT INTO check_marker VALUES (1, 'before'), (2, 'the check')");
    before0 = await identity(cluster, leader);
  });

  after(async () => {
    await teardownCluster(cluster);
    await rm(binRoot, { recursive: true, force: true });
    releaseInterrupt?.();
  });

  it('passes with --allow-same-major: pg_upgrade --check, extensions, disk, hard links, schema restore, in a table', async () => {
    const local = cluster!;
    const startedMs = performance.now();
    const result = await runCli(
      ['-c', config, 'upgrade', '--major', '--to', '15', '--bin-dir', DEBIAN_PG15_BIN, '--check', '--allow-same-major'],
      300_000,
    );
    const seconds = ((performance.now() - startedMs) / 1000).toFixed(1);
    const output = result.stdout + result.stderr;
    assert.equal(result.code, 0, output);
    console.log(`check took ${seconds} s:\n${result.stdout}`);
    assert.match(output, /^CHECK\s+RESULT\s+DETAIL$/m);
    assert.match(output, /^pg_upgrade --check\s+ok\s+clusters are compatible/m);
    assert.match(output, /^extensions\s+ok\s+.*postgres\.pg_trgm \d+\.\d+/m);
    assert.match(output, /^new major\s+warning\s+15 -> 15\.\d+ \(same major: test path/m);
    assert.match(output, /^disk\s+ok\s+data directory [\d.]+ MiB/m);
    assert.match(output, /^hard links\s+ok/m);
    const replicas = local.nodes.map((node) => node.name).filter((name) => name !== leader);
    for (const name of replicas) assert.match(output, new RegExp(`^replicas\\s+ok\\s+.*${name} 15\\.\\d+`, 'm'));
    assert.match(output, /^schema-only restore\s+ok\s+pg_dumpall --schema-only restored/m);
    assert.match(output, /check passed in [\d.]+ s/);
    assert.deepEqual(await leftovers(local), [], 'the scratch cluster is removed');
    assert.equal(await identity(local, (await waitHealthy(local, 30_000)).leader), before0, 'the running cluster is unchanged');
  });

  it("runs pg_upgrade's own live check on the primary (POST /bin_dir/major_check's facts), and needs authentication", async () => {
    const local = cluster!;
    const node = local.node(leader);
    const url = `http://127.0.0.1:${node.apiPort}/bin_dir/major_check`;
    const body = JSON.stringify({ bin_dir: DEBIAN_PG15_BIN });
    const reply = await fetch(url, { method: 'POST', body, headers: { 'content-type': 'application/json', ...authHeader(local) } });
    assert.equal(reply.status, 200);
    const facts = (await reply.json()) as MajorCheckFacts;
    assert.match(facts.pg_upgrade_check.output ?? '', /Performing Consistency Checks on Old Live Server/);
    assert.match(facts.pg_upgrade_check.output ?? '', /\*Clusters are compatible\*/);
    assert.match(facts.schema_restore.output ?? '', /^\d+ CREATE\/ALTER statements restored$/);
    assert.equal(facts.install_user, 'postgres');
    const anonymous = await fetch(url, { method: 'POST', body, headers: { 'content-type': 'application/json' } });
    assert.equal(anonymous.status, 401);
  });

  it("refuses when pg_upgrade --check fails, printing pg_upgrade's own output and report (a regproc column)", async () => {
    const local = cluster!;
    await sql(local, leader, 'CREATE TABLE reg_user (id int, fn regproc)');
    try {
      const result = await runCli(
        ['-c', config, 'upgrade', '--major', '--to', '15', '--bin-dir', DEBIAN_PG15_BIN, '--check', '--allow-same-major'],
        300_000,
      );
      const output = result.stdout + result.stderr;
      assert.notEqual(result.code, 0, output);
      console.log(result.stdout);
      assert.match(output, /^pg_upgrade --check\s+refused\s+failed/m);
      assert.match(output, /\| .*reg\* data types in user tables/);
      assert.match(output, /\| .*reg_user\.fn/, 'the report file pg_upgrade wrote is shown');
      assert.deepEqual(await leftovers(local), []);
    } finally {
      await sql(local, leader, 'DROP TABLE reg_user');
    }
  });

  it('refuses the same major without --allow-same-major, naming the flag', async () => {
    const result = await runCli(['-c', config, 'upgrade', '--major', '--to', '15', '--bin-dir', DEBIAN_PG15_BIN, '--check'], 300_000);
    const output = result.stdout + result.stderr;
    assert.notEqual(result.code, 0, output);
    assert.match(output, /^new major\s+refused\s+.*--allow-same-major/m);
    assert.match(output, /the major upgrade check refused/);
  });

  it('refuses a bin dir without pg_upgrade, naming it, and runs nothing from it', async () => {
    const local = cluster!;
    const dir = join(binRoot, 'no-pg-upgrade');
    await mixedBinDir(dir, DEBIAN_PG15_BIN);
    await rm(join(dir, 'pg_upgrade'));
    const result = await runCli(
      ['-c', config, 'upgrade', '--major', '--to', '15', '--bin-dir', dir, '--check', '--allow-same-major'],
      300_000,
    );
    const output = result.stdout + result.stderr;
    assert.notEqual(result.code, 0, output);
    assert.match(output, /^tools\s+refused\s+.*lacks pg_upgrade \(/m);
    assert.match(output, /^replicas\s+ok/m, 'replicas need only the agent tools, which the bin dir has');
    assert.match(output, /^pg_upgrade --check\s+skipped\s+.*lacks pg_upgrade/m);
    assert.deepEqual(await leftovers(local), []);
    assert.equal(await identity(local, (await waitHealthy(local, 30_000)).leader), before0);
  });

  it('refuses an installed extension whose control file the new share directory lacks', async () => {
    const local = cluster!;
    // The new binaries' share directory as pg_config reports it: one without pg_trgm (only plpgsql's control file).
    const dir = join(binRoot, 'no-pg-trgm');
    const share = join(binRoot, 'share-no-pg-trgm');
    await mixedBinDir(dir, DEBIAN_PG15_BIN);
    await mkdir(join(share, 'extension'), { recursive: true, mode: 0o755 });
    await writeFile(join(share, 'extension', 'plpgsql.control'), "default_version = '1.0'\n");
    await rm(join(dir, 'pg_config'));
    await writeFile(join(dir, 'pg_config'), `#!/bin/sh\n[ "$1" = --sharedir ] && echo ${share}\n`, { mode: 0o755 });
    const result = await runCli(
      ['-c', config, 'upgrade', '--major', '--to', '15', '--bin-dir', dir, '--check', '--allow-same-major'],
      300_000,
    );
    const output = result.stdout + result.stderr;
    assert.notEqual(result.code, 0, output);
    assert.match(
      output,
      new RegExp(`^extensions\\s+refused\\s+no control file in ${share}/extension for pg_trgm [\\d.]+ \\(database postgres\\)`, 'm'),
    );
    assert.match(output, /^pg_upgrade --check\s+ok/m, 'only the extension is refused: the rest of the check ran');
    assert.deepEqual(await leftovers(local), []);
    assert.equal(await identity(local, (await waitHealthy(local, 30_000)).leader), before0);
  });

  it('refuses usage errors clearly: no --to; without --check the run checks first and a refusal changes nothing', async () => {
    const noCheck = await runCli(['-c', config, 'upgrade', '--major', '--to', '17', '--bin-dir', DEBIAN_PG15_BIN]);
    assert.notEqual(noCheck.code, 0);
    assert.match(noCheck.stdout + noCheck.stderr, /^new major\s+refused\s+.* holds PostgreSQL 15\.\d+, not 17/m);
    assert.doesNotMatch(noCheck.stdout, /\[1\/\d+\] pause/, 'no step ran');
    const rollback = await runCli(['-c', config, 'upgrade', '--major', '--to', '17', '--bin-dir', DEBIAN_PG15_BIN, '--rollback']);
    assert.match(rollback.stdout, /No major upgrade in progress/, 'no upgrade record was written');
    const noTo = await runCli(['-c', config, 'upgrade', '--major', '--bin-dir', DEBIAN_PG15_BIN, '--check']);
    assert.notEqual(noTo.code, 0);
    assert.match(noTo.stdout + noTo.stderr, /needs --to <major>/);
  });
});

describe(
  'pgwarden upgrade --major --check on an ICU cluster (the scratch cluster gets the same locale provider)',
  { timeout: 300_000 },
  () => {
    let cluster: LocalCluster | undefined;

    before(async () => {
      cluster = await startTestCluster('majorcheckicu', {
        restAuth: true,
        bootstrapExtra: {
          initdb: [{ encoding: 'UTF8' }, { locale: 'C.UTF-8' }, { 'locale-provider': 'icu' }, { 'icu-locale': 'en-US' }, 'data-checksums'],
        },
      });
      await waitHealthy(cluster, 120_000);
    });

    after(async () => teardownCluster(cluster));

    it('passes: without the ICU provider pg_upgrade --check would refuse the scratch cluster', async () => {
      const local = cluster!;
      const { leader } = await waitHealthy(local, 30_000);
      const [row] = await sql<{ provider: string }>(
        local,
        leader,
        "SELECT datlocprovider::text AS provider FROM pg_database WHERE datname = 'template0'",
      );
      assert.equal(row?.provider, 'i', 'the cluster under test uses ICU');
      const config = local.node(leader).configPath;
      const result = await runCli(
        ['-c', config, 'upgrade', '--major', '--to', '15', '--bin-dir', DEBIAN_PG15_BIN, '--check', '--allow-same-major'],
        300_000,
      );
      const output = result.stdout + result.stderr;
      assert.equal(result.code, 0, output);
      assert.match(output, /^old cluster\s+ok\s+.*locale provider icu en-US/m);
      assert.match(output, /^pg_upgrade --check\s+ok/m);
    });
  },
);
