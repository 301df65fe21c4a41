// The dashboard: GET /ui is one self-contained page; GET /ui/stream sends the cluster on connect and after each cycle
// that changed it, every new decision, refuses clients beyond its bound and forgets a client that went away.
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { describe, it } from 'node:test';
import { Script } from 'node:vm';
import type { AgentSnapshot } from '../../src/agent/snapshot.js';
import { DecisionEvents } from '../../src/agent/decision-events.js';
import { handleRequest } from '../../src/api/routes.js';
import { startApiServer } from '../../src/api/server.js';
import { uiClusterDocument } from '../../src/api/ui-stream.js';
import { silentLog } from '../../src/util/log.js';
import { agentSnapshot, member, view } from '../sim/builders.js';

interface Frame {
  readonly event: string;
  readonly data: unknown;
}

/** Opens GET /ui/stream and collects its frames until `close` is called. */
function openStream(
  port: number,
): Promise<{ status: number; frames: Frame[]; next: (event: string) => Promise<Frame>; close: () => void }> {
  return new Promise((resolve, reject) => {
    const frames: Frame[] = [];
    const waiters: (() => void)[] = [];
    const req = request({ host: '127.0.0.1', port, path: '/ui/stream' }, (response) => {
      let buffer = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => {
        buffer += chunk;
        let end = buffer.indexOf('\n\n');
        while (end >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const event = /^event: (.*)$/m.exec(block)?.[1];
          const data = /^data: (.*)$/m.exec(block)?.[1];
          if (event !== undefined && data !== undefined) frames.push({ event, data: JSON.parse(data) as unknown });
          for (const wake of waiters.splice(0)) wake();
          end = buffer.indexOf('\n\n');
        }
      });
      const seen = new Map<string, number>();
      const next = async (event: string): Promise<Frame> => {
        const from = seen.get(event) ?? 0;
        for (;;) {
          const index = frames.findIndex((frame, at) => at >= from && frame.event === event);
          if (index >= 0) {
            seen.set(event, index + 1);
            return frames[index] as Frame;
          }
          await new Promise<void>((wake) => {
            waiters.push(wake);
            setTimeout(wake, 2000).unref();
          });
          if (response.destroyed) throw new Error(`stream closed before a ${event} frame`);
        }
      };
      resolve({ status: response.statusCode ?? 0, frames, next, close: () => req.destroy() });
    });
    req.on('error', (error) => (req.destroyed ? undefined : reject(error)));
    req.end();
  });
}

