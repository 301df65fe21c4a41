// The etcd token lifecycle against an in-process fake of etcd 3.4's gateway: obtained before the first call, renewed
// in the background at half its lifetime, re-obtained (and the call retried once) when etcd drops it, never in a loop.
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, beforeEach, describe, it } from 'node:test';
import { EtcdGateway, type WatchBatch } from '../../src/dcs/etcd/gateway.js';
import { isPgwardenError } from '../../src/util/errors.js';
import { waitUntil } from '../../src/util/wait-until.js';

const PASSWORD = 's3cret-pw';

/** What the fake etcd saw and how it behaves. */
interface FakeEtcd {
  authenticates: number;
  /** Authorization header of every non-auth request, in order. */
  seen: (string | undefined)[];
  /** Bodies of watch requests. */
  watches: { start_revision?: string }[];
  valid: Set<string>;
  isAuthEnabled: boolean;
  /** Tokens it hands out are never accepted (a broken etcd). */
  isRejectingAll: boolean;
  /** Answers every request as etcd does to a client certificate with a CN when client-cert-auth and auth are on. */
  isRefusingCommonName: boolean;
  /** What the next watch does once created: send events, then cancel for an invalid token. */
  midStreamScript: { events: number[]; thenCancel: boolean } | undefined;
}

const fake: FakeEtcd = {
  authenticates: 0,
  seen: [],
  watches: [],
  valid: new Set(),
  isAuthEnabled: true,
  isRejectingAll: false,
  isRefusingCommonName: false,
  midStreamScript: undefined,
};

const json = (response: ServerResponse, status: number, body: unknown): void => {
  response.writeHead(status, { 'content-type': 'application/json' });
  response.end(JSON.stringify(body));
};
const invalidToken = { error: 'etcdserver: invalid auth token', message: 'etcdserver: invalid auth token', code: 16 };
const header = (revision: number): unknown => ({ cluster_id: '1', member_id: '2', revision: String(revision), raft_term: '2' });

async function readBody(request: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of request) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

function handle(request: IncomingMessage, response: ServerResponse): void {
  void readBody(request).then((text) => {
    const body = JSON.parse(text || '{}') as { name?: string; password?: string; create_request?: { start_revision?: string } };
    if (fake.isRefusingCommonName) {
      response.writeHead(400, { 'content-type': 'text/plain; charset=utf-8' });
      response.end('CommonName of client sending a request against gateway will be ignored and not used as expected\n');
      return;
    }
    if (request.url === '/v3/auth/authenticate') {
      fake.authenticates++;
      if (!fake.isAuthEnabled) return json(response, 400, { error: 'etcdserver: authentication is not enabled', code: 9 });
      if (body.name !== 'pgw' || body.password !== PASSWORD)
        return json(response, 400, { error: 'etcdserver: authentication failed, invalid user ID or password', code: 3 });
      const token = `token${fake.authenticates}.${fake.authenticates}`;
      if (!fake.isRejectingAll) fake.valid.add(token);
      return json(response, 200, { header: header(1), token });
    }
    const authorization = request.headers.authorization;
    fake.seen.push(authorization);
    const isAllowed = !fake.isAuthEnabled || (authorization !== undefined && fake.valid.has(authorization));
    if (request.url === '/v3/watch') {
      fake.watches.push(body.create_request ?? {});
      response.writeHead(200, { 'content-type': 'application/json' });
      const line = (result: unknown): boolean => response.write(`${JSON.stringify({ result })}\n`);
      if (!isAllowed) {
        // etcd 3.4: a watch opened with an unknown token is created and cancelled in one message.
        line({
          header: header(1),
          watch_id: '-1',
          created: true,
          canceled: true,
          cancel_reason: 'rpc error: code = Unauthenticated desc = etcdserver: invalid auth token',
        });
        return;
      }
      line({ header: header(1), created: true });
      const script = fake.midStreamScript;
      fake.midStreamScript = undefined;
      for (const revision of script?.events ?? [])
        line({ header: header(revision), events: [{ kv: { key: Buffer.from('/k').toString('base64'), mod_revision: String(revision) } }] });
      if (script?.thenCancel === true) {
        fake.valid.clear();
        line({
          header: header(9),
          canceled: true,
          cancel_reason: 'rpc error: code = Unauthenticated desc = etcdserver: invalid auth token',
        });
      } else if (script === undefined) {
        line({ header: header(7), events: [{ kv: { key: Buffer.from('/k').toString('base64'), mod_revision: '7' } }] });
      }
      return;
    }
    if (!isAllowed)
      return fake.isAuthEnabled && authorization === undefined
        ? json(response, 400, { error: 'etcdserver: user name is empty', code: 3 })
        : json(response, 401, invalidToken);
    return json(response, 200, { header: header(1), kvs: [] });
  });
}

