// Config loading: a real patroni.yml loads unchanged; bad config names the key path and what to change.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { loadConfig, loadConfigFromEnvironment, parseConfig } from '../../src/config/load.js';
import { isPgwardenError } from '../../src/util/errors.js';

const fixture = new URL('../../../test/fixtures/patroni-node1.yml', import.meta.url).pathname;
const patroniYaml = readFileSync(fixture, 'utf8');

function problems(yaml: string): string {
  try {
    parseConfig(yaml, 'test.yml');
  } catch (error) {
    assert.ok(isPgwardenError(error, 'PGW_CONFIG_INVALID'), `expected PGW_CONFIG_INVALID, got ${String(error)}`);
    return error.message;
  }
  assert.fail('config was accepted');
}

describe('config', () => {
  it("loads Patroni 3.0.2's node config unchanged", () => {
    const { config, warnings } = loadConfig(fixture);
    assert.equal(config.scope, 'bench');
    assert.equal(config.name, 'node1');
    assert.deepEqual(config.restapi.listen, { host: '127.0.0.1', port: 28008 });
    assert.deepEqual(config.etcd.hosts, ['127.0.0.1:23790', '127.0.0.1:23791', '127.0.0.1:23792']);
    assert.equal(config.bootstrap.dcs.ttl, 30);
    assert.equal(config.bootstrap.dcs.postgresql?.use_pg_rewind, true);
    assert.deepEqual(config.bootstrap.initdb, [{ encoding: 'UTF8' }, { locale: 'C.UTF-8' }, 'data-checksums']);
    assert.equal(config.postgresql.authentication.replication.username, 'replicator');
    assert.equal(config.postgresql.parameters.unix_socket_directories, '/var/lib/pgbench-demo/nodes/node1');
    assert.equal(config.tags.nofailover, false);
    // The fixture holds passwords: a checkout that leaves it world-readable gets the chmod warning (config-security.test.ts).
    assert.deepEqual(
      warnings.filter((warning) => !warning.includes('holds passwords')),
      [],
    );
  });

  it('accepts the etcd: section and a host list', () => {
    const { config } = parseConfig(
      patroniYaml.replace(
        'etcd3:\n  hosts: 127.0.0.1:23790,127.0.0.1:23791,127.0.0.1:23792',
        'etcd:\n  hosts:\n  - 10.0.0.1:2379\n  - 10.0.0.2:2379',
      ),
      'x.yml',
    );
    assert.deepEqual(config.etcd.hosts, ['10.0.0.1:2379', '10.0.0.2:2379']);
  });

  it('refuses a bootstrap timing that breaks loop_wait + 2*retry_timeout <= ttl, with the rule every path uses', () => {
    assert.throws(
      () => parseConfig(patroniYaml.replace('retry_timeout: 10', 'retry_timeout: 15'), 'test.yml'),
      /bootstrap\.dcs\.loop_wait: loop_wait \+ 2\*retry_timeout \(10 \+ 2\*15 = 40\) must be <= ttl \(30\)/,
    );
    assert.throws(
      () => parseConfig(patroniYaml.replace('ttl: 30', 'ttl: -1'), 'test.yml'),
      (error: Error) => {
        assert.match(error.message, /bootstrap\.dcs\.ttl: must be at least 2 \(got -1\)/);
        assert.doesNotMatch(error.message, /Too small/, 'one message per problem: the schema does not repeat it');
        return true;
      },
    );
    assert.throws(
      () => parseConfig(patroniYaml.replace('loop_wait: 10', 'loop_wait: abc'), 'test.yml'),
      /bootstrap\.dcs\.loop_wait: must be a number of seconds \(got "abc"\)/,
    );
  });

  it('reads tags as Patroni does: boolean and integer strings, a contradiction warned with nofailover winning', () => {
    const withTags = (tags: string): ReturnType<typeof parseConfig> =>
      parseConfig(patroniYaml.replace(/^tags:\n(?: {2}.*\n)*/m, `tags:\n${tags}`), 'tags.yml');
    const parsed = withTags("  clonefrom: 'true'\n  nofailover: \"false\"\n  failover_priority: '1'\n  noloadbalance: 'on'\n  nosync: 0\n");
    assert.deepEqual(
      [
        parsed.config.tags.clonefrom,
        parsed.config.tags.nofailover,
        parsed.config.tags.failover_priority,
        parsed.config.tags.noloadbalance,
        parsed.config.tags.nosync,
      ],
      [true, false, 1, true, false],
    );
    const contradictory = withTags('  nofailover: true\n  failover_priority: 2\n');
    assert.equal(contradictory.config.tags.nofailover, true);
    assert.equal(contradictory.config.tags.failover_priority, undefined);
    assert.ok(contradictory.warnings.some((warning) => /contradict each other; using nofailover/.test(warning)));
    assert.match(problems(patroniYaml.replace(/^tags:\n(?: {2}.*\n)*/m, "tags:\n  nofailover: 'maybe'\n")), /tags\.nofailover/);
  });

  it('honours watchdog.mode required as Patroni does without a usable watchdog: never leader (nofailover), said why', () => {
    const withWatchdog = (section: string): ReturnType<typeof parseConfig> =>
      parseConfig(`${patroniYaml.replace(/^watchdog:\n(?: {2}.*\n)*/m, '')}\nwatchdog:\n${section}`, 'watchdog.yml');
    const required = withWatchdog('  mode: required\n  device: /dev/watchdog\n');
    assert.equal(required.config.tags.nofailover, true);
    assert.ok(required.warnings.some((warning) => /watchdog\.mode is required.*never becomes leader/.test(warning)));
    for (const mode of ['automatic', 'off'])
      assert.notEqual(withWatchdog(`  mode: ${mode}\n`).config.tags.nofailover, true, `watchdog.mode ${mode}`);
  });

  it('takes PATRONI_* environment variables over the file, with Patroni parsing', () => {
    const env = {
      PATRONI_NAME: 'envnode',
      PATRONI_SCOPE: 'envscope',
      PATRONI_ETCD3_HOSTS: "'10.1.0.1:2379','10.1.0.2:2379'",
      PATRONI_RESTAPI_USERNAME: 'admin',
      PATRONI_RESTAPI_PASSWORD: 'secret',
      PATRONI_RESTAPI_LISTEN: '0.0.0.0:8009',
      PATRONI_RESTAPI_ALLOWLIST_INCLUDE_MEMBERS: 'yes',
      PATRONI_POSTGRESQL_DATA_DIR: '/data/pg',
      PATRONI_SUPERUSER_PASSWORD: 'supersecret',
      PATRONI_REPLICATION_USERNAME: 'repl',
      PATRONI_LOGLEVEL: 'DEBUG',
    };
    const { config, warnings } = parseConfig(patroniYaml, 'env.yml', env);
    assert.deepEqual([config.name, config.scope], ['envnode', 'envscope']);
    assert.deepEqual(config.etcd.hosts, ['10.1.0.1:2379', '10.1.0.2:2379']);
    assert.deepEqual(config.restapi.authentication, { username: 'admin', password: 'secret' });
    assert.deepEqual(config.restapi.listen, { host: '0.0.0.0', port: 8009 });
    assert.equal(config.restapi.allowlist_include_members, true);
    assert.equal(config.postgresql.data_dir, '/data/pg');
    assert.equal(config.postgresql.authentication.superuser.password, 'supersecret');
    assert.equal(config.postgresql.authentication.superuser.username, 'postgres', 'the file keeps what the environment does not set');
    assert.equal(config.postgresql.authentication.replication.username, 'repl');
    assert.equal(config.log.level, 'DEBUG');
    const used = warnings.find((warning) => warning.startsWith('configuration from the environment'));
    assert.ok(used !== undefined && used.includes('PATRONI_RESTAPI_PASSWORD') && !used.includes('secret,'), used);
    assert.match(problems(patroniYaml.replace('scope: bench\n', '')), /scope/);
  });

  it('loads from the environment alone: PATRONI_CONFIGURATION, or the variables', () => {
    const document = patroniYaml.replace('name: node1', 'name: fromdoc');
    assert.equal(loadConfigFromEnvironment({ PATRONI_CONFIGURATION: document }).config.name, 'fromdoc');
    const message = (() => {
      try {
        loadConfigFromEnvironment({ PATRONI_NAME: 'n1', PATRONI_SCOPE: 's1' });
      } catch (error) {
        return String(error);
      }
      return 'accepted';
    })();
    assert.match(message, /restapi/, 'what is still missing is named');
  });

  it('names every bad key path with what to change', () => {
    const message = problems(patroniYaml.replace('listen: 127.0.0.1:28008', 'listen: 8008x').replace('scope: bench\n', ''));
    assert.match(message, /restapi\.listen: expected host:port, got "8008x"/);
    assert.match(message, /scope is required: the cluster name/);
  });

  it('requires etcd endpoints', () => {
    assert.match(problems(patroniYaml.replace(/etcd3:\n {2}hosts: .*\n/, '')), /etcd3: no etcd endpoints/);
  });

  it('warns about unknown keys outside the security sections instead of failing', () => {
    const { warnings } = parseConfig(
      patroniYaml.replace('scope: bench', 'scope: bench\nfrobnicate: 1').replace("  mode: 'off'", "  mode: 'off'\n  colour: blue"),
      'x.yml',
    );
    assert.deepEqual(
      warnings.map((warning) => warning.split(' ')[3]),
      ['frobnicate', 'watchdog.colour'],
    );
  });

  it('warns about a typo of a known key with "did you mean", in sections that take any key too (bootstrap.dcs)', () => {
    const { warnings } = parseConfig(
      patroniYaml
        .replace('scope: bench', 'scope: bench\nloop_wait: 1')
        .replace('  dcs:\n', '  dcs:\n    loop_wiat: 1\n    my_own_setting: 1\n    primary_stop_timeout: 30\n'),
      'x.yml',
    );
    assert.deepEqual(
      warnings.filter((warning) => warning.startsWith('unknown configuration key')),
      [
        'unknown configuration key loop_wait in x.yml, ignored: remove it (docs/patroni-keys.md lists the keys pgwarden reads)',
        'unknown configuration key bootstrap.dcs.loop_wiat in x.yml, ignored: did you mean bootstrap.dcs.loop_wait?',
        'unknown configuration key bootstrap.dcs.my_own_setting in x.yml, ignored: remove it (docs/patroni-keys.md lists the keys pgwarden reads)',
      ],
    );
  });

  it('reports YAML syntax errors with the position and a missing file with its path', () => {
    assert.match(problems('scope: [unclosed\nname: x'), /line \d+, column \d+/);
    assert.throws(
      () => loadConfig('/nonexistent/pgwarden.yml'),
      (error: unknown) => isPgwardenError(error, 'PGW_CONFIG_UNREADABLE') && error.message.includes('/nonexistent/pgwarden.yml'),
    );
  });
});
