import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseProxyConfig, replicaFallbackOf } from '../../src/config/proxy-config.js';
import type { ClusterView } from '../../src/core/types.js';
import {
  backendOf,
  leaderIdentity,
  pickLeastConnections,
  primaryConnectionsToClose,
  routePrimary,
  routeReplicas,
  type RoutingInput,
  type RoutingOptions,
  POSITION_FRESH_MS,
  READ_ONLY_SESSION,
} from '../../src/proxy/routing.js';
import type { ObservedPosition } from '../../src/proxy/member-positions.js';
import { encodeStartupMessage, parseStartupMessage, readRewrittenStartup, withSessionSettings } from '../../src/proxy/startup-packet.js';
import { member, view } from '../sim/builders.js';

const options: RoutingOptions = { dcsTimeoutMs: 10_000, replicaMaxLag: { kind: 'bytes', bytes: 1000 }, replicaFallback: 'read-only' };

function cluster(overrides: Partial<ClusterView> & { leaderName?: string } = {}): ClusterView {
  return view({
    leaderName: 'node1',
    members: [
      member('node1', { role: 'primary', conn_url: 'postgres://10.0.0.1:5432/postgres', xlog_location: 5000 }),
      member('node2', { conn_url: 'postgres://10.0.0.2:5433/postgres', xlog_location: 4500 }),
      member('node3', { conn_url: 'postgres://10.0.0.3:5434/postgres', xlog_location: 3000 }),
    ],
    ...overrides,
  });
}

function input(current: ClusterView | undefined, extra: Partial<RoutingInput> = {}): RoutingInput {
  return {
    view: current,
    confirmedAtMs: 1000,
    nowMs: 2000,
    confirmedPrimary: leaderIdentity(current),
    wallIso: '2026-11-24T12:00:00.000Z',
    failoverSeenAtMs: undefined,
    ...extra,
  };
}

describe('primary routing', () => {
  it('routes to the lock holder once it confirmed itself writable', () => {
    const route = routePrimary(input(cluster()), options);
    assert.equal(route.kind, 'route');
    assert.deepEqual(route.kind === 'route' ? route.backend : undefined, { member: 'node1', host: '10.0.0.1', port: 5432 });
  });

  it('holds, and asks for a probe, while a new lock holder has not confirmed it is writable', () => {
    const current = cluster({ leaderName: 'node2' });
    const route = routePrimary(input(current, { confirmedPrimary: leaderIdentity(cluster()) }), options);
    assert.equal(route.kind, 'hold');
    assert.equal(route.kind === 'hold' ? route.probe?.member.name : undefined, 'node2');
  });

  it('treats a lock taken again by the same member as a new holder to confirm', () => {
    const before = cluster({ leader: { name: 'node1', modRevision: '10', createRevision: '10' } });
    const renewed = cluster({ leader: { name: 'node1', modRevision: '15', createRevision: '10' } });
    const retaken = cluster({ leader: { name: 'node1', modRevision: '20', createRevision: '20' } });
    assert.equal(routePrimary(input(renewed, { confirmedPrimary: leaderIdentity(before) }), options).kind, 'route');
    assert.equal(routePrimary(input(retaken, { confirmedPrimary: leaderIdentity(before) }), options).kind, 'hold');
  });

  it('fails closed without a leader key, without a member key, or with a view older than the bound', () => {
    assert.match(JSON.stringify(routePrimary(input(cluster({ leader: undefined })), options)), /no leader key/);
    assert.match(JSON.stringify(routePrimary(input(cluster({ members: [member('node2')] })), options)), /has no member key/);
    assert.match(
      JSON.stringify(routePrimary(input(cluster(), { nowMs: 1000 + 10_001 }), options)),
      /has not confirmed the leader for 10001 ms/,
    );
    assert.equal(routePrimary(input(cluster(), { nowMs: 1000 + 10_000 }), options).kind, 'route');
    assert.match(JSON.stringify(routePrimary(input(undefined), options)), /no cluster view/);
  });

  it('caps the staleness bound at the cluster ttl', () => {
    const shortTtl = cluster({ config: { ttl: 5, loop_wait: 1, retry_timeout: 2, maximum_lag_on_failover: 0 } });
    assert.equal(routePrimary(input(shortTtl, { nowMs: 1000 + 5001 }), options).kind, 'hold');
    assert.equal(routePrimary(input(shortTtl, { nowMs: 1000 + 4999 }), options).kind, 'route');
  });

  it('holds new clients as soon as a due switchover away from the leader appears, keeping its open connections', () => {
    const switching = cluster({ failover: { leader: 'node1', member: 'node2' } });
    const route = routePrimary(input(switching, { failoverSeenAtMs: 1500 }), options);
    assert.equal(route.kind, 'hold');
    assert.equal(route.kind === 'hold' ? route.keep : undefined, 'node1');
    assert.deepEqual(primaryConnectionsToClose(route, new Set(['node1', 'node3'])), ['node3']);
    assert.equal(
      routePrimary(input(switching, { failoverSeenAtMs: 1500, nowMs: 1500 + 20_001, confirmedAtMs: 1500 + 20_000 }), options).kind,
      'route',
      'an intent nobody acts on stops holding after 2*max(10, loop_wait) s',
    );
    const scheduled = cluster({ failover: { leader: 'node1', member: 'node2', scheduled_at: '2026-11-24T13:00:00+00:00' } });
    assert.equal(
      routePrimary(input(scheduled, { failoverSeenAtMs: 1500 }), options).kind,
      'route',
      'a scheduled switchover holds only once due',
    );
    const done = cluster({ leaderName: 'node2', failover: { leader: 'node1', member: 'node2' } });
    assert.equal(
      routePrimary(input(done, { failoverSeenAtMs: 1500 }), options).kind,
      'route',
      'the new leader is not held by the leftover intent',
    );
  });

  it('closes every primary connection that is not on the routed lock holder, and all of them while holding', () => {
    const open = new Set(['node1', 'node2']);
    assert.deepEqual(primaryConnectionsToClose(routePrimary(input(cluster()), options), open), ['node2']);
    assert.deepEqual(primaryConnectionsToClose(routePrimary(input(cluster({ leader: undefined })), options), open), ['node1', 'node2']);
  });
});

