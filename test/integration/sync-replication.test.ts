// Synchronous mode on real etcd and PostgreSQL: every acknowledged commit survives SIGKILL of the primary, of the
// synchronous standby first, and strict mode makes writes wait rather than acknowledging them on the primary alone.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Writer } from '../../src/chaos/workload.js';
import type { ClusterView } from '../../src/core/types.js';
import type { LocalCluster } from '../../src/local/local-cluster.js';
import { isAlive } from '../../src/local/process.js';
import { waitUntil } from '../../src/util/wait-until.js';
import { agentLogTail, httpStatus, isWritable, runCliOk, sql, waitHealthy, writableAmong } from '../kit/cluster-kit.js';
import { startTestCluster, teardownCluster } from '../kit/fixtures.js';

const TABLE = 'sync_acks';

describe('synchronous replication on real etcd and PostgreSQL', { timeout: 900_000 }, () => {
  let cluster: LocalCluster;
  let started: LocalCluster | undefined;
  /** Started in before and kept running: every test adds to the same record of acknowledged commits. */
  let writer: Writer;
  const names = (): string[] => cluster.nodes.map((node) => node.name);

  async function patchConfig(body: Record<string, unknown>): Promise<void> {
    const leader = (await cluster.view()).leader?.name ?? 'node1';
    const response = await fetch(`http://127.0.0.1:${cluster.node(leader).apiPort}/config`, {
      method: 'PATCH',
      body: JSON.stringify(body),
      headers: { 'content-type': 'application/json' },
      signal: AbortSignal.timeout(5000),
    });
    assert.equal(response.status, 200, await response.text());
  }

  /** Leader plus a sync key naming a streaming standby that PostgreSQL on the leader waits for. */
  async function waitSyncReady(timeoutMs = 60_000): Promise<{ leader: string; standby: string; view: ClusterView }> {
    let last = '';
    return waitUntil(
      async () => {
        const view = await cluster.view();
        const leader = view.leader?.name;
        last = JSON.stringify({
          leader,
          sync: view.sync,
          members: view.members.map((m) => [m.name, m.role, m.state, m.replication_state]),
        });
        if (leader === undefined || view.sync?.leader !== leader || view.sync.sync_standby === null) return undefined;
        const standby = view.sync.sync_standby.split(',')[0]!;
        if (view.members.find((member) => member.name === standby)?.replication_state !== 'streaming') return undefined;
        const rows = await sql<{ name: string; state: string }>(
          cluster,
          leader,
          "SELECT application_name AS name, sync_state AS state FROM pg_stat_replication WHERE sync_state = 'sync'",
        );
        return rows.some((row) => row.name === standby) ? { leader, standby, view } : undefined;
      },
      { timeoutMs, intervalMs: 200, describe: 'a leader with a streaming synchronous standby', lastState: () => last },
    );
  }

  async function killNode(name: string): Promise<void> {
    const postmaster = await cluster.postmasterPid(name);
    cluster.killAgent(name, 'SIGKILL');
    if (postmaster !== undefined) process.kill(postmaster, 'SIGKILL');
    await waitUntil(() => postmaster === undefined || !isAlive(postmaster), {
      timeoutMs: 10_000,
      intervalMs: 50,
      describe: `${name}'s processes to exit`,
    });
  }

  async function acksAdvance(count: number, timeoutMs: number, onPort?: number): Promise<void> {
    const start = writer.acks.length;
    await waitUntil(() => writer.acks.slice(start).filter((ack) => onPort === undefined || ack.port === onPort).length >= count, {
      timeoutMs,
      intervalMs: 50,
      describe: `${count} more acknowledged commits${onPort !== undefined ? ` on port ${onPort}` : ''}`,
      lastState: () =>
        `acks=${writer.acks.length} failures=${writer.failures
          .slice(-2)
          .map((failure) => failure.message)
          .join(' | ')}`,
    });
  }

  async function assertNoAckLost(): Promise<void> {
    const healthy = await waitHealthy(cluster, 120_000);
    const acked = writer.acks.map((ack) => ack.id);
    assert.ok(acked.length > 0, 'the writer got commits acknowledged');
    const present = new Set((await sql<{ id: number }>(cluster, healthy.leader, `SELECT id FROM ${TABLE}`)).map((row) => row.id));
    const lost = acked.filter((id) => !present.has(id));
    assert.deepEqual(lost, [], `${lost.length} of ${acked.length} acknowledged commits missing on ${healthy.leader}`);
  }

  before(async () => {
    started = await startTestCluster('synctest');
    cluster = started;
    const healthy = await waitHealthy(cluster, 120_000);
    await sql(cluster, healthy.leader, `CREATE TABLE ${TABLE} (id int PRIMARY KEY)`);
    await patchConfig({ synchronous_mode: true });
    // Back to back on whichever node is writable, as libpq's target_session_attrs=read-write would connect.
    writer = new Writer({
      targets: cluster.nodes.map((node) => ({ host: node.host, port: node.pgPort })),
      password: cluster.superuserPassword,
      table: TABLE,
      intervalMs: 0,
      connectTimeoutMs: 1000,
    });
    writer.start();
  });

  after(async () => {
    await writer?.stop();
    await teardownCluster(started);
  });

  it('keeps one synchronous standby in synchronous_standby_names and the sync key, visible in /sync, /async and list', async () => {
    const { leader, standby } = await waitSyncReady();
    const ssn = await sql<{ value: string }>(cluster, leader, "SELECT current_setting('synchronous_standby_names') AS value");
    assert.equal(ssn[0]?.value, `"${standby}"`);
    const other = names().find((name) => name !== leader && name !== standby)!;
    await waitUntil(
      async () => (await httpStatus(cluster, standby, '/sync')) === 200 && (await httpStatus(cluster, other, '/async')) === 200,
      {
        timeoutMs: 10_000,
        intervalMs: 200,
        describe: '/sync on the sync standby and /async on the other',
      },
    );
    assert.equal(await httpStatus(cluster, other, '/sync'), 503);
    const { stdout } = await runCliOk(['-c', cluster.node(leader).configPath, 'list']);
    assert.match(stdout, new RegExp(`\\| ${standby} .*\\| Sync Standby \\|`));
  });

  it('maximum_lag_on_syncnode with remote_apply: a sync standby whose replay is paused is swapped for one that keeps up', async () => {
    await patchConfig({
      synchronous_mode: true,
      synchronous_mode_strict: false,
      maximum_lag_on_syncnode: 65_536,
      postgresql: { parameters: { synchronous_commit: 'remote_apply' } },
    });
    const { leader, standby } = await waitSyncReady(60_000);
    const other = names().find((name) => name !== leader && name !== standby)!;
    await waitUntil(
      async () => (await sql<{ v: string }>(cluster, leader, "SELECT current_setting('synchronous_commit') AS v"))[0]?.v === 'remote_apply',
      {
        timeoutMs: 20_000,
        describe: 'synchronous_commit = remote_apply on the leader',
      },
    );
    await sql(cluster, standby, 'SELECT pg_wal_replay_pause()');
    try {
      // WAL the paused standby receives but does not replay (written without waiting for it).
      await sql(
        cluster,
        leader,
        "SET synchronous_commit = local; CREATE TABLE lag_filler AS SELECT repeat('x', 1000) AS pad FROM generate_series(1, 2000)",
      );
      await waitUntil(async () => (await cluster.view()).sync?.sync_standby === other, {
        timeoutMs: 30_000,
        intervalMs: 200,
        describe: `${other} as the synchronous standby instead of the paused ${standby}`,
        lastState: () => agentLogTail(cluster, leader, /synchronous|sync/, 5),
      });
      // Commits that waited for the paused standby's replay go through on the standby that applies them.
      await acksAdvance(10, 20_000, cluster.node(leader).pgPort);
    } finally {
      await sql(cluster, standby, 'SELECT pg_wal_replay_resume()').catch(() => undefined);
      await sql(cluster, leader, 'DROP TABLE IF EXISTS lag_filler').catch(() => undefined);
      await patchConfig({ maximum_lag_on_syncnode: null, postgresql: { parameters: { synchronous_commit: null } } });
    }
  });

  it('loses no acknowledged commit when the primary (agent and postmaster) is SIGKILLed three times', async () => {
    await patchConfig({ synchronous_mode: true, synchronous_mode_strict: false });
    for (let round = 1; round <= 3; round++) {
      const { leader, view } = await waitSyncReady(120_000);
      await acksAdvance(30, 20_000);
      const allowed = (view.sync?.sync_standby ?? '').split(',');
      await killNode(leader);
      const newLeader = await waitUntil(
        () =>
          writableAmong(
            cluster,
            names().filter((candidate) => candidate !== leader),
          ),
        {
          timeoutMs: 60_000,
          describe: `round ${round}: a new writable primary`,
        },
      );
      assert.ok(allowed.includes(newLeader), `round ${round}: ${newLeader} took over but the sync set was ${allowed.join(',')}`);
      cluster.startAgent(leader);
      await acksAdvance(10, 60_000, cluster.node(newLeader).pgPort);
    }
    await assertNoAckLost();
  });

  it('not strict: a killed synchronous standby is replaced, writes go on, and a later primary kill still loses nothing', async () => {
    await patchConfig({ synchronous_mode: true, synchronous_mode_strict: false });
    const { leader, standby } = await waitSyncReady(120_000);
    const other = names().find((name) => name !== leader && name !== standby)!;
    await killNode(standby);
    await acksAdvance(20, 20_000, cluster.node(leader).pgPort);
    await waitUntil(async () => (await cluster.view()).sync?.sync_standby === other, {
      timeoutMs: 30_000,
      intervalMs: 200,
      describe: `${other} as the new synchronous standby`,
    });
    await acksAdvance(20, 20_000);
    await killNode(leader);
    await waitUntil(() => isWritable(cluster, other), { timeoutMs: 60_000, describe: `the replacement standby ${other} promoted` });
    await acksAdvance(10, 60_000, cluster.node(other).pgPort);
    cluster.startAgent(leader);
    cluster.startAgent(standby);
    await assertNoAckLost();
  });

  it('strict: with no standby left the primary makes commits wait, says so, and resumes when one returns', async () => {
    await patchConfig({ synchronous_mode: true, synchronous_mode_strict: true });
    const { leader } = await waitSyncReady(120_000);
    const replicas = names().filter((name) => name !== leader);
    for (const name of replicas) await killNode(name);
    await waitUntil(() => writer.inFlightSinceMs !== undefined && performance.now() - writer.inFlightSinceMs > 3000, {
      timeoutMs: 30_000,
      intervalMs: 200,
      describe: 'a commit waiting longer than 3 s',
    });
    const blockedAt = writer.acks.length;
    const status = (await (
      await fetch(`http://127.0.0.1:${cluster.node(leader).apiPort}/`, { signal: AbortSignal.timeout(3000) })
    ).json()) as Record<string, unknown>;
    assert.match(String(status.writes_waiting), /no synchronous standby/);
    // The DCS shows the dead standbys until their member keys expire (ttl), so `list` may take that long to say it.
    await waitUntil(
      async () => {
        const { stdout } = await runCliOk(['-c', cluster.node(leader).configPath, 'list']);
        return /Synchronous mode: strict and no synchronous standby is streaming/.test(stdout);
      },
      { timeoutMs: 30_000, intervalMs: 500, describe: 'list to report blocked writes' },
    );
    assert.ok(writer.acks.length <= blockedAt + 1, 'no commit is acknowledged while no standby is connected');
    for (const name of replicas) cluster.startAgent(name);
    await acksAdvance(20, 90_000);
    await assertNoAckLost();
  });

  it('quorum (ANY 1 of 2): no acknowledged commit lost when the primary is SIGKILLed twice', async () => {
    await patchConfig({ synchronous_mode: 'quorum', synchronous_mode_strict: false });
    for (let round = 1; round <= 2; round++) {
      let last = '';
      const { leader } = await waitUntil(
        async () => {
          const view = await cluster.view();
          const name = view.leader?.name;
          last = JSON.stringify(view.sync);
          if (
            name === undefined ||
            view.sync?.leader !== name ||
            view.sync.quorum !== 1 ||
            (view.sync.sync_standby ?? '').split(',').length !== 2
          )
            return undefined;
          const ssn = await sql<{ value: string }>(cluster, name, "SELECT current_setting('synchronous_standby_names') AS value");
          return ssn[0]?.value.startsWith('ANY 1 (') === true ? { leader: name } : undefined;
        },
        {
          timeoutMs: 120_000,
          intervalMs: 200,
          describe: 'a quorum leader with ANY 1 of two streaming standbys and quorum 1 in the key',
          lastState: () => last,
        },
      );
      if (round === 1) {
        const standbys = names().filter((name) => name !== leader);
        await waitUntil(
          async () => (await Promise.all(standbys.map((name) => httpStatus(cluster, name, '/quorum')))).every((status) => status === 200),
          { timeoutMs: 10_000, intervalMs: 200, describe: '/quorum on both standbys' },
        );
        const { stdout } = await runCliOk(['-c', cluster.node(leader).configPath, 'list']);
        assert.equal(stdout.match(/\| Quorum Standby \|/g)?.length, 2, stdout);
      }
      await acksAdvance(30, 20_000);
      await killNode(leader);
      const newLeader = await waitUntil(
        () =>
          writableAmong(
            cluster,
            names().filter((candidate) => candidate !== leader),
          ),
        {
          timeoutMs: 60_000,
          describe: `quorum round ${round}: a new writable primary`,
        },
      );
      cluster.startAgent(leader);
      await acksAdvance(10, 60_000, cluster.node(newLeader).pgPort);
    }
    await assertNoAckLost();
  });
});
