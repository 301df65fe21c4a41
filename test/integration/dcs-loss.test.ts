// A primary that loses the DCS (its agent's connections to etcd blackholed by relays) demotes and, as in Patroni,
// starts again read-only: reads keep working on it, writes go to the member that took over, and it rejoins once healed.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { LocalCluster } from '../../src/local/local-cluster.js';
import { waitUntil } from '../../src/util/wait-until.js';
import { agentLogTail, isWritable, sql, waitHealthy } from '../kit/cluster-kit.js';
import { startTestCluster, teardownCluster } from '../kit/fixtures.js';

describe('a primary that loses the DCS', { timeout: 300_000 }, () => {
  let cluster: LocalCluster | undefined;

  before(async () => {
    cluster = await startTestCluster('dcsloss', { network: 'relay' });
  });

  after(async () => {
    await teardownCluster(cluster);
  });

  it('demotes, serves reads read-only while cut off, and rejoins as a replica when the DCS is back', async () => {
    const local = cluster!;
    const { leader } = await waitHealthy(local, 90_000);
    await sql(local, leader, 'CREATE TABLE dcsloss_rows AS SELECT 1 AS id');
    const relays = local.relays.get(leader) ?? [];
    assert.ok(relays.length > 0, 'relays between the leader and etcd');
    for (const relay of relays) relay.setMode('blackhole');
    try {
      const readOnly = async (): Promise<boolean> => {
        try {
          const rows = await sql<{ standby: boolean; n: string }>(
            local,
            leader,
            'SELECT pg_is_in_recovery() AS standby, count(*) AS n FROM dcsloss_rows',
          );
          return rows[0]?.standby === true && rows[0].n === '1';
        } catch {
          return false;
        }
      };
      await waitUntil(readOnly, {
        timeoutMs: 60_000,
        intervalMs: 200,
        describe: `${leader} running read-only while cut off from etcd`,
        lastState: () => agentLogTail(local, leader, /./, 8),
      });
      assert.equal(await isWritable(local, leader), false);
      assert.match(agentLogTail(local, leader, /PostgreSQL read-only/), /read-only/);
      await waitUntil(
        async () => {
          const others = local.nodes.filter((node) => node.name !== leader);
          for (const node of others) if (await isWritable(local, node.name)) return true;
          return false;
        },
        { timeoutMs: 60_000, describe: 'another member writable' },
      );
    } finally {
      for (const relay of relays) relay.setMode('pass');
    }
    const healthy = await waitHealthy(local, 120_000);
    assert.notEqual(healthy.leader, leader);
    assert.ok(healthy.replicas.includes(leader), `${leader} rejoined as a replica`);
  });
});