describe('replica routing', () => {
  it('offers streaming replicas within the lag bound, never the leader', () => {
    const route = routeReplicas(input(cluster()), options);
    assert.deepEqual(route.kind === 'route' ? route.backends.map((backend) => backend.member) : route, ['node2']);
  });

  it('excludes noloadbalance members and members that are not running', () => {
    const current = cluster({
      members: [
        member('node1', { role: 'primary', xlog_location: 5000 }),
        member('node2', { xlog_location: 5000, tags: { noloadbalance: true } }),
        member('node3', { xlog_location: 5000, state: 'starting' }),
        member('node4', { xlog_location: 5000, state: 'streaming', conn_url: 'postgres://10.0.0.4:5432/postgres' }),
      ],
    });
    const route = routeReplicas(input(current), options);
    assert.deepEqual(route.kind === 'route' ? route.backends.map((backend) => backend.member) : route, ['node4']);
  });

  it('falls back to the primary when no replica qualifies, or holds when fallback is off', () => {
    const lagging: RoutingOptions = { ...options, replicaMaxLag: { kind: 'bytes', bytes: 100 } };
    const route = routeReplicas(input(cluster()), lagging);
    assert.equal(route.kind === 'route' && route.isFallback, true);
    assert.deepEqual(route.kind === 'route' ? route.backends.map((backend) => backend.member) : [], ['node1']);
    assert.deepEqual(route.kind === 'route' ? route.backends[0]?.sessionSettings : undefined, { default_transaction_read_only: 'on' });
    const readWrite = routeReplicas(input(cluster()), { ...lagging, replicaFallback: 'read-write' });
    assert.equal(readWrite.kind === 'route' && readWrite.backends[0]?.sessionSettings, undefined, 'read-write: a plain session');
    const off = routeReplicas(input(cluster()), { ...lagging, replicaFallback: 'off' });
    assert.equal(off.kind, 'hold');
    assert.match(off.kind === 'hold' ? off.reason : '', /replica_fallback: off/);
    // Real replicas never get the rewrite: they are read-only anyway.
    const normal = routeReplicas(input(cluster()), options);
    assert.equal(normal.kind === 'route' && normal.backends.every((backend) => backend.sessionSettings === undefined), true);
  });

  it('replica_fallback: read-only by default, replica_fallback_to_primary: false is off, the new key wins', () => {
    assert.equal(replicaFallbackOf({}), 'read-only');
    assert.equal(replicaFallbackOf({ replica_fallback_to_primary: true }), 'read-only');
    assert.equal(replicaFallbackOf({ replica_fallback_to_primary: false }), 'off');
    assert.equal(replicaFallbackOf({ replica_fallback: 'read-write', replica_fallback_to_primary: false }), 'read-write');
    const config = (fallback: string): string =>
      `scope: s\netcd3:\n  hosts: 127.0.0.1:2379\nproxy:\n  primary_listen: 127.0.0.1:5000\n  replica_fallback: ${fallback}\n`;
    assert.equal(parseProxyConfig(config('read-write'), 'p.yml').proxy.replica_fallback, 'read-write');
    assert.throws(() => parseProxyConfig(config('readonly'), 'p.yml'), /proxy\.replica_fallback: .*read-only/);
  });

  it("a replica's own fresh answer decides: not streaming, behind in bytes or in time, or promoted is out", () => {
    const at = (position: Partial<ObservedPosition>): ObservedPosition => ({
      isInRecovery: true,
      lsn: 5000,
      isStreaming: true,
      replayAgeMs: 0,
      observedAtMs: 1900,
      ...position,
    });
    const routed = (positions: Record<string, ObservedPosition>, routing: RoutingOptions = options): string[] | string => {
      const route = routeReplicas(input(cluster(), { positions: new Map(Object.entries(positions)) }), routing);
      return route.kind === 'route' ? route.backends.map((backend) => backend.member) : route.reason;
    };
    const primary = at({ isInRecovery: false, lsn: 9000, isStreaming: undefined });
    // Published: node2 500 behind, node3 2000 behind. Fresh: node3 caught up, node2 stopped streaming (Patroni issue 3717).
    assert.deepEqual(routed({ node1: primary, node2: at({ lsn: 9000, isStreaming: false }), node3: at({ lsn: 9000 }) }), ['node3']);
    // The primary's own position is the reference: node2 is 1500 bytes behind it, though within 1000 of what was published.
    assert.deepEqual(routed({ node1: primary, node2: at({ lsn: 7500 }), node3: at({ lsn: 8500 }) }), ['node3']);
    // A member that answers it is not in recovery is no replica, whatever its key says.
    assert.deepEqual(routed({ node1: primary, node2: at({ isInRecovery: false }), node3: at({ lsn: 9000 }) }), ['node3']);
    // An answer older than POSITION_FRESH_MS does not count: the published positions decide again (node2 within 1000).
    assert.deepEqual(routed({ node2: at({ isStreaming: false, observedAtMs: 2000 - POSITION_FRESH_MS - 1 }) }), ['node2']);
    // In time: behind and its last replayed transaction older than the bound is out; caught up is in, however idle.
    const inTime: RoutingOptions = { ...options, replicaMaxLag: { kind: 'time', ms: 10_000 } };
    assert.deepEqual(
      routed({ node1: primary, node2: at({ lsn: 8000, replayAgeMs: 60_000 }), node3: at({ lsn: 9000, replayAgeMs: 3_600_000 }) }, inTime),
      ['node3'],
    );
    assert.deepEqual(routed({ node1: primary, node2: at({ lsn: 8000, replayAgeMs: 2000 }) }, inTime), ['node2']);
    // Without an answer there is no replay time: a time bound excludes the replica rather than guess.
    assert.equal(routeReplicas(input(cluster()), { ...inTime, replicaFallback: 'off' }).kind, 'hold');
  });

  it('without fresh answers, a replica that published another replication state than streaming is out', () => {
    const current = cluster({
      members: [
        member('node1', { role: 'primary', xlog_location: 5000 }),
        member('node2', { xlog_location: 5000, replication_state: 'stopped', conn_url: 'postgres://10.0.0.2:5432/postgres' }),
        member('node3', { xlog_location: 5000, replication_state: 'streaming', conn_url: 'postgres://10.0.0.3:5432/postgres' }),
      ],
    });
    const route = routeReplicas(input(current), options);
    assert.deepEqual(route.kind === 'route' ? route.backends.map((backend) => backend.member) : route, ['node3']);
  });

  it('holds reads too when the view is stale', () => {
    assert.equal(routeReplicas(input(cluster(), { nowMs: 50_000 }), options).kind, 'hold');
  });

  it('picks the least-loaded replica and rotates among equally loaded ones', () => {
    const backends = [backendOf(member('node3'))!, backendOf(member('node2'))!];
    assert.equal(
      pickLeastConnections(
        backends,
        new Map([
          ['node2', 3],
          ['node3', 1],
        ]),
      )?.member,
      'node3',
    );
    const picks = [0, 1, 2, 3].map((rotation) => pickLeastConnections(backends, new Map(), rotation)?.member);
    assert.deepEqual(picks, ['node2', 'node3', 'node2', 'node3']);
    assert.equal(pickLeastConnections([], new Map()), undefined);
  });

  it('reads host and port from conn_url, IPv6 included, and rejects garbage', () => {
    assert.deepEqual(backendOf(member('a', { conn_url: 'postgres://[fd00::1]:6543/postgres' })), {
      member: 'a',
      host: 'fd00::1',
      port: 6543,
    });
    assert.deepEqual(backendOf(member('b', { conn_url: 'postgres://db.internal/postgres' })), {
      member: 'b',
      host: 'db.internal',
      port: 5432,
    });
    assert.equal(backendOf(member('c', { conn_url: 'not a url' })), undefined);
  });
});

