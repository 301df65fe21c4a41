// The proxy's HTTP endpoint in process: /status and /health documents and codes per route, /metrics from the
// rendered text (or its rendering error), 404 for everything else, without a socket.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { handleProxyHttp, needsMetrics, type ProxyHttpState, type ProxyStatus } from '../../src/proxy/proxy-http.js';

const routed: ProxyStatus = {
  primary: { kind: 'route', backend: { member: 'node1', host: '127.0.0.1', port: 5432 }, leader: 'node1@7' },
  replicas: {
    kind: 'route',
    backends: [
      { member: 'node2', host: '127.0.0.1', port: 5433 },
      { member: 'node3', host: '127.0.0.1', port: 5434 },
    ],
    isFallback: false,
  },
  connections: { primary: 3, replica: 1 },
};
const held: ProxyStatus = {
  primary: { kind: 'hold', reason: 'the DCS has not answered for 2.1 s (dcs_timeout 1 s)' },
  replicas: { kind: 'hold', reason: 'no streaming replica within replica_max_lag' },
  connections: { primary: 0, replica: 0 },
};

const get = (path: string, state: ProxyHttpState, method = 'GET') => handleProxyHttp({ method, path }, state);

describe('proxy HTTP endpoint', () => {
  it('serves /status and /health as JSON naming the routed members and the open connections', () => {
    for (const path of ['/status', '/health']) {
      const reply = get(path, { status: routed });
      assert.equal(reply.status, 200, path);
      assert.equal(reply.headers['content-type'], 'application/json');
      assert.deepEqual(JSON.parse(reply.body), {
        primary: { member: 'node1', host: '127.0.0.1', port: 5432 },
        replicas: { members: ['node2', 'node3'], is_fallback: false },
        connections: { primary: 3, replica: 1 },
      });
    }
  });

  it('answers /health with 503 while primary traffic is held, and /status with 200 and the reasons', () => {
    assert.equal(get('/health', { status: held }).status, 503);
    const status = get('/status', { status: held });
    assert.equal(status.status, 200);
    assert.deepEqual(JSON.parse(status.body), {
      primary: { held: 'the DCS has not answered for 2.1 s (dcs_timeout 1 s)' },
      replicas: { held: 'no streaming replica within replica_max_lag' },
      connections: { primary: 0, replica: 0 },
    });
  });

  it('serves the rendered metrics with their content type, and 500 with the reason when rendering failed', () => {
    assert.equal(needsMetrics({ method: 'GET', path: '/metrics' }), true);
    assert.equal(needsMetrics({ method: 'GET', path: '/status' }), false);
    assert.equal(needsMetrics({ method: 'POST', path: '/metrics' }), false);
    const ok = get('/metrics', {
      status: routed,
      metrics: { contentType: 'text/plain; version=0.0.4', text: 'pgwarden_proxy_connections 3\n' },
    });
    assert.deepEqual(ok, { status: 200, headers: { 'content-type': 'text/plain; version=0.0.4' }, body: 'pgwarden_proxy_connections 3\n' });
    const failed = get('/metrics', { status: routed, metrics: { error: 'nft list table failed' } });
    assert.deepEqual([failed.status, failed.body], [500, 'nft list table failed']);
    assert.equal(get('/metrics', { status: routed }).status, 500, 'a wiring that forgot to render says so');
  });

  it('answers 404 with a hint for other paths and methods', () => {
    for (const [method, path] of [
      ['GET', '/'],
      ['GET', '/primary'],
      ['POST', '/status'],
      ['DELETE', '/metrics'],
    ] as const) {
      const reply = get(path, { status: routed }, method);
      assert.deepEqual([reply.status, reply.body], [404, 'not found: try /metrics, /health, /status or /ui'], `${method} ${path}`);
    }
  });
});
