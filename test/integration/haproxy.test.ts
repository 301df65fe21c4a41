// Interop: HAProxy configured Patroni-style (httpchk GET /primary and /replica against our REST API) routes and follows a switchover.
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { pickFreePorts } from '../../src/local/free-port.js';
import type { LocalCluster } from '../../src/local/local-cluster.js';
import { spawnManaged, stopPid } from '../../src/local/process.js';
import { waitUntil } from '../../src/util/wait-until.js';
import { waitHealthy } from '../kit/cluster-kit.js';
import { startTestCluster, stopOnInterrupt, teardownCluster } from '../kit/fixtures.js';
import { HAPROXY, haproxyConfig } from '../kit/haproxy.js';

async function whoServes(cluster: LocalCluster, port: number): Promise<{ port: number; isReplica: boolean } | undefined> {
  const client = new pg.Client({
    host: '127.0.0.1',
    port,
    user: 'postgres',
    password: cluster.superuserPassword,
    database: 'postgres',
    connectionTimeoutMillis: 2000,
    query_timeout: 3000,
  });
  try {
    await client.connect();
    const result = await client.query<{ port: number; replica: boolean }>(
      'SELECT inet_server_port() AS port, pg_is_in_recovery() AS replica',
    );
    return { port: result.rows[0]!.port, isReplica: result.rows[0]!.replica };
  } catch {
    return undefined;
  } finally {
    await client.end().catch(() => undefined);
  }
}

describe('HAProxy with Patroni-style checks', { timeout: 300_000 }, () => {
  let cluster: LocalCluster;
  let started: LocalCluster | undefined;
  let haproxyPid: number | undefined;
  let forgetHaproxy: (() => void) | undefined;
  let writePort = 0;
  let readPort = 0;

  before(async () => {
    started = await startTestCluster('hap');
    cluster = started;
    [writePort, readPort] = (await pickFreePorts(2)) as [number, number];
    const configPath = join(cluster.dir, 'haproxy.cfg');
    await writeFile(configPath, haproxyConfig(cluster, writePort, readPort));
    const pid = spawnManaged({ command: HAPROXY, args: ['-db', '-f', configPath], logFile: join(cluster.dir, 'haproxy.log') }).pid;
    haproxyPid = pid;
    forgetHaproxy = stopOnInterrupt(() => stopPid(pid, { signal: 'SIGTERM', graceMs: 3000 }));
  });

  after(async () => {
    if (haproxyPid !== undefined) await stopPid(haproxyPid, { signal: 'SIGTERM', graceMs: 3000 });
    forgetHaproxy?.();
    await teardownCluster(started);
  });

  it('sends writes to the primary and reads to a replica, and follows a switchover', async () => {
    const { leader, replicas } = await waitHealthy(cluster, 90_000);
    const leaderPort = cluster.node(leader).pgPort;
    const writes = await waitUntil(
      async () => {
        const served = await whoServes(cluster, writePort);
        return served?.port === leaderPort ? served : undefined;
      },
      { timeoutMs: 20_000, intervalMs: 200, describe: 'HAProxy to route the write port to the primary' },
    );
    assert.equal(writes.isReplica, false);
    const reads = await waitUntil(() => whoServes(cluster, readPort), {
      timeoutMs: 20_000,
      intervalMs: 200,
      describe: 'HAProxy to route the read port to a replica',
    });
    assert.equal(reads.isReplica, true);
    assert.ok(replicas.map((name) => cluster.node(name).pgPort).includes(reads.port));

    const candidate = replicas[0]!;
    const response = await fetch(`http://127.0.0.1:${cluster.node(leader).apiPort}/switchover`, {
      method: 'POST',
      body: JSON.stringify({ leader, candidate }),
    });
    assert.equal(response.status, 200, await response.text());
    const after = await waitUntil(
      async () => {
        const served = await whoServes(cluster, writePort);
        return served?.port === cluster.node(candidate).pgPort && !served.isReplica ? served : undefined;
      },
      { timeoutMs: 20_000, intervalMs: 200, describe: 'HAProxy to route writes to the new primary' },
    );
    assert.equal(after.isReplica, false);
  });
});
