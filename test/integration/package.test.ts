// The npm package as a user installs it: `npm pack` of this build, `npm install -g` into a temp prefix, and the
// installed `pgwarden` runs with only its runtime dependencies; an addon that cannot be built does not fail the
// install; the systemd units pass `systemd-analyze verify` against the installed binary.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { runProgram } from '../kit/cluster-kit.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const VERSION = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
const RUNTIME_DEPENDENCIES = ['commander', 'pg', 'pino', 'prom-client', 'yaml', 'zod'];

/** npm with a child environment of its own (cwd and extra variables); never rejects, like runProgram. */
function npm(
  args: readonly string[],
  options: { cwd: string; env?: Record<string, string> },
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile('npm', [...args], { cwd: options.cwd, env: { ...process.env, ...options.env }, timeout: 60_000 }, (error, stdout, stderr) =>
      resolve({ code: error === null ? 0 : typeof error.code === 'number' ? error.code : 1, stdout, stderr }),
    );
  });
}

describe('the npm package', { timeout: 120_000 }, () => {
  let dir = '';
  let tarball = '';

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pgw-package-'));
    // The build under test is the one this test runs from (dist/): packed as is, without prepack's rebuild.
    const packed = await npm(['pack', '--ignore-scripts', '--json', '--pack-destination', dir], { cwd: ROOT });
    assert.equal(packed.code, 0, packed.stderr);
    const [info] = JSON.parse(packed.stdout) as [{ filename: string }];
    tarball = join(dir, info.filename);
  });

  after(async () => {
    if (dir !== '') await rm(dir, { recursive: true, force: true });
  });

  it('holds the built program, the addon sources and its build script, the systemd units, alert rules, dashboard and README; no tests', async () => {
    const listing = await runProgram('tar', ['-tzf', tarball]);
    assert.equal(listing.code, 0, listing.stderr);
    const files = listing.stdout.split('\n').filter((line) => line !== '');
    for (const file of [
      'package/package.json',
      'package/README.md',
      'package/dist/src/bin/pgwarden.js',
      'package/dist/src/bin/agent.js',
      'package/dist/src/bin/fence.js',
      'package/dist/src/bin/config-worker.js',
      'package/native/linux/binding.gyp',
      'package/native/linux/linux.cc',
      'package/scripts/build-native.sh',
      'package/deploy/systemd/pgwarden-agent@.service',
      'package/deploy/systemd/pgwarden-proxy.service',
      'package/deploy/prometheus/pgwarden-alerts.yml',
      'package/deploy/prometheus/pgwarden-alerts.test.yml',
      'package/deploy/grafana/pgwarden-dashboard.json',
    ])
      assert.ok(files.includes(file), `${file} is in the tarball: ${files.join(' ')}`);
    const unwanted = files.filter(
      (file) => /^package\/(dist\/(test|bench)|test|src|bench|node_modules|native\/linux\/build)\//.test(file) || file.endsWith('.map'),
    );
    assert.deepEqual(unwanted, [], 'no tests, TypeScript sources, benchmarks, source maps or build output');
  });

  it('installs globally with its runtime dependencies and runs: pgwarden --help, agent --help, proxy --help, version', async () => {
    const prefix = join(dir, 'prefix');
    // --prefer-offline: npm's cache when it has the packages, the registry otherwise (a plain --offline fails on an
    // empty cache).
    const installed = await npm(['install', '-g', '--prefix', prefix, '--prefer-offline', '--no-audit', '--no-fund', tarball], {
      cwd: dir,
    });
    assert.equal(installed.code, 0, installed.stderr);
    const modules = join(prefix, 'lib', 'node_modules', 'pgwarden', 'node_modules');
    const present = readdirSync(modules);
    for (const dependency of RUNTIME_DEPENDENCIES) assert.ok(present.includes(dependency), `${dependency} installed: ${present.join(' ')}`);
    for (const devDependency of ['typescript', 'eslint', 'prettier', '@types'])
      assert.ok(!present.includes(devDependency), `${devDependency} is a dev dependency: not installed`);

    const bin = join(prefix, 'bin', 'pgwarden');
    const help = await runProgram(bin, ['--help']);
    assert.equal(help.code, 0, help.stderr);
    assert.match(help.stdout, /^Usage: pgwarden /);
    for (const command of ['list', 'switchover', 'agent', 'proxy']) assert.match(help.stdout, new RegExp(`\\n  ${command} `));
    for (const command of ['agent', 'proxy']) {
      const commandHelp = await runProgram(bin, [command, '--help']);
      assert.equal(commandHelp.code, 0, commandHelp.stderr);
      assert.match(commandHelp.stdout, new RegExp(`^Usage: pgwarden ${command} \\[options\\] \\[config\\]`));
    }
    const version = await runProgram(bin, ['version']);
    assert.equal(version.code, 0, version.stderr);
    assert.equal(version.stdout.trim(), `pgwarden ${VERSION}`);
    // An agent with a missing config fails with a message, not a module resolution error.
    const agent = await runProgram(bin, ['agent', join(dir, 'missing.yml')]);
    assert.notEqual(agent.code, 0);
    assert.doesNotMatch(agent.stderr, /ERR_MODULE_NOT_FOUND|Cannot find (module|package)/);

    // systemd-analyze checks ExecStart's binary: verify the units against the one just installed.
    const analyze = await runProgram('systemd-analyze', ['--version']);
    if (analyze.code !== 0) return;
    const units = join(dir, 'units');
    mkdirSync(units);
    for (const [source, target] of [
      ['pgwarden-agent@.service', 'pgwarden-agent@node1.service'],
      ['pgwarden-proxy.service', 'pgwarden-proxy.service'],
    ] as const) {
      const text = readFileSync(join(prefix, 'lib', 'node_modules', 'pgwarden', 'deploy', 'systemd', source), 'utf8');
      assert.match(text, /^ExecStart=pgwarden /m);
      writeFileSync(join(units, target), text.replace(/^ExecStart=pgwarden /m, `ExecStart=${bin} `));
    }
    const verified = await runProgram('systemd-analyze', [
      'verify',
      join(units, 'pgwarden-agent@node1.service'),
      join(units, 'pgwarden-proxy.service'),
    ]);
    assert.equal(verified.code, 0, verified.stderr);
    assert.equal(verified.stderr, '', 'systemd-analyze verify has no warning');
  });

  it('an addon that cannot be built does not fail the install', async () => {
    const prefix = join(dir, 'prefix-no-addon');
    const installed = await npm(
      ['install', '-g', '--prefix', prefix, '--prefer-offline', '--no-audit', '--no-fund', '--foreground-scripts', tarball],
      {
        cwd: dir,
        // npm sets node-gyp's path itself; a compiler that fails is what a host without build tools looks like.
        env: { CC: '/bin/false', CXX: '/bin/false' },
      },
    );
    assert.equal(installed.code, 0, installed.stderr);
    // The reason names the failed step, not only node-gyp's trailer.
    assert.match(installed.stderr, /pgwarden: native addon not built \([^)]*(make|Error)/);
    assert.ok(!existsSync(join(prefix, 'lib', 'node_modules', 'pgwarden', 'native', 'linux', 'build', 'Release', 'pgwarden_linux.node')));
    const help = await runProgram(join(prefix, 'bin', 'pgwarden'), ['agent', '--help']);
    assert.equal(help.code, 0, help.stderr);
  });
});
