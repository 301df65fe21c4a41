// The chaos suite's TCP fault relay (used where network namespaces are not available): a partition stops bytes
// without closing anything, and they flow again after healing, as with dropped and retransmitted packets.
import { once } from 'node:events';
import { connect, createServer, type Socket } from 'node:net';
import { after, before, beforeEach, describe, it } from 'node:test';
import { FaultRelay } from '../../src/local/fault-relay.js';
import { waitUntil } from '../../src/util/wait-until.js';
import { assertStays } from '../kit/assert-stays.js';

describe('fault relay', () => {
  const serverSockets: Socket[] = [];
  const server = createServer((socket) => {
    serverSockets.push(socket);
    socket.on('error', () => undefined);
    socket.on('data', (chunk) => socket.write(`echo:${chunk.toString()}`));
  });
  let relay: FaultRelay;

  before(async () => {
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    relay = await FaultRelay.start({ host: '127.0.0.1', port: (server.address() as { port: number }).port });
  });

  beforeEach(() => relay.setMode('pass'));

  after(async () => {
    await relay.close();
    for (const socket of serverSockets) socket.destroy();
    server.close();
  });

  /** A client through the relay, what it has received so far, and the server's side of its connection. */
  async function dial(): Promise<{ client: Socket; text: () => string; serverSide: Socket }> {
    const accepted = serverSockets.length;
    const client = connect({ host: '127.0.0.1', port: relay.port });
    let text = '';
    client.on('data', (chunk: Buffer) => (text += chunk.toString()));
    client.on('error', () => undefined);
    await once(client, 'connect');
    // The relay opens its upstream connection lazily: a first byte proves the path and reveals the server's socket.
    client.write('hello');
    await waitUntil(() => text === 'echo:hello' && serverSockets.length > accepted, {
      timeoutMs: 5000,
      intervalMs: 5,
      describe: 'the first echo through the relay',
    });
    return { client, text: () => text, serverSide: serverSockets.at(-1)! };
  }

  const received = (what: string, text: () => string, expected: string): Promise<true> =>
    waitUntil(() => text() === expected || undefined, { timeoutMs: 5000, intervalMs: 5, describe: what, lastState: text });

  it('passes bytes both ways, holds them during a blackhole and delivers them after healing', async () => {
    const { client, text } = await dial();
    relay.setMode('blackhole');
    client.write('b');
    // No event marks bytes that do not move: watch for any of them getting through for a while.
    await assertStays(() => text() === 'echo:hello', { forMs: 300, intervalMs: 10, describe: 'nothing crossing the partition' });
    relay.setMode('pass');
    await received('held bytes after healing, nothing lost or reset', text, 'echo:helloecho:b');
    client.destroy();
  });

  it('drop-outbound: the client still hears the server but its own bytes do not get through', async () => {
    const { client, text, serverSide } = await dial();
    relay.setMode('drop-outbound');
    serverSide.write('push');
    client.write('y');
    await received('the server push despite drop-outbound', text, 'echo:hellopush');
    await assertStays(() => text() === 'echo:hellopush', {
      forMs: 300,
      intervalMs: 10,
      describe: "the client's bytes staying in the relay",
    });
    relay.setMode('pass');
    await received("the client's bytes after healing", text, 'echo:hellopushecho:y');
    client.destroy();
  });
});
