// Config loading: a real patroni.yml loads unchanged; bad config names the key path and what to change.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { loadConfig, parseConfig } from '../../src/config/load.js';
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
    assert.deepEqual(warnings, []);
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

  it('rejects loop_wait + 2*retry_timeout > ttl with the rule spelled out', () => {
    const message = problems(patroniYaml.replace('retry_timeout: 10', 'retry_timeout: 15'));
    assert.match(message, /bootstrap\.dcs\.loop_wait: loop_wait \+ 2\*retry_timeout \(10 \+ 2\*15 = 40\) must be <= ttl \(30\)/);
  });

  it('names every bad key path with what to change', () => {
    const message = problems(patroniYaml.replace('listen: 127.0.0.1:28008', 'listen: 8008x').replace('scope: bench\n', ''));
    assert.match(message, /restapi\.listen: expected host:port, got "8008x"/);
    assert.match(message, /scope: /);
  });

  it('requires etcd endpoints', () => {
    assert.match(problems(patroniYaml.replace(/etcd3:\n {2}hosts: .*\n/, '')), /etcd3: no etcd endpoints/);
  });

  it('warns about unknown keys instead of failing', () => {
    const { warnings } = parseConfig(
      patroniYaml
        .replace('scope: bench', 'scope: bench\nfrobnicate: 1')
        .replace('  connect_address: 127.0.0.1:28008', '  connect_address: 127.0.0.1:28008\n  colour: blue'),
      'x.yml',
    );
    assert.deepEqual(
      warnings.map((warning) => warning.split(' ')[3]),
      ['frobnicate', 'restapi.colour'],
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
