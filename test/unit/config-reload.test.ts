// The local config on reload (SIGHUP, POST /reload): create_replica_methods is re-read, as Patroni does; the keys
// read at start only (name, scope, backup:, bootstrap.method and its section) refuse the whole reload with a message
// saying a restart is needed, never kept silently.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { reloadableReplicaMethods } from '../../src/bin/agent-main.js';
import { parseConfig, type PgwardenConfig } from '../../src/config/load.js';
import { assertReloadable, startOnlyChanges } from '../../src/config/reload-changes.js';
import { isPgwardenError } from '../../src/util/errors.js';

const fixture = new URL('../../../test/fixtures/patroni-node1.yml', import.meta.url).pathname;
const patroniYaml = readFileSync(fixture, 'utf8');

/** The fixture with extra lines under `postgresql:` and `bootstrap:` (indented by the caller) and top-level YAML. */
function configWith(options: { postgresql?: string; bootstrap?: string; topLevel?: string } = {}): PgwardenConfig {
  const yaml = patroniYaml
    .replace(/^postgresql:\n/m, `postgresql:\n${options.postgresql ?? ''}`)
    .replace(/^bootstrap:\n/m, `bootstrap:\n${options.bootstrap ?? ''}`);
  return parseConfig(yaml + (options.topLevel ?? ''), 'test.yml').config;
}

const BACKUP = 'backup:\n  repository: /var/lib/pgbackrest\n';
const RESTORE = '  method: restore\n  restore:\n    command: /usr/local/bin/restore.sh\n';

describe('local config reload: start-only keys', () => {
  it('an unchanged file, or changes of keys that reload (tags, parameters, create_replica_methods), pass', () => {
    const started = configWith({ topLevel: BACKUP, bootstrap: RESTORE });
    assert.deepEqual(startOnlyChanges(started, configWith({ topLevel: BACKUP, bootstrap: RESTORE })), []);
    const reloaded = configWith({
      topLevel: BACKUP,
      bootstrap: RESTORE,
      postgresql: '  create_replica_methods: [pgbackrest, basebackup]\n  pgbackrest:\n    no_leader: true\n',
    });
    assert.deepEqual(startOnlyChanges(started, reloaded), []);
    assert.doesNotThrow(() => assertReloadable(started, reloaded, 'test.yml'));
  });

  it('a backup: section added, removed or changed is refused, naming the key and saying to restart', () => {
    const plain = configWith();
    const withBackup = configWith({ topLevel: BACKUP });
    const otherStanza = configWith({ topLevel: `${BACKUP}  stanza: other\n` });
    const withSchedule = configWith({ topLevel: `${BACKUP}  schedule: '0 1 * * *'\n` });
    for (const [started, reloaded] of [
      [plain, withBackup],
      [withBackup, plain],
      [withBackup, otherStanza],
      [withBackup, withSchedule],
    ] as const)
      assert.deepEqual(startOnlyChanges(started, reloaded), ['backup']);
    try {
      assertReloadable(withBackup, otherStanza, '/etc/pgwarden.yml');
      assert.fail('accepted');
    } catch (error) {
      assert.ok(isPgwardenError(error, 'PGW_CONFIG_INVALID'));
      assert.equal(
        error.message,
        'backup changed in /etc/pgwarden.yml: read when the agent starts, not on reload; nothing of this reload was applied: restart the agent to apply it',
      );
      assert.deepEqual(error.context.keys, ['backup']);
      assert.match(String(error.context.hint), /restart the agent/);
    }
  });

  it('bootstrap.method, or the same method’s section, changed is refused; name and scope as before', () => {
    const initdb = configWith();
    const restore = configWith({ bootstrap: RESTORE });
    assert.deepEqual(startOnlyChanges(initdb, restore), ['bootstrap.method']);
    assert.deepEqual(startOnlyChanges(restore, initdb), ['bootstrap.method']);
    const otherCommand = configWith({ bootstrap: RESTORE.replace('restore.sh', 'restore-v2.sh') });
    assert.deepEqual(startOnlyChanges(restore, otherCommand), ['bootstrap.restore']);
    const renamed = parseConfig(
      patroniYaml.replace(/^name: node1$/m, 'name: node9').replace(/^scope: bench$/m, 'scope: other'),
      'x',
    ).config;
    assert.deepEqual(startOnlyChanges(initdb, renamed), ['name', 'scope']);
    const both = configWith({ bootstrap: RESTORE, topLevel: BACKUP });
    assert.throws(() => assertReloadable(initdb, both, 'test.yml'), /^PgwardenError: backup, bootstrap.method changed in test.yml/);
  });
});

describe('local config reload: create_replica_methods is re-read', () => {
  const upstream = { name: 'node2', connUrl: 'postgres://127.0.0.1:25433/postgres' };

  it('the plan follows the specs a reload sets: none (pg_basebackup), a list, then none again', () => {
    const started = configWith();
    const methods = reloadableReplicaMethods(started);
    assert.equal(methods.plan(upstream), undefined, 'neither create_replica_methods nor backup: plain pg_basebackup');
    const reloaded = configWith({
      postgresql: '  create_replica_methods: [restore, basebackup]\n  restore:\n    command: /bin/restore\n    no_leader: true\n',
    });
    methods.specs = reloaded.replicaMethods;
    assert.deepEqual(
      methods.plan(upstream)?.map((method) => method.name),
      ['restore', 'basebackup'],
    );
    assert.deepEqual(
      methods.plan({ name: '(no leader)', connUrl: '' })?.map((method) => method.name),
      ['restore'],
      'no_leader re-read too',
    );
    methods.specs = started.replicaMethods;
    assert.equal(methods.plan(upstream), undefined);
  });

  it('with a backup: section and no list, pgBackRest first then basebackup, before and after a reload', () => {
    const methods = reloadableReplicaMethods(configWith({ topLevel: BACKUP }));
    assert.deepEqual(
      methods.plan(upstream)?.map((method) => method.kind),
      ['pgbackrest', 'basebackup'],
    );
    methods.specs = configWith({ topLevel: BACKUP, postgresql: '  create_replica_methods: [basebackup]\n' }).replicaMethods;
    assert.deepEqual(
      methods.plan(upstream)?.map((method) => method.kind),
      ['basebackup'],
    );
  });
});
