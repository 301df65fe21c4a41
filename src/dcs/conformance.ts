// The behaviour every DCS backend must show (run against real etcd and the memory backend): locks, TTLs, CAS, watch, errors.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { BackupLocks, Dcs, LeaderLockTimer, ProxyRegistry } from '../core/ports.js';
import type { ClusterView, MemberRecord } from '../core/types.js';
import { waitUntil } from '../util/wait-until.js';
import { isPgwardenError } from '../util/errors.js';

export interface DcsHarness {
  /** A fresh scope per call, so tests don't see each other's keys. */
  newScope(): (member: string) => Dcs & BackupLocks & LeaderLockTimer & ProxyRegistry;
  /** Lets more than the TTL pass (real sleep for etcd, fake clock for memory). */
  advancePastTtl(): Promise<void>;
  /** A client whose every call must fail with PGW_DCS_UNAVAILABLE. */
  unreachable(): Dcs;
  readonly ttlSeconds: number;
}

const signal = (): AbortSignal => AbortSignal.timeout(5000);

function member(name: string): MemberRecord {
  return {
    name,
    conn_url: `postgres://127.0.0.1:5432/postgres`,
    api_url: `http://127.0.0.1:8008/patroni`,
    state: 'running',
    role: 'replica',
  };
}

export function runDcsConformance(backendName: string, makeHarness: () => DcsHarness): void {
  describe(`DCS conformance: ${backendName}`, () => {
    const harness = makeHarness();
    const ttlMs = harness.ttlSeconds * 1000;

    it('lets exactly one of two racing members acquire the leader lock', async () => {
      const dcs = harness.newScope();
      const [a, b] = [dcs('node1'), dcs('node2')];
      const results = await Promise.all([a.acquireLeader(ttlMs, signal()), b.acquireLeader(ttlMs, signal())]);
      assert.equal(results.filter(Boolean).length, 1);
      const view = await a.loadCluster(signal());
      assert.equal(view.leader?.name, results[0] === true ? 'node1' : 'node2');
    });

    it('renews only for the holder; a non-holder cannot release it', async () => {
      const dcs = harness.newScope();
      const [a, b] = [dcs('node1'), dcs('node2')];
      assert.equal(await a.acquireLeader(ttlMs, signal()), true);
      assert.equal(await a.renewLeader(ttlMs, signal()), true);
      assert.equal(await b.renewLeader(ttlMs, signal()), false);
      assert.equal(await b.releaseLeader(signal()), false);
      assert.equal((await b.loadCluster(signal())).leader?.name, 'node1');
      assert.equal(await a.releaseLeader(signal()), true);
      assert.equal((await b.loadCluster(signal())).leader, undefined);
    });

    it('expires the lock and member key after the TTL; the old holder cannot renew, another can acquire', async () => {
      const dcs = harness.newScope();
      const [a, b] = [dcs('node1'), dcs('node2')];
      assert.equal(await a.acquireLeader(ttlMs, signal()), true);
      await a.touchMember(member('node1'), ttlMs, signal());
      assert.equal(
        (await b.loadCluster(signal())).members.some((m) => m.name === 'node1'),
        true,
      );
      await harness.advancePastTtl();
      const view = await b.loadCluster(signal());
      assert.equal(view.leader, undefined, 'leader key gone with its lease');
      assert.equal(
        view.members.some((m) => m.name === 'node1'),
        false,
        'member key gone with its lease',
      );
      assert.equal(await a.renewLeader(ttlMs, signal()), false, 'renew never re-creates a lost lock');
      assert.equal(await b.acquireLeader(ttlMs, signal()), true);
    });

    it('judges nothing by a TTL it was not asked for: renewing under a longer TTL moves the lock to a lease that long', async () => {
      const dcs = harness.newScope();
      const [a, b] = [dcs('node1'), dcs('node2')];
      assert.equal(await a.acquireLeader(ttlMs, signal()), true);
      assert.equal(await a.renewLeader(ttlMs * 4, signal()), true);
      await a.touchMember(member('node1'), ttlMs * 4, signal());
      await harness.advancePastTtl();
      const view = await b.loadCluster(signal());
      assert.equal(view.leader?.name, 'node1', 'the lock lives by the TTL of its last renewal');
      assert.equal(await b.acquireLeader(ttlMs, signal()), false);
      assert.equal(await a.renewLeader(ttlMs * 4, signal()), true);
    });

    it('deletes a stale leader only while its revision is unchanged', async () => {
      const dcs = harness.newScope();
      const [a, b] = [dcs('node1'), dcs('node2')];
      assert.equal(await a.acquireLeader(ttlMs, signal()), true);
      const seen = (await b.loadCluster(signal())).leader;
      assert.ok(seen !== undefined);
      assert.equal(await b.deleteLeaderIfUnchanged(String(BigInt(seen.modRevision) + 1000n), signal()), false);
      assert.equal(await b.deleteLeaderIfUnchanged(seen.modRevision, signal()), true);
      assert.equal((await b.loadCluster(signal())).leader, undefined);
    });

    it('lets only the holder beat; a silent leader is deleted only while neither its key nor its beat changed', async () => {
      const dcs = harness.newScope();
      const [a, b] = [dcs('node1'), dcs('node2')];
      assert.equal(await a.beatHeartbeat(1000, signal()), false, 'no lock, no beat');
      assert.equal(await a.acquireLeader(ttlMs, signal()), true);
      assert.equal(await b.beatHeartbeat(1000, signal()), false, 'only the holder beats');
      const start = (await b.loadCluster(signal())).revision;
      const beats: (string | undefined)[] = [];
      const watching = new AbortController();
      const watched = b
        .watchHeartbeat(start, (beat) => beats.push(beat === undefined ? undefined : `${beat.leader}/${beat.fenceMs}`), watching.signal)
        .catch(() => undefined);
      assert.equal(await a.beatHeartbeat(1000, signal()), true);
      const first = await b.readHeartbeat(signal());
      assert.equal(first?.leader, 'node1');
      assert.equal(first?.fenceMs, 1000);
      const view = await b.loadCluster(signal());
      assert.deepEqual(view.heartbeat, first, 'the view carries the beat too');
      assert.equal(await a.beatHeartbeat(0, signal()), true);
      const second = await b.readHeartbeat(signal());
      assert.ok(second !== undefined && second.modRevision !== first?.modRevision);
      assert.equal(await b.deleteSilentLeader(view.leader!, first.modRevision, signal()), false, 'the leader beat since');
      assert.equal(
        await b.deleteSilentLeader({ ...view.leader!, createRevision: '1', modRevision: '1' }, second.modRevision, signal()),
        false,
        'another incarnation of the key',
      );
      assert.equal(await b.deleteSilentLeader(view.leader!, second.modRevision, signal()), true);
      const after = await b.loadCluster(signal());
      assert.equal(after.leader, undefined);
      assert.equal(after.heartbeat, undefined, 'the beat goes with the key');
      assert.equal(await a.beatHeartbeat(1000, signal()), false, 'the old leader cannot beat any more');
      const deadline = Date.now() + 5000;
      while (beats.length < 3 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
      watching.abort();
      await watched;
      assert.deepEqual(beats.slice(0, 3), ['node1/1000', 'node1/0', undefined], 'the watch saw both beats and the delete');
    });

    it('creates initialize only once and guards config with its revision', async () => {
      const dcs = harness.newScope();
      const [a, b] = [dcs('node1'), dcs('node2')];
      assert.equal(await a.initialize('', signal()), true);
      assert.equal(await b.initialize('', signal()), false);
      await a.setInitialize('7711055670619385940', signal());
      assert.equal((await b.loadCluster(signal())).initialize, '7711055670619385940');
      const config = { ttl: 30, loop_wait: 10, retry_timeout: 10, maximum_lag_on_failover: 1048576 };
      assert.equal(await a.setConfig(config, undefined, signal()), true);
      const revision = (await a.loadCluster(signal())).configRevision;
      assert.ok(revision !== undefined);
      assert.equal(await b.setConfig({ ...config, ttl: 20 }, revision, signal()), true);
      assert.equal(await a.setConfig({ ...config, ttl: 40 }, revision, signal()), false, 'a stale revision loses');
      assert.equal((await a.loadCluster(signal())).config?.ttl, 20);
    });

    it('wakes a watcher when the leader changes', async () => {
      const dcs = harness.newScope();
      const [a, b] = [dcs('node1'), dcs('node2')];
      const revision = (await b.loadCluster(signal())).revision;
      const watching = b.watch(revision, signal());
      await a.acquireLeader(ttlMs, signal());
      await watching;
    });

    it('does not wake a watcher for member, status or history writes, and does for the next control key', async () => {
      const dcs = harness.newScope();
      const [a, b] = [dcs('node1'), dcs('node2')];
      const revision = (await b.loadCluster(signal())).revision;
      let isWoken = false;
      const watching = b.watch(revision, signal()).then(() => (isWoken = true));
      await a.touchMember(member('node1'), ttlMs, signal());
      await a.setStatus(1234, undefined, signal());
      await a.setHistory([[1, 0, 'no recovery target specified']], signal());
      await a.setFailsafe({ node1: 'http://127.0.0.1:8008/patroni' }, signal());
      // The watch has seen those writes (each later revision); the failover key written next is what wakes it.
      await b.loadCluster(signal());
      assert.equal(isWoken, false, 'member/status/history/failsafe writes are not control keys');
      await a.setFailover({ leader: 'node1' }, undefined, signal());
      await watching;
      assert.equal(isWoken, true);
    });

    it("keeps a watching member's views current: others' writes and deletions, and its own writes at once", async () => {
      const dcs = harness.newScope();
      const [a, b] = [dcs('node1'), dcs('node2')];
      // With a lease of its own and an open watch, a backend may answer views from what the watch delivered.
      await b.touchMember(member('node2'), ttlMs, signal());
      const stop = new AbortController();
      const following = (async (): Promise<void> => {
        while (!stop.signal.aborted) {
          const revision = (await b.loadCluster(signal())).revision;
          await b.watch(revision, stop.signal).catch(() => undefined);
        }
      })();
      const viewOfB = async (describe: string, isSeen: (view: ClusterView) => boolean): Promise<void> => {
        await waitUntil(async () => isSeen(await b.loadCluster(signal())), { timeoutMs: 5000, intervalMs: 20, describe });
      };
      try {
        for (const position of [100, 200, 300]) {
          await a.touchMember({ ...member('node1'), xlog_location: position }, ttlMs, signal());
          await viewOfB(`node1 at ${position}`, (view) => view.members.find((m) => m.name === 'node1')?.xlog_location === position);
        }
        await a.setStatus(555, undefined, signal());
        await viewOfB('optime 555', (view) => view.optime === 555);
        assert.equal(await a.acquireLeader(ttlMs, signal()), true);
        await viewOfB('node1 leading', (view) => view.leader?.name === 'node1');
        assert.equal(await a.releaseLeader(signal()), true);
        await viewOfB('no leader', (view) => view.leader === undefined);
        // Its own write is in its very next view, without waiting for the watch.
        await b.touchMember({ ...member('node2'), tags: { zone: 'b' } }, ttlMs, signal());
        const own = (await b.loadCluster(signal())).members.find((m) => m.name === 'node2');
        assert.deepEqual(own?.tags, { zone: 'b' });
      } finally {
        stop.abort();
        await following;
      }
    });

    it('keeps the failsafe topology (name -> api_url) after the writer lease expired, and overwrites it whole', async () => {
      const dcs = harness.newScope();
      const [a, b] = [dcs('node1'), dcs('node2')];
      assert.equal((await b.loadCluster(signal())).failsafe, undefined, 'no key, no topology');
      assert.equal(await a.acquireLeader(ttlMs, signal()), true);
      const topology = { node1: 'http://127.0.0.1:8008/patroni', node2: 'http://127.0.0.1:8009/patroni' };
      await a.setFailsafe(topology, signal());
      assert.deepEqual((await b.loadCluster(signal())).failsafe, topology);
      await harness.advancePastTtl();
      const view = await b.loadCluster(signal());
      assert.equal(view.leader, undefined, 'the lock expired');
      assert.deepEqual(view.failsafe, topology, 'the failsafe key is permanent: replicas still read who may race');
      await b.setFailsafe({ node2: 'http://127.0.0.1:8009/patroni' }, signal());
      assert.deepEqual((await a.loadCluster(signal())).failsafe, { node2: 'http://127.0.0.1:8009/patroni' });
    });

    it('holds one backup lock at a time: only its holder releases it, it expires with the lease, and wakes no loop', async () => {
      const dcs = harness.newScope();
      const [a, b] = [dcs('node1'), dcs('node2')];
      const record = { member: 'node1', type: 'full' as const, started: '2026-12-07T05:00:00Z' };
      assert.equal(await a.readBackupLock(signal()), undefined);
      const revision = (await b.loadCluster(signal())).revision;
      let isWoken = false;
      const watching = b.watch(revision, signal()).then(() => (isWoken = true));
      const results = await Promise.all([
        a.acquireBackupLock(record, ttlMs, signal()),
        b.acquireBackupLock({ ...record, member: 'node2' }, ttlMs, signal()),
      ]);
      assert.equal(results.filter(Boolean).length, 1, 'exactly one of two racing members');
      const holder = results[0] ? a : b;
      const other = results[0] ? b : a;
      assert.equal((await other.readBackupLock(signal()))?.member, results[0] ? 'node1' : 'node2');
      await b.loadCluster(signal());
      assert.equal(isWoken, false, 'the backup lock is not a control key');
      await a.setFailover({ leader: 'node1' }, undefined, signal());
      await watching;
      assert.equal(await other.releaseBackupLock(signal()), false, 'a non-holder cannot release it');
      assert.equal(await holder.releaseBackupLock(signal()), true);
      assert.equal(await a.readBackupLock(signal()), undefined);
      assert.equal(await a.acquireBackupLock(record, ttlMs, signal()), true);
      await harness.advancePastTtl();
      assert.equal(await b.readBackupLock(signal()), undefined, 'expired with the holder\u2019s lease');
      assert.equal(await b.acquireBackupLock({ ...record, member: 'node2', type: 'incr' }, ttlMs, signal()), true);
      assert.deepEqual(await a.readBackupLock(signal()), { ...record, member: 'node2', type: 'incr' });
    });

    it("tells any client the leader lock's time left (within the TTL), and nothing once there is no lock", async () => {
      const dcs = harness.newScope();
      const [a, b] = [dcs('node1'), dcs('node2')];
      assert.equal(await b.leaderLockTimeLeft(signal()), undefined, 'no leader key');
      assert.equal(await a.acquireLeader(ttlMs, signal()), true);
      const left = await b.leaderLockTimeLeft(signal());
      assert.ok(left !== undefined && left > 0 && left <= ttlMs, `time left ${left} ms within the TTL of ${ttlMs} ms`);
      assert.equal(await a.releaseLeader(signal()), true);
      assert.equal(await b.leaderLockTimeLeft(signal()), undefined, 'released');
    });

    it('keeps proxy records beside the members: wakes no loop, leaves the members alone, expires with the lease', async () => {
      const dcs = harness.newScope();
      const [proxy, agent] = [dcs('__pgwarden_proxy'), dcs('node1')];
      await agent.touchMember(member('node1'), ttlMs, signal());
      const revision = (await agent.loadCluster(signal())).revision;
      let isWoken = false;
      const watching = agent.watch(revision, signal()).then(() => (isWoken = true));
      const record = {
        name: 'proxy-a',
        api_url: 'http://127.0.0.1:9100',
        primary: 'node1',
        replicas: ['node2'],
        primary_listen: '127.0.0.1:5000',
      };
      await proxy.publishProxy(record, ttlMs, signal());
      await proxy.publishProxy({ ...record, name: 'proxy-b', primary: undefined, held: 'no leader' }, ttlMs, signal());
      // Another client's writes reach a watching member's views through its watch: soon, not necessarily at once.
      const agentSees = (describe: string, isSeen: (view: ClusterView) => boolean): Promise<ClusterView> =>
        waitUntil(
          async () => {
            const current = await agent.loadCluster(signal());
            return isSeen(current) ? current : undefined;
          },
          { timeoutMs: 5000, intervalMs: 20, describe },
        );
      let view = await agentSees('both proxy records', (current) => current.proxies?.length === 2);
      const { primary: _primary, ...held } = record;
      assert.deepEqual(view.proxies, [record, { ...held, name: 'proxy-b', held: 'no leader' }], 'both records, as written');
      assert.deepEqual(
        view.members.map((m) => m.name),
        ['node1'],
        'a proxy record is not a member',
      );
      assert.equal(isWoken, false, 'proxy records are not control keys');
      await agent.setFailover({ leader: 'node1' }, undefined, signal());
      await watching;
      await proxy.publishProxy({ ...record, primary: 'node2' }, ttlMs, signal());
      view = await agentSees('the route change', (current) => current.proxies?.find((p) => p.name === 'proxy-a')?.primary === 'node2');
      await proxy.withdrawProxy('proxy-b', signal());
      view = await agentSees('proxy-b withdrawn', (current) => current.proxies?.length === 1);
      assert.deepEqual(
        view.proxies?.map((p) => p.name),
        ['proxy-a'],
      );
      await harness.advancePastTtl();
      assert.equal((await agent.loadCluster(signal())).proxies, undefined, 'expired with the proxy\u2019s lease');
    });

    it('fails with PGW_DCS_UNAVAILABLE, within the deadline, when unreachable', async () => {
      const dcs = harness.unreachable();
      const startedAt = performance.now();
      await assert.rejects(dcs.loadCluster(AbortSignal.timeout(500)), (error: unknown) => isPgwardenError(error, 'PGW_DCS_UNAVAILABLE'));
      await assert.rejects(dcs.acquireLeader(ttlMs, AbortSignal.timeout(500)), (error: unknown) =>
        isPgwardenError(error, 'PGW_DCS_UNAVAILABLE'),
      );
      assert.ok(performance.now() - startedAt < 2500, 'errors arrive within the deadline');
    });
  });
}
