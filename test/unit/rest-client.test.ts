// The one REST client (util/rest-client.ts) against an in-process HTTPS server with certificates from the test certificate helper:
// CA verification, client certificates (with an encrypted key), insecure, Basic credentials on unsafe methods only,
// and errors that say which key to set; the CLI's 401/403 wording on top of it.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { callApi } from '../../src/cli/api-client.js';
import { restClientSettings } from '../../src/config/rest-client-settings.js';
import type { MemberRecord } from '../../src/core/types.js';
import { HttpPeerClient } from '../../src/peers/http-peer-client.js';
import { createCertificateAuthority, type IssueOptions } from '../../src/local/tls-certs.js';
import { isPgwardenError } from '../../src/util/errors.js';
import { createRestClient, type RestClientSettings } from '../../src/util/rest-client.js';

interface Echo {
  readonly method: string;
  readonly isClientAuthorized: boolean;
  readonly clientName: string | null;
  readonly authorization: string | null;
  readonly body: string;
}

const signal = (): AbortSignal => AbortSignal.timeout(5000);

describe('REST client over TLS', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pgw-rest-'));
  /** Test file name (as in a config: ca.crt, client.key) to where the certificate helper wrote it. */
  const paths = new Map<string, string>();
  const file = (name: string): string => paths.get(name) ?? assert.fail(`no certificate file ${name} was made`);
  const at = (name: string, key: string): { path: string; key: string } => ({ path: file(name), key });
  const servers: (Server | HttpServer)[] = [];
  let url = '';
  let misnamedUrl = '';

  const listen = async (server: Server | HttpServer): Promise<number> => {
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return (server.address() as AddressInfo).port;
  };

  const echoServer = (certName: string): Server =>
    createServer(
      {
        cert: readFileSync(file(`${certName}.crt`)),
        key: readFileSync(file(`${certName}.key`)),
        ca: readFileSync(file('ca.crt')),
        requestCert: true,
        rejectUnauthorized: false,
      },
      (request, response) => {
        const chunks: Buffer[] = [];
        request.on('data', (chunk: Buffer) => chunks.push(chunk));
        request.on('end', () => {
          const socket = request.socket as TLSSocket;
          const echo: Echo = {
            method: request.method ?? '',
            isClientAuthorized: socket.authorized,
            clientName: socket.authorized ? String(socket.getPeerCertificate().subject.CN) : null,
            authorization: request.headers.authorization ?? null,
            body: Buffer.concat(chunks).toString('utf8'),
          };
          response.writeHead(200, { 'content-type': 'application/json' });
          response.end(JSON.stringify(echo));
        });
      },
    );

  before(async () => {
    const ca = await createCertificateAuthority(join(dir, 'ca'), 'ca');
    const rogue = await createCertificateAuthority(join(dir, 'rogue-ca'), 'rogue-ca');
    paths.set('ca.crt', ca.cert);
    paths.set('rogue-ca.crt', rogue.cert);
    const issue = async (name: string, options: IssueOptions): Promise<void> => {
      const files = await ca.issue(name, options);
      paths.set(`${name}.crt`, files.cert);
      paths.set(`${name}.key`, files.key);
    };
    const loopback = { ips: ['127.0.0.1'] };
    await issue('server', { server: loopback });
    await issue('misnamed', { server: { dns: ['elsewhere.example'] } });
    await issue('client', { server: loopback });
    await issue('locked-client', { server: loopback, keyPassphrase: 'k3y-pass' });
    url = `https://127.0.0.1:${await listen(echoServer('server'))}/patroni`;
    misnamedUrl = `https://127.0.0.1:${await listen(echoServer('misnamed'))}/patroni`;
  });

  after(async () => {
    await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
    rmSync(dir, { recursive: true, force: true });
  });

  const echo = async (settings: RestClientSettings, method = 'GET', target = url): Promise<Echo> => {
    const reply = await createRestClient(settings).callMember(target, '/switchover', {
      method,
      body: { leader: 'node1' },
      signal: signal(),
    });
    assert.equal(reply.status, 200, reply.text);
    return JSON.parse(reply.text) as Echo;
  };

  it('verifies the server against the CA and presents the client certificate', async () => {
    const answer = await echo({
      cacert: at('ca.crt', 'ctl.cacert'),
      certfile: at('client.crt', 'ctl.certfile'),
      keyfile: at('client.key', 'ctl.keyfile'),
    });
    assert.deepEqual([answer.isClientAuthorized, answer.clientName], [true, 'client']);
    const anonymous = await echo({ cacert: at('ca.crt', 'ctl.cacert') });
    assert.equal(anonymous.isClientAuthorized, false);
  });

  it('decrypts a client key with keyfile_password, and a wrong one is an error', async () => {
    const settings = {
      cacert: at('ca.crt', 'ctl.cacert'),
      certfile: at('locked-client.crt', 'ctl.certfile'),
      keyfile: at('locked-client.key', 'ctl.keyfile'),
    };
    // The wrong one first: node's pool does not key connections by passphrase, so a pooled one would be reused. OpenSSL 3
    // reports a wrong passphrase as a bad decrypt or, when no decoder accepts the key, as 'DECODER routines::unsupported'.
    await assert.rejects(
      echo({ ...settings, keyfilePassword: 'wrong' }),
      /bad decrypt|decrypt|passphrase|key|DECODER routines::unsupported/i,
    );
    const answer = await echo({ ...settings, keyfilePassword: 'k3y-pass' });
    assert.equal(answer.clientName, 'locked-client');
  });

  it('sends Basic credentials with unsafe methods only', async () => {
    const settings: RestClientSettings = {
      cacert: at('ca.crt', 'ctl.cacert'),
      credentials: { username: 'admin', password: 's3cret', key: 'ctl.authentication' },
    };
    const post = await echo(settings, 'POST');
    assert.equal(post.authorization, `Basic ${Buffer.from('admin:s3cret').toString('base64')}`);
    assert.deepEqual(JSON.parse(post.body), { leader: 'node1' });
    assert.equal((await echo(settings, 'GET')).authorization, null, 'GETs are never protected by credentials: none sent');
  });

  it('refuses an untrusted server certificate, saying which key to set; insecure skips the check', async () => {
    await assert.rejects(echo({}), (error: unknown) => {
      assert.ok(isPgwardenError(error, 'PGW_API_UNREACHABLE'), String(error));
      assert.match(error.message, /TLS certificate is not trusted \(.*\); set ctl\.cacert \(or restapi\.cafile\)/);
      return true;
    });
    await assert.rejects(echo({ cacert: at('rogue-ca.crt', 'restapi.cafile') }), /restapi\.cafile \(.*rogue-ca\/ca\.pem\) did not sign it/);
    const insecure = await echo({ isInsecure: true });
    assert.equal(insecure.method, 'GET');
  });

  it('with a client certificate, insecure still verifies the chain but not the host name (as Patroni)', async () => {
    const client = { certfile: at('client.crt', 'ctl.certfile'), keyfile: at('client.key', 'ctl.keyfile') };
    await assert.rejects(echo({ cacert: at('ca.crt', 'ctl.cacert'), ...client }, 'GET', misnamedUrl), /ERR_TLS_CERT_ALTNAME_INVALID/);
    const answer = await echo({ cacert: at('ca.crt', 'ctl.cacert'), ...client, isInsecure: true }, 'GET', misnamedUrl);
    assert.equal(answer.clientName, 'client');
    await assert.rejects(echo({ cacert: at('rogue-ca.crt', 'ctl.cacert'), ...client, isInsecure: true }), /not trusted/);
  });

  it('builds from a config through restClientSettings, and an unreadable file names its key', async () => {
    const settings = restClientSettings({
      ctl: { cacert: file('ca.crt'), authentication: { username: 'admin', password: 'pw' } },
      restapi: { certfile: file('client.crt'), keyfile: file('client.key') },
    });
    const answer = await echo(settings, 'POST');
    assert.equal(answer.clientName, 'client', "restapi.certfile is the fallback client certificate, as in Patroni's agent");
    assert.equal(answer.authorization, `Basic ${Buffer.from('admin:pw').toString('base64')}`);
    assert.throws(
      () => createRestClient({ cacert: { path: '/nonexistent/ca.pem', key: 'ctl.cacert' } }),
      (error: unknown) =>
        isPgwardenError(error, 'PGW_CONFIG_UNREADABLE') && /^ctl\.cacert: cannot read \/nonexistent\/ca\.pem/.test(error.message),
    );
  });

  it('the peer client (leader probe, POST /failsafe) and a kept-alive client (proxy) use the same settings', async () => {
    const settings: RestClientSettings = {
      cacert: at('ca.crt', 'restapi.cafile'),
      certfile: at('server.crt', 'restapi.certfile'),
      keyfile: at('server.key', 'restapi.keyfile'),
      credentials: { username: 'admin', password: 'pw', key: 'restapi.authentication' },
    };
    const member: MemberRecord = {
      name: 'node2',
      conn_url: 'postgres://127.0.0.1:1/postgres',
      api_url: url,
      state: 'running',
      role: 'replica',
    };
    const status = await new HttpPeerClient(createRestClient(settings)).fetchStatus(member, signal());
    assert.equal(status.isReachable, true, 'a TLS peer answers the leader probe');
    assert.equal(await new HttpPeerClient(createRestClient({})).fetchStatus(member, signal()).then((peer) => peer.isReachable), false);
    const kept = createRestClient(settings, { isKeptAlive: true });
    try {
      for (let index = 0; index < 3; index++) assert.equal((await kept.callMember(url, '/primary', { signal: signal() })).status, 200);
    } finally {
      kept.close();
    }
  });
});

