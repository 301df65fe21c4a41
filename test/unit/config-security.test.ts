// Security sections of the config are strict (an unknown key is an error with "did you mean"), a config file holding
// passwords that others can read is warned about, and ctl/restapi become the REST client's settings as in patronictl.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { loadConfig, parseConfig, secretFileModeWarning } from '../../src/config/load.js';
import { restClientSettings } from '../../src/config/rest-client-settings.js';
import { closestName } from '../../src/util/did-you-mean.js';
import { isPgwardenError } from '../../src/util/errors.js';

const fixture = new URL('../../../test/fixtures/patroni-node1.yml', import.meta.url).pathname;
const patroniYaml = readFileSync(fixture, 'utf8');
const withRestapi = (lines: string): string =>
  patroniYaml.replace('  connect_address: 127.0.0.1:28008\n', `  connect_address: 127.0.0.1:28008\n${lines}`);

function refusal(yaml: string): string {
  try {
    parseConfig(yaml, 'pgwarden.yml');
  } catch (error) {
    assert.ok(isPgwardenError(error, 'PGW_CONFIG_INVALID'), String(error));
    return error.message;
  }
  assert.fail('config was accepted');
}

describe('strict security sections', () => {
  it('refuses a misspelled restapi.authentication, naming the key and the right one', () => {
    const message = refusal(withRestapi('  authentification:\n    username: admin\n    password: x\n'));
    assert.match(
      message,
      /restapi\.authentification: unknown key in the security section restapi \(did you mean restapi\.authentication\?\)/,
    );
  });

  it('refuses misspelled keys inside restapi.authentication, ctl, ctl.authentication and postgresql.authentication', () => {
    assert.match(
      refusal(withRestapi('  authentication:\n    usernme: admin\n    password: x\n')),
      /restapi\.authentication\.usernme: .*did you mean restapi\.authentication\.username\?/,
    );
    assert.match(refusal(withRestapi('  verfy_client: required\n')), /did you mean restapi\.verify_client\?/);
    assert.match(refusal(`${patroniYaml}ctl:\n  certfle: /c.pem\n`), /ctl\.certfle: .*did you mean ctl\.certfile\?/);
    assert.match(refusal(`${patroniYaml}ctl:\n  insecure: true\n  cacrt: /ca.pem\n`), /did you mean ctl\.cacert\?/);
    assert.match(
      refusal(`${patroniYaml}ctl:\n  authentication:\n    username: a\n    pasword: b\n`),
      /ctl\.authentication\.pasword: .*did you mean ctl\.authentication\.password\?/,
    );
    assert.match(
      refusal(patroniYaml.replace('    superuser:\n', '    superusr:\n      username: x\n    superuser:\n')),
      /postgresql\.authentication\.superusr: .*did you mean postgresql\.authentication\.superuser\?/,
    );
    assert.match(
      refusal(patroniYaml.replace('      username: replicator\n', '      username: replicator\n      passwrd: x\n')),
      /postgresql\.authentication\.replication\.passwrd: .*did you mean postgresql\.authentication\.replication\.password\?/,
    );
    // Far from any known key: the known keys are listed instead of a guess.
    assert.match(refusal(withRestapi('  colour: blue\n')), /restapi\.colour: .*\(known keys: listen, connect_address, authentication/);
  });

  it("takes Patroni's libpq settings of a PostgreSQL user (sslmode...) without a warning, and new ctl keys load", () => {
    const { warnings, config } = parseConfig(
      `${patroniYaml.replace('      username: replicator\n', '      username: replicator\n      sslmode: require\n')}ctl:\n  keyfile_password: k\n  insecure: true\n`,
      'pgwarden.yml',
    );
    assert.ok(!warnings.some((warning) => warning.includes('sslmode')), warnings.join('\n'));
    assert.equal(config.postgresql.authentication.replication.sslmode, 'require');
    assert.equal(config.ctl?.keyfile_password, 'k');
  });

  it('an agent with a misspelled restapi.authentication refuses to start, saying what to write', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pgw-strict-'));
    try {
      const path = join(dir, 'pgwarden.yml');
      writeFileSync(path, withRestapi('  authentication:\n    usernme: admin\n    password: Sup3r-s3cret\n'), { mode: 0o600 });
      const agent = new URL('../../src/bin/agent.js', import.meta.url).pathname;
      const result = await new Promise<{ code: number | null; output: string }>((resolve) => {
        execFile(process.execPath, [agent, path], { timeout: 30_000 }, (error, stdout, stderr) =>
          resolve({ code: error === null ? 0 : typeof error.code === 'number' ? error.code : null, output: stdout + stderr }),
        );
      });
      assert.equal(result.code, 1, result.output);
      assert.match(result.output, /restapi\.authentication\.usernme: .*did you mean restapi\.authentication\.username\?/);
      assert.ok(!result.output.includes('Sup3r-s3cret'), result.output);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('suggests only near names', () => {
    assert.equal(closestName('authentification', ['authentication', 'allowlist']), 'authentication');
    assert.equal(closestName('usernme', ['username', 'password']), 'username');
    assert.equal(closestName('pasword', ['username', 'password']), 'password');
    assert.equal(closestName('colour', ['listen', 'cafile', 'ciphers']), undefined);
  });
});

describe('config files holding passwords', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pgw-mode-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const document = { postgresql: { authentication: { superuser: { username: 'postgres', password: 'x' } } } };

  it('are warned about when their group or others can read them, naming the file and the mode', () => {
    assert.equal(
      secretFileModeWarning('/etc/pgwarden.yml', 0o100644, document),
      'config /etc/pgwarden.yml holds passwords and is readable by others (mode 0644); chmod 600 it',
    );
    assert.equal(
      secretFileModeWarning('/etc/pgwarden.yml', 0o100640, document),
      'config /etc/pgwarden.yml holds passwords and is readable by its group (mode 0640); chmod 600 it',
    );
    assert.equal(secretFileModeWarning('/etc/pgwarden.yml', 0o100600, document), undefined);
    assert.equal(secretFileModeWarning('/etc/pgwarden.yml', 0o100644, { scope: 'x', ctl: { password: null } }), undefined, 'no password');
  });

  it('loadConfig reads the mode of the file itself', () => {
    const path = join(dir, 'node.yml');
    writeFileSync(path, patroniYaml);
    chmodSync(path, 0o644);
    assert.ok(loadConfig(path, {}).warnings.includes(`config ${path} holds passwords and is readable by others (mode 0644); chmod 600 it`));
    chmodSync(path, 0o600);
    assert.ok(!loadConfig(path, {}).warnings.some((warning) => warning.includes('holds passwords')));
  });
});

describe('REST client settings from ctl and restapi (patronictl precedence)', () => {
  const restapi = {
    authentication: { username: 'api', password: 'a' },
    cafile: '/restapi-ca.pem',
    certfile: '/restapi.pem',
    keyfile: '/restapi.key',
    keyfile_password: 'rk',
  };

  it('takes every ctl key first', () => {
    const ctl = {
      authentication: { username: 'ctl', password: 'c' },
      cacert: '/ctl-ca.pem',
      certfile: '/ctl.pem',
      keyfile: '/ctl.key',
      keyfile_password: 'ck',
      insecure: true,
    };
    assert.deepEqual(restClientSettings({ ctl, restapi }), {
      credentials: { username: 'ctl', password: 'c', key: 'ctl.authentication' },
      cacert: { path: '/ctl-ca.pem', key: 'ctl.cacert' },
      certfile: { path: '/ctl.pem', key: 'ctl.certfile' },
      keyfile: { path: '/ctl.key', key: 'ctl.keyfile' },
      keyfilePassword: 'ck',
      isInsecure: true,
    });
    assert.equal(restClientSettings({ ctl, restapi }, { isInsecure: false }).isInsecure, false, '-k given wins over ctl.insecure');
  });

  it("falls back to restapi's, keeping a certificate with its own section's key", () => {
    assert.deepEqual(restClientSettings({ restapi }), {
      credentials: { username: 'api', password: 'a', key: 'restapi.authentication' },
      cacert: { path: '/restapi-ca.pem', key: 'restapi.cafile' },
      certfile: { path: '/restapi.pem', key: 'restapi.certfile' },
      keyfile: { path: '/restapi.key', key: 'restapi.keyfile' },
      keyfilePassword: 'rk',
      isInsecure: false,
    });
    const mixed = restClientSettings({ ctl: { certfile: '/ctl-combined.pem' }, restapi });
    assert.deepEqual(mixed.certfile, { path: '/ctl-combined.pem', key: 'ctl.certfile' });
    assert.equal(mixed.keyfile, undefined, "the ctl certificate file holds its key: never the REST server's key");
    assert.equal(mixed.keyfilePassword, undefined);
    assert.deepEqual(restClientSettings({}), { isInsecure: false });
  });
});
