// The etcd backend passes the DCS conformance suite against a real etcd, fails over between endpoints, and writes Patroni's key shapes.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { runDcsConformance } from '../../src/dcs/conformance.js';
import { EtcdDcs } from '../../src/dcs/etcd/etcd-dcs.js';
import { startEtcdCluster, type EtcdClusterHandle } from '../../src/local/etcd-cluster.js';
import { pickFreePorts } from '../../src/local/free-port.js';
import { stopOnInterrupt } from '../kit/fixtures.js';

let etcd: EtcdClusterHandle | undefined;
let dir = '';
let scopes = 0;
let forgetInterrupt: (() => void) | undefined;
const TTL_SECONDS = 2;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pgw-etcd-'));
  etcd = await startEtcdCluster({ size: 3, dir });
  const started = etcd;
  forgetInterrupt = stopOnInterrupt(() => started.stop());
});

after(async () => {
  await etcd?.stop();
  forgetInterrupt?.();
  await rm(dir, { recursive: true, force: true });
});

runDcsConformance('etcd', () => ({
  ttlSeconds: TTL_SECONDS,
  newScope: () => {
    const scope = `conformance${++scopes}`;
    return (member: string) => new EtcdDcs({ endpoints: etcd!.endpoints, namespace: '/service', scope, member });
  },
  // etcd checks lease expiry on a 500 ms tick: give it a little more than the TTL.
  advancePastTtl: () => new Promise((resolve) => setTimeout(resolve, TTL_SECONDS * 1000 + 1500)),
  unreachable: () => {
    const closedPort = 1; // nothing listens on port 1 as non-root services go; connect is refused at once
    return new EtcdDcs({
      endpoints: [`http://127.0.0.1:${closedPort}`],
      namespace: '/service',
      scope: 'x',
      member: 'node9',
    });
  },
}));

describe('etcd backend with several endpoints', () => {
  it('keeps working when the endpoint it used goes down', async () => {
    const [deadPort] = await pickFreePorts(1);
    const dcs = new EtcdDcs({
      endpoints: [`http://127.0.0.1:${deadPort!}`, ...etcd!.endpoints],
      namespace: '/service',
      scope: 'failover',
      member: 'node1',
    });
    assert.equal(await dcs.acquireLeader(10_000, AbortSignal.timeout(5000)), true, 'skips a refusing endpoint');
    await etcd!.stopMember(0);
    try {
      assert.equal(await dcs.renewLeader(10_000, AbortSignal.timeout(5000)), true, 'quorum of 2 of 3 still answers');
      assert.equal((await dcs.loadCluster(AbortSignal.timeout(5000))).leader?.name, 'node1');
    } finally {
      await etcd!.startMember(0);
    }
  });

  it('renews with a compare-only transaction: the leader key is not rewritten (no watch event per renewal)', async () => {
    const dcs = new EtcdDcs({ endpoints: etcd!.endpoints, namespace: '/service', scope: 'renew', member: 'node1' });
    assert.equal(await dcs.acquireLeader(10_000, AbortSignal.timeout(5000)), true);
    const before = (await dcs.loadCluster(AbortSignal.timeout(5000))).leader?.modRevision;
    for (let i = 0; i < 3; i++) assert.equal(await dcs.renewLeader(10_000, AbortSignal.timeout(5000)), true);
    assert.equal((await dcs.loadCluster(AbortSignal.timeout(5000))).leader?.modRevision, before);
    assert.equal(
      await dcs.renewLeader(20_000, AbortSignal.timeout(5000)),
      true,
      'a new TTL moves the key to a new lease (compare value, then put)',
    );
    assert.notEqual((await dcs.loadCluster(AbortSignal.timeout(5000))).leader?.modRevision, before);
  });

  it('stores Patroni-shaped values that etcdctl shows as such', async () => {
    const dcs = new EtcdDcs({ endpoints: etcd!.endpoints, namespace: '/service/', scope: 'shapes', member: 'node1' });
    await dcs.acquireLeader(10_000, AbortSignal.timeout(5000));
    await dcs.touchMember(
      {
        name: 'node1',
        conn_url: 'postgres://127.0.0.1:25432/postgres',
        api_url: 'http://127.0.0.1:28008/patroni',
        state: 'running',
        role: 'primary',
        xlog_location: 83886080,
        timeline: 1,
      },
      10_000,
      AbortSignal.timeout(5000),
    );
    await dcs.setStatus(83886080, undefined, AbortSignal.timeout(5000));
    await dcs.setFailsafe({ node1: 'http://127.0.0.1:28008/patroni' }, AbortSignal.timeout(5000));
    const get = (key: string): string =>
      execFileSync('etcdctl', ['--endpoints', etcd!.endpoints.join(','), 'get', key, '--print-value-only'], { encoding: 'utf8' }).trim();
    assert.equal(get('/service/shapes/leader'), 'node1');
    assert.deepEqual(JSON.parse(get('/service/shapes/members/node1')), {
      conn_url: 'postgres://127.0.0.1:25432/postgres',
      api_url: 'http://127.0.0.1:28008/patroni',
      state: 'running',
      role: 'primary',
      xlog_location: 83886080,
      timeline: 1,
    });
    assert.equal(get('/service/shapes/status'), '{"optime":83886080}');
    // Patroni's failsafe key: compact JSON, member name -> api_url, with no lease (it outlives every member's).
    assert.equal(get('/service/shapes/failsafe'), '{"node1":"http://127.0.0.1:28008/patroni"}');
    const failsafe = execFileSync('etcdctl', ['--endpoints', etcd!.endpoints.join(','), 'get', '/service/shapes/failsafe', '-w', 'json'], {
      encoding: 'utf8',
    });
    assert.equal((JSON.parse(failsafe) as { kvs: { lease?: number }[] }).kvs[0]?.lease ?? 0, 0, 'the failsafe key is permanent');
    const lease = execFileSync('etcdctl', ['--endpoints', etcd!.endpoints.join(','), 'get', '/service/shapes/leader', '-w', 'json'], {
      encoding: 'utf8',
    });
    assert.notEqual((JSON.parse(lease) as { kvs: { lease?: number }[] }).kvs[0]?.lease ?? 0, 0, 'the leader key is bound to a lease');
  });
});
