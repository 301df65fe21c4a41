// The proxy's replica port never writes: with every replica down, reads fall back to the primary in read-only sessions.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import type { LocalCluster, LocalProxy } from '../../src/local/local-cluster.js';
import { waitUntil } from '../../src/util/wait-until.js';
import { sql, waitHealthy } from '../kit/cluster-kit.js';
import { startTestCluster, teardownCluster } from '../kit/fixtures.js';

interface ReplicaStatus {
  readonly replicas: { readonly members?: readonly string[]; readonly is_fallback?: boolean; readonly held?: string };
}

async function session(cluster: LocalCluster, port: number): Promise<pg.Client> {
  const client = new pg.Client({
    host: '127.0.0.1',
    port,
    user: 'postgres',
    password: cluster.superuserPassword,
    database: 'postgres',
    connectionTimeoutMillis: 10_000,
    // node-postgres sends its own `options` startup parameter: the proxy must keep it and add its setting after it.
    options: '-c application_name=fallback-test',
  });
  client.on('error', () => undefined);
  await client.connect();
  return client;
}

describe('proxy replica port with every replica down', { timeout: 300_000 }, () => {
  let cluster: LocalCluster | undefined;
  let proxy: LocalProxy;
  let leader: string;

  before(async () => {
    cluster = await startTestCluster('proxyfallback', { nodes: 2, proxies: 1 });
    proxy = cluster.proxies[0]!;
    ({ leader } = await waitHealthy(cluster, 120_000));
    await sql(cluster, leader, 'CREATE TABLE fallback_probe (id int primary key)');
    const replica = cluster.nodes.find((node) => node.name !== leader)!.name;
    await cluster.stopAgent(replica);
    let status: ReplicaStatus | undefined;
    await waitUntil(
      async () => {
        status = (await (await fetch(`http://127.0.0.1:${proxy.apiPort}/status`)).json()) as ReplicaStatus;
        return status.replicas.is_fallback === true && status.replicas.members?.[0] === leader;
      },
      { timeoutMs: 60_000, describe: 'the replica port to fall back to the primary', lastState: () => status },
    );
  });

  after(() => teardownCluster(cluster));

  it('refuses an INSERT with "read-only transaction" and serves a SELECT from the primary', async () => {
    const client = await session(cluster!, proxy.replicaPort);
    try {
      const { rows } = await client.query<{ standby: boolean; readonly: string; app: string }>(
        "SELECT pg_is_in_recovery() AS standby, current_setting('default_transaction_read_only') AS readonly, current_setting('application_name') AS app",
      );
      assert.deepEqual(
        rows,
        [{ standby: false, readonly: 'on', app: 'fallback-test' }],
        'a primary session, read-only, client options kept',
      );
      await assert.rejects(client.query('INSERT INTO fallback_probe VALUES (1)'), /cannot execute INSERT in a read-only transaction/);
      assert.deepEqual((await client.query('SELECT count(*)::int AS n FROM fallback_probe')).rows, [{ n: 0 }]);
    } finally {
      await client.end();
    }
    // The primary port of the same proxy still writes.
    const writer = await session(cluster!, proxy.primaryPort);
    try {
      await writer.query('INSERT INTO fallback_probe VALUES (2)');
    } finally {
      await writer.end();
    }
  });
});
