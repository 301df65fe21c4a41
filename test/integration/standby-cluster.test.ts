// A standby cluster (Patroni's standby_cluster) on real processes: a second pgwarden cluster on the same etcd clones
// the first one's primary, its standby leader replicates from it and its replica cascades from the standby leader; a
// failover inside the standby cluster keeps it a standby cluster; without host and port it replays the remote
// cluster's archive; removing the section promotes it.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { chmod, chown, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { LocalCluster } from '../../src/local/local-cluster.js';
import { resolveRunAs } from '../../src/postgres/controller.js';
import { waitUntil } from '../../src/util/wait-until.js';
import { httpStatus, isWritable, runCliOk, sql, waitHealthy } from '../kit/cluster-kit.js';
import { startTestCluster, teardownCluster } from '../kit/fixtures.js';

interface StatusDocument {
  readonly role?: string;
  readonly replication_state?: string;
}

async function statusOf(cluster: LocalCluster, name: string): Promise<StatusDocument> {
  const node = cluster.node(name);
  const response = await fetch(`http://${node.host}:${node.apiPort}/patroni`, { signal: AbortSignal.timeout(2000) });
  return (await response.json()) as StatusDocument;
}

async function patchConfig(cluster: LocalCluster, name: string, patch: Record<string, unknown>): Promise<void> {
  const response = await fetch(`http://127.0.0.1:${cluster.node(name).apiPort}/config`, {
    method: 'PATCH',
    body: JSON.stringify(patch),
    headers: { 'content-type': 'application/json' },
  });
  assert.equal(response.status, 200, await response.text());
}

async function rowsOf(cluster: LocalCluster, name: string): Promise<number> {
  const rows = await sql<{ n: string }>(cluster, name, 'SELECT count(*) AS n FROM standby_rows').catch(() => []);
  return Number(rows[0]?.n ?? -1);
}

