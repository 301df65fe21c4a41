// postgresql.authentication TLS keys: conninfo rendering (quoting, which keys go where), the service file that keeps
// sslpassword off command lines, psql's environment, the config schema, and libpq's sslmode mapped onto node:tls.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseConfig } from '../../src/config/load.js';
import { bootstrapRolesSql, pgBasebackupArgv, pgRewindArgv } from '../../src/postgres/commands.js';
import { renderPostgresqlConf, renderPrimaryConninfo } from '../../src/postgres/conf-render.js';
import {
  programConninfo,
  quoteConninfoValue,
  renderServiceFile,
  securityEnvironment,
  securityPairs,
  type PgSecurity,
} from '../../src/postgres/conninfo.js';
import { nodeTlsPlan, TlsSettingsError, type TlsFiles } from '../../src/postgres/tls-options.js';

const FULL: PgSecurity = {
  sslmode: 'verify-full',
  sslcert: '/certs/replicator.crt',
  sslkey: '/certs/replicator.key',
  sslrootcert: '/certs/ca.crt',
  sslcrl: '/certs/ca.crl',
  sslcrldir: '/certs/crl.d',
  gssencmode: 'disable',
  channel_binding: 'require',
  sslpassword: "pa ss'w\\ord",
};

describe('conninfo rendering', () => {
  it("quotes values as libpq reads them: bare when safe, else single quotes with \\ and ' escaped", () => {
    assert.equal(quoteConninfoValue('/etc/ssl/ca.crt'), '/etc/ssl/ca.crt');
    assert.equal(quoteConninfoValue('verify-full'), 'verify-full');
    assert.equal(quoteConninfoValue(''), "''");
    assert.equal(quoteConninfoValue('/my certs/ca.crt'), "'/my certs/ca.crt'");
    assert.equal(quoteConninfoValue("it's"), "'it\\'s'");
    assert.equal(quoteConninfoValue('C:\\certs'), "'C:\\\\certs'");
  });

  it('writes the TLS keys that are set, sslmode always (prefer by default), sslpassword never', () => {
    assert.deepEqual(securityPairs({}), [['sslmode', 'prefer']]);
    assert.deepEqual(securityPairs(FULL), [
      ['sslmode', 'verify-full'],
      ['sslcert', '/certs/replicator.crt'],
      ['sslkey', '/certs/replicator.key'],
      ['sslrootcert', '/certs/ca.crt'],
      ['sslcrl', '/certs/ca.crl'],
      ['sslcrldir', '/certs/crl.d'],
      ['gssencmode', 'disable'],
      ['channel_binding', 'require'],
    ]);
  });

  it('primary_conninfo carries the replication user\u2019s keys, sslpassword included (postgresql.conf is 0600)', () => {
    const conninfo = renderPrimaryConninfo({
      host: '10.0.0.1',
      port: 5432,
      user: 'replicator',
      applicationName: 'node2',
      passfile: '/var/lib/postgresql/pgpass',
      slotName: 'node2',
      security: { ...FULL, sslrootcert: '/my certs/ca.crt' },
    });
    assert.equal(
      conninfo,
      "host=10.0.0.1 port=5432 user=replicator application_name=node2 passfile=/var/lib/postgresql/pgpass sslmode=verify-full sslcert=/certs/replicator.crt sslkey=/certs/replicator.key sslrootcert='/my certs/ca.crt' sslcrl=/certs/ca.crl sslcrldir=/certs/crl.d gssencmode=disable channel_binding=require sslpassword='pa ss\\'w\\\\ord' connect_timeout=2 keepalives=1 keepalives_idle=2 keepalives_interval=1 keepalives_count=3",
    );
    const conf = renderPostgresqlConf({
      parameters: { ssl: 'on', ssl_cert_file: '/certs/server.crt', ssl_key_file: '/certs/server.key', ssl_ca_file: '/certs/ca.crt' },
      listenHost: '127.0.0.1',
      port: 5432,
      scope: 's',
      socketDir: '/tmp',
      replica: {
        host: 'h',
        port: 1,
        user: 'r',
        applicationName: 'a',
        passfile: '/p',
        slotName: undefined,
        security: { sslmode: 'require' },
      },
    });
    // The server side: ssl* parameters reach postgresql.conf untouched; primary_conninfo's quotes are GUC-escaped.
    assert.match(conf, /^ssl = 'on'$/m);
    assert.match(conf, /^ssl_cert_file = '\/certs\/server\.crt'$/m);
    assert.match(conf, /^ssl_key_file = '\/certs\/server\.key'$/m);
    assert.match(conf, /^ssl_ca_file = '\/certs\/ca\.crt'$/m);
    assert.match(conf, /^primary_conninfo = 'host=h port=1 user=r application_name=a passfile=\/p sslmode=require connect_timeout=2 /m);
  });

  it('pg_basebackup -d and pg_rewind --source-server carry the keys, and name the service instead of the sslpassword', () => {
    const basebackup = pgBasebackupArgv('/bin/pg_basebackup', {
      dataDir: '/d',
      host: 'h',
      port: 5,
      user: 'replicator',
      security: FULL,
      service: 'pgwarden_replication',
    });
    assert.equal(
      basebackup[basebackup.indexOf('-d') + 1],
      `host=h port=5 user=replicator service=pgwarden_replication ${securityPairs(FULL)
        .map(([k, v]) => `${k}=${v}`)
        .join(' ')}`,
    );
    assert.ok(!basebackup.join(' ').includes('pa ss'), 'no sslpassword in argv');
    const rewind = pgRewindArgv('/bin/pg_rewind', {
      dataDir: '/d',
      host: 'h',
      port: 5,
      user: 'postgres',
      security: { sslmode: 'verify-ca', sslrootcert: '/ca' },
      service: 'pgwarden_superuser',
    });
    // No sslpassword: no service (libpq would fail on a service that the file does not define).
    assert.equal(
      rewind[3],
      '--source-server=host=h port=5 user=postgres dbname=postgres connect_timeout=3 sslmode=verify-ca sslrootcert=/ca',
    );
    assert.equal(programConninfo({ host: '/run/pg', port: 1, user: "o'neil" }, {}), "host=/run/pg port=1 user='o\\'neil' sslmode=prefer");
  });

  it('creates the rewind role after initdb with execute on what pg_rewind reads, names and passwords quoted', () => {
    assert.equal(
      bootstrapRolesSql({ replication: { username: 'replicator', password: "it's" } }),
      "CREATE ROLE \"replicator\" WITH REPLICATION LOGIN PASSWORD 'it''s';\n",
    );
    const lines = bootstrapRolesSql({ replication: { username: 'r' }, rewind: { username: 're"wind', password: 'x' } })
      .trimEnd()
      .split('\n');
    assert.deepEqual(lines, [
      'CREATE ROLE "r" WITH REPLICATION LOGIN PASSWORD \'\';',
      'CREATE ROLE "re""wind" WITH LOGIN PASSWORD \'x\';',
      'GRANT EXECUTE ON FUNCTION pg_catalog.pg_ls_dir(text, boolean, boolean) TO "re""wind";',
      'GRANT EXECUTE ON FUNCTION pg_catalog.pg_stat_file(text, boolean) TO "re""wind";',
      'GRANT EXECUTE ON FUNCTION pg_catalog.pg_read_binary_file(text) TO "re""wind";',
      'GRANT EXECUTE ON FUNCTION pg_catalog.pg_read_binary_file(text, bigint, bigint, boolean) TO "re""wind";',
    ]);
  });

  it('the service file holds only sslpasswords, one section per user, and refuses a line break', () => {
    assert.equal(
      renderServiceFile([
        { service: 'pgwarden_replication', sslpassword: "pa ss'w\\ord" },
        { service: 'pgwarden_superuser', sslpassword: undefined },
      ]),
      "[pgwarden_replication]\nsslpassword=pa ss'w\\ord\n",
    );
    assert.throws(() => renderServiceFile([{ service: 's', sslpassword: 'a\nb' }]), /line break/);
  });

  it('psql gets libpq\u2019s variables (no sslpassword: libpq has none)', () => {
    assert.deepEqual(securityEnvironment(FULL), {
      PGSSLMODE: 'verify-full',
      PGSSLCERT: '/certs/replicator.crt',
      PGSSLKEY: '/certs/replicator.key',
      PGSSLROOTCERT: '/certs/ca.crt',
      PGSSLCRL: '/certs/ca.crl',
      PGSSLCRLDIR: '/certs/crl.d',
      PGGSSENCMODE: 'disable',
      PGCHANNELBINDING: 'require',
    });
  });
});

describe('config schema: postgresql.authentication TLS keys', () => {
  const yaml = (auth: string): string => `
scope: s
name: n
restapi: { listen: 127.0.0.1:8008, connect_address: 127.0.0.1:8008 }
etcd3: { hosts: 127.0.0.1:2379 }
postgresql:
  listen: 127.0.0.1:5432
  connect_address: 127.0.0.1:5432
  data_dir: /d
  authentication:
${auth}
`;

  it('keeps every Patroni key (none stripped, none warned as unknown)', () => {
    const { config, warnings } = parseConfig(
      yaml(`    superuser: { username: postgres, password: x, sslmode: verify-full, sslrootcert: /ca, sslcert: /c, sslkey: /k, sslpassword: 1234, sslcrl: /crl, sslcrldir: /crld, gssencmode: disable, channel_binding: require }
    replication: { username: r, password: y, sslmode: require, sslnegotiation: postgres }`),
      'test.yml',
    );
    assert.deepEqual(config.postgresql.authentication.superuser, {
      username: 'postgres',
      password: 'x',
      sslmode: 'verify-full',
      sslrootcert: '/ca',
      sslcert: '/c',
      sslkey: '/k',
      sslpassword: '1234',
      sslcrl: '/crl',
      sslcrldir: '/crld',
      gssencmode: 'disable',
      channel_binding: 'require',
    });
    assert.equal(config.postgresql.authentication.replication.sslmode, 'require');
    assert.deepEqual(
      warnings.filter((warning) => /ssl|authentication/.test(warning)),
      [
        'postgresql.authentication.replication.sslnegotiation in test.yml is accepted for Patroni compatibility but not honoured: PostgreSQL 15\u2019s libpq has no sslnegotiation: TLS starts with the SSLRequest',
      ],
    );
  });

  it('refuses an sslmode libpq does not know, naming the key', () => {
    assert.throws(
      () => parseConfig(yaml('    superuser: { username: postgres, sslmode: verify }\n    replication: { username: r }'), 'test.yml'),
      /postgresql\.authentication\.superuser\.sslmode/,
    );
  });

  it('reads PATRONI_REPLICATION_SSLMODE and friends', () => {
    const { config } = parseConfig(yaml('    superuser: { username: postgres }\n    replication: { username: r }'), 'test.yml', {
      PATRONI_REPLICATION_SSLMODE: 'verify-ca',
      PATRONI_REPLICATION_SSLROOTCERT: '/ca',
    });
    assert.equal(config.postgresql.authentication.replication.sslmode, 'verify-ca');
    assert.equal(config.postgresql.authentication.replication.sslrootcert, '/ca');
  });
});

describe('sslmode mapped onto node-postgres (the agent\u2019s own sessions)', () => {
  const CA = Buffer.from('ca');
  const files = (present: Record<string, string>, homeDir?: string): TlsFiles => ({
    read: (path) => (path in present ? Buffer.from(present[path]!) : undefined),
    list: (path) => (path === '/crl.d' ? ['README', '0a1b2c3d.r1', '0a1b2c3d.r0'] : undefined),
    homeDir,
  });
  const none = files({});

  it('disable and Unix sockets: plain only; allow: plain then TLS; prefer (default): TLS then plain', () => {
    assert.deepEqual(nodeTlsPlan({ sslmode: 'disable' }, 'h', none).attempts, [false]);
    assert.deepEqual(nodeTlsPlan({ sslmode: 'verify-full' }, '/run/postgresql', none).attempts, [false]);
    assert.deepEqual(nodeTlsPlan({ sslmode: 'allow' }, 'h', none).attempts, [false, { rejectUnauthorized: false }]);
    assert.deepEqual(nodeTlsPlan({}, 'h', none).attempts, [{ rejectUnauthorized: false }, false]);
    assert.equal(nodeTlsPlan({}, 'h', none).sslmode, 'prefer');
  });

  it('require without a root certificate encrypts without verifying', () => {
    assert.deepEqual(nodeTlsPlan({ sslmode: 'require' }, 'h', none).attempts, [{ rejectUnauthorized: false }]);
  });

  it('require or verify-ca with a root certificate verify the chain, not the host name', () => {
    for (const sslmode of ['require', 'verify-ca']) {
      const [attempt] = nodeTlsPlan({ sslmode, sslrootcert: '/ca' }, 'h', files({ '/ca': 'ca' })).attempts;
      assert.ok(attempt !== false && attempt !== undefined);
      assert.deepEqual(attempt.ca, CA);
      assert.equal(attempt.rejectUnauthorized, true);
      assert.equal(attempt.checkServerIdentity?.('other-host', {} as never), undefined, `${sslmode} ignores the host name`);
    }
  });

  it('verify-full verifies the chain and the host name (node\u2019s own check against SAN DNS and IP)', () => {
    const [attempt] = nodeTlsPlan({ sslmode: 'verify-full', sslrootcert: '/ca' }, '127.0.0.1', files({ '/ca': 'ca' })).attempts;
    assert.ok(attempt !== false && attempt !== undefined);
    assert.equal(attempt.rejectUnauthorized, true);
    assert.equal(attempt.checkServerIdentity, undefined);
  });

  it('verify-* without a readable root certificate is refused, as libpq refuses it', () => {
    assert.throws(() => nodeTlsPlan({ sslmode: 'verify-full', sslrootcert: '/missing' }, 'h', none), TlsSettingsError);
    assert.throws(() => nodeTlsPlan({ sslmode: 'verify-ca' }, 'h', none), /sslrootcert/);
  });

  it('client certificate, key, passphrase and CRLs (file and directory)', () => {
    const [attempt] = nodeTlsPlan(
      { sslmode: 'verify-full', sslrootcert: '/ca', sslcert: '/c', sslkey: '/k', sslpassword: 'pw', sslcrl: '/crl', sslcrldir: '/crl.d' },
      'h',
      files({
        '/ca': 'ca',
        '/c': 'cert',
        '/k': 'key',
        '/crl': 'crl',
        '/crl.d/0a1b2c3d.r0': 'a',
        '/crl.d/0a1b2c3d.r1': 'b',
        '/crl.d/README': 'not a CRL',
      }),
    ).attempts;
    assert.ok(attempt !== false && attempt !== undefined);
    assert.deepEqual(attempt.cert, Buffer.from('cert'));
    assert.deepEqual(attempt.key, Buffer.from('key'));
    assert.equal(attempt.passphrase, 'pw');
    assert.deepEqual(attempt.crl, [Buffer.from('crl'), Buffer.from('a'), Buffer.from('b')]);
    assert.throws(() => nodeTlsPlan({ sslmode: 'require', sslcert: '/c', sslkey: '/missing' }, 'h', files({ '/c': 'cert' })), /sslkey/);
  });

  it('libpq\u2019s defaults under ~/.postgresql: root.crt makes require verify, postgresql.crt/.key are the client certificate', () => {
    const home = files(
      { '/home/u/.postgresql/root.crt': 'ca', '/home/u/.postgresql/postgresql.crt': 'cert', '/home/u/.postgresql/postgresql.key': 'key' },
      '/home/u',
    );
    const [attempt] = nodeTlsPlan({ sslmode: 'require' }, 'h', home).attempts;
    assert.ok(attempt !== false && attempt !== undefined);
    assert.equal(attempt.rejectUnauthorized, true);
    assert.deepEqual(attempt.cert, Buffer.from('cert'));
  });

  it('channel_binding: prefer by default, require enforced, disable off; gssencmode require refused', () => {
    assert.equal(nodeTlsPlan({}, 'h', none).isChannelBindingEnabled, true);
    assert.equal(nodeTlsPlan({ channel_binding: 'require' }, 'h', none).isChannelBindingRequired, true);
    assert.equal(nodeTlsPlan({ channel_binding: 'disable' }, 'h', none).isChannelBindingEnabled, false);
    assert.equal(nodeTlsPlan({ channel_binding: 'require' }, '/socket', none).isChannelBindingRequired, false);
    assert.throws(() => nodeTlsPlan({ gssencmode: 'require' }, 'h', none), /GSSAPI/);
    assert.doesNotThrow(() => nodeTlsPlan({ gssencmode: 'require' }, '/socket', none));
  });
});
