// failsafe_mode (Patroni 3.0+) on real etcd and PostgreSQL: with every etcd member stopped, the primary stays writable
// while all members confirm it over POST /failsafe (and says so in /patroni and the metric); once one member's agent
// stops answering it demotes; with etcd back the cluster converges on one leader.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { LocalCluster } from '../../src/local/local-cluster.js';
import { waitUntil } from '../../src/util/wait-until.js';
import { assertStays } from '../kit/assert-stays.js';
import { agentLogTail, isWritable, sql, waitHealthy } from '../kit/cluster-kit.js';
import { FAST_TIMING, startTestCluster, teardownCluster } from '../kit/fixtures.js';

async function apiText(cluster: LocalCluster, name: string, path: string): Promise<string> {
  try {
    const node = cluster.node(name);
    const response = await fetch(`http://${node.host}:${node.apiPort}${path}`, { signal: AbortSignal.timeout(2000) });
    return await response.text();
  } catch {
    return '';
  }
}

async function failsafeMetric(cluster: LocalCluster, name: string): Promise<number | undefined> {
  const match = /^patroni_failsafe_mode_is_active(?:\{[^}]*\})? (\d+)/m.exec(await apiText(cluster, name, '/metrics'));
  return match === null ? undefined : Number(match[1]);
}

describe('failsafe_mode', { timeout: 300_000 }, () => {
  let cluster: LocalCluster | undefined;

  before(async () => {
    cluster = await startTestCluster('failsafe', { bootstrapDcs: { failsafe_mode: true } });
  });

  after(async () => {
    await teardownCluster(cluster);
  });

  it('keeps the primary writable without etcd while every member confirms it, demotes when one stops answering', async () => {
    const local = cluster!;
    const { leader, replicas } = await waitHealthy(local, 90_000);
    const names = local.nodes.map((node) => node.name).sort();
    // The leader publishes the topology it will ask: every member, name -> api_url.
    await waitUntil(
      async () => {
        const failsafe = (await local.view()).failsafe;
        return failsafe !== undefined && Object.keys(failsafe).sort().join() === names.join();
      },
      { timeoutMs: 20_000, describe: 'the failsafe key listing every member' },
    );
    assert.equal((await failsafeMetric(local, leader)) ?? -1, 0, 'not active while etcd works');
    await sql(local, leader, 'CREATE TABLE failsafe_rows (id int)');

    const etcdMembers = local.etcd.members.map((_member, index) => index);
    for (const index of etcdMembers) await local.etcd.stopMember(index);
    let isEtcdDown = true;
    const victim = replicas[0]!;
    try {
      // Past ttl (and retry_timeout) of the last renewal: without failsafe_mode it would have demoted by now.
      await waitUntil(async () => (await failsafeMetric(local, leader)) === 1, {
        timeoutMs: FAST_TIMING.ttl * 1000,
        describe: `${leader} reporting failsafe_mode_is_active`,
        lastState: () => agentLogTail(local, leader, /./, 8),
      });
      let writes = 0;
      await assertStays(
        async () => {
          await sql(local, leader, 'INSERT INTO failsafe_rows VALUES (1)');
          writes++;
          for (const replica of replicas) if (await isWritable(local, replica)) return false;
          return (await failsafeMetric(local, leader)) === 1;
        },
        { forMs: (FAST_TIMING.ttl + 4) * 1000, intervalMs: 500, describe: `${leader} writable on failsafe, nobody else writable` },
      );
      assert.ok(writes > 10, `${writes} writes acknowledged without etcd`);
      const status = JSON.parse(await apiText(local, leader, '/patroni')) as Record<string, unknown>;
      assert.equal(status.failsafe_mode_is_active, true, '/patroni says failsafe is active');
      assert.match(agentLogTail(local, leader, /failsafe/), /continue to run as a leader because failsafe mode is enabled/);
      for (const replica of replicas) assert.equal(await failsafeMetric(local, replica), 1, `${replica} holds a fresh POST /failsafe`);

      // Patroni's corner case: a member unreachable too. Its agent (and REST API) is gone: the next round fails.
      local.killAgent(victim, 'SIGKILL');
      await waitUntil(async () => !(await isWritable(local, leader)), {
        timeoutMs: (FAST_TIMING.ttl + 2) * 1000,
        intervalMs: 200,
        describe: `${leader} demoted once ${victim} stopped confirming`,
        lastState: () => agentLogTail(local, leader, /./, 8),
      });
      assert.match(agentLogTail(local, leader, /did not confirm/), new RegExp(`did not confirm me: .*${victim}`));
      for (const replica of replicas) assert.equal(await isWritable(local, replica), false, `${replica} never writable without etcd`);

      for (const index of etcdMembers) await local.etcd.startMember(index);
      isEtcdDown = false;
    } finally {
      if (isEtcdDown) for (const index of etcdMembers) await local.etcd.startMember(index).catch(() => undefined);
    }
    local.startAgent(victim);
    const healthy = await waitHealthy(local, 120_000);
    assert.equal(healthy.replicas.length, names.length - 1, 'one leader, every other member a streaming replica');
    const rows = await sql<{ n: string }>(local, healthy.leader, 'SELECT count(*) AS n FROM failsafe_rows');
    assert.ok(Number(rows[0]?.n) > 10, 'the writes acknowledged on failsafe survived');
  });
});
