// REST health checks: status codes per role and lock, Patroni's query parameters, status-only replies, and a server that survives garbage.
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { describe, it } from 'node:test';
import type { AgentSnapshot } from '../../src/agent/snapshot.js';
import { handleRequest, parseLag, statusDocument } from '../../src/api/routes.js';
import { parsePatroniInt } from '../../src/util/patroni-int.js';
import { startApiServer } from '../../src/api/server.js';
import { silentLog } from '../../src/util/log.js';
import { agentSnapshot, member, pgState, primaryPg, view } from '../sim/builders.js';

function snapshot(overrides: Partial<AgentSnapshot> = {}): AgentSnapshot {
  return agentSnapshot({
    pg: primaryPg({ writeLsn: 83886080n }),
    dcsLastSeenEpochS: 1795370065,
    lastCycleAtMs: 1000,
    ...overrides,
  });
}
const replica = (overrides: Partial<AgentSnapshot> = {}): AgentSnapshot =>
  snapshot({ name: 'node2', isLeaderWithLock: false, pg: pgState({ receivedLsn: 83886080n, replayedLsn: 83886080n }), ...overrides });

function status(path: string, snap: AgentSnapshot, method = 'GET'): number {
  const url = new URL(path, 'http://x');
  return handleRequest({ method, path: url.pathname, query: url.searchParams }, { snapshot: snap, nowMs: 2000 }).status;
}

describe('health checks', () => {
  it('answers /primary, /master, /read-write, / and /leader with 200 only on the lock holder running as primary', () => {
    for (const path of ['/', '/primary', '/master', '/read-write', '/leader']) {
      assert.equal(status(path, snapshot()), 200, path);
      assert.equal(status(path, replica()), 503, path);
      assert.equal(status(path, snapshot({ isLeaderWithLock: false })), 503, `${path} on a primary whose lock deadline passed`);
    }
  });

  it('answers /replica on a running replica, honouring lag, tags and noloadbalance', () => {
    assert.equal(status('/replica', replica()), 200);
    assert.equal(status('/replica', snapshot()), 503);
    const lagging = replica({ pg: pgState({ receivedLsn: 83886080n, replayedLsn: 83886080n - 20n * 1048576n }) });
    assert.equal(status('/replica?lag=10MB', lagging), 503);
    assert.equal(status('/replica?lag=1GB', lagging), 200);
    // Patroni 3.0.2 ignores a lag it cannot parse (parse_int gives None, the limit becomes sys.maxsize): no lag limit.
    for (const bad of ['nonsense', '1XB', 'abc', '1kb', ''])
      assert.equal(status(`/replica?lag=${bad}`, lagging), 200, `lag=${bad} is ignored as in Patroni`);
    assert.equal(status('/replica?lag=16kB', lagging), 503);
    assert.equal(status('/replica?lag=1MB', lagging), 503);
    assert.equal(status('/replica?lag=32MB', lagging), 200);
    assert.equal(status('/replica?lag=%201%20MB%20', lagging), 503, 'spaces around the number and unit are allowed');
    assert.equal(status('/replica?tag_zone=a', replica({ tags: { zone: 'a' } })), 200);
    assert.equal(status('/replica?tag_zone=b', replica({ tags: { zone: 'a' } })), 503);
    assert.equal(status('/replica', replica({ tags: { noloadbalance: true } })), 503);
  });

  it('answers /replica and /read-only only on a replica that follows the current leader', () => {
    const notStreaming = replica({ pg: pgState({ receivedLsn: 83886080n, replayedLsn: 83886080n, isStreaming: false }) });
    for (const path of ['/replica', '/read-only', '/replica?lag=1GB'])
      assert.equal(status(path, notStreaming), 503, `${path} not streaming`);
    const behind = replica({
      pg: pgState({ receivedLsn: 83886080n, replayedLsn: 83886080n, timeline: 1 }),
      view: view({ leaderName: 'node1', members: [member('node1', { timeline: 2 }), member('node2')] }),
    });
    assert.equal(status('/replica', behind), 503, "a replica behind the leader's timeline");
    const ahead = replica({ pg: pgState({ receivedLsn: 83886080n, replayedLsn: 83886080n, timeline: 7 }) });
    assert.equal(status('/replica', ahead), 200, "the leader's member key may lag its promotion by a cycle");
    const diverged = replica({ pg: pgState({ receivedLsn: 83886080n, replayedLsn: 83886080n, isHistoryDivergent: true }) });
    assert.equal(status('/replica', diverged), 503, 'a replica whose history parted from the leader');
    assert.equal(status('/replica', replica({ pg: notStreaming.pg, tags: { nostream: true } })), 200, 'nostream replays the archive');
    assert.equal(status('/replica', replica({ pg: notStreaming.pg, isDcsReachable: false })), 200, 'without the DCS, running is enough');
  });

  it('answers as Patroni 3.0.2 on the standby leader of a standby cluster', () => {
    const standbyLeader = replica({ name: 'node1', isLeaderWithLock: true, isStandbyLeader: true });
    for (const path of ['/standby-leader', '/standby_leader', '/read-only']) assert.equal(status(path, standbyLeader), 200, path);
    for (const path of ['/', '/primary', '/leader', '/replica', '/read-write']) assert.equal(status(path, standbyLeader), 503, path);
    assert.equal(status('/standby-leader', snapshot()), 503, 'a primary is not a standby leader');
    assert.equal(status('/standby-leader', replica()), 503);
    assert.equal(statusDocument(standbyLeader).role, 'standby_leader');
  });

  it('answers /read-only on both, /health on any running node, 503 for unknown paths', () => {
    assert.equal(status('/read-only', snapshot()), 200);
    assert.equal(status('/read-only', replica()), 200);
    assert.equal(status('/health', replica()), 200);
    assert.equal(status('/health', replica({ state: 'stopped' })), 503);
    assert.equal(status('/standby-leader', snapshot()), 503);
    assert.equal(status('/no-such-thing', snapshot()), 503);
  });

  it('answers /sync and /async from the DCS sync key', () => {
    const listed = replica({ view: view({ leaderName: 'node1', sync: { leader: 'node1', sync_standby: 'node2' } }) });
    assert.deepEqual(
      [status('/sync', listed), status('/synchronous', listed), status('/async', listed), status('/read-only-sync', listed)],
      [200, 200, 503, 200],
    );
    const unlisted = replica();
    assert.deepEqual(
      [status('/sync', unlisted), status('/async', unlisted), status('/asynchronous', unlisted), status('/read-only-sync', unlisted)],
      [503, 200, 200, 503],
    );
    assert.equal(status('/async', replica({ isDcsReachable: false })), 503);
    assert.equal(status('/read-only-sync', snapshot()), 200);
  });

  it('replies to HEAD and OPTIONS with a status line only', () => {
    const url = new URL('http://x/primary');
    const head = handleRequest({ method: 'HEAD', path: url.pathname, query: url.searchParams }, { snapshot: snapshot(), nowMs: 0 });
    assert.deepEqual([head.status, head.body], [200, undefined]);
    assert.equal(status('/', replica(), 'OPTIONS'), 503);
  });

  it('reports liveness from the age of the last HA cycle', () => {
    assert.equal(status('/liveness', snapshot({ lastCycleAtMs: 1000 })), 200);
    assert.equal(
      handleRequest(
        { method: 'GET', path: '/liveness', query: new URLSearchParams() },
        { snapshot: snapshot({ lastCycleAtMs: 0 }), nowMs: 60_000 },
      ).status,
      503,
    );
  });

  it('parses lag units like Patroni', () => {
    assert.deepEqual(
      [parseLag('1048576'), parseLag('1024kB'), parseLag('10MB'), parseLag('1GB'), parseLag('x')],
      [1048576, 1048576, 10485760, 1073741824, undefined],
    );
    // Patroni's parse_int doctests and edge cases: hex, octal, decimals rounded half to even, case-sensitive units.
    const cases: [string, number | undefined][] = [
      ['16kB', 16384],
      ['1 MB', 1048576],
      ['0x10', 16],
      ['010', 8],
      ['1.5kB', 1536],
      ['0.5', 0],
      ['2.5', 2],
      ['1TB', 1024 ** 4],
      ['-1', -1],
      ['1XB', undefined],
      ['1kb', undefined],
      ['1mb', undefined],
      ['MB', undefined],
      ['', undefined],
      ['1e3', 1000],
    ];
    for (const [text, expected] of cases) assert.equal(parseLag(text), expected, text);
    assert.equal(parsePatroniInt('1min', 's'), 60);
    assert.equal(parsePatroniInt(30, 's'), 30);
    assert.equal(parsePatroniInt('1000 ms', 's'), 1);
    assert.equal(parsePatroniInt(true, 's'), undefined);
  });
});

