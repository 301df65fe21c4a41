// A proxy publishes where it routes as proxies/<name> (on the in-memory DCS, the same code path as etcd's adapter):
// the record follows the routes, is rewritten at once for a new primary, kept alive within the TTL, and withdrawn on stop.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ProxyRecord } from '../../src/core/types.js';
import { buildClusterView, decodeProxy } from '../../src/dcs/codec.js';
import { ClusterKeys } from '../../src/dcs/keys.js';
import { MemoryDcs, MemoryDcsStore } from '../../src/dcs/memory/memory-dcs.js';
import { proxyRecordOf, RoutePublisher } from '../../src/proxy/route-publisher.js';
import type { ProxyStatus } from '../../src/proxy/proxy-http.js';
import { silentLog } from '../../src/util/log.js';
import { waitUntil } from '../../src/util/wait-until.js';
import { FakeClock } from '../kit/fake-clock.js';

const backend = (member: string): { member: string; host: string; port: number } => ({ member, host: '127.0.0.1', port: 5432 });
const routed = (primary: string, replicas: string[]): Pick<ProxyStatus, 'primary' | 'replicas'> => ({
  primary: { kind: 'route', backend: backend(primary), leader: primary },
  replicas: { kind: 'route', backends: replicas.map(backend), isFallback: false },
});

describe('proxy route record', () => {
  it('names the primary it routes to, or why it holds, the replicas, and where it listens', () => {
    assert.deepEqual(
      proxyRecordOf('p1', routed('node1', ['node2', 'node3']), { primary: '127.0.0.1:5000', apiUrl: 'http://127.0.0.1:9000' }),
      {
        name: 'p1',
        api_url: 'http://127.0.0.1:9000',
        primary_listen: '127.0.0.1:5000',
        primary: 'node1',
        replicas: ['node2', 'node3'],
      },
    );
    const held = proxyRecordOf(
      'p1',
      { primary: { kind: 'hold', reason: 'no leader in the DCS' }, replicas: { kind: 'hold', reason: 'no replica' } },
      { primary: '127.0.0.1:5000', replica: '127.0.0.1:5001' },
    );
    assert.deepEqual(held, {
      name: 'p1',
      primary_listen: '127.0.0.1:5000',
      replica_listen: '127.0.0.1:5001',
      held: 'no leader in the DCS',
      replicas: [],
    });
  });

  it('publishes on the DCS, rewrites a new primary at once, keeps the record alive, withdraws it on stop', async () => {
    const clock = new FakeClock();
    const store = new MemoryDcsStore(clock);
    const proxy = new MemoryDcs(store, { namespace: '/service', scope: 'batman', member: '__pgwarden_proxy' });
    const reader = new MemoryDcs(store, { namespace: '/service', scope: 'batman', member: 'node1' });
    let status = routed('node1', ['node2']);
    let writes = 0;
    const registry = {
      publishProxy: (record: ProxyRecord, ttlMs: number, signal: AbortSignal) => {
        writes++;
        return proxy.publishProxy(record, ttlMs, signal);
      },
      withdrawProxy: (name: string, signal: AbortSignal) => proxy.withdrawProxy(name, signal),
    };
    const publisher = new RoutePublisher({
      registry,
      record: () => proxyRecordOf('p1', status, { primary: '127.0.0.1:5000' }),
      ttlMs: () => 30_000,
      nowMs: () => clock.nowMs(),
      log: silentLog,
    });
    const primaryShown = async (): Promise<string | undefined> =>
      (await reader.loadCluster(AbortSignal.timeout(1000))).proxies?.find((p) => p.name === 'p1')?.primary;
    publisher.update();
    await waitUntil(async () => (await primaryShown()) === 'node1', { timeoutMs: 2000, describe: 'the first record' });
    publisher.update();
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(writes, 1, 'nothing changed: nothing written');
    status = routed('node2', ['node1']);
    publisher.update();
    await waitUntil(async () => (await primaryShown()) === 'node2', { timeoutMs: 2000, describe: 'the new primary at once' });
    assert.equal(writes, 2);
    // Within a third of the TTL nothing more; after it, a keepalive write, so the record outlives the TTL.
    clock.advance(9_000);
    publisher.update();
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(writes, 2);
    for (let step = 0; step < 4; step++) {
      clock.advance(10_001);
      publisher.update();
      await waitUntil(() => writes === 3 + step, { timeoutMs: 2000, describe: `keepalive ${step + 1}` });
    }
    assert.equal(await primaryShown(), 'node2', 'alive after more than the TTL');
    await publisher.stop();
    assert.equal((await reader.loadCluster(AbortSignal.timeout(1000))).proxies, undefined, 'withdrawn on stop');
  });
});

describe('proxy records read back from the DCS', () => {
  it('skips a value that is not an object and keeps only known fields of the right type (other tools may write there)', () => {
    assert.equal(decodeProxy('p1', 'not json'), undefined);
    assert.equal(decodeProxy('p1', '[1,2]'), undefined);
    assert.deepEqual(decodeProxy('p1', JSON.stringify({ primary: 7, replicas: ['node2', 3], held: 'no leader', extra: { x: 1 } })), {
      name: 'p1',
      held: 'no leader',
      replicas: ['node2'],
    });
  });

  it('are read beside the members, never as members, sorted by name', () => {
    const keys = new ClusterKeys('/service', 'batman');
    const raw = (key: string, value: string) => ({ key, value, modRevision: '2', createRevision: '2', lease: '0' });
    const view = buildClusterView(
      keys,
      [
        raw(keys.proxy('zeta'), '{"primary":"node1"}'),
        raw(keys.proxy('alpha'), '{"held":"no leader"}'),
        raw(keys.proxy('junk'), 'garbage'),
        raw(
          keys.member('node1'),
          '{"role":"master","state":"running","conn_url":"postgres://h:5432/postgres","api_url":"http://h:8008/patroni"}',
        ),
      ],
      '9',
    );
    assert.deepEqual(
      view.proxies?.map((p) => p.name),
      ['alpha', 'zeta'],
    );
    assert.deepEqual(
      view.members.map((m) => m.name),
      ['node1'],
    );
    assert.equal(keys.isControlKey(keys.proxy('alpha')), false, 'a proxy record wakes no agent loop');
  });
});
