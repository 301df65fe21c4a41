// etcd TLS and authentication settings: read from patroni.yml and the PATRONI_ETCD3_* variables, carried to the agent,
// the CLI and the proxy, half-given credentials refused, unused TLS files warned, unreadable files named at start.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { etcdConnection } from '../../src/bin/adapters.js';
import { parseConfig } from '../../src/config/load.js';
import { parseProxyConfig } from '../../src/config/proxy-config.js';
import { isPgwardenError } from '../../src/util/errors.js';

const fixture = new URL('../../../test/fixtures/patroni-node1.yml', import.meta.url).pathname;
const patroniYaml = readFileSync(fixture, 'utf8');
const ETCD_HOSTS = /etcd3:\n {2}hosts: .*\n/;

const withEtcd = (section: string): string => patroniYaml.replace(ETCD_HOSTS, `etcd3:\n${section}`);

let dir = '';
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pgw-etcd-config-'));
  for (const name of ['ca.pem', 'client.pem', 'client-key.pem']) await writeFile(join(dir, name), `not really a ${name}\n`);
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('etcd TLS and authentication config', () => {
  it('carries etcd3.protocol, cacert, cert, key, username and password from the file', () => {
    const { config, warnings } = parseConfig(
      withEtcd(
        '  hosts: 10.0.0.1:2379,10.0.0.2:2379\n  protocol: https\n  cacert: /etc/etcd/ca.pem\n  cert: /etc/etcd/client.pem\n  key: /etc/etcd/client-key.pem\n  username: pgw\n  password: pw1\n',
      ),
      'x.yml',
    );
    assert.deepEqual(config.etcd, {
      hosts: ['10.0.0.1:2379', '10.0.0.2:2379'],
      protocol: 'https',
      cacert: '/etc/etcd/ca.pem',
      cert: '/etc/etcd/client.pem',
      key: '/etc/etcd/client-key.pem',
      username: 'pgw',
      password: 'pw1',
    });
    assert.deepEqual(warnings, []);
  });

  it('takes PATRONI_ETCD3_PROTOCOL, _CACERT, _CERT, _KEY, _USERNAME and _PASSWORD over the file, naming only the variables', () => {
    const { config, warnings } = parseConfig(withEtcd('  hosts: 10.0.0.1:2379\n  username: old\n  password: old-pw\n'), 'x.yml', {
      PATRONI_ETCD3_PROTOCOL: 'https',
      PATRONI_ETCD3_CACERT: '/env/ca.pem',
      PATRONI_ETCD3_CERT: '/env/client.pem',
      PATRONI_ETCD3_KEY: '/env/client-key.pem',
      PATRONI_ETCD3_USERNAME: 'envuser',
      PATRONI_ETCD3_PASSWORD: 'env-secret-pw',
    });
    assert.deepEqual(config.etcd, {
      hosts: ['10.0.0.1:2379'],
      protocol: 'https',
      cacert: '/env/ca.pem',
      cert: '/env/client.pem',
      key: '/env/client-key.pem',
      username: 'envuser',
      password: 'env-secret-pw',
    });
    assert.ok(!warnings.join('\n').includes('env-secret-pw'), 'the password is never in a warning');
    assert.match(warnings.join('\n'), /PATRONI_ETCD3_PASSWORD/);
  });

  it('takes etcd3.key_password (PATRONI_ETCD3_KEY_PASSWORD) as the passphrase of an encrypted key', () => {
    const { config, warnings } = parseConfig(
      withEtcd('  hosts: 10.0.0.1:2379\n  protocol: https\n  cert: /c.pem\n  key: /k.pem\n'),
      'x.yml',
      {
        PATRONI_ETCD3_KEY_PASSWORD: 'key-secret',
      },
    );
    assert.equal(config.etcd.keyPassword, 'key-secret');
    assert.ok(!warnings.some((warning) => warning.includes('unknown') || warning.includes('key-secret')), warnings.join('\n'));
  });

  it('accepts https:// endpoints in etcd3.url and hosts without protocol: https', () => {
    const fromUrl = parseConfig(withEtcd('  url: https://etcd.example:2379\n  cacert: /ca.pem\n'), 'x.yml');
    assert.deepEqual(fromUrl.config.etcd.hosts, ['https://etcd.example:2379']);
    assert.deepEqual(fromUrl.warnings, []);
    assert.deepEqual(etcdConnection({ hosts: ['https://a:2379', 'b:2379'], protocol: 'http' }).endpoints, [
      'https://a:2379',
      'http://b:2379',
    ]);
  });

  it('refuses half-given credentials and a key without its certificate, naming the key to add', () => {
    const problems = (section: string): string => {
      try {
        parseConfig(withEtcd(`  hosts: 10.0.0.1:2379\n${section}`), 'x.yml');
      } catch (error) {
        assert.ok(isPgwardenError(error, 'PGW_CONFIG_INVALID'), String(error));
        return error.message;
      }
      assert.fail('accepted');
    };
    assert.match(problems('  username: pgw\n'), /etcd3\.password: required with etcd3\.username/);
    assert.match(problems('  password: pw\n'), /etcd3\.username: required with etcd3\.password/);
    assert.match(problems('  protocol: https\n  key: /k.pem\n'), /etcd3\.cert: required with etcd3\.key/);
  });

  it('warns when TLS files are set but no endpoint uses https', () => {
    const { warnings } = parseConfig(withEtcd('  hosts: 10.0.0.1:2379\n  cacert: /ca.pem\n'), 'x.yml');
    assert.deepEqual(warnings, ['etcd3.cacert set but no etcd endpoint uses https: set etcd3.protocol: https to use them (x.yml)']);
  });

  it('gives the proxy the same settings', () => {
    const proxy = parseProxyConfig(
      'scope: s\netcd3:\n  hosts: 127.0.0.1:2379\n  protocol: https\n  cacert: /ca.pem\n  cert: /c.pem\n  username: pgw\n  password: pw\nproxy:\n  primary_listen: 127.0.0.1:0\n',
      'proxy.yml',
    );
    assert.deepEqual(proxy.etcd, {
      hosts: ['127.0.0.1:2379'],
      protocol: 'https',
      cacert: '/ca.pem',
      cert: '/c.pem',
      username: 'pgw',
      password: 'pw',
    });
    assert.throws(
      () =>
        parseProxyConfig(
          'scope: s\netcd3:\n  hosts: 127.0.0.1:2379\n  username: pgw\nproxy:\n  primary_listen: 127.0.0.1:0\n',
          'proxy.yml',
        ),
      (error: unknown) => isPgwardenError(error, 'PGW_CONFIG_INVALID') && /etcd3\.password: required/.test(error.message),
    );
  });
});

