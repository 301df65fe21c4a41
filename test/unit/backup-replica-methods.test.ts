// Issue 16: create_replica_methods (Patroni's order, flags and command line) and the backup: section (pgBackRest's
// config file, archive_command/restore_command), all pure.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { parseConfig } from '../../src/config/load.js';
import {
  customBootstrapOf,
  planReplicaMethods,
  replicaMethodSpecsOf,
  splitCommandLine,
  type ReplicaMethodSpec,
  type ReplicaPlanContext,
} from '../../src/core/replica-methods.js';
import { decide } from '../../src/core/decide.js';
import type { ClusterView, Observation } from '../../src/core/types.js';
import { freshMemory, observe, pgState, view } from '../sim/builders.js';
import { ensureRolesSql } from '../../src/postgres/commands.js';
import { latestBackupLabel, pgbackrestRestoreArgv, renderPgBackrestConf } from '../../src/postgres/pgbackrest.js';
import { isPgwardenError } from '../../src/util/errors.js';

const fixture = new URL('../../../test/fixtures/patroni-node1.yml', import.meta.url).pathname;
const patroniYaml = readFileSync(fixture, 'utf8');

const builtinBasebackup: ReplicaMethodSpec = { name: 'basebackup', keepData: false, noParams: false, noLeader: false, options: {} };

const context: ReplicaPlanContext = {
  scope: 'batman',
  dataDir: '/data/pg',
  connstring: 'postgres://replicator@10.0.0.1:5432/postgres',
  hasBackupSection: false,
};

/** The fixture with one more postgresql.parameters entry, and top-level YAML. */
function withParameter(line: string, topLevel: string): string {
  return patroniYaml.replace(/^ {2}parameters:\n(?= {4}unix_socket_directories)/m, `  parameters:\n    ${line}\n`) + topLevel;
}

/** The fixture with extra lines under `postgresql:` (indented by the caller) and optional top-level YAML. */
function withPostgresql(lines: string, topLevel = ''): string {
  return patroniYaml.replace(/^postgresql:\n/m, `postgresql:\n${lines}`) + topLevel;
}

describe('create_replica_methods', () => {
  it('reads each method section: flags steer pgwarden, other keys become --key=value', () => {
    const specs = replicaMethodSpecsOf(['pgbackrest', 'basebackup'], {
      pgbackrest: {
        command: '/usr/bin/pgbackrest --stanza=main --delta restore',
        keep_data: true,
        no_params: true,
        no_leader: true,
        'log-level': 'info',
      },
      basebackup: { 'max-rate': '100M' },
    });
    assert.deepEqual(specs, [
      {
        name: 'pgbackrest',
        command: '/usr/bin/pgbackrest --stanza=main --delta restore',
        keepData: true,
        noParams: true,
        noLeader: true,
        options: { 'log-level': 'info' },
      },
      { name: 'basebackup', command: undefined, keepData: false, noParams: false, noLeader: false, options: {} },
    ]);
    assert.equal(replicaMethodSpecsOf(undefined, {}), undefined);
  });

  it('tries the methods in the order given; a command gets --scope --datadir --role=replica --connstring unless no_params', () => {
    const specs = replicaMethodSpecsOf(['wal_e', 'custom', 'basebackup'], {
      wal_e: { command: "patroni_wale_restore --envdir '/etc/wal e'", threshold_megabytes: 10240 },
      custom: { command: 'restore.sh -x', no_params: true, retries: 2 },
    });
    assert.deepEqual(planReplicaMethods(specs, context), [
      {
        kind: 'command',
        name: 'wal_e',
        argv: [
          'patroni_wale_restore',
          '--envdir',
          '/etc/wal e',
          '--scope=batman',
          '--datadir=/data/pg',
          '--role=replica',
          '--connstring=postgres://replicator@10.0.0.1:5432/postgres',
          '--threshold_megabytes=10240',
        ],
        keepData: false,
      },
      { kind: 'command', name: 'custom', argv: ['restore.sh', '-x', '--retries=2'], keepData: false },
      { kind: 'basebackup', name: 'basebackup' },
    ]);
  });

  it('defaults to basebackup; with a backup: section, pgBackRest first and basebackup as the fallback', () => {
    assert.deepEqual(planReplicaMethods(undefined, context), [{ kind: 'basebackup', name: 'basebackup' }]);
    assert.deepEqual(planReplicaMethods([], { ...context, hasBackupSection: true }), [
      { kind: 'pgbackrest', name: 'pgbackrest', keepData: false },
      { kind: 'basebackup', name: 'basebackup' },
    ]);
    // `pgbackrest` without a command is pgwarden's restore only with a backup: section; otherwise its name is the command.
    const specs = replicaMethodSpecsOf(['pgbackrest'], { pgbackrest: { keep_data: true } });
    assert.deepEqual(planReplicaMethods(specs, { ...context, hasBackupSection: true }), [
      { kind: 'pgbackrest', name: 'pgbackrest', keepData: true },
    ]);
    assert.equal(planReplicaMethods(specs, context)[0]?.kind, 'command');
  });

  it('without a leader to copy from, only no_leader methods can run', () => {
    const specs = replicaMethodSpecsOf(['restore', 'other', 'basebackup'], {
      restore: { command: 'restore.sh', no_leader: true },
      other: { command: 'other.sh' },
    });
    assert.deepEqual(planReplicaMethods(specs, { ...context, connstring: undefined }), [
      { kind: 'command', name: 'restore', argv: ['restore.sh', '--scope=batman', '--datadir=/data/pg', '--role=replica'], keepData: false },
    ]);
  });

  it('splits a command line as sh does, without expanding anything', () => {
    assert.deepEqual(splitCommandLine(`a 'b c' "d \\"e\\" $f" g\\ h  `), ['a', 'b c', 'd "e" $f', 'g h']);
    assert.throws(() => splitCommandLine("a 'b"), /unterminated/);
  });

  it('loads from a patroni.yml unchanged: the method sections are no unknown keys, create_replica_methods no longer unhonoured', () => {
    const { config, warnings } = parseConfig(
      withPostgresql(
        [
          '  create_replica_methods: [pgbackrest, basebackup]',
          '  pgbackrest:',
          '    command: /usr/bin/pgbackrest --stanza=batman --delta restore',
          '    keep_data: true',
          '    no_params: true',
          '',
        ].join('\n'),
      ),
      'test.yml',
    );
    assert.deepEqual(
      config.replicaMethods?.map((spec) => [spec.name, spec.keepData, spec.noParams]),
      [
        ['pgbackrest', true, true],
        ['basebackup', false, false],
      ],
    );
    assert.deepEqual(
      warnings.filter((warning) => /pgbackrest|create_replica_methods/.test(warning)),
      [],
    );
  });

  it('refuses a method command with an open quote, naming the key', () => {
    try {
      parseConfig(withPostgresql('  create_replica_methods: [x]\n  x:\n    command: "restore \'a"\n'), 'test.yml');
      assert.fail('accepted');
    } catch (error) {
      assert.ok(isPgwardenError(error, 'PGW_CONFIG_INVALID'));
      assert.match(error.message, /postgresql\.x\.command: unterminated/);
    }
  });
});

