// POST /failsafe and GET /failsafe over HTTP (authenticated like every unsafe endpoint), the peer client that sends it,
// what a member records when it accepts, and failsafe_mode_is_active in /patroni and the metrics.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { currentSnapshot, initialCycleState, receiveFailsafe, type CycleSettings } from '../../src/agent/cycle.js';
import type { AgentSnapshot } from '../../src/agent/snapshot.js';
import { TaskSlot } from '../../src/agent/tasks.js';
import { MetricsExporter } from '../../src/api/metrics.js';
import { handleRequest, statusDocument } from '../../src/api/routes.js';
import { startApiServer } from '../../src/api/server.js';
import { endpointUrl, HttpPeerClient } from '../../src/peers/http-peer-client.js';
import { silentLog } from '../../src/util/log.js';
import { createRestClient } from '../../src/util/rest-client.js';
import { FakeClock } from '../kit/fake-clock.js';
import { agentSnapshot, primaryPg, pgState, view } from '../sim/builders.js';

const REQUEST = { name: 'node1', conn_url: 'postgres://127.0.0.1:5432/postgres', api_url: 'http://127.0.0.1:8008/patroni', ttl: 30 };

/** A peer client with the REST client of `restapi.authentication: {username: admin, password}`. */
const peerWith = (password: string): HttpPeerClient =>
  new HttpPeerClient(createRestClient({ credentials: { username: 'admin', password, key: 'restapi.authentication' } }));

function snapshotOf(overrides: Partial<AgentSnapshot> = {}): AgentSnapshot {
  return agentSnapshot({
    name: 'node2',
    pg: pgState(),
    dcsLastSeenEpochS: 1795370065,
    isLeaderWithLock: false,
    lastCycleAtMs: 1000,
    ...overrides,
  });
}

describe('POST /failsafe over HTTP', () => {
  it('needs the REST credentials, answers "Accepted" with the lsn header, and the peer client reads it', async () => {
    const received: unknown[] = [];
    let answer = { status: 200, message: 'Accepted', lsn: 83886080n as bigint | undefined };
    const server = await startApiServer({
      host: '127.0.0.1',
      port: 0,
      getSnapshot: () => snapshotOf(),
      nowMs: () => 0,
      log: silentLog,
      authentication: { username: 'admin', password: 's3cret' },
      receiveFailsafe: (body) => {
        received.push(body);
        return answer;
      },
    });
    const apiUrl = `http://127.0.0.1:${server.port}/patroni`;
    try {
      const anonymous = await fetch(`http://127.0.0.1:${server.port}/failsafe`, { method: 'POST', body: JSON.stringify(REQUEST) });
      assert.equal(anonymous.status, 401);
      assert.equal(received.length, 0, 'an unauthenticated request never reaches the agent');
      const authorization = `Basic ${Buffer.from('admin:s3cret').toString('base64')}`;
      const reply = await fetch(`http://127.0.0.1:${server.port}/failsafe`, {
        method: 'POST',
        body: JSON.stringify(REQUEST),
        headers: { authorization },
      });
      assert.deepEqual([reply.status, await reply.text(), reply.headers.get('lsn')], [200, 'Accepted', '83886080']);
      assert.deepEqual(received[0], REQUEST);

      const signal = (): AbortSignal => AbortSignal.timeout(2000);
      assert.equal(await peerWith('s3cret').postFailsafe(apiUrl, REQUEST, signal()), true);
      assert.equal(await peerWith('nope').postFailsafe(apiUrl, REQUEST, signal()), false);
      answer = { status: 500, message: 'Running as a leader', lsn: undefined };
      assert.equal(await peerWith('s3cret').postFailsafe(apiUrl, REQUEST, signal()), false);
    } finally {
      await server.close();
    }
    assert.equal(await new HttpPeerClient().postFailsafe(apiUrl, REQUEST, AbortSignal.timeout(2000)), false, 'nobody listening: false');
  });

  it('is sent to the api_url with the path replaced, as Patroni does', () => {
    assert.equal(endpointUrl('http://10.0.0.1:8008/patroni', 'failsafe'), 'http://10.0.0.1:8008/failsafe');
    assert.equal(endpointUrl('https://[fd00::1]:8008/patroni?x=1', 'failsafe'), 'https://[fd00::1]:8008/failsafe');
    assert.equal(endpointUrl('not a url', 'failsafe'), undefined);
  });
});

