// The fence process on real processes: an agent stopped (SIGSTOP) on a running primary can no longer keep it
// writable. A client connected straight to that primary's PostgreSQL gets no acknowledgement once another member is
// writable: the fence freezes the old primary when its heartbeat window passes (a replica then removes the silent
// leader's lock), or, with the detector off, stops it at its lock deadline, before the lock can pass to anyone else.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Writer } from '../../src/chaos/workload.js';
import { fencePidOf, type LocalCluster } from '../../src/local/local-cluster.js';
import { isAlive } from '../../src/local/process.js';
import { waitUntil } from '../../src/util/wait-until.js';
import { agentLogTail, isWritable, readHeartbeat, runCli, sql, waitHealthy } from '../kit/cluster-kit.js';
import { startTestCluster, teardownCluster } from '../kit/fixtures.js';

describe('fence outside the agent', { timeout: 300_000 }, () => {
  let cluster: LocalCluster | undefined;

  before(async () => {
    cluster = await startTestCluster('fence');
  });

  after(async () => {
    await teardownCluster(cluster);
  });

  /**
   * SIGSTOP of the primary's agent while a libpq-style multi-host client writes straight to PostgreSQL; returns what
   * happened: who was promoted, and whether the old primary acknowledged anything after another member was writable.
   */
  /** Writers made so far: each gets an id range of its own in the shared table. */
  let writersMade = 0;

  async function stallPrimaryAgent(local: LocalCluster): Promise<{ old: string; promoted: string; postmaster: number }> {
    const { leader: old, replicas } = await waitHealthy(local, 90_000);
    const fence = await fencePidOf(local.node(old).dataDir);
    assert.ok(fence !== undefined && isAlive(fence), `${old} has a fence process`);
    await sql(local, old, 'CREATE TABLE IF NOT EXISTS fenced (id bigint PRIMARY KEY)');
    // A libpq-style multi-host client holding one session: it stays on the old primary as long as that one answers.
    writersMade += 1;
    const writer = new Writer({
      // The second test's writer starting at 1 spent its 10 s on the first one's ids (duplicate keys; seen in CI).
      firstId: writersMade * 1_000_000,
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
      lastState: () =>
        `${writer.acks.length} acks (ports ${[...new Set(writer.acks.map((ack) => ack.port))].join(', ') || 'none'}, ${old} on ${oldPort}); last failures: ${writer.failures
          .slice(-3)
          .map((failure) => `${failure.phase}: ${failure.message}`)
          .join(' | ')}`,
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
      const lastOnOld = Math.max(...writer.acks.filter((ack) => ack.port === oldPort).map((ack) => ack.atMs));
      assert.ok(
        lastOnOld < firstWritableElsewhereAt!,
        `last acknowledgement by ${old} ${Math.round(lastOnOld - frozenAt)} ms after the freeze, another member writable at ${Math.round(firstWritableElsewhereAt! - frozenAt)} ms`,
      );
      // Whatever froze it first, the fence kills the old primary at its lock deadline.
      await waitUntil(() => !isAlive(postmaster), { timeoutMs: 30_000, describe: `the fence to stop ${old}'s primary` });
      return { old, promoted, postmaster };
    } finally {
      process.kill(local.node(old).agentPid!, 'SIGCONT');
      await writer.stop();
    }
  }

  it('freezes a primary whose agent stalls once its heartbeat window passes, and a replica takes over without waiting for the ttl', async () => {
    const local = cluster!;
    const { old, promoted } = await stallPrimaryAgent(local);
    assert.match(
      agentLogTail(local, old, /fence/, 20),
      /heartbeat window passed without a proof from the agent: PostgreSQL primary frozen/,
    );
    assert.match(agentLogTail(local, old, /fence/, 20), /lock deadline passed while PostgreSQL was frozen: primary killed/);
    // The lock was removed for silence, not left to expire: the failover did not wait for the ttl.
    const removedBy = local.nodes.map((node) => agentLogTail(local, node.name, /is silent: no heartbeat/, 3)).join('\n');
    assert.match(removedBy, new RegExp(`leader ${old} is silent: no heartbeat for \\d+ ms`));
    // Resumed, the old primary's agent finds the lock gone and rejoins as a replica.
    await waitHealthy(local, 120_000);
    assert.notEqual((await waitHealthy(local, 30_000)).leader, old, `${promoted} or another member leads`);
  });

  it('with the detector off (fence_window: 0), stops the primary of a stalled agent at its lock deadline', async () => {
    const local = cluster!;
    const edited = await runCli(['-c', local.node(local.nodes[0]!.name).configPath, 'edit-config', '--set', 'fence_window=0', '--force']);
    assert.equal(edited.code, 0, edited.stderr);
    // Every agent adopts it with its next view; the leader then announces no window with its next beat.
    const { leader } = await waitHealthy(local, 30_000);
    await waitUntil(async () => (await readHeartbeat(local))?.fenceMs === 0, {
      timeoutMs: 15_000,
      describe: `${leader} to announce no fence window`,
    });
    const { old } = await stallPrimaryAgent(local);
    assert.match(
      agentLogTail(local, old, /fence/, 20),
      /lock deadline passed without a renewal from the agent: PostgreSQL primary frozen and killed/,
    );
    await waitHealthy(local, 120_000);
  });
});