describe('standby cluster', { timeout: 300_000 }, () => {
  let primaryCluster: LocalCluster | undefined;
  let standbyCluster: LocalCluster | undefined;
  // The callback script and the WAL archive live outside the clusters' directories: they exist before them.
  let scriptDir: string;
  let archive: string;

  before(async () => {
    scriptDir = await mkdtemp(join(tmpdir(), 'pgw-standby-callbacks-'));
    await writeFile(join(scriptDir, 'callback.sh'), `#!/bin/sh\necho "$1 $2 $3" >> ${join(scriptDir, 'callbacks.log')}\n`);
    await chmod(join(scriptDir, 'callback.sh'), 0o755);
    await chmod(scriptDir, 0o755);
    archive = join(scriptDir, 'wal');
    await mkdir(archive, { mode: 0o700 });
    const runAs = resolveRunAs();
    if (runAs !== undefined) await chown(archive, runAs.uid, runAs.gid);
    // The standby cluster is a byte copy of the primary cluster: the same roles and passwords.
    const passwords = { superuser: randomBytes(9).toString('base64url'), replication: randomBytes(9).toString('base64url') };
    primaryCluster = await startTestCluster('main', {
      nodes: 1,
      passwords,
      parameters: { archive_mode: 'on', archive_command: `test ! -f ${archive}/%f && cp %p ${archive}/%f` },
    });
    const { leader } = await waitHealthy(primaryCluster, 90_000);
    await sql(primaryCluster, leader, 'CREATE TABLE standby_rows AS SELECT generate_series(1, 100) AS id');
    standbyCluster = await startTestCluster('standby', {
      nodes: 2,
      passwords,
      sharedEtcd: primaryCluster.etcd,
      bootstrapDcs: { standby_cluster: { host: '127.0.0.1', port: primaryCluster.node(leader).pgPort } },
      callbacks: { on_role_change: join(scriptDir, 'callback.sh') },
    });
  });

  after(async () => {
    await teardownCluster(standbyCluster);
    await teardownCluster(primaryCluster);
    await rm(scriptDir, { recursive: true, force: true });
  });

  it('replicates from the remote primary through the standby leader, fails over inside, and is promoted', async () => {
    const main = primaryCluster!;
    const standby = standbyCluster!;
    const mainLeader = (await waitHealthy(main, 30_000)).leader;
    const { leader: standbyLeader, replicas } = await waitHealthy(standby, 120_000);
    const replica = replicas[0]!;

    // The standby leader: role standby_leader, answers /standby-leader and /read-only, not /primary nor /replica.
    assert.equal((await statusOf(standby, standbyLeader)).role, 'standby_leader');
    assert.equal(await httpStatus(standby, standbyLeader, '/standby-leader'), 200);
    assert.equal(await httpStatus(standby, standbyLeader, '/primary'), 503);
    assert.equal(await httpStatus(standby, standbyLeader, '/replica'), 503);
    assert.equal(await httpStatus(standby, standbyLeader, '/read-only'), 200);
    assert.equal(await httpStatus(standby, replica, '/replica'), 200);
    assert.equal(await httpStatus(standby, replica, '/standby-leader'), 503);
    assert.equal(await isWritable(standby, standbyLeader), false, 'the standby leader accepts no writes');
    assert.equal((await standby.view()).initialize, (await main.view()).initialize, 'the standby cluster is a copy of the primary one');
    const { stdout: list } = await runCliOk(['-c', standby.node(replica).configPath, 'list']);
    assert.match(list, new RegExp(`\\| ${standbyLeader}\\s*\\|[^\\n]*\\| Standby Leader \\|`), list);

    // Data written on the remote primary reaches both members; the replica streams from the standby leader.
    await sql(main, mainLeader, 'INSERT INTO standby_rows SELECT generate_series(101, 200)');
    for (const name of [standbyLeader, replica])
      await waitUntil(async () => (await rowsOf(standby, name)) === 200, { timeoutMs: 30_000, describe: `the new rows on ${name}` });
    const senderPort = async (name: string): Promise<number | undefined> =>
      (await sql<{ port: number | null }>(standby, name, 'SELECT sender_port AS port FROM pg_stat_wal_receiver'))[0]?.port ?? undefined;
    assert.equal(await senderPort(standbyLeader), main.node(mainLeader).pgPort, 'the standby leader streams from the remote primary');
    assert.equal(await senderPort(replica), standby.node(standbyLeader).pgPort, 'the replica cascades from the standby leader');

    // A crash of the standby leader: the replica takes the lock and becomes the standby leader, not a primary.
    standby.killAgent(standbyLeader, 'SIGKILL');
    await standby.killPostmaster(standbyLeader, 'SIGKILL');
    await waitUntil(async () => (await statusOf(standby, replica).catch((): StatusDocument => ({}))).role === 'standby_leader', {
      timeoutMs: 60_000,
      describe: `${replica} to become the standby leader`,
    });
    assert.equal(await isWritable(standby, replica), false, 'the new standby leader accepts no writes');
    await waitUntil(
      async () =>
        (await readFile(join(scriptDir, 'callbacks.log'), 'utf8').catch(() => '')).includes('on_role_change standby_leader standby'),
      { timeoutMs: 10_000, describe: 'the on_role_change standby_leader callback' },
    );
    await waitUntil(async () => (await senderPort(replica)) === main.node(mainLeader).pgPort, {
      timeoutMs: 30_000,
      describe: `${replica} streaming from the remote primary`,
    });
    await sql(main, mainLeader, 'INSERT INTO standby_rows SELECT generate_series(201, 300)');
    await waitUntil(async () => (await rowsOf(standby, replica)) === 300, { timeoutMs: 30_000, describe: `the rows on ${replica}` });

    // The old standby leader rejoins as a replica of the new one.
    standby.startAgent(standbyLeader);
    await waitHealthy(standby, 90_000);
    await waitUntil(async () => (await senderPort(standbyLeader)) === standby.node(replica).pgPort, {
      timeoutMs: 30_000,
      describe: `${standbyLeader} streaming from the new standby leader ${replica}`,
    });

    // Archive recovery only: without host and port the standby leader replays the remote cluster's archive.
    await patchConfig(standby, replica, { standby_cluster: { host: null, port: null, restore_command: `cp ${archive}/%f %p` } });
    await waitUntil(async () => (await statusOf(standby, replica)).replication_state === 'in archive recovery', {
      timeoutMs: 30_000,
      describe: `${replica} in archive recovery`,
    });
    assert.equal((await statusOf(standby, replica)).role, 'standby_leader');
    await sql(main, mainLeader, 'INSERT INTO standby_rows SELECT generate_series(301, 400)');
    await sql(main, mainLeader, 'SELECT pg_switch_wal()');
    for (const name of [replica, standbyLeader])
      await waitUntil(async () => (await rowsOf(standby, name)) === 400, { timeoutMs: 30_000, describe: `archived rows on ${name}` });

    // Removing standby_cluster promotes the standby leader; the primary cluster is untouched.
    await patchConfig(standby, replica, { standby_cluster: null });
    await waitUntil(() => isWritable(standby, replica), { timeoutMs: 30_000, describe: `${replica} promoted` });
    // The REST API says so from the agent's next cycle after the promotion.
    await waitUntil(async () => (await httpStatus(standby, replica, '/primary')) === 200, {
      timeoutMs: 10_000,
      describe: `${replica} answering /primary`,
    });
    await sql(standby, replica, 'INSERT INTO standby_rows SELECT generate_series(401, 410)');
    await waitUntil(async () => (await rowsOf(standby, standbyLeader)) === 410, {
      timeoutMs: 30_000,
      describe: `the promoted cluster's own write on ${standbyLeader}`,
    });
    assert.equal(await rowsOf(main, mainLeader), 400, 'the primary cluster did not see the standby cluster write');
    assert.equal(await isWritable(main, mainLeader), true);
  });
});
