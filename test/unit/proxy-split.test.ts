// The split listener's pure parts: the SCRAM server against pg's own client code (and our client against it,
// including the login with a client's proven key), the auth file, the read/write target with a floor, the
// pool's limits, and the wire framing.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import pg from 'pg';
import { clientTlsMode, parseProxyConfig } from '../../src/config/proxy-config.js';
import { parseAuthFile } from '../../src/proxy/split/auth-file.js';
import {
  MessageReader,
  dollarQuoted,
  message,
  readyForQuery,
  singleValueResult,
  decodeDataRow,
  startupMessage,
} from '../../src/proxy/split/pg-wire.js';
import { SplitListener, type SplitSettings } from '../../src/proxy/split/split-listener.js';
import { silentLog } from '../../src/util/log.js';
import { parseScramSecret, ScramClient, ScramError, ScramServer, scramSecretOf, type ScramSecret } from '../../src/proxy/split/scram.js';
import { ServerPool, type Poolable } from '../../src/proxy/split/server-pool.js';
import {
  closestReplica,
  formatLsn,
  parseLsn,
  pickReadTarget,
  setMinLsnValue,
  SHOW_LAST_COMMIT_LSN,
} from '../../src/proxy/split/split-routing.js';
import type { ObservedPosition } from '../../src/proxy/member-positions.js';

interface PgSaslSession {
  message: string;
  response: string;
}
interface PgSasl {
  startSession(mechanisms: string[], stream?: unknown): PgSaslSession;
  continueSession(session: PgSaslSession, password: string, serverData: string, stream?: unknown): Promise<void>;
  finalizeSession(session: PgSaslSession, serverData: string): void;
}
const pgSasl = createRequire(import.meta.url)('pg/lib/crypto/sasl.js') as PgSasl;

/** One exchange between pg's client code and our server; true when both sides accept. */
async function pgClientAgainst(secret: ScramSecret | undefined, password: string): Promise<{ accepted: boolean; clientKey?: Buffer }> {
  const server = new ScramServer(secret, 'alice');
  const session = pgSasl.startSession(['SCRAM-SHA-256']);
  const serverFirst = server.first(session.response);
  await pgSasl.continueSession(session, password, serverFirst);
  const serverFinal = server.final(session.response);
  if (serverFinal === undefined) return { accepted: false };
  pgSasl.finalizeSession(session, serverFinal); // throws when our server signature is wrong
  return { accepted: true, ...(server.clientKey === undefined ? {} : { clientKey: server.clientKey }) };
}

describe('SCRAM-SHA-256 server', () => {
  it("accepts pg's client with the right password, from a plain password and from a stored verifier", async () => {
    const secret = await scramSecretOf('correct horse');
    assert.equal((await pgClientAgainst(secret, 'correct horse')).accepted, true);
    // The same secret written as pg_authid.rolpassword and read back.
    const text = `SCRAM-SHA-256$${secret.iterations}:${secret.salt.toString('base64')}$${secret.storedKey.toString('base64')}:${secret.serverKey.toString('base64')}`;
    assert.equal((await pgClientAgainst(parseScramSecret(text), 'correct horse')).accepted, true);
  });

  it('refuses a wrong password and an unknown user (which runs the same exchange)', async () => {
    const secret = await scramSecretOf('correct horse');
    assert.equal((await pgClientAgainst(secret, 'wrong horse')).accepted, false);
    assert.equal((await pgClientAgainst(undefined, 'anything')).accepted, false);
  });

  it('applies SASLprep as PostgreSQL and pg do (NFKC)', async () => {
    const secret = await scramSecretOf('Ⅸ'); // U+2168 ROMAN NUMERAL NINE, NFKC "IX"
    assert.equal((await pgClientAgainst(secret, 'IX')).accepted, true);
  });

  it('refuses channel binding it did not offer, authorization identities, and a changed nonce', async () => {
    const secret = await scramSecretOf('pw');
    assert.throws(() => new ScramServer(secret, 'a').first('p=tls-server-end-point,,n=,r=abc'), ScramError);
    assert.throws(() => new ScramServer(secret, 'a').first('n,a=bob,n=,r=abc'), ScramError);
    assert.throws(() => new ScramServer(secret, 'a').first('garbage'), ScramError);
    const server = new ScramServer(secret, 'a');
    server.first('n,,n=,r=abcdef');
    assert.throws(() => server.final('c=biws,r=abcdefOTHER,p=AAAA'), ScramError);
  });

  it('an unknown user gets a stable made-up salt (no probing users by their salt)', () => {
    const salt = (user: string): string => /s=([^,]+)/.exec(new ScramServer(undefined, user).first('n,,n=,r=abc'))![1]!;
    assert.equal(salt('mallory'), salt('mallory'));
    assert.notEqual(salt('mallory'), salt('trent'));
  });
});