describe('status document', () => {
  it('has the Patroni fields for a primary and a replica', () => {
    const primary = statusDocument(snapshot());
    assert.deepEqual(primary.xlog, { location: 83886080 });
    assert.equal(primary.role, 'master', 'Patroni 3.0.2 says master in GET /');
    assert.equal(primary.database_system_identifier, '7711055670619385940');
    assert.deepEqual(primary.patroni, { version: '3.0.2', scope: 'batman', name: 'node1' });
    const standby = statusDocument(replica());
    assert.deepEqual(standby.xlog, { received_location: 83886080, replayed_location: 83886080, replayed_timestamp: null, paused: false });
    assert.equal(standby.replication_state, 'streaming');
    assert.equal(statusDocument(replica({ view: view({}) })).cluster_unlocked, true);
  });

  it('serves /cluster from the DCS view', () => {
    const url = new URL('http://x/cluster');
    const body = JSON.parse(
      handleRequest({ method: 'GET', path: url.pathname, query: url.searchParams }, { snapshot: snapshot(), nowMs: 0 }).body!,
    ) as { members: { name: string; role: string }[] };
    assert.deepEqual(
      body.members.map((m) => [m.name, m.role]),
      [
        ['node1', 'leader'],
        ['node2', 'replica'],
        ['node3', 'replica'],
      ],
    );
  });
});

describe('API server', () => {
  it('survives a garbage request line and keeps serving', async () => {
    const server = await startApiServer({
      host: '127.0.0.1',
      port: 0,
      getSnapshot: () => snapshot(),
      nowMs: () => 2000,
      log: silentLog,
      extraHeaders: { 'x-frame-options': 'DENY' },
    });
    try {
      const reply = await new Promise<string>((resolve, reject) => {
        const socket = connect({ host: '127.0.0.1', port: server.port }, () => socket.write('\u0000\u0001 GARBAGE\r\n\r\n'));
        let data = '';
        socket.on('data', (chunk: Buffer) => (data += chunk.toString()));
        socket.on('end', () => resolve(data));
        socket.on('error', reject);
      });
      assert.match(reply, /^HTTP\/1\.1 400/);
      const response = await fetch(`http://127.0.0.1:${server.port}/primary`);
      assert.equal(response.status, 200);
      assert.equal(response.headers.get('x-frame-options'), 'DENY', 'restapi.http_extra_headers');
      assert.equal(((await response.json()) as { role: string }).role, 'master');
    } finally {
      await server.close();
    }
  });
});
