// The proxy engine on real sockets, with a scripted cluster view instead of etcd and tagged echo servers as backends.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { proxySectionSchema } from '../../src/config/proxy-config.js';
import type { ClusterView } from '../../src/core/types.js';
import { pickFreePorts } from '../../src/local/free-port.js';
import { ProxyServer } from '../../src/proxy/proxy-server.js';
import { silentLog } from '../../src/util/log.js';
import { member, view } from '../sim/builders.js';

class ScriptedCluster {
  current: ClusterView | undefined;
  isReachable = true;
  #revision = 100;
  readonly #watchers = new Set<() => void>();

  set(next: ClusterView): void {
    this.current = { ...next, revision: String(++this.#revision) };
    for (const wake of [...this.#watchers]) wake();
  }

  readonly source = {
    loadCluster: async (): Promise<ClusterView> => {
      if (!this.isReachable || this.current === undefined) throw new Error('etcd unreachable (scripted)');
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
            reject(new Error('aborted'));
          },
          { once: true },
        );
      }),
  };
}

/** Says its name on connect, then echoes; answers a half-close with "bye" before closing. */
async function taggedEcho(name: string): Promise<{ server: Server; port: number; open: () => number }> {
  let open = 0;
  const server = createServer({ allowHalfOpen: true }, (socket) => {
    open++;
    socket.on('close', () => open--);
    socket.write(`${name}|`);
    socket.on('data', (data) => socket.write(data));
    socket.on('end', () => socket.end('bye'));
    socket.on('error', () => undefined);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { server, port: (server.address() as { port: number }).port, open: () => open };
}

async function dial(port: number): Promise<{ socket: Socket; received: () => string; closed: Promise<void> }> {
  const socket = connect({ host: '127.0.0.1', port, allowHalfOpen: true });
  let text = '';
  socket.on('data', (data: Buffer) => (text += data.toString()));
  socket.on('error', () => undefined);
  // The proxy closing the client side shows as 'end' on this half-open socket.
  const closed = Promise.race([once(socket, 'end'), once(socket, 'close')]).then(() => undefined);
  await once(socket, 'connect');
  return { socket, received: () => text, closed };
}

async function until(what: string, probe: () => boolean, timeoutMs = 5000): Promise<void> {
  const giveUpAt = performance.now() + timeoutMs;
  while (!probe()) {
    if (performance.now() > giveUpAt) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

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
  const writable = new Set<string>();
  const backends: { server: Server; port: number; open: () => number }[] = [];
  let proxy: ProxyServer;
  const clusterWith = (leaderName: string | undefined, createRevision = '1'): ClusterView =>
    view({
      ...(leaderName === undefined ? { leader: undefined } : { leader: { name: leaderName, modRevision: createRevision, createRevision } }),
      members: backends.map((backend, index) =>
        member(`node${index + 1}`, {
          role: `node${index + 1}` === leaderName ? 'primary' : 'replica',
          conn_url: `postgres://127.0.0.1:${backend.port}/postgres`,
          xlog_location: 100,
        }),
      ),
    });

  before(async () => {
    for (const name of ['node1', 'node2', 'node3']) backends.push(await taggedEcho(name));
    scripted.set(clusterWith('node1'));
    writable.add('node1');
    proxy = await ProxyServer.start({
      section: proxySectionSchema.parse(startSettings),
      source: scripted.source,
      probe: async (candidate) => writable.has(candidate.name),
      nowMs: () => performance.now(),
      log: silentLog,
      refreshMs: 100,
    });
  });

  after(async () => {
    await proxy.stop(0);
    for (const backend of backends) backend.server.close();
  });

  it('forwards primary clients to the confirmed lock holder and spreads readers over replicas', async () => {
    await until('a primary route', () => proxy.status().primary.kind === 'route');
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

  it('applies backpressure: a client that does not read does not grow the proxy buffers', async () => {
    const client = connect({ host: '127.0.0.1', port: proxy.ports.primary });
    client.on('error', () => undefined);
    await once(client, 'connect');
    client.pause();
    const chunk = Buffer.alloc(64 * 1024, 120);
    for (let index = 0; index < 320; index++) client.write(chunk);
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const buffered = proxy.bufferedBytes();
    assert.ok(buffered < 2 * 1024 * 1024, `proxy buffers ${buffered} bytes for a client that reads nothing (20 MB sent through it)`);
    client.destroy();
  });

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
    const startedAt = performance.now();
    const held = await dial(proxy.ports.primary);
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.equal(held.received(), '', 'nothing is forwarded without a leader');
    scripted.set(clusterWith('node2', '7'));
    await new Promise((resolve) => setTimeout(resolve, 150));
    assert.equal(held.received(), '', 'the new lock holder is not used before it confirms it is writable');
    writable.add('node2');
    await until('the new primary greeting', () => held.received() === 'node2|');
    assert.ok(performance.now() - startedAt < 1500);
    held.socket.destroy();
  });

  it('fails closed when the DCS stops answering: open primary clients are cut, new ones refused after hold_timeout', async () => {
    await until('a primary route', () => proxy.status().primary.kind === 'route');
    const open = await dial(proxy.ports.primary);
    await until('the greeting', () => open.received() === 'node2|');
    scripted.isReachable = false;
    const cutAt = performance.now();
    await open.closed;
    assert.ok(performance.now() - cutAt < 1500, 'cut within dcs_timeout plus a check interval');
    const refused = await dial(proxy.ports.primary);
    await refused.closed;
    assert.equal(refused.received(), '');
    const metrics = await (await fetch(`http://127.0.0.1:${proxy.ports.api!}/metrics`)).text();
    assert.match(metrics, /pgwarden_proxy_refused_total\{listener="primary",reason="hold_timeout"\} [1-9]/);
    assert.match(metrics, /pgwarden_proxy_closed_by_reroute_total\{listener="primary"\} [1-9]/);
    assert.equal((await fetch(`http://127.0.0.1:${proxy.ports.api!}/health`)).status, 503);
    scripted.isReachable = true;
    await until('the route back', () => proxy.status().primary.kind === 'route');
  });
});