describe('backup: section (pgBackRest)', () => {
  const backupYaml = 'backup:\n  repository: /var/lib/pgbackrest\n  retention_full: 2\n';

  it('sets archive_mode, archive_command and restore_command for pgBackRest, stanza = scope', () => {
    const { config } = parseConfig(withPostgresql('', backupYaml), 'test.yml');
    const backup = config.backup;
    assert.ok(backup !== undefined);
    assert.equal(backup.stanza, config.scope);
    assert.equal(backup.configFile, `${config.postgresql.data_dir.replace(/\/[^/]+$/, '')}/pgbackrest-${config.name}.conf`);
    assert.equal(config.postgresql.parameters.archive_mode, 'on');
    assert.equal(
      config.postgresql.parameters.archive_command,
      `pgbackrest --config=${backup.configFile} --stanza=${backup.stanza} archive-push %p`,
    );
    assert.equal(
      config.postgresql.recovery_conf?.restore_command,
      `pgbackrest --config=${backup.configFile} --stanza=${backup.stanza} archive-get %f "%p"`,
    );
  });

  it("keeps the user's own archive_command (with a warning) and refuses archive_mode=always", () => {
    const own = parseConfig(withParameter('archive_command: /bin/true', backupYaml), 'test.yml');
    assert.equal(own.config.postgresql.parameters.archive_command, '/bin/true');
    assert.ok(own.warnings.some((warning) => warning.includes('archive_command') && warning.includes('kept as written')));
    try {
      parseConfig(withParameter('archive_mode: always', backupYaml), 'test.yml');
      assert.fail('accepted');
    } catch (error) {
      assert.ok(isPgwardenError(error, 'PGW_CONFIG_INVALID'));
      assert.match(error.message, /archive_mode: always is refused by pgBackRest/);
    }
  });

  it('renders pgBackRest’s config file for the member and the standby restore', () => {
    const settings = {
      stanza: 'batman',
      repository: '/repo',
      configFile: '/n/pgbackrest-node1.conf',
      workDir: '/n/pgbackrest-node1',
      retentionFull: 2,
      options: { 'compress-type': 'zst' },
    };
    const text = renderPgBackrestConf(settings, { dataDir: '/n/data', port: 5433, socketDir: '/n', user: 'postgres' });
    assert.match(text, /^\[global\]$/m);
    assert.match(text, /^repo1-path=\/repo$/m);
    assert.match(text, /^repo1-retention-full=2$/m);
    assert.match(text, /^lock-path=\/n\/pgbackrest-node1\/lock$/m);
    assert.match(text, /^compress-type=zst$/m);
    assert.match(text, /^\[batman\]\npg1-path=\/n\/data\npg1-port=5433\npg1-socket-path=\/n\npg1-user=postgres$/m);
    assert.deepEqual(pgbackrestRestoreArgv(settings, true), [
      'pgbackrest',
      '--config=/n/pgbackrest-node1.conf',
      '--stanza=batman',
      '--type=standby',
      '--delta',
      'restore',
    ]);
  });

  it('reads the newest backup label from pgbackrest info --output=json', () => {
    const info = JSON.stringify([
      { name: 'other', backup: [{ label: 'x' }] },
      { name: 'batman', backup: [{ label: '20240101-000000F' }, { label: '20240102-000000F' }] },
    ]);
    assert.equal(latestBackupLabel(info, 'batman'), '20240102-000000F');
    assert.equal(latestBackupLabel(JSON.stringify([{ name: 'batman', backup: [] }]), 'batman'), undefined);
    assert.equal(latestBackupLabel('[]', 'batman'), undefined);
    // After stanza-upgrade (db 2 is the upgraded cluster) only backups of db 2 can seed a replica.
    const upgraded = (backups: readonly object[]): string =>
      JSON.stringify([{ name: 'batman', db: [{ id: 1 }, { id: 2 }], backup: backups }]);
    assert.equal(latestBackupLabel(upgraded([{ label: 'old', database: { id: 1 } }]), 'batman'), undefined);
    assert.equal(
      latestBackupLabel(
        upgraded([
          { label: 'old', database: { id: 1 } },
          { label: 'new', database: { id: 2 } },
        ]),
        'batman',
      ),
      'new',
    );
    // pgbackrest info exits 0 when the repository cannot be read: its status says so.
    const unreadable = JSON.stringify([
      {
        name: 'batman',
        backup: [],
        status: { code: 99, message: 'other' },
        repo: [{ status: { code: 99, message: 'Permission denied' } }],
      },
    ]);
    assert.throws(() => latestBackupLabel(unreadable, 'batman'), /status 99 \(other\): Permission denied/);
  });
});

