// The dashboard on every member: the lock's time left from the DCS on members not holding it (asked only while a page
// is open), and restart/reinitialize of another member relayed with the caller's own credentials, never to a
// non-member or another path.
import assert from 'node:assert/strict';
import { createServer, request, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, it } from 'node:test';
import { planMemberAction } from '../../src/api/member-forward.js';
import { startApiServer } from '../../src/api/server.js';
import { lockReadingOf, uiClusterDocument } from '../../src/api/ui-stream.js';
import { silentLog } from '../../src/util/log.js';
import { createRestClient } from '../../src/util/rest-client.js';
import { agentSnapshot, member, view } from '../sim/builders.js';

const replicaSnapshot = agentSnapshot({
  name: 'node2',
  isLeaderWithLock: false,
  lockDeadlineMs: undefined,
  view: view({ leaderName: 'node1', members: [member('node1'), member('node2', { lag_seconds: 2.5 }), member('node3')] }),
});

/** Reads `event: lock` frames of GET /ui/stream until `count` arrived; then closes. */
function lockFrames(port: number, count: number): Promise<unknown[]> {
  return new Promise((resolve, reject) => {
    const frames: unknown[] = [];
    const req = request({ host: '127.0.0.1', port, path: '/ui/stream' }, (response) => {
      let buffer = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => {
        buffer += chunk;
        for (const block of buffer.split('\n\n').slice(0, -1)) {
          const data = /^event: lock\ndata: (.*)$/m.exec(block)?.[1];
          if (data !== undefined) frames.push(JSON.parse(data) as unknown);
        }
        buffer = buffer.slice(buffer.lastIndexOf('\n\n') + 2);
        if (frames.length >= count) {
          req.destroy();
          resolve(frames);
        }
      });
    });
    req.on('error', (error) => (req.destroyed ? undefined : reject(error)));
    req.end();
  });
}

