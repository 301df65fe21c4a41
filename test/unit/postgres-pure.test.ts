// Pure PostgreSQL helpers: config rendering and quoting, pg_controldata parsing, argv builders, LSNs.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { initdbArgv, pgBasebackupArgv, pgRewindArgv } from '../../src/postgres/commands.js';
import { quoteGuc, renderPgpass, renderPostgresqlConf, renderPrimaryConninfo } from '../../src/postgres/conf-render.js';
import { isCleanShutdown, parseControlData, roleFromControlState } from '../../src/postgres/controldata.js';
import { formatLsn, parseLsn } from '../../src/core/lsn.js';
import { slotNameForMember } from '../../src/core/slot-names.js';

const CONTROLDATA = `pg_control version number:            1300
Catalog version number:               202209061
Database system identifier:           7711055670619385940
Database cluster state:               shut down in recovery
pg_control last modified:             Sun 22 Nov 2026 05:54:29 PM UTC
Latest checkpoint location:           0/5000060
Latest checkpoint's REDO location:    0/5000028
Latest checkpoint's TimeLineID:       2
Minimum recovery ending location:     0/5000110
`;

describe('postgresql.conf rendering', () => {
  it('keeps the GUCs the HA machinery needs whatever the user set, and quotes values', () => {
    const conf = renderPostgresqlConf({
      parameters: { wal_log_hints: 'off', port: 1, max_connections: 100, application_name: "it's" },
      listenHost: '127.0.0.1',
      port: 25432,
      scope: 'batman',
      socketDir: '/run/pg',
      replica: { host: '127.0.0.1', port: 25433, user: 'replicator', applicationName: 'node2', passfile: '/p/pgpass', slotName: 'node2' },
    });
    assert.match(conf, /^wal_log_hints = 'on'$/m);
    assert.match(conf, /^port = '25432'$/m);
    assert.match(conf, /^cluster_name = 'batman'$/m);
    assert.match(conf, /^application_name = 'it''s'$/m);
    assert.match(conf, /^primary_slot_name = 'node2'$/m);
    assert.match(conf, /^recovery_target_timeline = 'latest'$/m);
    assert.match(conf, /^primary_conninfo = 'host=127\.0\.0\.1 port=25433 user=replicator application_name=node2 passfile=\/p\/pgpass /m);
    assert.doesNotMatch(
      renderPostgresqlConf({ parameters: {}, listenHost: '*', port: 5432, scope: 's', socketDir: '/tmp', replica: undefined }),
      /primary_conninfo/,
    );
  });

  it('quotes libpq values and pgpass fields', () => {
    assert.match(
      renderPrimaryConninfo({ host: 'h', port: 1, user: "we'ird user", applicationName: 'a', passfile: '/x', slotName: undefined }),
      /user='we\\'ird user'/,
    );
    assert.equal(quoteGuc(true), "'on'");
    assert.equal(
      renderPgpass([
        { username: 'rep', password: 'a:b\\c' },
        { username: 'none', password: undefined },
      ]),
      '*:*:*:rep:a\\:b\\\\c\n',
    );
  });
});

describe('pg_controldata', () => {
  it('parses identity, timeline and state', () => {
    const parsed = parseControlData(CONTROLDATA);
    assert.deepEqual(parsed, {
      state: 'shut down in recovery',
      sysid: '7711055670619385940',
      timeline: 2,
      checkpointLsn: '0/5000060',
      minRecoveryEndLsn: '0/5000110',
    });
    assert.equal(roleFromControlState('in production'), 'primary');
    assert.equal(roleFromControlState('shut down in recovery'), 'replica');
    assert.equal(isCleanShutdown('in production'), false);
  });
});

describe('argv builders and names', () => {
  it('builds initdb, basebackup and rewind command lines', () => {
    assert.deepEqual(
      initdbArgv('/bin/initdb', {
        dataDir: '/d',
        superuser: 'postgres',
        pwfile: '/pw',
        options: ['data-checksums', { encoding: 'UTF8' }],
      }).slice(-2),
      ['--data-checksums', '--encoding=UTF8'],
    );
    assert.deepEqual(pgBasebackupArgv('/bin/pg_basebackup', { dataDir: '/d', host: 'h', port: 5, user: 'r' }), [
      '/bin/pg_basebackup',
      '-D',
      '/d',
      '-X',
      'stream',
      '-c',
      'fast',
      '-d',
      'host=h port=5 user=r sslmode=prefer',
      '--no-password',
    ]);
    assert.match(
      pgRewindArgv('/bin/pg_rewind', { dataDir: '/d', host: 'h', port: 5, user: 'postgres' })[3]!,
      /^--source-server=host=h port=5 user=postgres dbname=postgres/,
    );
  });

  it('maps member names to slot names like Patroni and LSNs both ways', () => {
    assert.equal(slotNameForMember('postgres-1'), 'postgres_1');
    assert.equal(slotNameForMember('Node.A'), 'node_a');
    assert.equal(slotNameForMember('nöde'), 'nu00f6de');
    assert.equal(parseLsn('16/B374D848'), 0x16b374d848n);
    assert.equal(formatLsn(0x16b374d848n), '16/B374D848');
  });
});
