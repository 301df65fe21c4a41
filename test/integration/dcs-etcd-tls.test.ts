// The etcd backend over TLS with client certificates (etcd --client-cert-auth): the DCS conformance suite passes, the
// CLI reads the cluster, and a wrong CA, a foreign, expired or missing client certificate each give one clear error.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { etcdConnection, openEtcdDcs, type EtcdSettings } from '../../src/bin/adapters.js';
import { runDcsConformance } from '../../src/dcs/conformance.js';
import { startEtcdCluster, type EtcdClusterHandle } from '../../src/local/etcd-cluster.js';
import { createCertificateAuthority, createEtcdTlsFiles, type CertificateFiles, type EtcdTlsFiles } from '../../src/local/tls-certs.js';
import { isPgwardenError, type PgwardenError } from '../../src/util/errors.js';
import { stopOnInterrupt } from '../kit/fixtures.js';

const CLI = fileURLToPath(new URL('../../src/bin/pgwarden.js', import.meta.url));
const FIXTURE = fileURLToPath(new URL('../../../test/fixtures/patroni-node1.yml', import.meta.url));
const TTL_SECONDS = 2;
const DAY_MS = 86_400_000;

let etcd: EtcdClusterHandle | undefined;
let dir = '';
let files: EtcdTlsFiles;
let otherCa: { cert: string; client: CertificateFiles };
let expiredClient: CertificateFiles;
let scopes = 0;
let forgetInterrupt: (() => void) | undefined;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pgw-etcd-tls-'));
  files = await createEtcdTlsFiles(join(dir, 'pki'));
  expiredClient = await files.ca.issue('expired-client', {
    notBefore: new Date(Date.now() - 30 * DAY_MS),
    notAfter: new Date(Date.now() - DAY_MS),
  });
  const other = await createCertificateAuthority(join(dir, 'other-pki'), 'some other CA');
  otherCa = { cert: other.cert, client: await other.issue('foreign-client') };
  etcd = await startEtcdCluster({
    size: 1,
    dir: join(dir, 'etcd'),
    tls: { ca: files.ca.cert, cert: files.server.cert, key: files.server.key, isClientCertRequired: true, client: files.client },
  });
  const started = etcd;
  forgetInterrupt = stopOnInterrupt(() => started.stop());
});

after(async () => {
  await etcd?.stop();
  forgetInterrupt?.();
  await rm(dir, { recursive: true, force: true });
});

