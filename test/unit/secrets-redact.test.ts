// Secrets stay secret: the one redaction (util/redact.ts) and the output boundaries that use it (REST bodies,
// show-config, the edit-config diff, error messages, log lines).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { handleRequest } from '../../src/api/routes.js';
import { configDiff } from '../../src/cli/commands/control.js';
import { showConfig } from '../../src/cli/commands/inspect.js';
import type { DynamicConfig } from '../../src/core/types.js';
import { DataDir } from '../../src/postgres/data-dir.js';
import { describeError, PgwardenError } from '../../src/util/errors.js';
import { isSecretKey, REDACTED, redactSecrets, redactText } from '../../src/util/redact.js';
import { agentSnapshot, view } from '../sim/builders.js';

const SECRET = 'Sup3r-s3cret';

describe('redaction', () => {
  it('masks the value of every secret key at any depth, and keeps paths, usernames and unset values', () => {
    const config = {
      restapi: { authentication: { username: 'admin', password: SECRET }, keyfile: '/etc/key.pem', keyfile_password: SECRET },
      ctl: { authentication: { username: 'ctl', password: SECRET }, keyfile_password: SECRET },
      etcd3: { username: 'root', password: SECRET, token: SECRET },
      postgresql: {
        pgpass: '/tmp/pgpass',
        authentication: {
          superuser: { username: 'postgres', password: SECRET, sslpassword: SECRET, sslkey: '/k' },
          replication: { username: 'rep', password: null },
        },
        parameters: { primary_conninfo: `host=a port=5432 user=rep password=${SECRET} sslmode=require` },
      },
      list: [{ api_secret: SECRET }],
      count: 3n,
    };
    const redacted = redactSecrets(config);
    assert.ok(!JSON.stringify(redacted, (_key, value: unknown) => (typeof value === 'bigint' ? String(value) : value)).includes(SECRET));
    assert.equal(redacted.restapi.authentication.username, 'admin');
    assert.equal(redacted.restapi.authentication.password, REDACTED);
    assert.equal(redacted.restapi.keyfile, '/etc/key.pem');
    assert.equal(redacted.postgresql.pgpass, '/tmp/pgpass');
    assert.equal(redacted.postgresql.authentication.superuser.sslkey, '/k');
    assert.equal(redacted.postgresql.authentication.replication.password, null, 'no password set stays visible');
    assert.equal(redacted.postgresql.parameters.primary_conninfo, `host=a port=5432 user=rep password=${REDACTED} sslmode=require`);
    assert.equal(redacted.count, 3n);
    assert.equal(config.restapi.authentication.password, SECRET, 'the original is untouched');
    for (const key of ['password', 'sslpassword', 'keyfile_password', 'key_password', 'token', 'client_secret', 'passphrase', 'auth'])
      assert.ok(isSecretKey(key), key);
    for (const key of ['pgpass', 'passfile', 'keyfile', 'sslkey', 'username', 'authentication']) assert.ok(!isSecretKey(key), key);
  });

  it('masks passwords inside conninfo strings, URIs, Authorization values and PEM private keys', () => {
    assert.equal(redactText(`host=h password='a b\\' c' user=u`), `host=h password=${REDACTED} user=u`);
    assert.equal(redactText(`PGPASSWORD=${SECRET} psql`), `PGPASSWORD=${REDACTED} psql`);
    assert.equal(
      redactText(`sslpassword=${SECRET} keyfile_password = ${SECRET}`),
      `sslpassword=${REDACTED} keyfile_password = ${REDACTED}`,
    );
    assert.equal(
      redactText(`postgresql://postgres:${SECRET}@127.0.0.1:5432/postgres`),
      `postgresql://postgres:${REDACTED}@127.0.0.1:5432/postgres`,
    );
    assert.equal(redactText('http://127.0.0.1:8008/patroni'), 'http://127.0.0.1:8008/patroni', 'a port is no password');
    assert.equal(redactText('authorization: Basic YWRtaW46c2VjcmV0'), `authorization: Basic ${REDACTED}`);
    assert.ok(!redactText(`-----BEGIN PRIVATE KEY-----\nMIIEv${SECRET}\n-----END PRIVATE KEY-----`).includes(SECRET));
    assert.equal(redactText('nothing to hide here'), 'nothing to hide here');
  });

  it('describeError never passes on a password quoted in a message', () => {
    const error = new PgwardenError('PGW_PG_UNREACHABLE', `cannot connect with "host=x password=${SECRET}"`);
    assert.equal(describeError(error), `cannot connect with "host=x password=${REDACTED}"`);
    assert.ok(!describeError(new Error(`fetch postgres://u:${SECRET}@h failed`)).includes(SECRET));
  });

  it('GET /config and every JSON answer of the REST API are redacted; show-config too; the edit-config diff shows a change', () => {
    const config = {
      ttl: 30,
      loop_wait: 10,
      retry_timeout: 10,
      postgresql: { parameters: { primary_conninfo: `host=a password=${SECRET}` } },
      standby_cluster: { password: SECRET },
    } as unknown as DynamicConfig;
    const snapshot = agentSnapshot({ view: { ...view({ leaderName: 'node1' }), config } });
    for (const path of ['/config', '/patroni', '/cluster', '/history', '/primary', '/whatever']) {
      const reply = handleRequest({ method: 'GET', path, query: new URLSearchParams() }, { snapshot, nowMs: 0 });
      assert.ok(!(reply.body ?? '').includes(SECRET), path);
    }
    const shown = handleRequest({ method: 'GET', path: '/config', query: new URLSearchParams() }, { snapshot, nowMs: 0 });
    assert.equal((JSON.parse(shown.body!) as { ttl: number }).ttl, 30);
    const clusterView = { ...view({ leaderName: 'node1' }), config };
    for (const format of ['yaml', 'json'] as const) {
      const text = showConfig(clusterView, format);
      assert.ok(!text.includes(SECRET) && text.includes(REDACTED), format);
    }
    const diff = configDiff(config, { ...config, standby_cluster: { password: 'other' } });
    assert.ok(!diff.join('\n').includes(SECRET) && !diff.join('\n').includes('other'));
    assert.deepEqual(diff, ['---', '+++', `-  password: "${REDACTED}"`, `+  password: "${REDACTED}"`]);
  });

  it('the pgpass file pgwarden writes is 0600, also over a file left readable by others', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pgw-pgpass-'));
    try {
      const pgpassPath = join(dir, 'pgpass');
      writeFileSync(pgpassPath, 'old\n', { mode: 0o644 });
      chmodSync(pgpassPath, 0o644);
      const dataDir = new DataDir({
        member: 'node1',
        scope: 'batman',
        dataDir: join(dir, 'data'),
        listenHost: '127.0.0.1',
        port: 5432,
        socketDir: dir,
        superuser: { username: 'postgres', password: SECRET },
        replication: { username: 'replicator', password: SECRET },
        pgHba: [],
        pgpassPath,
      });
      await dataDir.writePgpass();
      assert.equal(statSync(pgpassPath).mode & 0o777, 0o600);
      assert.match(readFileSync(pgpassPath, 'utf8'), /replicator/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('log lines carry no secret, whatever the fields and the message hold', () => {
    const script = `
      import { createLogger } from ${JSON.stringify(new URL('../../src/obs/logger.js', import.meta.url).href)};
      const log = createLogger({ member: 'node1', scope: 'batman' });
      log.info({ authentication: { username: 'admin', password: '${SECRET}' }, conninfo: 'password=${SECRET}' }, 'connecting to postgres://u:${SECRET}@h');
      log.error({ error: new Error('connect postgres://u:${SECRET}@h'), token: '${SECRET}' }, 'failed');
      const plain = createLogger({ member: 'node1', scope: 'batman', type: 'plain' });
      plain.warn({ password: '${SECRET}' }, 'PGPASSWORD=${SECRET}');
    `;
    const output = execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
    assert.equal(output.trim().split('\n').length, 3, output);
    assert.ok(!output.includes(SECRET), output);
    assert.ok(output.includes('"username":"admin"'), output);
  });
});
