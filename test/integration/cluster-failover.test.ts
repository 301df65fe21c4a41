// System test on real etcd + real PostgreSQL: bootstrap, replication, crash restart, failover, rejoin, etcd faults.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { LocalCluster } from '../../src/local/local-cluster.js';
import { waitUntil } from '../../src/util/wait-until.js';
import { assertStays } from '../kit/assert-stays.js';
import { httpStatus, isWritable, runCliOk, sql, waitHealthy, writableAmong } from '../kit/cluster-kit.js';
import { FAST_TIMING, startTestCluster, teardownCluster } from '../kit/fixtures.js';

describe('a 3-node cluster on real etcd and PostgreSQL', { timeout: 600_000 }, () => {
  let cluster: LocalCluster | undefined;
  const running = (): LocalCluster => cluster ?? assert.fail('the cluster did not start');

  before(async () => {
    cluster = await startTestCluster('itest');
    const { leader } = await waitHealthy(cluster, 90_000);
    await sql(cluster, leader, 'CREATE TABLE itest (id int primary key, note text)');
  });

  after(() => teardownCluster(cluster));

  it('bootstraps one leader and two streaming replicas', async () => {
    const cluster = running();
    const healthy = await waitHealthy(cluster, 90_000);
    const { leader } = healthy;
    const view = await cluster.view();
    assert.match(view.initialize ?? '', /^\d+$/, 'initialize holds the system identifier');
    assert.equal(await httpStatus(cluster, leader, '/primary'), 200);
    for (const replica of healthy.replicas) {
      assert.equal(await httpStatus(cluster, replica, '/primary'), 503);
      assert.equal(await httpStatus(cluster, replica, '/replica'), 200);
    }
    assert.equal(await httpStatus(cluster, leader, '/replica'), 503);
    let slots: string[] = [];
    await waitUntil(
      async () => {
        const rows = await sql<{ slot_name: string }>(
          cluster,
          leader,
          "SELECT slot_name FROM pg_replication_slots WHERE slot_type = 'physical' AND active ORDER BY 1",
        );
        slots = rows.map((row) => row.slot_name);
        return slots.length === healthy.replicas.length;
      },
      { timeoutMs: 20_000, intervalMs: 200, describe: 'one active physical slot per replica on the leader', lastState: () => slots },
    );
    assert.deepEqual(slots, [...healthy.replicas].sort());
  });

  it('replicates a row written on the primary to both replicas', async () => {
    const cluster = running();
    const { leader, replicas } = await waitHealthy(cluster, 60_000);
    await sql(cluster, leader, "INSERT INTO itest VALUES (1, 'from the primary') ON CONFLICT (id) DO NOTHING");
    for (const replica of replicas) {
      const rows = await waitUntil(
        async () => {
          const found = await sql<{ note: string }>(cluster, replica, 'SELECT note FROM itest WHERE id = 1');
          return found.length === 1 ? found : undefined;
        },
        { timeoutMs: 15_000, intervalMs: 200, describe: `row 1 on ${replica}` },
      );
      assert.equal(rows[0]?.note, 'from the primary');
    }
  });

  it('restarts a killed postmaster on the same node, which stays primary on the same timeline', async () => {
    const cluster = running();
    const { leader, view } = await waitHealthy(cluster, 60_000);
    const before = view.members.find((member) => member.name === leader)?.timeline;
    const pid = await cluster.killPostmaster(leader, 'SIGKILL');
    assert.ok(pid !== undefined, 'leader has a postmaster');
    await waitUntil(() => isWritable(cluster, leader), {
      timeoutMs: 30_000,
      describe: `the killed postmaster of ${leader} to restart as writable primary`,
    });
    const healthy = await waitHealthy(cluster, 60_000);
    assert.equal(healthy.leader, leader, 'no failover for a postmaster crash');
    assert.equal(healthy.view.members.find((member) => member.name === leader)?.timeline, before);
  });

  it('fails over when the primary agent and postmaster are killed, and the old primary rejoins', async () => {
    const cluster = running();
    const { leader: oldLeader, replicas: survivors } = await waitHealthy(cluster, 60_000);
    const postmaster = await cluster.postmasterPid(oldLeader);
    cluster.killAgent(oldLeader, 'SIGKILL');
    if (postmaster !== undefined) process.kill(postmaster, 'SIGKILL');
    const newLeader = await waitUntil(() => writableAmong(cluster, survivors), {
      timeoutMs: 60_000,
      intervalMs: 200,
      describe: `a new writable primary among ${survivors.join(', ')}`,
    });
    await sql(cluster, newLeader, "INSERT INTO itest VALUES (2, 'after failover')");
    const view = await cluster.view();
    assert.equal(view.leader?.name, newLeader);
    // The new leader writes history on its first cycle after the promotion shows the new timeline.
    const history = await waitUntil(
      async () => {
        const entries = (await cluster.view()).history;
        return entries.length >= 1 ? entries : undefined;
      },
      { timeoutMs: 10_000, describe: 'a history entry for the promotion' },
    );
    assert.equal(history[history.length - 1]?.[4], newLeader, 'history names the new leader');

    cluster.startAgent(oldLeader);
    const healthy = await waitHealthy(cluster, 90_000);
    assert.equal(healthy.leader, newLeader);
    const rows = await waitUntil(
      async () => {
        const found = await sql<{ note: string }>(cluster, oldLeader, 'SELECT note FROM itest WHERE id = 2');
        return found.length === 1 ? found : undefined;
      },
      { timeoutMs: 20_000, intervalMs: 200, describe: `the post-failover row on the rejoined ${oldLeader}` },
    );
    assert.equal(rows[0]?.note, 'after failover');

    // `pgwarden events` merges every member's recent decisions: the promotion is there, with the new leader's reason.
    const { stdout } = await runCliOk(['-c', cluster.node(newLeader).configPath, 'events', '-f', 'json']);
    const events = JSON.parse(stdout.split('\n')[0]!) as { member: string; actions: string[]; reason: string; at: string }[];
    const promotion = events.find((event) => event.member === newLeader && event.actions.includes('promote'));
    assert.ok(promotion !== undefined, `a promote event of ${newLeader} in ${stdout.slice(0, 2000)}`);
    assert.deepEqual(
      events.map((event) => event.at),
      events.map((event) => event.at).sort(),
      'merged in time order',
    );
    assert.ok(
      events.some((event) => event.member === oldLeader),
      `the rejoined ${oldLeader} has events too`,
    );
  });

  it('keeps roles when one etcd member is down', async () => {
    const cluster = running();
    const { leader } = await waitHealthy(cluster, 60_000);
    const victim = cluster.etcd.members.findIndex((member) => member.pid !== undefined);
    await cluster.etcd.stopMember(victim);
    try {
      // Longer than a lease: had the leader lost its quorum it would have demoted within this window.
      await assertStays(() => isWritable(cluster, leader), {
        forMs: (FAST_TIMING.ttl + 3) * 1000,
        intervalMs: 500,
        describe: `${leader} writable with etcd quorum intact`,
      });
      assert.equal((await cluster.view()).leader?.name, leader);
    } finally {
      await cluster.etcd.startMember(victim);
    }
    await waitHealthy(cluster, 60_000);
  });

  it('leaves no writable primary after etcd quorum is lost', async () => {
    const cluster = running();
    await waitHealthy(cluster, 60_000);
    await cluster.etcd.stopMember(0);
    await cluster.etcd.stopMember(1);
    try {
      // The primary must stop accepting writes within ttl of its last renewal (one more second for the check).
      let seen = '';
      await waitUntil(
        async () => {
          const states = await Promise.all(
            cluster.nodes.map(async (node) => ({
              name: node.name,
              isWritable: await isWritable(cluster, node.name),
              primaryStatus: await httpStatus(cluster, node.name, '/primary'),
            })),
          );
          seen = JSON.stringify(states);
          return states.every((state) => !state.isWritable && state.primaryStatus !== 200);
        },
        {
          timeoutMs: (FAST_TIMING.ttl + 1) * 1000,
          intervalMs: 250,
          describe: 'no writable primary and no 200 on /primary without etcd quorum',
          lastState: () => seen,
        },
      );
    } finally {
      await cluster.etcd.startMember(0);
      await cluster.etcd.startMember(1);
    }
    await waitHealthy(cluster, 90_000);
  });
});
