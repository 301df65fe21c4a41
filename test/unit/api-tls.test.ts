// REST API over HTTPS: served with restapi.certfile/keyfile, and client certificates enforced as Patroni's verify_client does.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startApiServer, type ApiServer } from '../../src/api/server.js';
import { createCertificateAuthority, type CertificateFiles } from '../../src/local/tls-certs.js';
import { requestText } from '../../src/util/http-request.js';
import { silentLog } from '../../src/util/log.js';
import { agentSnapshot } from '../sim/builders.js';

const snapshot = agentSnapshot();

describe('REST API over TLS', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pgw-tls-'));
  let caFile = '';
  const issued: Partial<Record<'server' | 'client', CertificateFiles>> = {};
  const pair = (name: 'server' | 'client'): CertificateFiles => issued[name] ?? assert.fail(`no ${name} certificate`);
  let server: ApiServer;

  before(async () => {
    const ca = await createCertificateAuthority(join(dir, 'pki'));
    caFile = ca.cert;
    for (const name of ['server', 'client'] as const) issued[name] = await ca.issue(name, { server: { ips: ['127.0.0.1'] } });
    server = await startApiServer({
      host: '127.0.0.1',
      port: 0,
      getSnapshot: () => snapshot,
      nowMs: () => 0,
      log: silentLog,
      tls: {
        cert: readFileSync(pair('server').cert),
        key: readFileSync(pair('server').key),
        ca: readFileSync(caFile),
        verifyClient: 'required',
      },
    });
  });

  after(async () => {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('serves health checks to a client with a certificate from the CA', async () => {
    const reply = await requestText(`https://127.0.0.1:${server.port}/primary`, {
      signal: AbortSignal.timeout(5000),
      tls: { ca: readFileSync(caFile), cert: readFileSync(pair('client').cert), key: readFileSync(pair('client').key) },
    });
    assert.equal(reply.status, 200);
    assert.equal((JSON.parse(reply.text) as { role: string }).role, 'master');
  });

  it('answers 403 without a client certificate and refuses an untrusted server certificate', async () => {
    const reply = await requestText(`https://127.0.0.1:${server.port}/primary`, {
      signal: AbortSignal.timeout(5000),
      tls: { ca: readFileSync(caFile) },
    });
    assert.deepEqual([reply.status, reply.text], [403, 'client certificate required']);
    await assert.rejects(
      requestText(`https://127.0.0.1:${server.port}/primary`, { signal: AbortSignal.timeout(5000) }),
      /self.signed|unable to verify|certificate/i,
    );
  });
});
