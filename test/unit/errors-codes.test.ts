// Failures carry a stable code and the context a user needs (member, key, flag, command, hint), while the messages the
// CLI prints stay word for word what they were (Patroni-compatible wording).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Allowlist } from '../../src/api/allowlist.js';
import { buildProgram, runCli, type CliDeps } from '../../src/cli/main.js';
import { EtcdDcs } from '../../src/dcs/etcd/etcd-dcs.js';
import { MemoryDcsStore } from '../../src/dcs/memory/memory-dcs.js';
import { isPgwardenError, PgwardenError, type ErrorCode } from '../../src/util/errors.js';
import { runCommand } from '../../src/util/run-command.js';
import { FakeClock } from '../kit/fake-clock.js';
import { referenceView } from '../kit/reference-view.js';

const view = referenceView();

const deps: CliDeps = {
  loadCluster: async () => ({ scope: 'bench', view, db: { psql: '/nonexistent/psql', username: 'postgres', password: undefined } }),
  version: '0.0.0-test',
  out: () => undefined,
};

async function run(...args: string[]): Promise<void> {
  const program = buildProgram(deps);
  program.configureOutput({ writeErr: () => undefined, writeOut: () => undefined });
  await program.parseAsync(['node', 'pgwarden', '-c', '/dev/null', ...args]);
}

/** Asserts a PgwardenError with this code, the exact message, and these context fields (others may be there too). */
function expectError(code: ErrorCode, message: string | RegExp, context: Record<string, unknown>): (error: unknown) => true {
  return (error: unknown) => {
    assert.ok(error instanceof PgwardenError, `a PgwardenError, not ${String(error)}`);
    assert.equal(error.code, code);
    if (typeof message === 'string') assert.equal(error.message, message);
    else assert.match(error.message, message);
    for (const [key, value] of Object.entries(context)) assert.deepEqual(error.context[key], value, `context.${key}`);
    assert.equal(typeof error.context.hint, 'string', 'a hint of what to do');
    return true;
  };
}

describe('CLI errors carry a code and context', () => {
  it('a bad --watch value is a usage error naming the flag and the value', async () => {
    await assert.rejects(
      run('list', '--watch', '0'),
      expectError('PGW_CLI_USAGE', '--watch expects a positive number of seconds, got "0"', {
        flag: '--watch',
        value: '0',
        command: ['pgwarden', 'list'],
      }),
    );
    await assert.rejects(
      run('topology', '-w', 'soon'),
      expectError('PGW_CLI_USAGE', '--watch expects a positive number of seconds, got "soon"', { command: ['pgwarden', 'topology'] }),
    );
  });

  it('an unknown member names the member and the cluster', async () => {
    await assert.rejects(
      run('restart', 'node9', '--force'),
      expectError('PGW_CLI_NO_MEMBER', 'node9 is not a member of cluster bench', { member: 'node9', members: ['node9'], scope: 'bench' }),
    );
    await assert.rejects(run('dsn', '-m', 'node9'), expectError('PGW_CLI_NO_MEMBER', 'no member named node9', { member: 'node9' }));
    await assert.rejects(
      run('query', '-m', 'node9', '-c', 'select 1'),
      expectError('PGW_CLI_NO_MEMBER', 'no member named node9', { member: 'node9', flag: '--member' }),
    );
  });

  it('other usage errors name the flag', async () => {
    await assert.rejects(
      run('failover', '--force'),
      expectError('PGW_CLI_USAGE', 'failover needs --candidate <member>', { flag: '--candidate' }),
    );
    await assert.rejects(
      run('haproxy-config', '--check-interval', '5'),
      expectError('PGW_CLI_USAGE', '--check-interval expects milliseconds (>= 10), got "5"', { flag: '--check-interval', value: '5' }),
    );
    await assert.rejects(
      run('edit-config', '--set', 'ttl', '--force'),
      expectError('PGW_CLI_USAGE', '--set expects key.path=value, got "ttl"', { flag: '--set', value: 'ttl' }),
    );
    await assert.rejects(run('resume'), expectError('PGW_CLI_CLUSTER_STATE', 'Cluster is not paused', { scope: 'bench' }));
  });

  it('runCli prints the unchanged message on one line and exits 1', async () => {
    const written: string[] = [];
    const write = process.stderr.write.bind(process.stderr);
    process.stderr.write = (chunk: string | Uint8Array) => {
      written.push(String(chunk));
      return true;
    };
    let code: number;
    try {
      code = await runCli(['-c', '/dev/null', 'restart', 'node9', '--force'], deps);
    } finally {
      process.stderr.write = write;
    }
    assert.equal(code, 1);
    assert.deepEqual(written, ['Error: node9 is not a member of cluster bench\n']);
  });
});

describe('library errors carry a code and context', () => {
  it("the allowlist's invalid CIDR names the config key and the entry", () => {
    assert.throws(
      () => new Allowlist({ entries: ['10.0.0.0/33'], includeMembers: false, nowMs: () => 0 }),
      expectError(
        'PGW_CONFIG_INVALID',
        'restapi.allowlist entry "10.0.0.0/33" is not a valid CIDR network (expected e.g. 10.0.0.0/8 or fd00::/8)',
        { key: 'restapi.allowlist', entry: '10.0.0.0/33' },
      ),
    );
  });

  it("the memory DCS's unknown lease names the lease and the key", () => {
    const store = new MemoryDcsStore(new FakeClock());
    assert.throws(
      () => store.put('/service/bench/leader', 'node1', 42),
      expectError('PGW_DCS_LEASE_NOT_FOUND', 'lease 42 not found', { lease: 42, key: '/service/bench/leader' }),
    );
  });

  it('a failed system command carries its argv, exit code and stderr', async () => {
    await assert.rejects(
      runCommand('sh', ['-c', 'echo boom >&2; exit 3']),
      expectError('PGW_SYSTEM_COMMAND_FAILED', 'sh -c echo boom >&2; exit 3 failed: boom', {
        command: ['sh', '-c', 'echo boom >&2; exit 3'],
        exitCode: 3,
        stderrTail: 'boom',
      }),
    );
    await assert.rejects(
      runCommand('pgwarden-no-such-command', ['--version']),
      (error: unknown) =>
        expectError('PGW_SYSTEM_COMMAND_FAILED', /^pgwarden-no-such-command --version failed: /, {
          command: ['pgwarden-no-such-command', '--version'],
          exitCode: null,
        })(error) && /not installed or not on PATH/.test(String((error as PgwardenError).context.hint)),
    );
  });

  it('a closed etcd client fails its calls with PGW_DCS_CLOSED as the cause', async () => {
    const dcs = new EtcdDcs({ endpoints: ['http://127.0.0.1:9'], namespace: '/service', scope: 'bench', member: 'node1' });
    await dcs.close();
    await assert.rejects(dcs.loadCluster(AbortSignal.timeout(5000)), (error: unknown) => {
      assert.ok(isPgwardenError(error, 'PGW_DCS_UNAVAILABLE'));
      assert.ok(isPgwardenError(error.cause, 'PGW_DCS_CLOSED'), `the cause is the close: ${String(error.cause)}`);
      assert.equal(error.cause.context.member, 'node1');
      return true;
    });
  });
});