describe('SCRAM-SHA-256 client towards servers', () => {
  async function exchange(client: ScramClient, server: ScramServer): Promise<boolean> {
    const serverFinal = server.final(await client.final(server.first(client.clientFirst)));
    if (serverFinal === undefined) return false;
    client.verify(serverFinal);
    return true;
  }

  it('logs in with a password, and with the ClientKey a client proved (PgBouncer-style pass-through)', async () => {
    const secret = await scramSecretOf('s3cret');
    assert.equal(await exchange(new ScramClient({ kind: 'password', password: 's3cret' }), new ScramServer(secret, 'u')), true);
    assert.equal(await exchange(new ScramClient({ kind: 'password', password: 'nope' }), new ScramServer(secret, 'u')), false);
    // A client proves itself to the proxy; the proxy reuses the revealed ClientKey towards a server with the same verifier.
    const { clientKey } = await pgClientAgainst(secret, 's3cret');
    assert.ok(clientKey !== undefined);
    assert.equal(await exchange(new ScramClient({ kind: 'client-key', clientKey, secret }), new ScramServer(secret, 'u')), true);
  });

  it('says clearly when the server has another salt than the auth file', async () => {
    const secret = await scramSecretOf('s3cret');
    const other = await scramSecretOf('s3cret');
    const { clientKey } = await pgClientAgainst(secret, 's3cret');
    const client = new ScramClient({ kind: 'client-key', clientKey: clientKey!, secret });
    await assert.rejects(client.final(new ScramServer(other, 'u').first(client.clientFirst)), /pg_authid\.rolpassword/);
  });

  it('rejects a server that cannot prove it knows the secret', async () => {
    const secret = await scramSecretOf('s3cret');
    const client = new ScramClient({ kind: 'password', password: 's3cret' });
    const server = new ScramServer(secret, 'u');
    await client.final(server.first(client.clientFirst));
    assert.throws(() => client.verify(`v=${Buffer.alloc(32).toString('base64')}`), /signature is wrong/);
  });
});

describe('auth file (PgBouncer format)', () => {
  it('reads SCRAM secrets and plain passwords, doubled quotes, and reports bad lines without their secrets', () => {
    const secret =
      'SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=';
    const parsed = parseAuthFile(
      [
        ';; comment',
        `"alice" "${secret}"`,
        '"bob" "pa""ss word"',
        '"carol" "md5aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"',
        '"dave"',
        '"eve" "SCRAM-SHA-256$bad"',
        '',
      ].join('\n'),
    );
    assert.equal(parsed.entries.get('alice')?.kind, 'scram');
    assert.deepEqual(parsed.entries.get('bob'), { kind: 'password', password: 'pa"ss word' });
    assert.equal(parsed.entries.has('carol'), false);
    assert.equal(parsed.problems.length, 3);
    assert.ok(parsed.problems.every((problem) => !problem.includes('aaaa') && !problem.includes('SCRAM-SHA-256$bad')));
  });
});

const backend = (member: string) => ({ member, host: '127.0.0.1', port: 5432 });
const position = (lsn: number, observedAtMs = 1000): ObservedPosition => ({
  isInRecovery: true,
  lsn,
  isStreaming: true,
  replayAgeMs: 0,
  observedAtMs,
});