describe('bootstrap.method (custom bootstrap)', () => {
  const where = { scope: 'batman', dataDir: '/data/pg' };

  it('builds the command with --scope and --datadir unless no_params, keeps recovery_conf and keep_existing_recovery_conf', () => {
    assert.equal(customBootstrapOf(undefined, {}, where), undefined);
    assert.equal(customBootstrapOf('initdb', {}, where), undefined);
    assert.deepEqual(
      customBootstrapOf(
        'pgbackrest',
        {
          pgbackrest: {
            command: '/usr/local/bin/restore.sh --stanza=x',
            keep_existing_recovery_conf: false,
            recovery_conf: { recovery_target_action: 'promote', restore_command: 'pgbackrest archive-get %f "%p"' },
            target: 'latest',
          },
        },
        where,
      ),
      {
        name: 'pgbackrest',
        argv: ['/usr/local/bin/restore.sh', '--stanza=x', '--scope=batman', '--datadir=/data/pg', '--target=latest'],
        recoveryConf: { recovery_target_action: 'promote', restore_command: 'pgbackrest archive-get %f "%p"' },
        keepExistingRecoveryConf: false,
      },
    );
    assert.deepEqual(
      customBootstrapOf('x', { x: { command: 'restore', no_params: true, keep_existing_recovery_conf: true } }, where)?.argv,
      ['restore'],
    );
    assert.throws(() => customBootstrapOf('x', {}, where), /bootstrap\.x\.command is required/);
  });

  it('loads from a patroni.yml: the method section is no unknown key, and a missing command is a config error', () => {
    const yaml = patroniYaml.replace(/^bootstrap:\n/m, 'bootstrap:\n  method: restore\n  restore:\n    command: /bin/restore.sh\n');
    const { config, warnings } = parseConfig(yaml, 'test.yml');
    assert.equal(config.customBootstrap?.argv[0], '/bin/restore.sh');
    assert.deepEqual(
      warnings.filter((warning) => /restore|bootstrap\.method/.test(warning)),
      [],
    );
    try {
      parseConfig(patroniYaml.replace(/^bootstrap:\n/m, 'bootstrap:\n  method: restore\n'), 'test.yml');
      assert.fail('accepted');
    } catch (error) {
      assert.ok(isPgwardenError(error, 'PGW_CONFIG_INVALID'));
      assert.match(error.message, /bootstrap\.restore\.command is required/);
    }
  });

  it('gives the configured roles their passwords in a restored copy, one statement per line', () => {
    const text = ensureRolesSql({
      superuser: { username: 'postgres', password: "it's" },
      replication: { username: 'replicator', password: 'r' },
    });
    const lines = text.trim().split('\n');
    assert.equal(lines.length, 2);
    assert.match(
      lines[0]!,
      /IF EXISTS \(SELECT 1 FROM pg_roles WHERE rolname = 'postgres'\) THEN ALTER ROLE "postgres" WITH SUPERUSER LOGIN PASSWORD 'it''s'; ELSE CREATE ROLE/,
    );
    assert.match(lines[1]!, /ALTER ROLE "replicator" WITH REPLICATION LOGIN PASSWORD 'r'/);
  });
});