describe("the CLI's REST calls", () => {
  let server: HttpServer;
  let member: MemberRecord;
  before(async () => {
    server = createHttpServer((request, response) => {
      if (request.url === '/cert') {
        response.writeHead(403, { 'content-type': 'text/plain' });
        response.end('client certificate required');
        return;
      }
      response.writeHead(401, { 'www-authenticate': 'Basic realm="Patroni"' });
      response.end(request.headers.authorization === undefined ? 'no auth header received' : 'not authenticated');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    member = { name: 'node1', api_url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/patroni` } as MemberRecord;
  });
  after(() => new Promise<void>((resolve) => server.close(() => resolve())));

  it('turn 401 and a missing client certificate into errors that say which key to set', async () => {
    await assert.rejects(callApi(member, 'POST', '/restart', {}, createRestClient({}), 5000), (error: unknown) => {
      assert.ok(isPgwardenError(error, 'PGW_API_AUTH'));
      assert.equal(
        error.message,
        'node1: authentication required: set ctl.authentication or restapi.authentication (username and password) in the config file',
      );
      return true;
    });
    const wrong = createRestClient({ credentials: { username: 'admin', password: 'nope', key: 'ctl.authentication' } });
    await assert.rejects(
      callApi(member, 'POST', '/restart', {}, wrong, 5000),
      /authentication failed with the username and password of ctl\.authentication \(not authenticated\)/,
    );
    await assert.rejects(
      callApi(member, 'POST', '/cert', {}, wrong, 5000),
      /requires a client certificate: set ctl\.certfile and ctl\.keyfile/,
    );
  });
});