describe('read target with a read-your-writes floor', () => {
  const replicas = [backend('b'), backend('c')];
  const positions = new Map([
    ['b', position(500)],
    ['c', position(900)],
  ]);
  const base = { replicas, positions, nowMs: 1200, load: new Map<string, number>(), rotation: 0 };

  it('any current replica without a floor; only replicas at or past the floor with one; the primary otherwise', () => {
    assert.equal(pickReadTarget({ ...base, floor: undefined }).kind, 'replica');
    const target = pickReadTarget({ ...base, floor: 900 });
    assert.deepEqual(target, { kind: 'replica', backend: backend('c') });
    assert.equal(pickReadTarget({ ...base, floor: 901 }).kind, 'primary');
    assert.equal(pickReadTarget({ ...base, floor: Number.POSITIVE_INFINITY }).kind, 'primary');
  });

  it('a stale position or none (no monitor) never proves a floor', () => {
    assert.equal(pickReadTarget({ ...base, nowMs: 5000, floor: 100 }).kind, 'primary');
    assert.equal(pickReadTarget({ ...base, positions: undefined, floor: 100 }).kind, 'primary');
    assert.equal(pickReadTarget({ ...base, replicas: [], floor: undefined }).kind, 'primary');
  });

  it('asks the replica the monitor saw furthest ahead whether it replayed a floor, else the least busy', () => {
    assert.deepEqual(closestReplica(base), backend('c'));
    assert.deepEqual(closestReplica({ ...base, positions: undefined, load: new Map([['b', 1]]) }), backend('c'));
    assert.equal(closestReplica({ ...base, replicas: [] }), undefined);
  });

  it('spreads reads to the least busy replica', () => {
    const target = pickReadTarget({ ...base, floor: undefined, load: new Map([['b', 3]]) });
    assert.deepEqual(target, { kind: 'replica', backend: backend('c') });
  });

  it('answers SHOW pgwarden.last_commit_lsn in any case and prints LSNs as PostgreSQL does', () => {
    assert.ok(SHOW_LAST_COMMIT_LSN.test('show PGWARDEN.last_commit_lsn ;'));
    assert.ok(!SHOW_LAST_COMMIT_LSN.test('SHOW pgwarden.last_commit_lsn; SELECT 1'));
    assert.equal(formatLsn(0x16_b374d848), '16/B374D848');
    assert.equal(formatLsn(0), '0/0');
  });

  it("reads SET pgwarden.min_lsn = '...' and LSNs back", () => {
    assert.equal(setMinLsnValue("set session pgwarden.min_lsn to '16/B374D848';"), '16/B374D848');
    assert.equal(setMinLsnValue("SET pgwarden.min_lsn = 'x'"), 'x');
    assert.equal(setMinLsnValue('SET work_mem = 1'), undefined);
    assert.equal(parseLsn('16/B374D848'), 0x16_b374d848);
    assert.equal(parseLsn(formatLsn(2 ** 40 + 12345)), 2 ** 40 + 12345);
    for (const bad of ['x', '1/', '/1', '123456789/0', '1/2/3']) assert.equal(parseLsn(bad), undefined, bad);
  });
});

class FakeConnection implements Poolable {
  closed = false;
  readonly #listeners: Array<() => void> = [];
  constructor(readonly id: number) {}
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const listener of this.#listeners) listener();
  }
  onClose(listener: () => void): () => void {
    this.#listeners.push(listener);
    return () => undefined;
  }
}