describe('GET /failsafe, /patroni and the metric', () => {
  it('GET /failsafe returns the topology, 502 without one (as Patroni)', () => {
    const request = { method: 'GET', path: '/failsafe', query: new URLSearchParams() };
    const topology = { node1: 'http://127.0.0.1:8008/patroni' };
    const ok = handleRequest(request, { snapshot: snapshotOf({ view: view({ leaderName: 'node1', failsafe: topology }) }), nowMs: 0 });
    assert.deepEqual([ok.status, JSON.parse(ok.body ?? 'null')], [200, topology]);
    assert.equal(handleRequest(request, { snapshot: snapshotOf(), nowMs: 0 }).status, 502);
  });

  it('reports failsafe_mode_is_active only while it is', async () => {
    assert.equal(statusDocument(snapshotOf()).failsafe_mode_is_active, undefined);
    assert.equal(statusDocument(snapshotOf({ isFailsafeActive: true })).failsafe_mode_is_active, true);
    const metrics = new MetricsExporter();
    assert.match(await metrics.render(snapshotOf({ isFailsafeActive: true })), /^patroni_failsafe_mode_is_active\{[^}]*\} 1$/m);
    assert.match(await metrics.render(snapshotOf()), /^patroni_failsafe_mode_is_active\{[^}]*\} 0$/m);
  });
});

describe('what a member does with POST /failsafe', () => {
  const settings: CycleSettings = {
    scope: 'batman',
    canBootstrap: true,
    bootstrapConfig: { ttl: 30, loop_wait: 10, retry_timeout: 10, maximum_lag_on_failover: 1048576, failsafe_mode: true },
    isFastDeadLeaderEnabled: true,
    isCheckingInvariants: true,
  };
  const setup = (): { state: ReturnType<typeof initialCycleState>; tasks: TaskSlot; clock: FakeClock } => {
    const clock = new FakeClock();
    const tasks = new TaskSlot(clock, silentLog, () => undefined);
    const identity = { name: 'node2', connUrl: 'postgres://x/postgres', apiUrl: 'http://x/patroni', version: '3.0.2', tags: {} };
    const state = initialCycleState(settings, { identity, parameters: {}, callbacks: undefined }, tasks, clock.nowMs());
    state.pg = pgState({ receivedLsn: 5000n, replayedLsn: 4000n });
    return { state, tasks, clock };
  };

  it('accepts as a replica, records it for the longer ttl, answers its WAL position, and reports failsafe active', () => {
    const { state, tasks, clock } = setup();
    const receipt = receiveFailsafe(settings, state, tasks, { ...REQUEST, ttl: 40 }, clock.nowMs(), silentLog);
    assert.deepEqual(receipt, { status: 200, message: 'Accepted', lsn: 5000n });
    assert.equal(state.failsafe.record?.leader, 'node1');
    assert.equal(state.failsafe.record?.ttlMs, 40_000, "the leader's ttl is longer than ours: it is the one that counts");
    assert.equal(currentSnapshot(state, clock.nowMs()).isFailsafeActive, true);
    assert.equal(currentSnapshot(state, clock.nowMs() + 40_000).isFailsafeActive, false, 'stale after that ttl');
  });

  it('refuses as a running primary, while holding the lock, with failsafe_mode off, and a body without the leader', () => {
    const primary = setup();
    primary.state.pg = primaryPg();
    assert.deepEqual(receiveFailsafe(settings, primary.state, primary.tasks, REQUEST, 0, silentLog), {
      status: 500,
      message: 'Running as a leader',
      lsn: undefined,
    });
    const holder = setup();
    holder.state.lock.current = { lastRenewSentAtMs: holder.clock.nowMs(), ttlMs: 30_000 };
    assert.equal(receiveFailsafe(settings, holder.state, holder.tasks, REQUEST, holder.clock.nowMs(), silentLog).status, 500);
    const inFlight = setup();
    inFlight.state.failsafe.lockCallsInFlight = 1;
    assert.equal(receiveFailsafe(settings, inFlight.state, inFlight.tasks, REQUEST, 0, silentLog).status, 500);
    const off = setup();
    const offSettings = { ...settings, bootstrapConfig: { ...settings.bootstrapConfig, failsafe_mode: false } };
    assert.equal(receiveFailsafe(offSettings, off.state, off.tasks, REQUEST, 0, silentLog).status, 502);
    assert.equal(receiveFailsafe(settings, off.state, off.tasks, { name: 'node1' }, 0, silentLog).status, 400);
    for (const refused of [primary, holder, inFlight, off]) assert.equal(refused.state.failsafe.record, undefined, 'nothing recorded');
  });
});