describe('etcd client factory', () => {
  it('reads the TLS files at start; the key defaults to the certificate file (one PEM with both)', () => {
    const connection = etcdConnection({
      hosts: ['127.0.0.1:2379'],
      protocol: 'https',
      cacert: join(dir, 'ca.pem'),
      cert: join(dir, 'client.pem'),
      username: 'pgw',
      password: 'pw',
    });
    assert.deepEqual(connection.endpoints, ['https://127.0.0.1:2379']);
    assert.equal(connection.tls?.ca?.path, join(dir, 'ca.pem'));
    assert.equal(connection.tls?.key?.path, join(dir, 'client.pem'));
    assert.equal(connection.tls?.cert?.pem.toString(), 'not really a client.pem\n');
    assert.deepEqual(connection.auth, { username: 'pgw', password: 'pw' });
  });

  it('a missing cacert, cert or key file is a config error naming the key and the path', () => {
    for (const key of ['cacert', 'cert', 'key'] as const) {
      const missing = join(dir, `missing-${key}.pem`);
      const settings = {
        hosts: ['127.0.0.1:2379'],
        protocol: 'https',
        cacert: join(dir, 'ca.pem'),
        cert: join(dir, 'client.pem'),
        key: join(dir, 'client-key.pem'),
        [key]: missing,
      };
      assert.throws(
        () => etcdConnection(settings),
        (error: unknown) => {
          assert.ok(isPgwardenError(error, 'PGW_CONFIG_UNREADABLE'), String(error));
          assert.match(error.message, new RegExp(`^etcd3\\.${key}: cannot read ${missing} \\(ENOENT`));
          assert.equal(error.context.path, missing);
          return true;
        },
      );
    }
  });
});