describe('server pool', () => {
  const newPool = (size: number) => {
    let opened = 0;
    const pool = new ServerPool<FakeConnection>({ poolSize: () => size, open: async () => new FakeConnection(++opened) });
    return { pool, opened: () => opened };
  };

  it('opens at most pool_size per key, reuses idle ones, and hands a released one to the first waiter', async () => {
    const { pool, opened } = newPool(2);
    const first = await pool.acquire('k', 1000);
    const second = await pool.acquire('k', 1000);
    const waiting = pool.acquire('k', 1000);
    assert.equal(pool.stats().waiting, 1);
    pool.release('k', first);
    assert.equal(await waiting, first);
    assert.equal(opened(), 2);
    pool.release('k', second);
    assert.equal(await pool.acquire('k', 1000), second, 'an idle connection is reused');
    assert.equal((await pool.acquire('other', 1000)).id, 3, 'another key has its own pool');
  });

  it('a waiter gives up after query_wait_timeout with a clear error', async () => {
    const { pool } = newPool(1);
    await pool.acquire('k', 1000);
    await assert.rejects(pool.acquire('k', 50), /no server connection of k became free within 50 ms/);
    assert.equal(pool.stats().waiting, 0);
  });

  it('a closed connection frees its place for a waiter (a new one is opened)', async () => {
    const { pool, opened } = newPool(1);
    const only = await pool.acquire('k', 1000);
    const waiting = pool.acquire('k', 1000);
    only.close();
    const next = await waiting;
    assert.notEqual(next, only);
    assert.equal(opened(), 2);
  });

  it('closes idle connections of the keys asked, not busy ones', async () => {
    const { pool } = newPool(3);
    const busy = await pool.acquire('primary|a', 1000);
    const idle = await pool.acquire('primary|a', 1000);
    pool.release('primary|a', idle);
    assert.equal(
      pool.closeIdle((key) => key.startsWith('primary|a')),
      1,
    );
    assert.equal(idle.closed, true);
    assert.equal(busy.closed, false);
  });
});

describe('wire framing', () => {
  it('splits messages across chunk boundaries and rejects impossible lengths', () => {
    const bytes = Buffer.concat([message('Q', Buffer.from('SELECT 1\0')), readyForQuery('I')]);
    const reader = new MessageReader();
    assert.deepEqual(reader.push(bytes.subarray(0, 7)), []);
    const messages = reader.push(bytes.subarray(7));
    assert.deepEqual(
      messages.map((item) => item.type),
      ['Q', 'Z'],
    );
    assert.throws(() => new MessageReader().push(Buffer.from([0x51, 0, 0, 0, 1])), /invalid message length/);
  });

  it('writes a one-value result a client can decode', () => {
    const messages = new MessageReader().push(singleValueResult('last_commit_lsn', '0/16B3', 'SHOW'));
    assert.deepEqual(
      messages.map((item) => item.type),
      ['T', 'D', 'C'],
    );
    assert.deepEqual(decodeDataRow(messages[1]!.body), ['0/16B3']);
  });
});

describe('proxy.split_listen configuration', () => {
  const config = (proxy: string): ReturnType<typeof parseProxyConfig> =>
    parseProxyConfig(`scope: s\netcd3:\n  hosts: 127.0.0.1:2379\nproxy:\n  primary_listen: 127.0.0.1:5000\n${proxy}`, 'proxy.yml');

  it('is off by default; on, it takes PgBouncer-like defaults', () => {
    assert.equal(config('').proxy.split_listen, undefined);
    const on = config('  split_listen: 127.0.0.1:5002\n  split:\n    auth_file: /etc/pgwarden/userlist.txt\n').proxy;
    assert.deepEqual(on.split_listen, { host: '127.0.0.1', port: 5002 });
    assert.deepEqual(on.split, {
      auth_file: '/etc/pgwarden/userlist.txt',
      pool_mode: 'transaction',
      pool_size: 20,
      max_client_conn: 100,
      query_wait_timeout: 120,
      causal_wait: 0.05,
    });
  });

  it("refuses a split listener without an auth file, on another listener's port, or an unknown pool mode", () => {
    assert.throws(() => config('  split_listen: 127.0.0.1:5002\n'), /needs proxy.split.auth_file/);
    assert.equal(
      config('  split_listen: 127.0.0.1:5002\n  split:\n    auth_file: /x\n    pool_mode: session\n').proxy.split?.pool_mode,
      'session',
    );
    assert.throws(() => config('  split_listen: 127.0.0.1:5000\n  split:\n    auth_file: /x\n'), /same address as another listener/);
    const tls = (lines: string): ReturnType<typeof config> =>
      config(`  split_listen: 127.0.0.1:5002\n  split:\n    auth_file: /x\n${lines}`);
    assert.throws(
      () => tls('    client_tls_sslmode: require\n'),
      /client_tls_sslmode require needs both client_tls_cert_file and client_tls_key_file/,
    );
    assert.throws(() => tls('    client_tls_cert_file: /c.pem\n'), /needs both client_tls_cert_file and client_tls_key_file/);
    assert.throws(() => tls('    client_tls_sslmode: verify-full\n'), /client_tls_sslmode/);
    assert.equal(clientTlsMode(tls('    client_tls_cert_file: /c.pem\n    client_tls_key_file: /k.pem\n').proxy.split!), 'allow');
    assert.equal(clientTlsMode(tls('').proxy.split!), 'disable');
    assert.throws(
      () => tls("    auth_user: a\n    auth_query: SELECT usename, passwd FROM pg_shadow WHERE usename = 'x'\n"),
      /auth_query must use \$1/,
    );
    assert.equal(dollarQuoted("it's"), "$pgw$it's$pgw$");
    assert.equal(dollarQuoted('a$pgw$b'), '$pgw_$a$pgw$b$pgw_$');
    assert.throws(
      () => config('  split_listen: 127.0.0.1:5002\n  split:\n    auth_file: /x\n    pool_mode: statement\n'),
      /pool_mode: expected transaction .* or session/,
    );
  });
});

