// The fence process on real processes: an agent stopped (SIGSTOP) on a running primary can no longer keep it
// writable. A client connected straight to that primary's PostgreSQL gets no acknowledgement once another member is
// writable: the fence stops the old primary at its lock deadline, before the lock can pass to anyone else.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Writer } from '../../src/chaos/workload.js';
import { fencePidOf, type LocalCluster } from '../../src/local/local-cluster.js';
import { isAlive } from '../../src/local/process.js';
import { waitUntil } from '../../src/util/wait-until.js';
import { agentLogTail, isWritable, sql, waitHealthy } from '../kit/cluster-kit.js';
import { startTestCluster, teardownCluster } from '../kit/fixtures.js';

describe('fence outside the agent', { timeout: 300_000 }, () => {
  let cluster: LocalCluster | undefined;

  before(async () => {
    cluster = await startTestCluster('fence');
  });

  after(async () => {
    await teardownCluster(cluster);
  });

  it('stops a primary whose agent is frozen at its lock deadline: no write acknowledged after another member is writable', async () => {
    const local = cluster!;
    const { leader: old, replicas } = await waitHealthy(local, 90_000);
    const fence = await fencePidOf(local.node(old).dataDir);
    assert.ok(fence !== undefined && isAlive(fence), `${old} has a fence process`);
    await sql(local, old, 'CREATE TABLE IF NOT EXISTS fenced (id bigint PRIMARY KEY)');
    // A libpq-style multi-host client holding one session: it stays on the old primary as long as that one answers.
    const writer = new Writer({
      targets: local.nodes.map((node) => ({ host: node.host, port: node.pgPort })),
      password: local.superuserPassword,
      table: 'fenced',
      connection: 'session',
      intervalMs: 10,
      reconnectDelayMs: 20,
      connectTimeoutMs: 2000,
      queryTimeoutMs: 3000,
    });
    writer.start();
    const oldPort = local.node(old).pgPort;
    await waitUntil(() => writer.acks.filter((ack) => ack.port === oldPort).length >= 10, {
      timeoutMs: 10_000,
      describe: 'writes on the primary',
    });
    const postmaster = await local.postmasterPid(old);
    assert.ok(postmaster !== undefined);

    let firstWritableElsewhereAt: number | undefined;
    const frozenAt = performance.now();
    process.kill(local.node(old).agentPid!, 'SIGSTOP');
    try {
      const promoted = await waitUntil(
        async () => {
          for (const name of replicas)
            if (await isWritable(local, name)) {
              firstWritableElsewhereAt ??= performance.now();
              return name;
            }
          return undefined;
        },
        { timeoutMs: 60_000, intervalMs: 20, describe: 'another member to become writable' },
      );
      await waitUntil(() => writer.acks.some((ack) => ack.port === local.node(promoted).pgPort), {
        timeoutMs: 30_000,
        describe: `the writer on the new primary ${promoted}`,
      });
      await writer.stop();
      assert.equal(isAlive(postmaster), false, `the frozen agent's primary ${old} was stopped by its fence`);
      const lastOnOld = Math.max(...writer.acks.filter((ack) => ack.port === oldPort).map((ack) => ack.atMs));
      assert.ok(
        lastOnOld < firstWritableElsewhereAt!,
        `last acknowledgement by ${old} ${Math.round(lastOnOld - frozenAt)} ms after the freeze, another member writable at ${Math.round(firstWritableElsewhereAt! - frozenAt)} ms`,
      );
      assert.match(agentLogTail(local, old, /fence/, 20), /frozen and killed/);
    } finally {
      process.kill(local.node(old).agentPid!, 'SIGCONT');
      await writer.stop();
    }
    // Resumed, the old primary's agent finds the lock gone and rejoins as a replica.
    await waitHealthy(local, 120_000);
  });
});
