// The local cluster's node config trusts no one: pg_hba asks for a password on the socket and over TCP, initdb never
// writes trust either, and REST credentials given to a node end up in its restapi.authentication.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parse } from 'yaml';
import { DEFAULT_DYNAMIC_CONFIG, renderNodeConfig } from '../../src/local/node-config.js';
import { initdbArgv } from '../../src/postgres/commands.js';

const spec = {
  scope: 's',
  namespace: '/service',
  name: 'node1',
  apiPort: 8008,
  pgPort: 5432,
  nodeDir: '/c/node1',
  etcdHosts: ['127.0.0.1:2379'],
  timing: DEFAULT_DYNAMIC_CONFIG,
  superuserPassword: 'su',
  replicationPassword: 'repl',
  binDir: '/usr/lib/postgresql/15/bin',
};

describe('local node config', () => {
  it('pg_hba has no trust line: scram-sha-256 on the socket and over TCP', () => {
    const config = parse(renderNodeConfig({ ...spec, hbaNetwork: '10.0.0.0/24' })) as { postgresql: { pg_hba: string[] } };
    assert.deepEqual(config.postgresql.pg_hba, [
      'local all all scram-sha-256',
      'host replication replicator 127.0.0.1/32 scram-sha-256',
      'host all all 127.0.0.1/32 scram-sha-256',
      'host replication replicator 10.0.0.0/24 scram-sha-256',
      'host all all 10.0.0.0/24 scram-sha-256',
    ]);
    const initdb = initdbArgv('/bin/initdb', { dataDir: '/d', superuser: 'postgres', pwfile: '/pw', options: [] });
    assert.ok(!initdb.some((argument) => argument.includes('trust')), initdb.join(' '));
    assert.ok(initdb.includes('--auth-local=scram-sha-256'));
  });

  it('REST credentials go to restapi.authentication, next to the listen address', () => {
    const authentication = { username: 'pgwarden', password: 'p' };
    const config = parse(renderNodeConfig({ ...spec, restapi: { authentication } })) as { restapi: Record<string, unknown> };
    assert.deepEqual(config.restapi, { listen: '127.0.0.1:8008', connect_address: '127.0.0.1:8008', authentication });
  });
});
