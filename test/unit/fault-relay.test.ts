// The chaos suite's TCP fault relay (used where network namespaces are not available): a partition stops bytes
// without closing anything, and they flow again after healing, as with dropped and retransmitted packets.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect, createServer, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { FaultRelay } from '../../src/local/fault-relay.js';

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

  after(async () => {
    await relay.close();
    for (const socket of serverSockets) socket.destroy();
    server.close();
  });

  const received = (socket: Socket): (() => string) => {
    let text = '';
    socket.on('data', (chunk: Buffer) => (text += chunk.toString()));
    return () => text;
  };
  const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

  it('passes bytes both ways, holds them during a blackhole and delivers them after healing', async () => {
    const client = connect({ host: '127.0.0.1', port: relay.port });
    const text = received(client);
    await once(client, 'connect');
    client.write('a');
    await sleep(100);
    assert.equal(text(), 'echo:a');
    relay.setMode('blackhole');
    client.write('b');
    await sleep(300);
    assert.equal(text(), 'echo:a', 'nothing crosses a partition');
    relay.setMode('pass');
    await sleep(200);
    assert.equal(text(), 'echo:aecho:b', 'held bytes arrive after healing, nothing lost or reset');
    client.destroy();
  });

  it('drop-outbound: the client still hears the server but its own bytes do not get through', async () => {
    const client = connect({ host: '127.0.0.1', port: relay.port });
    const text = received(client);
    await once(client, 'connect');
    client.write('x');
    await sleep(100);
    relay.setMode('drop-outbound');
    serverSockets.at(-1)!.write('push');
    client.write('y');
    await sleep(300);
    assert.equal(text(), 'echo:xpush');
    relay.setMode('pass');
    await sleep(200);
    assert.equal(text(), 'echo:xpushecho:y');
    client.destroy();
  });
});