const settings = (overrides: Partial<EtcdSettings> = {}): EtcdSettings => ({
  hosts: etcd!.endpoints.map((endpoint) => endpoint.replace(/^https:\/\//, '')),
  protocol: 'https',
  cacert: files.ca.cert,
  cert: files.client.cert,
  key: files.client.key,
  ...overrides,
});

const client = (overrides: Partial<EtcdSettings> = {}, scope = 'tls-errors') =>
  openEtcdDcs({ ...etcdConnection(settings(overrides)), namespace: '/service', scope, member: 'node1' });

runDcsConformance('etcd over TLS with client certificates', () => ({
  ttlSeconds: TTL_SECONDS,
  newScope: () => {
    const scope = `tls-conformance${++scopes}`;
    return (member: string) => openEtcdDcs({ ...etcdConnection(settings()), namespace: '/service', scope, member });
  },
  advancePastTtl: () => new Promise((resolve) => setTimeout(resolve, TTL_SECONDS * 1000 + 1500)),
  unreachable: () =>
    openEtcdDcs({ ...etcdConnection({ ...settings(), hosts: ['127.0.0.1:1'] }), namespace: '/service', scope: 'x', member: 'node9' }),
}));

describe('etcd TLS failures: one clear error naming the endpoint and the cause', () => {
  /** The one error a read gives, checked to be PGW_DCS_TLS with exactly this message. */
  async function expectTlsError(overrides: Partial<EtcdSettings>, message: (endpoint: string) => string): Promise<PgwardenError> {
    const dcs = client(overrides);
    let caught: PgwardenError | undefined;
    try {
      await assert.rejects(dcs.loadCluster(AbortSignal.timeout(5000)), (error: unknown) => {
        assert.ok(isPgwardenError(error, 'PGW_DCS_TLS'), `a PGW_DCS_TLS error, not ${String(error)}`);
        assert.equal(error.message, message(etcd!.endpoints[0]!));
        assert.equal(error.context.endpoint, etcd!.endpoints[0]);
        caught = error;
        return true;
      });
    } finally {
      await dcs.close();
    }
    return caught!;
  }

  it('etcd certificate not signed by cacert', async () => {
    const error = await expectTlsError(
      { cacert: otherCa.cert },
      (endpoint) => `etcd ${endpoint}: server certificate not trusted by cacert ${otherCa.cert} (UNABLE_TO_VERIFY_LEAF_SIGNATURE)`,
    );
    assert.equal(error.context.path, otherCa.cert);
  });

  it('a watch opened right after a TLS failure fails at once with the same error (no handshake every retry)', async () => {
    const dcs = client({ cacert: otherCa.cert });
    try {
      await assert.rejects(dcs.loadCluster(AbortSignal.timeout(5000)), (error: unknown) => isPgwardenError(error, 'PGW_DCS_TLS'));
      const startedAt = performance.now();
      await assert.rejects(dcs.watch('1', AbortSignal.timeout(5000)), (error: unknown) => {
        assert.ok(isPgwardenError(error, 'PGW_DCS_TLS'), String(error));
        assert.match(error.message, /server certificate not trusted by cacert/);
        return true;
      });
      assert.ok(performance.now() - startedAt < 100);
    } finally {
      await dcs.close();
    }
  });

  it('a client certificate signed by another CA', async () => {
    await expectTlsError(
      { cert: otherCa.client.cert, key: otherCa.client.key },
      (endpoint) =>
        `etcd ${endpoint}: etcd refused client certificate ${otherCa.client.cert}, issued by 'CN=some other CA', not by cacert ${files.ca.cert}: sign it with the CA of etcd's --trusted-ca-file (ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE)`,
    );
  });

  it('an expired client certificate', async () => {
    const validTo = new Date(new X509Certificate(await readFile(expiredClient.cert)).validTo);
    assert.ok(validTo.getTime() < Date.now() - DAY_MS + 120_000, 'openssl made it expire a day ago');
    const error = await expectTlsError(
      { cert: expiredClient.cert, key: expiredClient.key },
      (endpoint) =>
        `etcd ${endpoint}: client certificate ${expiredClient.cert} expired on ${validTo.toISOString()}: issue a new one (ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE)`,
    );
    assert.equal(error.context.path, expiredClient.cert);
  });

  it('no client certificate when etcd requires one', async () => {
    await expectTlsError(
      { cert: undefined, key: undefined },
      (endpoint) =>
        `etcd ${endpoint}: etcd requires a client certificate and none is configured: set etcd3.cert and etcd3.key (ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE)`,
    );
  });

  it('a key that does not belong to the certificate', async () => {
    await expectTlsError(
      { key: expiredClient.key },
      (endpoint) =>
        `etcd ${endpoint}: etcd3.key ${expiredClient.key} is not the private key of etcd3.cert ${files.client.cert} (ERR_OSSL_X509_KEY_VALUES_MISMATCH)`,
    );
  });
});

describe('etcd over TLS without client certificates', () => {
  let serverOnly: EtcdClusterHandle | undefined;
  before(async () => {
    serverOnly = await startEtcdCluster({
      size: 1,
      dir: join(dir, 'etcd-server-only'),
      tls: { ca: files.ca.cert, cert: files.server.cert, key: files.server.key, isClientCertRequired: false, client: files.client },
    });
  });
  after(async () => {
    await serverOnly?.stop();
  });

  it('verifies etcd against cacert alone; without cacert, it says the system CAs do not trust etcd', async () => {
    const open = (cacert: string | undefined) =>
      openEtcdDcs({
        ...etcdConnection({ hosts: serverOnly!.endpoints, protocol: 'http', ...(cacert !== undefined ? { cacert } : {}) }),
        namespace: '/service',
        scope: 'server-only',
        member: 'node1',
      });
    const trusted = open(files.ca.cert);
    const untrusted = open(undefined);
    try {
      assert.equal(await trusted.acquireLeader(10_000, AbortSignal.timeout(5000)), true);
      assert.equal((await trusted.loadCluster(AbortSignal.timeout(5000))).leader?.name, 'node1');
      await assert.rejects(untrusted.loadCluster(AbortSignal.timeout(5000)), (error: unknown) => {
        assert.ok(isPgwardenError(error, 'PGW_DCS_TLS'), String(error));
        assert.equal(
          error.message,
          `etcd ${serverOnly!.endpoints[0]!}: server certificate not trusted by the system CAs: set etcd3.cacert to the CA that signed etcd's certificate (UNABLE_TO_VERIFY_LEAF_SIGNATURE)`,
        );
        return true;
      });
    } finally {
      await trusted.close();
      await untrusted.close();
    }
  });
});

describe('pgwarden CLI over TLS', () => {
  const run = promisify(execFile);
  const configWith = async (name: string, etcdSection: string): Promise<string> => {
    const text = (await readFile(FIXTURE, 'utf8')).replace(/etcd3:\n {2}hosts: .*\n/, `etcd3:\n${etcdSection}`);
    const path = join(dir, name);
    await writeFile(path, text, { mode: 0o600 });
    return path;
  };
  const section = (cacert: string): string =>
    [
      `  hosts: ${etcd!.endpoints[0]!.replace(/^https:\/\//, '')}`,
      '  protocol: https',
      `  cacert: ${cacert}`,
      `  cert: ${files.client.cert}`,
      `  key: ${files.client.key}`,
      '',
    ].join('\n');

  it('lists the cluster through the TLS client; a wrong CA is one line naming the endpoint and the CA', async () => {
    const good = await configWith('cli-good.yml', section(files.ca.cert));
    const listed = await run(process.execPath, [CLI, '-c', good, 'list'], { timeout: 30_000 });
    assert.match(listed.stdout, /Cluster: bench/);
    const bad = await configWith('cli-bad.yml', section(otherCa.cert));
    const failed = await run(process.execPath, [CLI, '-c', bad, 'list'], { timeout: 30_000 }).then(
      () => assert.fail('the CLI accepted an untrusted etcd'),
      (error: { stderr: string; code: number }) => error,
    );
    assert.equal(failed.code, 1);
    assert.equal(
      failed.stderr.trim(),
      `Error: etcd ${etcd!.endpoints[0]!}: server certificate not trusted by cacert ${otherCa.cert} (UNABLE_TO_VERIFY_LEAF_SIGNATURE)`,
    );
  });

  it('a missing cacert file stops the CLI at start, naming the key and the path', async () => {
    const missing = join(dir, 'no-such-ca.pem');
    const config = await configWith('cli-missing.yml', section(missing));
    const failed = await run(process.execPath, [CLI, '-c', config, 'list'], { timeout: 30_000 }).then(
      () => assert.fail('accepted'),
      (error: { stderr: string }) => error,
    );
    assert.match(failed.stderr, new RegExp(`^Error: etcd3\\.cacert: cannot read ${missing} \\(ENOENT`));
  });
});