let server: Server;
let endpoint = '';

before(async () => {
  server = createServer(handle);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

after(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

beforeEach(() => {
  Object.assign(fake, {
    authenticates: 0,
    seen: [],
    watches: [],
    valid: new Set(),
    isAuthEnabled: true,
    isRejectingAll: false,
    isRefusingCommonName: false,
    midStreamScript: undefined,
  });
});

const gateway = (options: { password?: string; tokenTtlMs?: number } = {}): EtcdGateway =>
  new EtcdGateway([endpoint], 'node1', undefined, {
    auth: {
      username: 'pgw',
      password: options.password ?? PASSWORD,
      ...(options.tokenTtlMs !== undefined ? { tokenTtlMs: options.tokenTtlMs } : {}),
    },
  });
const range = (client: EtcdGateway): Promise<unknown> => client.call('/v3/kv/range', { key: 'a' }, AbortSignal.timeout(2000));

describe('etcd authentication token', () => {
  it('is obtained before the first request, sent bare (no Bearer), and reused', async () => {
    const client = gateway();
    await range(client);
    await range(client);
    await range(client);
    assert.equal(fake.authenticates, 1);
    assert.deepEqual(fake.seen, ['token1.1', 'token1.1', 'token1.1']);
    client.close();
  });

  it('is obtained once for calls made together', async () => {
    const client = gateway();
    await Promise.all([range(client), range(client), range(client)]);
    assert.equal(fake.authenticates, 1);
    client.close();
  });

  it('is renewed in the background at half its lifetime; the call that notices goes on with the current one', async () => {
    const client = gateway({ tokenTtlMs: 200 });
    await range(client);
    await new Promise((resolve) => setTimeout(resolve, 120));
    await range(client);
    assert.equal(fake.seen[1], 'token1.1', 'the renewal does not hold the call up');
    await waitUntil(() => fake.authenticates === 2, { timeoutMs: 2000, describe: 'the background renewal' });
    await waitUntil(async () => (await range(client), fake.seen.at(-1) === 'token2.2'), {
      timeoutMs: 2000,
      describe: 'the new token in use',
    });
    client.close();
  });

  it('is re-obtained when etcd drops it, and the call is retried once without the caller seeing it', async () => {
    const client = gateway();
    await range(client);
    fake.valid.clear(); // etcd restarted, or the token expired
    await range(client);
    assert.equal(fake.authenticates, 2);
    assert.deepEqual(fake.seen, ['token1.1', 'token1.1', 'token2.2']);
    client.close();
  });

  it('is not asked for in a loop when etcd keeps refusing the tokens it issues: one retry, then a clear error', async () => {
    fake.isRejectingAll = true;
    const client = gateway();
    await assert.rejects(range(client), (error: unknown) => {
      assert.ok(isPgwardenError(error, 'PGW_DCS_AUTH'), String(error));
      assert.match(error.message, new RegExp(`^etcd ${endpoint}: etcd rejected the token it had just issued to user 'pgw'`));
      return true;
    });
    assert.equal(fake.authenticates, 2);
    assert.equal(fake.seen.length, 2);
    client.close();
  });

  it('a wrong password is one clear error, repeated without asking etcd again for a moment, and never shows the password', async () => {
    const client = gateway({ password: 'wrong-pw' });
    const check = (error: unknown): true => {
      assert.ok(isPgwardenError(error, 'PGW_DCS_AUTH'), String(error));
      assert.equal(
        error.message,
        `etcd ${endpoint}: authentication failed for user 'pgw': wrong password or unknown user (etcdserver: authentication failed, invalid user ID or password)`,
      );
      assert.doesNotMatch(JSON.stringify({ message: error.message, context: error.context }), /wrong-pw/);
      return true;
    };
    await assert.rejects(range(client), check);
    await assert.rejects(range(client), check);
    assert.equal(fake.authenticates, 1, 'etcd (bcrypt) is not asked again within the hold');
    assert.equal(fake.seen.length, 0, 'nothing is sent without a token');
    client.close();
  });

  it("etcd's refusal of a client certificate with a CommonName (client-cert-auth and auth both on) is one clear error", async () => {
    fake.isRefusingCommonName = true;
    const client = gateway();
    await assert.rejects(range(client), (error: unknown) => {
      assert.ok(isPgwardenError(error, 'PGW_DCS_TLS'), String(error));
      assert.match(
        error.message,
        new RegExp(
          `^etcd ${endpoint}: etcd refuses the client certificate because it has a CommonName: .* accepts only client certificates without a CN`,
        ),
      );
      assert.match(String(error.context.hint), /without a CN/);
      return true;
    });
    client.close();
  });

  it('sends no token when etcd has authentication off', async () => {
    fake.isAuthEnabled = false;
    const client = gateway();
    await range(client);
    await range(client);
    assert.deepEqual(fake.seen, [undefined, undefined]);
    assert.equal(fake.authenticates, 1);
    client.close();
  });

  it('without credentials, an etcd with authentication on is a clear error', async () => {
    const client = new EtcdGateway([endpoint], 'node1');
    await assert.rejects(range(client), (error: unknown) => {
      assert.ok(isPgwardenError(error, 'PGW_DCS_AUTH'), String(error));
      assert.match(error.message, /authentication enabled and no etcd3\.username is configured/);
      return true;
    });
    client.close();
  });
});

describe('etcd watch with a token', () => {
  const firstBatch = (client: EtcdGateway): Promise<WatchBatch[]> => {
    const batches: WatchBatch[] = [];
    return client
      .watchStream([{ key: '/k' }], '3', AbortSignal.timeout(3000), (batch) => (batches.push(batch), batches.length >= 1))
      .then(() => batches);
  };

  it('is reopened with a new token when etcd refuses the one it was opened with', async () => {
    const client = gateway();
    await range(client);
    fake.valid.clear();
    const batches = await firstBatch(client);
    assert.equal(batches[0]?.events[0]?.kv?.mod_revision, '7');
    assert.equal(fake.authenticates, 2);
    assert.deepEqual(
      fake.watches.map((watch) => watch.start_revision),
      ['3', '3'],
    );
    client.close();
  });

  it('is reopened after the last revision it delivered when the token expires mid-stream', async () => {
    const client = gateway();
    fake.midStreamScript = { events: [4, 5], thenCancel: true };
    const revisions: string[] = [];
    await client.watchStream([{ key: '/k' }], '3', AbortSignal.timeout(3000), (batch) => {
      for (const event of batch.events) revisions.push(event.kv?.mod_revision ?? '?');
      return revisions.includes('7');
    });
    assert.deepEqual(revisions, ['4', '5', '7']);
    assert.deepEqual(
      fake.watches.map((watch) => watch.start_revision),
      ['3', '6'],
    );
    assert.deepEqual(fake.seen, ['token1.1', 'token2.2']);
    client.close();
  });

  it('is not reopened in a loop when every new token is refused', async () => {
    fake.isRejectingAll = true;
    const client = gateway();
    await assert.rejects(firstBatch(client), (error: unknown) => isPgwardenError(error, 'PGW_DCS_AUTH'));
    assert.equal(fake.watches.length, 2);
    client.close();
  });
});
