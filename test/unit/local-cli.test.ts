// `pgwarden local` argument parsing: unknown subcommands, flags and arguments are errors with suggestions, never a start.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Command } from 'commander';
import { classifyCommandLine, memberOfPath } from '../../src/local/cluster-processes.js';
import { fixedPorts } from '../../src/local/free-port.js';
import { registerLocalCommand, suggest, type LocalHandlers, type LocalStartArguments } from '../../src/local/local-cli.js';
import { PgwardenError } from '../../src/util/errors.js';

type Call = readonly [string, ...unknown[]];

async function parse(...args: string[]): Promise<Call[]> {
  const calls: Call[] = [];
  const handlers: LocalHandlers = {
    start: async (options: LocalStartArguments) => void calls.push(['start', options]),
    stop: async (dir) => void calls.push(['stop', dir]),
    status: async (dir) => void calls.push(['status', dir]),
    kill: async (dir, member) => void calls.push(['kill', dir, member]),
    restart: async (dir, member) => void calls.push(['restart', dir, member]),
  };
  const program = new Command().exitOverride();
  program.configureOutput({ writeErr: () => undefined, writeOut: () => undefined });
  registerLocalCommand(program, handlers, '/default/dir');
  await program.parseAsync(['node', 'pgwarden', 'local', ...args]);
  return calls;
}

async function usageError(args: string[], message: RegExp, context: Record<string, unknown> = {}): Promise<void> {
  await assert.rejects(parse(...args), (error: unknown) => {
    assert.ok(error instanceof PgwardenError, `a PgwardenError for ${args.join(' ')}, not ${String(error)}`);
    assert.equal(error.code, 'PGW_CLI_USAGE');
    assert.match(error.message, message);
    for (const [key, value] of Object.entries(context)) assert.deepEqual(error.context[key], value, `context.${key}`);
    assert.equal(typeof error.context.hint, 'string');
    return true;
  });
}

describe('pgwarden local arguments', () => {
  it('a mistyped subcommand is an error with suggestions, and nothing runs', async () => {
    await usageError(['stat'], /^unknown local subcommand 'stat'; did you mean 'start' or 'status'\? .*nothing was started or deleted$/, {
      value: 'stat',
    });
    await usageError(['stpo'], /did you mean 'stop'\?/);
    await usageError(['restrat', 'node1'], /did you mean 'restart'\?/);
    await usageError(['bogus'], /^unknown local subcommand 'bogus' \(subcommands: start, stop, status, kill, restart\)/);
    await usageError([], /^local needs a subcommand/);
    await usageError(['--background'], /^unknown local subcommand '--background'/);
  });

  it('unknown flags and extra arguments of a subcommand are errors naming them', async () => {
    await usageError(['start', '--bckground'], /^unknown option '--bckground' for 'local start'; did you mean '--background'\?$/, {
      flag: '--bckground',
    });
    await usageError(['start', '--wpie'], /did you mean '--wipe'\?/);
    await usageError(['stop', '--dri', '/x'], /^unknown option '--dri' for 'local stop'; did you mean '--dir'\?$/);
    await usageError(['status', 'now'], /^unexpected argument 'now' for 'local status'$/);
    await usageError(['kill', 'node1', 'node2'], /^unexpected argument 'node2' for 'local kill'$/);
    await usageError(['start', '--nodes', 'three'], /^--nodes expects an integer from 1 to 10, got "three"$/, { flag: '--nodes' });
    await usageError(['start', '--port-base', '80'], /^--port-base expects an integer from 1024 to 65000, got "80"$/);
    await usageError(['start', '--ttl', '0'], /^--ttl expects a positive number/);
    await usageError(['start', '--proxy-data-path', 'fast'], /^--proxy-data-path must be userspace or kernel/);
  });

  it('valid invocations reach their handler with parsed values', async () => {
    assert.deepEqual(await parse('start', '--background', '--wipe', '--dir', '/d', '--nodes', '2', '--port-base', '21000', '--insecure'), [
      [
        'start',
        {
          dir: '/d',
          isBackground: true,
          isWipe: true,
          nodes: 2,
          ttl: 30,
          loopWait: 10,
          retryTimeout: 10,
          proxyDataPath: 'userspace',
          portBase: 21000,
          isInsecure: true,
          isBackup: false,
        },
      ],
    ]);
    const [[, defaults]] = (await parse('start')) as [[string, LocalStartArguments]];
    assert.deepEqual(
      [defaults.dir, defaults.isWipe, defaults.isBackground, defaults.portBase, defaults.isInsecure, defaults.isBackup],
      ['/default/dir', false, false, undefined, false, false],
    );
    assert.deepEqual(await parse('stop'), [['stop', '/default/dir']]);
    assert.deepEqual(await parse('status', '--dir', '/d'), [['status', '/d']]);
    assert.deepEqual(await parse('kill', 'node2', '--dir', '/d'), [['kill', '/d', 'node2']]);
    assert.deepEqual(await parse('restart', 'node2'), [['restart', '/default/dir', 'node2']]);
  });

  it('suggest lists near candidates closest first, and nothing for unrelated words', () => {
    assert.deepEqual(suggest('stat', ['start', 'stop', 'status', 'kill', 'restart']), ['start', 'status']);
    assert.deepEqual(suggest('statsu', ['start', 'stop', 'status']), ['status']);
    assert.deepEqual(suggest('kil', ['start', 'stop', 'status', 'kill', 'restart']), ['kill']);
    assert.deepEqual(suggest('xyz', ['start', 'stop', 'status', 'kill', 'restart']), []);
    assert.deepEqual(suggest('--port', ['--dir', '--port-base', '--nodes']), ['--port-base']);
  });
});

