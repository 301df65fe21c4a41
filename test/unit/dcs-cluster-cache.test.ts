// The etcd adapter's watch-fed cluster cache: when a view may come from it, and how events and reads combine.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { RawKey } from '../../src/dcs/codec.js';
import { ClusterCache, type CacheEvent, type CacheFreshness } from '../../src/dcs/etcd/cluster-cache.js';
import { ClusterKeys } from '../../src/dcs/keys.js';

const keys = new ClusterKeys('/service', 'demo');
const identity = (text: string | undefined): string => text ?? '';
const ENDPOINT = 'http://127.0.0.1:2379';

const memberKey = (name: string): string => `${keys.membersPrefix}${name}`;
const memberValue = (position: number): string =>
  JSON.stringify({
    conn_url: 'postgres://127.0.0.1:5432/postgres',
    api_url: 'http://127.0.0.1:8008/patroni',
    state: 'running',
    role: 'replica',
    xlog_location: position,
  });
const raw = (key: string, value: string, revision: number): RawKey => ({
  key,
  value,
  modRevision: String(revision),
  createRevision: String(revision),
  lease: '0',
});
const put = (key: string, value: string, revision: number): CacheEvent => ({ kv: { key, value, mod_revision: String(revision) } });
const del = (key: string, revision: number): CacheEvent => ({ type: 'DELETE', kv: { key, mod_revision: String(revision) } });

const fresh = (overrides: Partial<CacheFreshness> = {}): CacheFreshness => ({
  nowMs: 1000,
  maxReadAgeMs: 10_000,
  hasEndpointAnswered: () => true,
  ...overrides,
});

/** A cache read at revision 10 (node1 at position 100, a leader, a beat) with a watch from 11 accepted by etcd. */
function watchedCache(): { cache: ClusterCache; watch: number } {
  const cache = new ClusterCache(keys, identity);
  cache.reset(
    [raw(memberKey('node1'), memberValue(100), 5), raw(keys.leader, 'node1', 6), raw(keys.heartbeat, '{"leader":"node1"}', 9)],
    '10',
    0,
  );
  const watch = cache.watchOpened(11n);
  cache.watchCreated(watch, ENDPOINT);
  return { cache, watch };
}

const positionOf = (cache: ClusterCache, name: string): number | undefined =>
  cache.view(fresh())?.members.find((member) => member.name === name)?.xlog_location;

describe('ClusterCache', () => {
  it('serves a view only once a watch from right after the read was accepted by etcd', () => {
    const cache = new ClusterCache(keys, identity);
    assert.equal(cache.view(fresh()), undefined, 'nothing read yet');
    cache.reset([raw(keys.leader, 'node1', 3)], '10', 0);
    assert.equal(cache.view(fresh()), undefined, 'no watch');
    const watch = cache.watchOpened(11n);
    assert.equal(cache.view(fresh()), undefined, 'watch not yet created');
    cache.watchCreated(watch, ENDPOINT);
    assert.equal(cache.view(fresh())?.leader?.name, 'node1');
    assert.equal(cache.view(fresh())?.revision, '10');
  });

  it('refuses a watch that starts after a gap, an ended watch, a stale read, a silent endpoint and its own writes', () => {
    const gap = new ClusterCache(keys, identity);
    gap.reset([], '10', 0);
    gap.watchCreated(gap.watchOpened(13n), ENDPOINT);
    assert.equal(gap.view(fresh()), undefined, 'revisions 11 and 12 would be missing');

    const { cache, watch } = watchedCache();
    assert.notEqual(cache.view(fresh()), undefined);
    assert.equal(cache.view(fresh({ nowMs: 20_000 })), undefined, 'read older than maxReadAgeMs');
    assert.equal(cache.view(fresh({ hasEndpointAnswered: (url) => url !== ENDPOINT })), undefined, 'endpoint silent');
    cache.invalidate();
    assert.equal(cache.view(fresh()), undefined, 'own write since the read');
    cache.reset([raw(keys.leader, 'node1', 6)], '12', 500);
    assert.notEqual(cache.view(fresh()), undefined, 'a read clears it');
    cache.watchEnded(watch);
    assert.equal(cache.view(fresh()), undefined, 'watch ended');
  });

  it('applies puts and deletes in revision order and ignores events the read already holds', () => {
    const { cache, watch } = watchedCache();
    cache.apply(watch, [put(memberKey('node1'), memberValue(200), 11), put(memberKey('node2'), memberValue(50), 12)]);
    assert.equal(positionOf(cache, 'node1'), 200);
    assert.equal(positionOf(cache, 'node2'), 50);
    assert.equal(cache.view(fresh())?.revision, '12');
    cache.apply(watch, [put(memberKey('node1'), memberValue(150), 4)]);
    assert.equal(positionOf(cache, 'node1'), 200, 'an event older than the read changes nothing');
    cache.apply(watch, [del(keys.leader, 13)]);
    assert.equal(cache.view(fresh())?.leader, undefined);
    cache.apply(watch + 1, [put(keys.leader, 'node2', 14)]);
    assert.equal(cache.view(fresh())?.leader, undefined, 'events of another watch are not applied');
  });

  it('keeps events newer than a read that answered late', () => {
    const { cache, watch } = watchedCache();
    cache.apply(watch, [put(memberKey('node1'), memberValue(300), 15), del(keys.leader, 16)]);
    // A range answered at revision 14: before both events.
    cache.reset([raw(memberKey('node1'), memberValue(250), 14), raw(keys.leader, 'node1', 6)], '14', 100);
    assert.equal(positionOf(cache, 'node1'), 300);
    assert.equal(cache.view(fresh())?.leader, undefined);
    assert.equal(cache.view(fresh())?.revision, '16');
  });

  it('leaves the heartbeat out of cached views (it has a watch of its own)', () => {
    const { cache } = watchedCache();
    assert.equal(cache.view(fresh())?.heartbeat, undefined);
  });

  it('falls back to reads after more events than it keeps between two reads', () => {
    const { cache, watch } = watchedCache();
    const events = Array.from({ length: 1001 }, (_, index) => put(memberKey('node1'), memberValue(index), 11 + index));
    cache.apply(watch, events);
    assert.equal(cache.view(fresh()), undefined);
  });
});
