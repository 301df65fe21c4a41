// REST API over HTTPS: served with restapi.certfile/keyfile, and client certificates enforced as Patroni's verify_client does.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { AgentSnapshot } from '../../src/agent/snapshot.js';
import { startApiServer, type ApiServer } from '../../src/api/server.js';
import { requestText } from '../../src/util/http-request.js';
import { silentLog } from '../../src/util/log.js';
import { primaryPg, view } from '../sim/builders.js';

const snapshot: AgentSnapshot = {
  name: 'node1',
  scope: 'batman',
  version: '3.0.2',
  tags: {},
  state: 'running',
  pg: primaryPg(),
  view: view({ leaderName: 'node1' }),
  isDcsReachable: true,
  dcsLastSeenEpochS: 0,
  isLeaderWithLock: true,
  isStandbyLeader: false,
  isPaused: false,
  task: { kind: 'idle' },
  lastCycleAtMs: 0,
  ttlMs: 30_000,
  lastReason: '',
};

describe('REST API over TLS', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pgw-tls-'));
  const file = (name: string): string => join(dir, name);
  const openssl = (...args: string[]): void => void execFileSync('openssl', args, { stdio: 'ignore' });
  let server: ApiServer;

  before(async () => {
    openssl(
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      file('ca.key'),
      '-out',
      file('ca.crt'),
      '-days',
      '2',
      '-subj',
      '/CN=pgwarden test CA',
    );
    writeFileSync(file('san.ext'), 'subjectAltName=IP:127.0.0.1\n');
    for (const name of ['server', 'client']) {
      openssl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', file(`${name}.key`), '-out', file(`${name}.csr`), '-subj', `/CN=${name}`);
      openssl(
        'x509',
        '-req',
        '-in',
        file(`${name}.csr`),
        '-CA',
        file('ca.crt'),
        '-CAkey',
        file('ca.key'),
        '-CAcreateserial',
        '-out',
        file(`${name}.crt`),
        '-days',
        '2',
        '-extfile',
        file('san.ext'),
      );
    }
    server = await startApiServer({
      host: '127.0.0.1',
      port: 0,
      getSnapshot: () => snapshot,
      nowMs: () => 0,
      log: silentLog,
      tls: {
        cert: readFileSync(file('server.crt')),
        key: readFileSync(file('server.key')),
        ca: readFileSync(file('ca.crt')),
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
      tls: { ca: readFileSync(file('ca.crt')), cert: readFileSync(file('client.crt')), key: readFileSync(file('client.key')) },
    });
    assert.equal(reply.status, 200);
    assert.equal((JSON.parse(reply.text) as { role: string }).role, 'master');
  });

  it('answers 403 without a client certificate and refuses an untrusted server certificate', async () => {
    const reply = await requestText(`https://127.0.0.1:${server.port}/primary`, {
      signal: AbortSignal.timeout(5000),
      tls: { ca: readFileSync(file('ca.crt')) },
    });
    assert.deepEqual([reply.status, reply.text], [403, 'client certificate required']);
    await assert.rejects(
      requestText(`https://127.0.0.1:${server.port}/primary`, { signal: AbortSignal.timeout(5000) }),
      /self.signed|unable to verify|certificate/i,
    );
  });
});