describe('local cluster processes are recognized from their command lines', () => {
  it('classifies members and ignores anything else that names the directory', () => {
    const cases: [string[], string | undefined][] = [
      [['/usr/lib/postgresql/15/bin/postgres', '-D', '/c/node1/data'], 'postgres'],
      [['postgres: demo: checkpointer '], undefined],
      [['etcd', '--name', 'etcd1', '--data-dir', '/c/etcd/etcd1'], 'etcd'],
      [['/usr/bin/node', '--max-semi-space-size=1', '/w/dist/src/bin/agent.js', '/c/node1/pgwarden.yml'], 'agent'],
      [['/usr/bin/node', '/w/dist/src/bin/fence.js', 'node1', '/c/node1/data'], 'fence'],
      [['/usr/bin/node', '/w/dist/src/bin/pgwarden.js', 'proxy', '/c/proxy1/proxy.yml'], 'proxy'],
      [['node', 'dist/src/bin/pgwarden.js', 'local', 'start', '--dir', '/c'], 'supervisor'],
      [['node', 'dist/src/bin/pgwarden.js', 'local', 'status', '--dir', '/c'], undefined],
      [['node', 'dist/src/bin/pgwarden.js', 'local', 'stop', '--dir', '/c'], undefined],
      [['tail', '-f', '/c/node1/agent.log'], undefined],
      [['vim', '/c/node1/pgwarden.yml'], undefined],
    ];
    for (const [argv, kind] of cases) assert.equal(classifyCommandLine(argv), kind, argv.join(' '));
  });

  it('maps paths inside the directory to their member', () => {
    assert.equal(memberOfPath('/c', '/c/node2/data'), 'node2');
    assert.equal(memberOfPath('/c', '/c/etcd/etcd3'), 'etcd3');
    assert.equal(memberOfPath('/c', '/c/proxy1/proxy.yml'), 'proxy1');
    assert.equal(memberOfPath('/c', '/c'), 'local');
    assert.equal(memberOfPath('/c', '/cluster2/node1'), undefined);
    assert.equal(memberOfPath('/c', '/other/node1'), undefined);
    assert.equal(memberOfPath('/tmp', '/tmp/pgw-other-cluster/node1/data'), undefined, 'another cluster below --dir is not ours');
    assert.equal(memberOfPath('/c', '/c/node1.log'), undefined);
  });

  it('--port-base: a taken port is an error naming it and what it was for', async () => {
    const { createServer } = await import('node:net');
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const taken = (server.address() as { port: number }).port;
    try {
      await assert.rejects(fixedPorts(taken, 2, 'etcd client and peer ports'), (error: unknown) => {
        assert.ok(error instanceof PgwardenError);
        assert.equal(error.message, `port ${taken} (etcd client and peer ports) is already in use on 127.0.0.1`);
        assert.equal(error.context.port, taken);
        return true;
      });
      await assert.rejects(fixedPorts(65_535, 2, 'proxy'), /port 65536 \(proxy\) is outside 1-65535/);
    } finally {
      server.close();
    }
  });
});