describe('create_replica_methods: no_leader (Patroni: bootstrap without leader)', () => {
  const restore = {
    name: 'pgbackrest',
    command: '/usr/bin/pgbackrest --stanza=main restore',
    keepData: false,
    noParams: true,
    options: {},
  };
  const noLeaderContext: ReplicaPlanContext = { ...context, connstring: undefined };

  it('without a leader plans only the methods marked no_leader (never basebackup), with no --connstring', () => {
    const specs = [{ ...restore, noLeader: true }, { ...restore, name: 'wal_e', noLeader: false, noParams: false }, builtinBasebackup];
    assert.deepEqual(planReplicaMethods(specs, noLeaderContext), [
      { kind: 'command', name: 'pgbackrest', argv: ['/usr/bin/pgbackrest', '--stanza=main', 'restore'], keepData: false },
    ]);
    assert.deepEqual(planReplicaMethods([{ ...restore, noLeader: true, noParams: false }], noLeaderContext)[0], {
      kind: 'command',
      name: 'pgbackrest',
      argv: ['/usr/bin/pgbackrest', '--stanza=main', 'restore', '--scope=batman', '--datadir=/data/pg', '--role=replica'],
      keepData: false,
    });
    // With a leader every method is planned, in order.
    assert.deepEqual(
      planReplicaMethods(specs, context).map((method) => method.name),
      ['pgbackrest', 'wal_e', 'basebackup'],
    );
    // no_master is Patroni's older spelling.
    assert.equal(replicaMethodSpecsOf(['pgbackrest'], { pgbackrest: { no_master: true } })?.[0]?.noLeader, true);
    // The backup: section's own pgBackRest restore is not no_leader unless the entry says so.
    assert.deepEqual(planReplicaMethods(undefined, { ...noLeaderContext, hasBackupSection: true }), []);
  });

  const empty = (canCloneWithoutLeader: boolean, initialize: string | undefined, extra: Partial<ClusterView> = {}): Observation => {
    const obs = observe({
      name: 'node3',
      pg: pgState({ dataDir: 'missing', isRunning: false }),
      dcs: { kind: 'ok', view: view({ initialize, ...extra }) },
    });
    return { ...obs, self: { ...obs.self, canCloneWithoutLeader } };
  };

  it('an empty member of an initialized cluster with no leader restores with a no_leader method instead of waiting', () => {
    const decision = decide(empty(true, '7711055670619385940'), freshMemory());
    assert.deepEqual(decision.actions, [{ kind: 'cloneWithoutLeader' }]);
    assert.equal(decision.reason, 'trying to bootstrap (without leader) with a no_leader replica method');
  });

  it('waits for a leader without a no_leader method, while another member bootstraps, or in a standby cluster', () => {
    for (const [label, obs] of [
      ['no no_leader method', empty(false, '7711055670619385940')],
      ['initialize being bootstrapped', empty(true, '')],
      [
        'standby cluster',
        empty(true, '7711055670619385940', {
          config: { ...view().config!, standby_cluster: { host: '10.0.0.9', port: 5432 } },
        }),
      ],
    ] as const) {
      const decision = decide(obs, freshMemory());
      assert.deepEqual(decision.actions, [], label);
      assert.match(decision.reason, /waiting for (standby_)?leader to bootstrap|standby/, label);
    }
  });

  it('with a leader clones from it as always, no_leader or not', () => {
    const obs = empty(true, '7711055670619385940', { leader: { name: 'node1', modRevision: '42' } });
    assert.deepEqual(decide(obs, freshMemory()).actions, [{ kind: 'basebackup', from: 'node1' }]);
  });
});
