// The proxy engine on real sockets, with a scripted cluster view instead of etcd, tagged echo servers as backends and
// a fake clock for every deadline (dcs_timeout, hold_timeout), so what depends on time is driven by the test.
import { leaderIdentity } from '../../src/proxy/routing.js';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { after, before, beforeEach, describe, it } from 'node:test';
import { proxySectionSchema } from '../../src/config/proxy-config.js';
import type { ClusterView, MemberRecord } from '../../src/core/types.js';
import { pickFreePorts } from '../../src/local/free-port.js';
import { ProxyServer } from '../../src/proxy/proxy-server.js';
import { PgwardenError } from '../../src/util/errors.js';
import { silentLog } from '../../src/util/log.js';
import { waitUntil } from '../../src/util/wait-until.js';
import { FakeClock } from '../kit/fake-clock.js';
import { member, view } from '../sim/builders.js';

class ScriptedCluster {
  current: ClusterView | undefined;
  isReachable = true;
  /** Reads that failed because the DCS was made unreachable: shows the proxy kept asking. */
  failedLoads = 0;
  #revision = 100;
  readonly #watchers = new Set<() => void>();

  set(next: ClusterView): void {
    this.current = { ...next, revision: String(++this.#revision) };
    for (const wake of [...this.#watchers]) wake();
  }

  readonly source = {
    loadCluster: async (): Promise<ClusterView> => {
      if (!this.isReachable || this.current === undefined) {
        this.failedLoads++;
        throw new PgwardenError('PGW_DCS_UNAVAILABLE', 'etcd unreachable (scripted)', { isRetryable: true });
      }
      return this.current;
    },
    watch: (_from: string, signal: AbortSignal): Promise<void> =>
      new Promise<void>((resolve, reject) => {
        const wake = (): void => {
          this.#watchers.delete(wake);
          resolve();
        };
        this.#watchers.add(wake);
        signal.addEventListener(
          'abort',
          () => {
            this.#watchers.delete(wake);
            reject(signal.reason as Error);
          },
          { once: true },
        );
      }),
  };
}

/** Says its name on connect, then echoes with backpressure (pipe); answers a half-close with "bye" before closing. */
async function taggedEcho(name: string): Promise<{ server: Server; port: number; open: () => number }> {
  let open = 0;
  const server = createServer({ allowHalfOpen: true }, (socket) => {
    open++;
    socket.on('close', () => open--);
    socket.write(`${name}|`);
    socket.pipe(socket, { end: false });
    socket.on('end', () => socket.end('bye'));
    socket.on('error', () => undefined);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { server, port: (server.address() as { port: number }).port, open: () => open };
}

async function dial(port: number): Promise<{ socket: Socket; received: () => string; closed: Promise<void>; isClosed: () => boolean }> {
  const socket = connect({ host: '127.0.0.1', port, allowHalfOpen: true });
  let text = '';
  let isClosed = false;
  socket.on('data', (data: Buffer) => (text += data.toString()));
  socket.on('error', () => undefined);
  // The proxy closing the client side shows as 'end' on this half-open socket.
  const closed = Promise.race([once(socket, 'end'), once(socket, 'close')]).then(() => {
    isClosed = true;
  });
  await once(socket, 'connect');
  return { socket, received: () => text, closed, isClosed: () => isClosed };
}

const until = (describe: string, predicate: () => boolean): Promise<true> =>
  waitUntil(() => predicate() || undefined, { timeoutMs: 5000, intervalMs: 10, describe });

const startSettings = {
  primary_listen: '127.0.0.1:0',
  replica_listen: '127.0.0.1:0',
  api_listen: '127.0.0.1:0',
  hold_timeout: 1.5,
  dcs_timeout: 0.6,
  shutdown_grace: 0,
};

describe('proxy engine', () => {
  const scripted = new ScriptedCluster();
  const clock = new FakeClock(0);
  let writable = new Set<string>();
  /** Every member the proxy asked whether it is the writable primary, in order. */
  const probed: string[] = [];
  const backends: { server: Server; port: number; open: () => number }[] = [];
  let proxy: ProxyServer;
  let createRevision = 0;
  const clusterWith = (leaderName: string | undefined, revision = String(createRevision)): ClusterView =>
    view({
      ...(leaderName === undefined
        ? { leader: undefined }
        : { leader: { name: leaderName, modRevision: revision, createRevision: revision } }),
      members: backends.map((backend, index) =>
        member(`node${index + 1}`, {
          role: `node${index + 1}` === leaderName ? 'primary' : 'replica',
          conn_url: `postgres://127.0.0.1:${backend.port}/postgres`,
          xlog_location: 100,
        }),
      ),
    });

  /** The state every test starts from: the DCS answers, `leader` holds a fresh lock, and the proxy routes to it. */
  async function routeTo(leader: string): Promise<void> {
    scripted.isReachable = true;
    writable = new Set([leader]);
    const next = clusterWith(leader, String(++createRevision));
    scripted.set(next);
    // This term's route: the previous term's (same member) is still up until the proxy reads the new view, and the
    // switch to the new term cuts the connections opened before it.
    await until(`a primary route to ${leader} in its new term`, () => {
      const route = proxy.status().primary;
      return route.kind === 'route' && route.leader === leaderIdentity(next);
    });
  }

  before(async () => {
    for (const name of ['node1', 'node2', 'node3']) backends.push(await taggedEcho(name));
    scripted.set(clusterWith('node1'));
    writable.add('node1');
    proxy = await ProxyServer.start({
      section: proxySectionSchema.parse(startSettings),
      source: scripted.source,
      probe: async (candidate: MemberRecord) => {
        probed.push(candidate.name);
        return writable.has(candidate.name);
      },
      nowMs: () => clock.nowMs(),
      log: silentLog,
      refreshMs: 100,
    });
  });

  beforeEach(async () => {
    await routeTo('node1');
    // Connections of the test before are closed asynchronously: start from none.
    await until('no open connection from an earlier test', () => {
      const { connections } = proxy.status();
      return connections.primary === 0 && connections.replica === 0;
    });
  });

  after(async () => {
    await proxy.stop(0);
    for (const backend of backends) backend.server.close();
  });

  it('forwards primary clients to the confirmed lock holder and spreads readers over replicas', async () => {
    const client = await dial(proxy.ports.primary);
    client.socket.write('ping');
    await until('the echo', () => client.received() === 'node1|ping');
    const readers = await Promise.all([dial(proxy.ports.replica!), dial(proxy.ports.replica!)]);
    await until('replica greetings', () => readers.every((reader) => reader.received().length > 0));
    assert.deepEqual(readers.map((reader) => reader.received()).sort(), ['node2|', 'node3|']);
    for (const socket of [client, ...readers]) socket.socket.destroy();
  });

  it('passes a half-close through and still delivers the reply', async () => {
    const client = await dial(proxy.ports.primary);
    await until('the greeting', () => client.received() === 'node1|');
    client.socket.end();
    await client.closed;
    assert.equal(client.received(), 'node1|bye');
  });

  it(
    'applies backpressure to a slow reader: every byte arrives in order while the proxy buffers stay bounded',
    { timeout: 60_000 },
    async () => {
      // Far more than the proxy may hold, and more than the kernel can absorb: loopback receive buffers autotune up to
      // tcp_rmem's maximum (32 MB here), four sockets deep, so a smaller payload could fit without any backpressure.
      const payload = randomBytes(256 * 1024 * 1024);
      const bound = 1024 * 1024;
      const expected = createHash('sha256').update('node1|').update(payload).update('bye').digest('hex');
      const client = connect({ host: '127.0.0.1', port: proxy.ports.primary, allowHalfOpen: true });
      client.on('error', () => undefined);
      await once(client, 'connect');
      // The reader is stalled at first: it reads nothing while the whole payload is offered.
      client.pause();
      for (let offset = 0; offset < payload.length; offset += 64 * 1024) client.write(payload.subarray(offset, offset + 64 * 1024));
      client.end();
      // Backpressure has gone round the loop (proxy -> slow client, echo -> proxy, proxy -> echo) once the proxy
      // stopped reading from this client: from then on the rest of the payload waits in the sender.
      await waitUntil(() => proxy.flow().pausedClients === 1 || undefined, {
        timeoutMs: 30_000,
        intervalMs: 10,
        describe: 'the proxy to stop reading from the client',
      });
      const stalled = proxy.flow();
      assert.ok(stalled.bufferedBytes < bound, `the proxy holds ${stalled.bufferedBytes} bytes for a stalled reader (bound ${bound})`);
      assert.ok(
        stalled.bytesFromClients < payload.length && client.writableLength > 0,
        `the proxy read ${stalled.bytesFromClients} of ${payload.length} bytes; the sender still holds ${client.writableLength}`,
      );
      // Now it reads, slowly: one chunk, then a pause.
      const hash = createHash('sha256');
      let receivedBytes = 0;
      let maxBuffered = 0;
      client.on('data', (chunk: Buffer) => {
        hash.update(chunk);
        receivedBytes += chunk.length;
        maxBuffered = Math.max(maxBuffered, proxy.flow().bufferedBytes);
        client.pause();
        setTimeout(() => client.resume(), 1);
      });
      const ended = once(client, 'end');
      client.resume();
      await ended;
      assert.equal(receivedBytes, 'node1|'.length + payload.length + 'bye'.length, 'every byte arrived');
      assert.equal(hash.digest('hex'), expected, 'in order and unchanged');
      assert.ok(maxBuffered < bound, `the proxy held up to ${maxBuffered} bytes for the slow reader (bound ${bound})`);
      client.destroy();
    },
  );

  it('closes the backend side when a client resets its connection', async () => {
    const client = await dial(proxy.ports.primary);
    await until('the greeting', () => client.received() === 'node1|');
    const openBefore = backends[0]!.open();
    client.socket.resetAndDestroy();
    await until('the backend connection to close', () => backends[0]!.open() === openBefore - 1);
  });

  it('moves a listener on reload while open clients keep working', { timeout: 8000 }, async () => {
    const before = await dial(proxy.ports.primary);
    await until('the greeting', () => before.received() === 'node1|');
    const oldPort = proxy.ports.primary;
    const [newPort] = await pickFreePorts(1);
    // Same settings as at start (port 0 stays "unchanged"), only the primary address moves.
    await proxy.reload(proxySectionSchema.parse({ ...startSettings, primary_listen: `127.0.0.1:${newPort}` }));
    assert.equal(proxy.ports.primary, newPort);
    before.socket.write('still here');
    await until('the old client echo', () => before.received() === 'node1|still here');
    const after = await dial(newPort!);
    await until('a greeting on the new port', () => after.received() === 'node1|');
    const refused = connect({ host: '127.0.0.1', port: oldPort });
    const [error] = (await once(refused, 'error')) as [NodeJS.ErrnoException];
    assert.equal(error.code, 'ECONNREFUSED');
    before.socket.destroy();
    after.socket.destroy();
  });

  it('holds a client while there is no leader, then connects it to the new, confirmed primary and cuts the old one', async () => {
    const old = await dial(proxy.ports.primary);
    await until('the old greeting', () => old.received() === 'node1|');
    scripted.set(clusterWith(undefined));
    await old.closed;
    await until('the cut client to be gone', () => proxy.status().connections.primary === 0);
    const held = await dial(proxy.ports.primary);
    await until(
      'the proxy to hold the new client',
      () => proxy.status().connections.primary === 1 && proxy.status().primary.kind === 'hold',
    );
    assert.equal(held.received(), '', 'nothing is forwarded without a leader');
    const asked = probed.length;
    scripted.set(clusterWith('node2', String(++createRevision)));
    // Asked twice and told no both times: the proxy saw the new lock holder and is waiting for it to be writable.
    await until('the proxy to ask node2 whether it is writable', () => probed.slice(asked).filter((name) => name === 'node2').length >= 2);
    assert.equal(held.received(), '', 'the new lock holder is not used before it confirms it is writable');
    writable.add('node2');
    await until('the new primary greeting', () => held.received() === 'node2|');
    // The fake clock has not moved: the client was connected within its hold, not after a timeout and a retry.
    assert.equal(held.isClosed(), false);
    held.socket.destroy();
  });

  it('fails closed when the DCS stops answering: open primary clients are cut after dcs_timeout, new ones refused after hold_timeout', async () => {
    const open = await dial(proxy.ports.primary);
    await until('the greeting', () => open.received() === 'node1|');
    const scrape = async (): Promise<string> => (await fetch(`http://127.0.0.1:${proxy.ports.api!}/metrics`)).text();
    assert.match(await scrape(), /^pgwarden_proxy_primary_route\{member="node1"\} 1$/m, 'routed to the lock holder');
    scripted.isReachable = false;
    const failedBefore = scripted.failedLoads;
    await until('the proxy to fail to re-read the cluster, twice', () => scripted.failedLoads >= failedBefore + 2);
    assert.equal(open.isClosed(), false, 'within dcs_timeout (0.6 s on the clock) the last view still routes');
    assert.equal(proxy.status().primary.kind, 'route');
    clock.advance(700);
    await waitUntil(() => open.isClosed(), {
      timeoutMs: 5000,
      intervalMs: 10,
      describe: 'the open client to be cut once the view is stale',
    });
    await until('the cut client to be gone', () => proxy.status().connections.primary === 0);
    const refused = await dial(proxy.ports.primary);
    await until('the proxy to hold the new client', () => proxy.status().connections.primary === 1);
    assert.equal(refused.isClosed(), false, 'held, not refused, before hold_timeout (1.5 s on the clock)');
    const holding = await scrape();
    assert.match(holding, /^pgwarden_proxy_held_connections\{listener="primary"\} 1$/m, 'the hold queue');
    assert.doesNotMatch(holding, /^pgwarden_proxy_primary_route\{/m, 'no primary route while held');
    clock.advance(1600);
    await refused.closed;
    assert.equal(refused.received(), '');
    const metrics = await (await fetch(`http://127.0.0.1:${proxy.ports.api!}/metrics`)).text();
    assert.match(metrics, /pgwarden_proxy_refused_total\{listener="primary",reason="hold_timeout"\} [1-9]/);
    assert.match(metrics, /pgwarden_proxy_closed_by_reroute_total\{listener="primary"\} [1-9]/);
    assert.equal((await fetch(`http://127.0.0.1:${proxy.ports.api!}/health`)).status, 503);
  });
});
