// connectTo against a minimal fake PostgreSQL server (trust, no TLS): sslmode prefer falls back to a plain connection
// when the server answers N to the SSLRequest, require does not, and channel_binding=require refuses a login that was
// not channel-bound, as libpq does.
import assert from 'node:assert/strict';
import { createServer, type Server, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import type { PgSecurity } from '../../src/postgres/conninfo.js';
import { connectTo } from '../../src/postgres/sql-session.js';

const SSL_REQUEST_CODE = 80877103;

/** What the fake server saw of each connection: an SSLRequest first or not, and whether a startup packet came. */
interface Seen {
  sslRequest: boolean;
  startup: boolean;
}

function message(type: string, body: Buffer): Buffer {
  const header = Buffer.alloc(5);
  header.write(type, 0, 'latin1');
  header.writeInt32BE(body.length + 4, 1);
  return Buffer.concat([header, body]);
}

/** Answers N to an SSLRequest, then trusts any startup packet: AuthenticationOk and ReadyForQuery. */
function serve(socket: Socket, seen: Seen[]): void {
  const record: Seen = { sslRequest: false, startup: false };
  seen.push(record);
  let buffered = Buffer.alloc(0);
  socket.on('error', () => undefined);
  socket.on('data', (chunk: Buffer) => {
    buffered = Buffer.concat([buffered, chunk]);
    while (buffered.length >= 8 && !record.startup) {
      const length = buffered.readInt32BE(0);
      if (buffered.length < length) return;
      const code = buffered.readInt32BE(4);
      buffered = buffered.subarray(length);
      if (code === SSL_REQUEST_CODE) {
        record.sslRequest = true;
        socket.write('N');
        continue;
      }
      record.startup = true;
      const authenticationOk = Buffer.alloc(4);
      socket.write(Buffer.concat([message('R', authenticationOk), message('Z', Buffer.from('I'))]));
    }
  });
}

describe('connectTo: sslmode fallback and channel_binding=require (fake server)', () => {
  let server: Server;
  let port = 0;
  const seen: Seen[] = [];

  before(async () => {
    server = createServer((socket) => serve(socket, seen));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as { port: number }).port;
  });

  after(() => new Promise<void>((resolve) => server.close(() => resolve())));

  const connect = (security: PgSecurity) =>
    connectTo({
      host: '127.0.0.1',
      port,
      user: 'postgres',
      database: 'postgres',
      connectTimeoutMs: 2000,
      queryTimeoutMs: 2000,
      member: 'test',
      security,
    });

  it('prefer (the default): TLS first, then plain when the server does not do TLS', async () => {
    seen.length = 0;
    const client = await connect({});
    await client.end();
    assert.deepEqual(seen, [
      { sslRequest: true, startup: false },
      { sslRequest: false, startup: true },
    ]);
  });

  it('require: no plain fallback, and the error names the sslmode', async () => {
    seen.length = 0;
    await assert.rejects(connect({ sslmode: 'require' }), /sslmode require.*does not support SSL/);
    assert.equal(seen.length, 1);
  });

  it('disable: one plain connection', async () => {
    seen.length = 0;
    const client = await connect({ sslmode: 'disable' });
    await client.end();
    assert.deepEqual(seen, [{ sslRequest: false, startup: true }]);
  });

  it('channel_binding require: a login without SCRAM-SHA-256-PLUS fails; prefer lets it through', async () => {
    await assert.rejects(connect({ sslmode: 'disable', channel_binding: 'require' }), /channel binding required/);
    const client = await connect({ sslmode: 'disable', channel_binding: 'prefer' });
    await client.end();
  });
});