describe('split listener in process (no server behind it)', () => {
  async function withListener(settings: Partial<SplitSettings>, body: (port: number) => Promise<void>): Promise<void> {
    const dir = await mkdtemp(join(tmpdir(), 'pgw-split-unit-'));
    const authFile = join(dir, 'userlist.txt');
    await writeFile(authFile, '"alice" "wonderland"\n', { mode: 0o600 });
    const listener = new SplitListener({
      host: '127.0.0.1',
      port: 0,
      settings: () => ({
        auth_file: authFile,
        pool_size: 2,
        max_client_conn: 10,
        query_wait_timeout: 0.2,
        connect_timeout: 1,
        causal_wait: 0.05,
        ...settings,
      }),
      // No primary at all: a login that passed authentication then waits query_wait_timeout for one.
      routes: {
        primary: () => undefined,
        replicas: () => [],
        positions: () => undefined,
        changed: (deadlineMs) => new Promise((resolve) => setTimeout(resolve, Math.max(0, deadlineMs - performance.now()))),
      },
      nowMs: () => performance.now(),
      log: silentLog,
    });
    const port = await listener.listen();
    try {
      await body(port);
    } finally {
      await listener.stop();
      await rm(dir, { recursive: true, force: true });
    }
  }

  const login = async (port: number, password: string): Promise<string | undefined> => {
    const client = new pg.Client({ host: '127.0.0.1', port, user: 'alice', password, database: 'db', connectionTimeoutMillis: 5000 });
    client.on('error', () => undefined);
    try {
      await client.connect();
      await client.end();
      return 'connected';
    } catch (error) {
      return (error as { code?: string }).code;
    }
  };

  it("pg's Client: a wrong password gets 28P01; the right one passes SCRAM and then waits for a primary (08006)", async () => {
    await withListener({}, async (port) => {
      assert.equal(await login(port, 'wrong'), '28P01');
      assert.equal(await login(port, 'wonderland'), '08006');
    });
  });

  it('refuses clients over max_client_conn with 53300 before authenticating them', async () => {
    await withListener({ max_client_conn: 1 }, async (port) => {
      // The first client stops after its startup packet, keeping its place.
      const first = connect({ host: '127.0.0.1', port });
      await new Promise((resolve) => first.once('connect', resolve));
      first.write(startupMessage({ user: 'alice', database: 'db' }));
      await new Promise((resolve) => first.once('data', resolve));
      try {
        assert.equal(await login(port, 'wonderland'), '53300');
      } finally {
        first.destroy();
      }
    });
  });
});