describe('dashboard', () => {
  it('GET /ui is a self-contained HTML page that loads nothing from elsewhere', () => {
    const reply = handleRequest({ method: 'GET', path: '/ui', query: new URLSearchParams() }, { snapshot: agentSnapshot(), nowMs: 0 });
    assert.equal(reply.status, 200);
    assert.match(reply.contentType, /^text\/html/);
    assert.match(reply.headers?.['content-security-policy'] ?? '', /default-src 'none'/);
    const page = reply.body ?? '';
    assert.match(page, /<script>/);
    assert.doesNotMatch(page, /\b(src|href)=["']?https?:/, 'no external script, style or image');
    assert.doesNotMatch(page, /<script src|<link (?!rel="icon" href="data:,")/, 'no script or stylesheet file');
    const script = page.split('<script>')[1]?.split('</script>')[0] ?? '';
    assert.doesNotThrow(() => new Script(script), 'the inline script parses');
    assert.equal(
      handleRequest({ method: 'GET', path: '/ui/nope', query: new URLSearchParams() }, { snapshot: agentSnapshot(), nowMs: 0 }).status,
      404,
    );
  });

  it("a 401 to the dashboard's own request has no WWW-Authenticate (the page asks; the browser's dialog would hold it)", async () => {
    const server = await startApiServer({
      host: '127.0.0.1',
      port: 0,
      getSnapshot: () => agentSnapshot(),
      nowMs: () => 0,
      log: silentLog,
      authentication: { username: 'admin', password: 'pw' },
    });
    try {
      const url = `http://127.0.0.1:${server.port}/switchover`;
      const fromPage = await fetch(url, { method: 'POST', headers: { 'x-pgwarden-ui': '1' }, body: '{}' });
      assert.equal(fromPage.status, 401);
      assert.equal(fromPage.headers.get('www-authenticate'), null);
      const fromOthers = await fetch(url, { method: 'POST', body: '{}' });
      assert.equal(fromOthers.status, 401);
      assert.equal(fromOthers.headers.get('www-authenticate'), 'Basic realm="Patroni"');
    } finally {
      await server.close();
    }
  });

  it('the cluster document names the leader, its lock time left on the leader, members with lag, and the history', () => {
    const snapshot = agentSnapshot({
      lockDeadlineMs: 25_000,
      view: {
        ...view({ leaderName: 'node1', members: [member('node1', { timeline: 2 }), member('node2', { xlog_location: 100, timeline: 2 })] }),
        optime: 300,
        history: [[1, 50, 'no recovery target specified', '2026-01-01T00:00:00+00:00', 'node1']],
      },
    });
    const document = uiClusterDocument(snapshot, 10_000);
    assert.equal(document.leader, 'node1');
    assert.equal(document.lock_left_ms, 15_000);
    assert.equal(document.this_member, 'node1');
    const members = document.members as { name: string; lag?: number; role: string }[];
    assert.deepEqual(
      members.map((m) => [m.name, m.role, m.lag]),
      [
        ['node1', 'leader', undefined],
        ['node2', 'replica', 200],
      ],
    );
    assert.equal((document.history as unknown[]).length, 1);
    assert.equal(uiClusterDocument(agentSnapshot({ lockDeadlineMs: undefined }), 0).lock_left_ms, undefined);
  });

  it('GET /ui/stream sends the cluster and decisions, then changes after a cycle; bounded; cleans up on disconnect', async () => {
    const events = new DecisionEvents();
    events.add({ at: '2026-01-01T00:00:00.000Z', member: 'node1', role: 'master', timeline: 1, actions: [], reason: 'first' });
    let snapshot: AgentSnapshot = agentSnapshot({ events });
    const listeners = new Set<() => void>();
    const peerCalls: string[] = [];
    const server = await startApiServer({
      host: '127.0.0.1',
      port: 0,
      getSnapshot: () => snapshot,
      nowMs: () => 0,
      log: silentLog,
      subscribeCycles: (listener) => {
        listeners.add(listener);
        return () => listeners.delete(listener);
      },
      fetchPeerEvents: (apiUrl, since) => {
        peerCalls.push(`${apiUrl} ${since}`);
        const said = {
          seq: 1,
          at: '2026-01-01T00:00:01.000Z',
          member: 'node2',
          role: 'replica',
          timeline: 1,
          actions: [],
          reason: 'peer says',
        };
        return Promise.resolve(apiUrl.includes('node2') ? [said] : []);
      },
    });
    try {
      const first = await openStream(server.port);
      assert.equal(first.status, 200);
      assert.equal(((await first.next('cluster')).data as { leader: string }).leader, 'node1');
      assert.deepEqual(
        ((await first.next('events')).data as { reason: string }[]).map((e) => e.reason),
        ['first'],
      );
      // The peer's decisions come from its GET /events.
      assert.equal(((await first.next('event')).data as { reason: string }).reason, 'peer says');
      assert.equal(listeners.size, 1, 'subscribed once, for the history even without a client');
      const samples = (await first.next('samples')).data as { optime: number; lag: Record<string, number> }[];
      assert.equal(samples.length, 1, 'a first sample when the history was empty');
      assert.equal(samples[0]?.optime, 1000);
      // A cycle that changed the view: a new cluster frame; the new own decision: an event frame.
      snapshot = agentSnapshot({ events, view: view({ leaderName: 'node2' }) });
      events.add({ at: '2026-01-01T00:00:02.000Z', member: 'node1', role: 'replica', timeline: 1, actions: ['demote'], reason: 'demoted' });
      for (const listener of listeners) listener();
      assert.equal(((await first.next('cluster')).data as { leader: string }).leader, 'node2');
      assert.equal(((await first.next('event')).data as { reason: string }).reason, 'demoted');
      // Bounded: 20 clients, the 21st gets 503.
      const more = await Promise.all(Array.from({ length: 19 }, () => openStream(server.port)));
      assert.ok(more.every((client) => client.status === 200));
      const refused = await openStream(server.port);
      assert.equal(refused.status, 503);
      refused.close();
      for (const client of [first, ...more]) client.close();
      const deadline = Date.now() + 5000;
      while (server.uiClients() > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
      assert.equal(server.uiClients(), 0, 'every client that went away is forgotten');
      assert.equal(listeners.size, 1, 'still sampling the history');
      assert.ok(peerCalls.length >= 1);
    } finally {
      await server.close();
    }
    assert.equal(listeners.size, 0, 'unsubscribed when the server closes');
  });
});