describe('dashboard on every member: lag seconds and the lock', () => {
  it("the cluster document carries each replica's lag in seconds from its member key", () => {
    const members = uiClusterDocument(replicaSnapshot, 0).members as { name: string; lag_seconds?: number }[];
    assert.equal(members.find((m) => m.name === 'node2')?.lag_seconds, 2.5);
  });

  it('the holder reads its own deadline; a replica reports the DCS figure and says where it comes from', () => {
    const leader = lockReadingOf(agentSnapshot({ lockDeadlineMs: 25_000 }), 10_000, undefined);
    assert.deepEqual(leader, { leader: 'node1', ttl_s: 30, left_ms: 15_000, source: "this member's own lease deadline" });
    const replica = lockReadingOf(replicaSnapshot, 10_000, 27_000);
    assert.equal(replica.left_ms, 27_000);
    assert.match(replica.source, /TTL of the leader key's lease/);
    assert.equal(lockReadingOf(replicaSnapshot, 10_000, undefined).left_ms, undefined);
    assert.match(lockReadingOf(agentSnapshot({ view: view() }), 0, 5).source, /no leader lock/);
  });

  it('GET /ui/stream sends the lock once a second from the DCS, only while a page is open', async () => {
    let asked = 0;
    let left = 29_000;
    const server = await startApiServer({
      host: '127.0.0.1',
      port: 0,
      getSnapshot: () => replicaSnapshot,
      nowMs: () => 0,
      log: silentLog,
      lockTimeLeft: () => {
        asked++;
        left -= 1000;
        return Promise.resolve(left);
      },
    });
    try {
      await new Promise((resolve) => setTimeout(resolve, 150));
      assert.equal(asked, 0, 'nobody watches: the DCS is not asked');
      const frames = (await lockFrames(server.port, 2)) as { leader: string; left_ms: number }[];
      assert.deepEqual(
        frames.map((f) => [f.leader, f.left_ms]),
        [
          ['node1', 28_000],
          ['node1', 27_000],
        ],
      );
      const deadline = Date.now() + 5000;
      while (server.uiClients() > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
      const askedWhenClosed = asked;
      await new Promise((resolve) => setTimeout(resolve, 1300));
      assert.equal(asked, askedWhenClosed, 'the page closed: no more DCS reads');
    } finally {
      await server.close();
    }
  });
});

describe('dashboard actions on another member', () => {
  const cluster = view({ leaderName: 'node1', members: [member('node1'), member('node2'), member('node3', { api_url: 'not a url' })] });

  it('plans: own name runs here, a member is relayed to its api_url, anything else is refused', () => {
    assert.deepEqual(planMemberAction('/members/node1/restart', 'node1', cluster), { kind: 'local', endpoint: '/restart' });
    assert.deepEqual(planMemberAction('/members/node2/reinitialize', 'node1', cluster), {
      kind: 'forward',
      member: 'node2',
      apiUrl: 'http://127.0.0.1:8008/node2/patroni',
      endpoint: '/reinitialize',
    });
    const status = (path: string, clusterView: typeof cluster | undefined = cluster): number | undefined => {
      const plan = planMemberAction(path, 'node1', clusterView);
      return plan.kind === 'refuse' ? plan.response.status : undefined;
    };
    assert.equal(status('/members/evil.example.com/restart'), 404, 'not a member');
    assert.equal(status('/members/node2/switchover'), 404, 'fixed paths only');
    assert.equal(status('/members/node2/restart/../../x'), 404);
    assert.equal(status('/members/%E0%A4%A/restart'), 400);
    assert.equal(status('/members/node3/restart'), 502, 'an unusable api_url');
    const noView = planMemberAction('/members/node2/restart', 'node1', undefined);
    assert.equal(noView.kind === 'refuse' ? noView.response.status : undefined, 503, 'no view yet');
  });

  it("relays with the caller's Authorization (not the agent's), checks it here first, and passes the target's answer back", async () => {
    const seen: { url: string; headers: IncomingHttpHeaders; body: string }[] = [];
    const target = createServer((req, res) => {
      let body = '';
      req.on('data', (chunk: Buffer) => (body += chunk.toString()));
      req.on('end', () => {
        seen.push({ url: req.url ?? '', headers: req.headers, body });
        const isCaller = req.headers.authorization === `Basic ${Buffer.from('admin:pw').toString('base64')}`;
        res.writeHead(isCaller ? 200 : 401, { 'content-type': 'text/plain' });
        res.end(isCaller ? 'restarted' : 'not authenticated');
      });
    });
    await new Promise<void>((resolve) => target.listen(0, '127.0.0.1', resolve));
    const targetUrl = `http://127.0.0.1:${(target.address() as AddressInfo).port}/patroni`;
    // The agent's own REST client has other credentials: they must never reach the target.
    const rest = createRestClient({ credentials: { username: 'agent', password: 'secret', key: 'ctl.authentication' } });
    const snapshot = agentSnapshot({
      view: view({ leaderName: 'node1', members: [member('node1'), member('node2', { api_url: targetUrl })] }),
    });
    const server = await startApiServer({
      host: '127.0.0.1',
      port: 0,
      getSnapshot: () => snapshot,
      nowMs: () => 0,
      log: silentLog,
      authentication: { username: 'admin', password: 'pw' },
      forwardToMember: async (apiUrl, endpoint, body, authorization) => {
        const reply = await rest.callMember(apiUrl, endpoint, {
          method: 'POST',
          body,
          signal: AbortSignal.timeout(5000),
          onBehalfOf: { authorization },
        });
        return { status: reply.status, text: reply.text };
      },
    });
    const post = (path: string, authorization?: string): Promise<Response> =>
      fetch(`http://127.0.0.1:${server.port}${path}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...(authorization !== undefined ? { authorization } : {}) },
        body: JSON.stringify({ restart_pending: true }),
      });
    try {
      const caller = `Basic ${Buffer.from('admin:pw').toString('base64')}`;
      assert.equal((await post('/members/node2/restart')).status, 401, 'unauthenticated here: nothing relayed');
      assert.equal(seen.length, 0);
      const reply = await post('/members/node2/restart', caller);
      assert.equal(reply.status, 200);
      assert.equal(await reply.text(), 'node2: restarted');
      assert.equal(seen[0]?.url, '/restart');
      assert.equal(seen[0]?.headers.authorization, caller, "the caller's header, not the agent's");
      assert.deepEqual(JSON.parse(seen[0]?.body ?? ''), { restart_pending: true });
      assert.equal((await post('/members/nobody/restart', caller)).status, 404);
      assert.equal((await post('/members/node2/config', caller)).status, 404);
      assert.equal(seen.length, 1, 'refused requests never reach anyone');
      const put = await fetch(`http://127.0.0.1:${server.port}/members/node2/restart`, {
        method: 'DELETE',
        headers: { authorization: caller },
      });
      assert.equal(put.status, 405);
    } finally {
      await server.close();
      rest.close();
      await new Promise((resolve) => target.close(resolve));
    }
  });
});
