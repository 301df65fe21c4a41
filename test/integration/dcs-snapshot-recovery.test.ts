// Recovery from a permanently lost etcd quorum (docs/etcd-quorum-loss.md): a snapshot taken with `pgwarden dcs
// snapshot`, every etcd member SIGKILLed and its data deleted, the snapshot restored with etcdctl into a new etcd
// cluster on the same addresses (so the agents' etcd3.hosts stays right), and the cluster back with one leader, every
// replica streaming and no acknowledged row lost.
import assert from 'node:assert/strict';
import { rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { LocalCluster } from '../../src/local/local-cluster.js';
import { runCommand } from '../../src/util/run-command.js';
import { waitUntil } from '../../src/util/wait-until.js';
import { isWritable, runCli, sql, waitHealthy } from '../kit/cluster-kit.js';
import { startTestCluster, teardownCluster } from '../kit/fixtures.js';

describe('recovery from a lost etcd quorum with pgwarden dcs snapshot', { timeout: 240_000 }, () => {
  let cluster: LocalCluster | undefined;

  before(async () => {
    cluster = await startTestCluster('dcssnap');
  });

  after(async () => {
    await teardownCluster(cluster);
  });

  it('refuses an existing file, a missing directory and a missing config with one clear line each', async () => {
    const local = cluster!;
    await waitHealthy(local, 90_000);
    const config = ['-c', local.node('node1').configPath];
    const existing = await runCli([...config, 'dcs', 'snapshot', local.node('node1').configPath]);
    assert.equal(existing.code, 1);
    assert.match(existing.stderr, /already exists: choose another file name/);
    const missingDir = await runCli([...config, 'dcs', 'snapshot', join(local.dir, 'no-such-dir', 'snap.db')]);
    assert.equal(missingDir.code, 1);
    assert.match(missingDir.stderr, /its directory does not exist/);
    const noConfig = await runCli(['dcs', 'snapshot', join(local.dir, 'x.db')]);
    assert.notEqual(noConfig.code, 0);
    assert.match(noConfig.stderr, /needs a config file/);
  });

  it('restores the snapshot into a new etcd: the agents reconnect, one leader, replicas streaming, every row kept', async (t) => {
    const local = cluster!;
    const { leader } = await waitHealthy(local, 90_000);
    const config = ['-c', local.node('node1').configPath];
    await sql(local, leader, 'CREATE TABLE IF NOT EXISTS snap_rows (id int PRIMARY KEY)');
    await sql(local, leader, 'INSERT INTO snap_rows SELECT generate_series(1, 100)');
    const sysid = (await sql<{ id: string }>(local, leader, 'SELECT system_identifier::text AS id FROM pg_control_system()'))[0]!.id;

    const snapshot = join(local.dir, 'etcd.snapshot');
    const taken = await runCli([...config, 'dcs', 'snapshot', snapshot]);
    assert.equal(taken.code, 0, taken.stderr);
    // An agent's write during the snapshot makes it "revision between A and B (etcd was written to meanwhile)".
    assert.match(taken.stdout, /Wrote etcd snapshot .*: \d+ bytes .*revision (\d+|between \d+ and \d+)/);
    assert.equal((await stat(snapshot)).mode & 0o777, 0o600);
    const unreachableSnapshot = join(local.dir, 'never.snapshot');

    // Written after the snapshot: the DCS forgets nothing about them, PostgreSQL must keep them.
    await sql(local, leader, 'INSERT INTO snap_rows SELECT generate_series(101, 200)');

    // The whole etcd cluster is lost for good: killed, and its data gone.
    for (let index = 0; index < local.etcd.members.length; index++) await local.etcd.killMember(index);
    for (const member of local.etcd.members) await rm(member.dataDir, { recursive: true, force: true });
    const down = await runCli([...config, 'dcs', 'snapshot', unreachableSnapshot]);
    assert.equal(down.code, 1);
    assert.match(down.stderr, /etcd is not reachable: .*connection refused/);
    await assert.rejects(stat(unreachableSnapshot), 'no partial file is left behind');
    // Without failsafe_mode the primary cannot renew its lock and demotes (as in Patroni): writes stop until the new
    // etcd is up. A real restore takes longer than the TTL, so the test waits for that too.
    await waitUntil(async () => !(await isWritable(local, leader)), {
      timeoutMs: 30_000,
      describe: `${leader} demoting while etcd is gone (no failsafe_mode)`,
    });

    // What an operator does (docs/etcd-quorum-loss.md): restore the snapshot into each new member's data dir, as a
    // new cluster, on the addresses the agents already know; then start the members.
    const initialCluster = local.etcd.members.map((member) => `${member.name}=${member.peerUrl}`).join(',');
    for (const member of local.etcd.members)
      await runCommand(
        'etcdctl',
        [
          'snapshot',
          'restore',
          snapshot,
          '--name',
          member.name,
          '--initial-cluster',
          initialCluster,
          '--initial-cluster-token',
          'pgw-restored',
          '--initial-advertise-peer-urls',
          member.peerUrl,
          '--data-dir',
          member.dataDir,
        ],
        { timeoutMs: 30_000 },
      );
    for (let index = 0; index < local.etcd.members.length; index++) await local.etcd.startMember(index);

    const view = await local.view(5000);
    assert.equal(view.initialize, sysid, 'the restored initialize key is this cluster system identifier');

    // Fresh facts only (the restored member keys are as old as the snapshot): a row written now must be reported
    // replayed by every replica's agent through the new etcd.
    const healthy = await waitHealthy(local, 60_000);
    await waitUntil(() => isWritable(local, healthy.leader), { timeoutMs: 30_000, describe: `${healthy.leader} writable` });
    await sql(local, healthy.leader, 'INSERT INTO snap_rows SELECT generate_series(201, 300)');
    const lsn = (await sql<{ lsn: string }>(local, healthy.leader, 'SELECT pg_current_wal_lsn()::text AS lsn'))[0]!.lsn;
    const [high, low] = lsn.split('/').map((part) => BigInt(`0x${part}`));
    const target = Number((high! << 32n) + low!);
    let last = '';
    await waitUntil(
      async () => {
        const current = await local.view(3000);
        last = current.members
          .map((member) => `${member.name} ${member.role} ${member.state} replay=${member.replay_lsn ?? '-'}`)
          .join(', ');
        const replicas = current.members.filter((member) => member.name !== healthy.leader);
        return (
          current.leader?.name === healthy.leader &&
          replicas.length === local.nodes.length - 1 &&
          replicas.every((member) => member.replication_state === 'streaming' && (member.replay_lsn ?? 0) >= target)
        );
      },
      { timeoutMs: 60_000, describe: `every replica reporting replay past ${lsn} through the restored etcd`, lastState: () => last },
    );

    t.diagnostic(`leader before the loss: ${leader}; after the restore: ${healthy.leader}`);
    const writable = [];
    for (const node of local.nodes) if (await isWritable(local, node.name)) writable.push(node.name);
    assert.deepEqual(writable, [healthy.leader], 'exactly one writable primary');
    const streaming = await sql<{ n: string }>(
      local,
      healthy.leader,
      "SELECT count(*)::text AS n FROM pg_stat_replication WHERE state = 'streaming'",
    );
    assert.equal(streaming[0]!.n, String(local.nodes.length - 1));
    for (const node of local.nodes) {
      const rows = await sql<{ n: string; s: string }>(local, node.name, 'SELECT count(*)::text AS n, sum(id)::text AS s FROM snap_rows');
      assert.deepEqual(rows[0], { n: '300', s: String((300 * 301) / 2) }, `${node.name} has every acknowledged row`);
      const id = (await sql<{ id: string }>(local, node.name, 'SELECT system_identifier::text AS id FROM pg_control_system()'))[0]!.id;
      assert.equal(id, sysid, `${node.name} is the same database`);
    }
    assert.equal((await local.view(3000)).initialize, sysid);
  });
});
