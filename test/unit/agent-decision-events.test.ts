// The agent's bounded decision log and GET /events (and the REST client keeping its query): numbered, oldest dropped first, read after a sequence number.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DecisionEvents } from '../../src/agent/decision-events.js';
import { handleRequest } from '../../src/api/routes.js';
import { memberEndpointUrl } from '../../src/util/rest-client.js';
import { agentSnapshot } from '../sim/builders.js';

const event = (reason: string): Parameters<DecisionEvents['add']>[0] => ({
  at: '2026-12-07T04:00:00.000Z',
  member: 'node1',
  role: 'master',
  timeline: 3,
  actions: ['renewLock'],
  reason,
});

describe('decision events', () => {
  it('keeps the newest within capacity, numbered, and answers what came after a sequence number', () => {
    const events = new DecisionEvents(3);
    for (const reason of ['a', 'b', 'c', 'd', 'e']) events.add(event(reason));
    assert.deepEqual(
      events.since().map((recorded) => [recorded.seq, recorded.reason]),
      [
        [3, 'c'],
        [4, 'd'],
        [5, 'e'],
      ],
    );
    assert.deepEqual(
      events.since(4).map((recorded) => recorded.reason),
      ['e'],
    );
    assert.deepEqual(
      events.since(0, 1).map((recorded) => recorded.reason),
      ['e'],
      'limit keeps the newest',
    );
    assert.deepEqual(events.since(5), []);
  });

  it('GET /events serves them; since and limit must be integers', () => {
    const events = new DecisionEvents();
    events.add(event('promoted myself to leader by acquiring session lock'));
    events.add(event('no action. I am (node1), the leader with the lock'));
    const snapshot = agentSnapshot({ lastCycleAtMs: 1000, dcsLastSeenEpochS: 1795370065, events });
    const get = (path: string): { status: number; body: unknown } => {
      const url = new URL(path, 'http://x');
      const reply = handleRequest({ method: 'GET', path: url.pathname, query: url.searchParams }, { snapshot, nowMs: 2000 });
      return { status: reply.status, body: reply.body === undefined ? undefined : JSON.parse(reply.body) };
    };
    const all = get('/events');
    assert.equal(all.status, 200);
    assert.deepEqual(
      (all.body as { seq: number; reason: string }[]).map((recorded) => recorded.seq),
      [1, 2],
    );
    assert.deepEqual(
      (get('/events?since=1').body as { reason: string }[]).map((recorded) => recorded.reason),
      ['no action. I am (node1), the leader with the lock'],
    );
    const bad = get('/events?since=abc');
    assert.equal(bad.status, 400);
    assert.match(String((bad.body as { error: string }).error), /since: expected a non-negative integer/);
    assert.deepEqual(get('/events').body, all.body, 'reading does not consume');
  });
});

describe('member endpoint URLs', () => {
  it('keep a query given with the endpoint and drop the api_url path', () => {
    assert.equal(memberEndpointUrl('http://10.0.0.1:8008/patroni', '/events?limit=5'), 'http://10.0.0.1:8008/events?limit=5');
    assert.equal(memberEndpointUrl('https://h:8008/patroni?x=1', 'switchover'), 'https://h:8008/switchover');
  });
});
