// Cascading replication (tags.replicatefrom) on real processes: a replica streams from the member it names (here a
// nofailover one) through that member's slot, the leader keeps no slot for it meanwhile, and it falls back to the leader when its source stops.
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import { parse, stringify } from 'yaml';
import { slotNameForMember } from '../../src/core/slot-names.js';
import type { LocalCluster } from '../../src/local/local-cluster.js';
import { waitUntil } from '../../src/util/wait-until.js';
import { sql, waitHealthy } from '../kit/cluster-kit.js';
import { startTestCluster, teardownCluster } from '../kit/fixtures.js';

describe('cascading replication', { timeout: 300_000 }, () => {
  let cluster: LocalCluster | undefined;

  before(async () => {
    cluster = await startTestCluster('cascade');
  });

  after(async () => {
    await teardownCluster(cluster);
  });

  it('streams from the replicatefrom member, through its slot, and falls back to the leader when it stops', async () => {
    const local = cluster!;
    const { leader, replicas } = await waitHealthy(local, 90_000);
    const [source, cascaded] = [replicas[0]!, replicas[1]!];
    const senderPort = async (): Promise<number | undefined> =>
      (await sql<{ port: number | null }>(local, cascaded, 'SELECT sender_port AS port FROM pg_stat_wal_receiver'))[0]?.port ?? undefined;
    const slotOn = async (name: string): Promise<{ active: boolean } | undefined> =>
      (
        await sql<{ active: boolean }>(local, name, 'SELECT active FROM pg_replication_slots WHERE slot_name = $1', [
          slotNameForMember(cascaded),
        ])
      )[0];

    const setTags = async (name: string, tags: Record<string, unknown>): Promise<void> => {
      const node = local.node(name);
      const config = parse(await readFile(node.configPath, 'utf8')) as { tags: Record<string, unknown> };
      await writeFile(node.configPath, stringify({ ...config, tags: { ...config.tags, ...tags } }), { mode: 0o600 });
      assert.equal((await fetch(`http://127.0.0.1:${node.apiPort}/reload`, { method: 'POST' })).status, 202);
    };
    // As in Patroni's permanent_slots scenario: the source may not be a failover candidate (nofailover) and still
    // keeps the slot of the member that streams from it.
    await setTags(source, { nofailover: true });
    await setTags(cascaded, { replicatefrom: source });

    await waitUntil(async () => (await senderPort()) === local.node(source).pgPort, {
      timeoutMs: 30_000,
      describe: `${cascaded} streaming from ${source}`,
    });
    await waitUntil(async () => (await slotOn(source))?.active === true, {
      timeoutMs: 20_000,
      describe: `${cascaded}'s slot active on ${source}`,
    });
    await waitUntil(async () => (await slotOn(leader)) === undefined, {
      timeoutMs: 20_000,
      describe: `no slot for ${cascaded} on the leader`,
    });
    await sql(local, leader, 'CREATE TABLE cascade_rows AS SELECT 42 AS answer');
    await waitUntil(
      async () => (await sql<{ answer: number }>(local, cascaded, 'SELECT answer FROM cascade_rows').catch(() => []))[0]?.answer === 42,
      { timeoutMs: 20_000, describe: `the leader's row on ${cascaded}` },
    );

    await local.stopAgent(source);
    await waitUntil(async () => (await senderPort()) === local.node(leader).pgPort, {
      timeoutMs: 60_000,
      describe: `${cascaded} back on the leader after ${source} stopped`,
    });
    await waitUntil(async () => (await slotOn(leader))?.active === true, {
      timeoutMs: 20_000,
      describe: `${cascaded}'s slot back on the leader`,
    });
  });
});
