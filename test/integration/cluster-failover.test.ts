// System test on real etcd + real PostgreSQL: bootstrap, replication, crash restart, failover, rejoin, etcd faults.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { LocalCluster } from '../../src/local/local-cluster.js';
import { isAlive } from '../../src/local/process.js';
import { httpStatus, isWritable, poll, sql, waitHealthy } from '../kit/cluster-kit.js';

const TIMING = { ttl: 8, loop_wait: 1, retry_timeout: 3 };

describe('a 3-node cluster on real etcd and PostgreSQL', { timeout: 600_000 }, () => {
  let dir: string;
  let cluster: LocalCluster;
  let leader: string;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pgw-failover-'));
    cluster = await LocalCluster.start({ dir, timing: TIMING, scope: 'itest' });
  });

  after(async () => {
    const pids = [...cluster.nodes.map((node) => node.agentPid), ...cluster.etcd.members.map((member) => member.pid)];
    const postmasters = await Promise.all(cluster.nodes.map((node) => cluster.postmasterPid(node.name)));
    await cluster.stop();
    for (const pid of [...pids, ...postmasters]) {
      if (pid !== undefined) assert.equal(isAlive(pid), false, `process ${pid} still running after stop`);
    }
    await rm(dir, { recursive: true, force: true });
  });

  it('bootstraps one leader and two streaming replicas', async () => {
    const healthy = await waitHealthy(cluster, 90_000);
    leader = healthy.leader;
    const view = await cluster.view();
    assert.match(view.initialize ?? '', /^\d+$/, 'initialize holds the system identifier');
    assert.equal(await httpStatus(cluster, leader, '/primary'), 200);
    for (const replica of healthy.replicas) {
      assert.equal(await httpStatus(cluster, replica, '/primary'), 503);
      assert.equal(await httpStatus(cluster, replica, '/replica'), 200);
    }
    assert.equal(await httpStatus(cluster, leader, '/replica'), 503);
    const slots = await poll('one active physical slot per replica on the leader', 20_000, 200, async () => {
      const rows = await sql<{ slot_name: string }>(
        cluster,
        leader,
        "SELECT slot_name FROM pg_replication_slots WHERE slot_type = 'physical' AND active ORDER BY 1",
      );
      return rows.length === healthy.replicas.length ? rows.map((row) => row.slot_name) : undefined;
    });
    assert.deepEqual(slots, [...healthy.replicas].sort());
  });

  it('replicates a row written on the primary to both replicas', async () => {
    await sql(cluster, leader, 'CREATE TABLE IF NOT EXISTS itest (id int primary key, note text)');
    await sql(cluster, leader, "INSERT INTO itest VALUES (1, 'from the primary')");
    for (const node of cluster.nodes.filter((candidate) => candidate.name !== leader)) {
      const rows = await poll(`row on ${node.name}`, 15_000, 200, async () => {
        const found = await sql<{ note: string }>(cluster, node.name, 'SELECT note FROM itest WHERE id = 1');
        return found.length === 1 ? found : undefined;
      });
      assert.equal(rows[0]?.note, 'from the primary');
    }
  });

  it('restarts a killed postmaster on the same node, which stays primary on the same timeline', async () => {
    const before = (await cluster.view()).members.find((member) => member.name === leader)?.timeline;
    const pid = await cluster.killPostmaster(leader, 'SIGKILL');
    assert.ok(pid !== undefined, 'leader has a postmaster');
    await poll('the old postmaster to restart as writable primary', 30_000, 100, async () =>
      (await isWritable(cluster, leader)) ? true : undefined,
    );
    const healthy = await waitHealthy(cluster, 60_000);
    assert.equal(healthy.leader, leader, 'no failover for a postmaster crash');
    assert.equal(healthy.view.members.find((member) => member.name === leader)?.timeline, before);
  });

  it('fails over when the primary agent and postmaster are killed, and the old primary rejoins', async () => {
    const oldLeader = leader;
    const postmaster = await cluster.postmasterPid(oldLeader);
    cluster.killAgent(oldLeader, 'SIGKILL');
    if (postmaster !== undefined) process.kill(postmaster, 'SIGKILL');
    const survivors = cluster.nodes.map((node) => node.name).filter((name) => name !== oldLeader);
    const newLeader = await poll('a new writable primary', 60_000, 200, async () => {
      for (const name of survivors) if (await isWritable(cluster, name)) return name;
      return undefined;
    });
    await sql(cluster, newLeader, "INSERT INTO itest VALUES (2, 'after failover')");
    const view = await cluster.view();
    assert.equal(view.leader?.name, newLeader);
    // The new leader writes history on its first cycle after the promotion shows the new timeline.
    const history = await poll('a history entry for the promotion', 10_000, 100, async () => {
      const entries = (await cluster.view()).history;
      return entries.length >= 1 ? entries : undefined;
    });
    assert.equal(history[history.length - 1]?.[4], newLeader, 'history names the new leader');

    cluster.startAgent(oldLeader);
    const healthy = await waitHealthy(cluster, 90_000);
    assert.equal(healthy.leader, newLeader);
    const rows = await poll('the post-failover row on the rejoined node', 20_000, 200, async () => {
      const found = await sql<{ note: string }>(cluster, oldLeader, 'SELECT note FROM itest WHERE id = 2');
      return found.length === 1 ? found : undefined;
    });
    assert.equal(rows[0]?.note, 'after failover');
    leader = newLeader;
  });

  it('keeps roles when one etcd member is down', async () => {
    const victim = cluster.etcd.members.findIndex((member) => member.pid !== undefined);
    await cluster.etcd.stopMember(victim);
    try {
      const deadlineAt = Date.now() + (TIMING.ttl + 3) * 1000;
      while (Date.now() < deadlineAt) {
        assert.equal(await isWritable(cluster, leader), true, 'leader stays writable with etcd quorum intact');
        await new Promise((resolve) => setTimeout(resolve, 500));
      }
      assert.equal((await cluster.view()).leader?.name, leader);
    } finally {
      await cluster.etcd.startMember(victim);
    }
    await waitHealthy(cluster, 60_000);
  });

  it('leaves no writable primary after etcd quorum is lost', async () => {
    await cluster.etcd.stopMember(0);
    await cluster.etcd.stopMember(1);
    try {
      // The primary must stop accepting writes within ttl of its last renewal.
      await new Promise((resolve) => setTimeout(resolve, (TIMING.ttl + 1) * 1000));
      for (const node of cluster.nodes) {
        assert.equal(await isWritable(cluster, node.name), false, `${node.name} must not be writable without quorum`);
        assert.notEqual(await httpStatus(cluster, node.name, '/primary'), 200);
      }
    } finally {
      await cluster.etcd.startMember(0);
      await cluster.etcd.startMember(1);
    }
    await waitHealthy(cluster, 90_000);
  });
});