describe('proxy config', () => {
  const base = 'scope: demo\netcd3:\n  hosts: 127.0.0.1:2379\n';
  it('applies defaults and parses sizes', () => {
    const config = parseProxyConfig(`${base}proxy:\n  primary_listen: 127.0.0.1:5000\n  replica_max_lag: 10MB\n`, 'proxy.yml');
    assert.equal(config.proxy.hold_timeout, 30);
    assert.deepEqual(config.proxy.replica_max_lag, { kind: 'bytes', bytes: 10 * 1024 * 1024 });
    assert.deepEqual(config.proxy.primary_listen, { host: '127.0.0.1', port: 5000 });
  });

  it('takes replica_max_lag in bytes or as a duration, which needs proxy.monitor', () => {
    const lagOf = (value: string, extra = ''): unknown =>
      parseProxyConfig(`${base}proxy:\n  primary_listen: 127.0.0.1:5000\n  replica_max_lag: ${value}\n${extra}`, 'p.yml').proxy
        .replica_max_lag;
    const monitor = '  monitor:\n    username: pgwarden_proxy\n    password: pw\n';
    assert.deepEqual(lagOf('1048576'), { kind: 'bytes', bytes: 1048576 });
    assert.deepEqual(lagOf('16kB'), { kind: 'bytes', bytes: 16384 });
    assert.deepEqual(lagOf('10s', monitor), { kind: 'time', ms: 10_000 });
    assert.deepEqual(lagOf('500ms', monitor), { kind: 'time', ms: 500 });
    assert.deepEqual(lagOf('2min', monitor), { kind: 'time', ms: 120_000 });
    assert.deepEqual(parseProxyConfig(`${base}proxy:\n  primary_listen: 127.0.0.1:5000\n`, 'p.yml').proxy.replica_max_lag, {
      kind: 'bytes',
      bytes: 1024 * 1024,
    });
    assert.throws(() => lagOf('10s'), /replica_max_lag is a duration, which needs each replica's replay time: add proxy\.monitor/);
    assert.throws(() => lagOf('10 parsecs'), /replica_max_lag: expected bytes .* or a duration like 10s, got "10 parsecs"/);
    assert.throws(() => lagOf('1MB', '  monitor:\n    password: pw\n'), /proxy\.monitor\.username/);
    assert.throws(() => lagOf('1MB', '  monitor:\n    username: u\n    pasword: pw\n'), /proxy\.monitor/);
    const parsed = parseProxyConfig(`${base}proxy:\n  primary_listen: 127.0.0.1:5000\n${monitor}`, 'p.yml').proxy.monitor;
    assert.deepEqual(parsed, { username: 'pgwarden_proxy', password: 'pw', database: 'postgres', interval: 0.2 });
  });

  it('names the key and what to write for bad input', () => {
    assert.throws(() => parseProxyConfig(base, 'p.yml'), /proxy: .*add a proxy: section/);
    assert.throws(
      () => parseProxyConfig(`${base}proxy:\n  primary_listen: nowhere\n`, 'p.yml'),
      /proxy\.primary_listen: expected host:port/,
    );
    assert.throws(
      () => parseProxyConfig(`${base}proxy:\n  primary_listen: 127.0.0.1:5000\n  replica_max_lag: lots\n`, 'p.yml'),
      /replica_max_lag: expected bytes \(a number or a size like 10MB\) or a duration like 10s/,
    );
    assert.throws(
      () => parseProxyConfig(`${base}proxy:\n  primary_listen: 127.0.0.1:5000\n  replica_listen: 127.0.0.1:5000\n`, 'p.yml'),
      /same address/,
    );
    assert.throws(() => parseProxyConfig('scope: demo\nproxy:\n  primary_listen: 127.0.0.1:5000\n', 'p.yml'), /no etcd endpoints/);
    assert.throws(() => parseProxyConfig('scope: [unclosed', 'p.yml'), /not valid YAML/);
    assert.throws(
      () => parseProxyConfig(`${base}proxy:\n  primary_listen: localhost:5000\n  data_path: kernel\n`, 'p.yml'),
      /data_path: kernel needs an IPv4 address/,
    );
    assert.throws(
      () => parseProxyConfig(`${base}proxy:\n  primary_listen: 127.0.0.1:5000\n  data_path: turbo\n`, 'p.yml'),
      /proxy\.data_path/,
    );
    assert.equal(parseProxyConfig(`${base}proxy:\n  primary_listen: 0.0.0.0:5000\n  data_path: kernel\n`, 'p.yml').proxy.kernel_lease, 2);
  });

  it('reads how to reach the REST APIs from ctl and restapi, refusing a misspelled key there', () => {
    const proxy = 'proxy:\n  primary_listen: 127.0.0.1:5000\n';
    const config = parseProxyConfig(`${base}${proxy}ctl:\n  cacert: /ca.pem\n  insecure: true\nrestapi:\n  certfile: /c.pem\n`, 'p.yml');
    assert.deepEqual(config.rest, {
      cacert: { path: '/ca.pem', key: 'ctl.cacert' },
      certfile: { path: '/c.pem', key: 'restapi.certfile' },
      isInsecure: true,
    });
    assert.throws(() => parseProxyConfig(`${base}${proxy}ctl:\n  cacrt: /ca.pem\n`, 'p.yml'), /ctl\.cacrt: .*did you mean ctl\.cacert\?/);
  });
});

describe('startup packet rewrite (read-only fallback sessions)', () => {
  const startup = (parameters: [string, string][]): Buffer => encodeStartupMessage({ kind: 'startup', protocol: 196608, parameters });

  it("adds -c default_transaction_read_only=on to options, after the client's own", () => {
    const parsed = parseStartupMessage(
      startup([
        ['user', 'app'],
        ['database', 'db'],
      ]),
    );
    assert.equal(parsed.kind, 'startup');
    if (parsed.kind !== 'startup') return;
    const rewritten = parseStartupMessage(encodeStartupMessage(withSessionSettings(parsed, READ_ONLY_SESSION)));
    assert.deepEqual(rewritten.kind === 'startup' ? rewritten.parameters : [], [
      ['user', 'app'],
      ['database', 'db'],
      ['options', '-c default_transaction_read_only=on'],
    ]);
    const withOptions = parseStartupMessage(
      startup([
        ['user', 'app'],
        ['options', '-c default_transaction_read_only=off'],
      ]),
    );
    if (withOptions.kind !== 'startup') return assert.fail('a startup message');
    assert.deepEqual(withSessionSettings(withOptions, READ_ONLY_SESSION).parameters, [
      ['user', 'app'],
      ['options', '-c default_transaction_read_only=off -c default_transaction_read_only=on'],
    ]);
  });

  it('declines TLS itself and rewrites the startup that follows; refuses garbage', async () => {
    const { createServer, connect } = await import('node:net');
    const results: (Buffer | undefined)[] = [];
    const server = createServer({ pauseOnConnect: true }, (socket) => {
      void readRewrittenStartup(socket, READ_ONLY_SESSION, new AbortController().signal, 2000).then((bytes) => {
        results.push(bytes);
        socket.end();
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as { port: number }).port;
    try {
      const sslRequest = Buffer.alloc(8);
      sslRequest.writeInt32BE(8, 0);
      sslRequest.writeInt32BE(80877103, 4);
      const answers: string[] = [];
      await new Promise<void>((resolve) => {
        const client = connect(port, '127.0.0.1', () => client.write(sslRequest));
        client.on('data', (data) => {
          answers.push(data.toString());
          if (answers.length === 1) client.write(startup([['user', 'app']]));
        });
        client.on('close', () => resolve());
      });
      assert.deepEqual(answers, ['N']);
      const first = results[0] === undefined ? undefined : parseStartupMessage(results[0]);
      assert.deepEqual(first?.kind === 'startup' ? first.parameters : [], [
        ['user', 'app'],
        ['options', '-c default_transaction_read_only=on'],
      ]);
      await new Promise<void>((resolve) => {
        const client = connect(port, '127.0.0.1', () => client.write(Buffer.from('GET / HTTP/1.1\r\n\r\n')));
        client.on('close', () => resolve());
        client.on('error', () => resolve());
      });
      assert.equal(results[1], undefined, 'an HTTP request is no startup packet');
    } finally {
      server.close();
    }
  });
});
