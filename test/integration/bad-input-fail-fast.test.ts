// Issue 15 points 2, 5 and 6 on real processes: edit-config refuses an invalid timing (nothing stored); an agent whose
// data_dir is a regular file exits at once with one clear error (no bootstrap loop); an unreachable etcd is logged
// with the cause of each endpoint and again, with its duration, while it lasts.
import assert from 'node:assert/strict';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parse, stringify } from 'yaml';
import { pickFreePorts } from '../../src/local/free-port.js';
import { spawnAgentProcess, type LocalCluster } from '../../src/local/local-cluster.js';
import { isAlive, stopPid } from '../../src/local/process.js';
import { runCli, waitHealthy } from '../kit/cluster-kit.js';
import { startTestCluster, teardownCluster } from '../kit/fixtures.js';

interface NodeYaml {
  name: string;
  restapi: { listen: string; connect_address: string };
  etcd3: { hosts: string };
  postgresql: { listen: string; connect_address: string; data_dir: string; pgpass: string; parameters: Record<string, unknown> };
}

/** A copy of node1's config as another member `name` with `change` applied, in its own directory; returns its path. */
async function variantConfig(cluster: LocalCluster, dir: string, name: string, change: (config: NodeYaml) => void): Promise<string> {
  const config = parse(await readFile(cluster.node('node1').configPath, 'utf8')) as NodeYaml;
  const [apiPort, pgPort] = await pickFreePorts(2);
  config.name = name;
  config.restapi.listen = `127.0.0.1:${apiPort}`;
  config.restapi.connect_address = `127.0.0.1:${apiPort}`;
  config.postgresql.listen = `127.0.0.1:${pgPort}`;
  config.postgresql.connect_address = `127.0.0.1:${pgPort}`;
  config.postgresql.data_dir = join(dir, 'data');
  config.postgresql.pgpass = join(dir, 'pgpass');
  config.postgresql.parameters.unix_socket_directories = dir;
  change(config);
  const path = join(dir, 'pgwarden.yml');
  await writeFile(path, stringify(config), { mode: 0o600 });
  return path;
}

async function agentFor(dir: string, configPath: string, runMs: number): Promise<{ lines: string[]; isAliveAtEnd: boolean }> {
  const pid = spawnAgentProcess(dir, { configPath });
  const deadline = Date.now() + runMs;
  while (Date.now() < deadline && isAlive(pid)) await new Promise((resolve) => setTimeout(resolve, 250));
  const isAliveAtEnd = isAlive(pid);
  await stopPid(pid, { graceMs: 10_000 });
  const text = await readFile(join(dir, 'agent.log'), 'utf8');
  return { lines: text.split('\n').filter((line) => line.trim() !== ''), isAliveAtEnd };
}

describe('bad input fails fast and is said truthfully', { timeout: 300_000 }, () => {
  let cluster: LocalCluster | undefined;
  let scratch: string;

  before(async () => {
    scratch = await mkdtemp(join(tmpdir(), 'pgw-badinput-'));
    // The agents run PostgreSQL as postgres, which must reach their directories (pgwarden chowns only what it creates).
    await chmod(scratch, 0o755);
    cluster = await startTestCluster('badinput', { nodes: 1 });
    await waitHealthy(cluster, 90_000);
  });

  after(async () => {
    await teardownCluster(cluster);
    await rm(scratch, { recursive: true, force: true });
  });

  it('edit-config with a bad ttl exits 1 with the rule, and nothing is stored; PATCH /config answers 400', async () => {
    const local = cluster!;
    const node = local.node('node1');
    const configUrl = `http://127.0.0.1:${node.apiPort}/config`;
    const before = (await (await fetch(configUrl)).json()) as Record<string, unknown>;
    for (const [setting, message] of [
      ['ttl=-1', /ttl: must be at least 2 \(got -1\)/],
      ['ttl=4', /loop_wait \+ 2\*retry_timeout \(1 \+ 2\*3 = 7\) must be <= ttl \(4\)/],
      ['loop_wait=abc', /loop_wait: must be a number of seconds \(got "abc"\)/],
    ] as const) {
      const result = await runCli(['-c', node.configPath, 'edit-config', '--set', setting, '--force']);
      assert.equal(result.code, 1, `${setting}: ${result.stdout}${result.stderr}`);
      assert.match(result.stderr, message);
    }
    const patched = await fetch(configUrl, { method: 'PATCH', body: JSON.stringify({ ttl: -1 }) });
    assert.equal(patched.status, 400);
    assert.match(await patched.text(), /^invalid configuration: ttl: must be at least 2 \(got -1\)/);
    assert.deepEqual(await (await fetch(configUrl)).json(), before, 'nothing stored');
  });

  it('an agent whose data_dir is a regular file exits at once with one clear error, and no bootstrap loop', async () => {
    const dir = await mkdtemp(join(scratch, 'file-'));
    await chmod(dir, 0o777);
    const file = join(dir, 'not-a-dir');
    await writeFile(file, 'precious');
    const configPath = await variantConfig(cluster!, dir, 'node9', (config) => (config.postgresql.data_dir = file));
    const { lines, isAliveAtEnd } = await agentFor(dir, configPath, 10_000);
    assert.equal(isAliveAtEnd, false, 'the agent exited');
    const errors = lines.filter((line) => line.includes('"level":"error"'));
    assert.equal(errors.length, 1, lines.join('\n'));
    assert.match(errors[0]!, /PGW_DATA_DIR_UNUSABLE.*is a regular file, not a directory/);
    assert.ok(lines.length < 10, `a handful of lines, not a loop (${lines.length})`);
    assert.ok(!lines.some((line) => line.includes('task bootstrap')), 'no bootstrap tried');
    assert.equal(await readFile(file, 'utf8'), 'precious', 'the file is untouched');
  });

  it('an unreachable etcd is logged with the cause of each endpoint, and again with its duration while it lasts', async () => {
    const dir = await mkdtemp(join(scratch, 'etcd-'));
    await chmod(dir, 0o777);
    const [closedPort] = await pickFreePorts(1);
    const configPath = await variantConfig(cluster!, dir, 'node8', (config) => {
      config.etcd3.hosts = `127.0.0.1:${closedPort},nosuchhost.invalid:2379`;
    });
    const { lines } = await agentFor(dir, configPath, 23_000);
    const said = lines.filter((line) => /DCS is (still )?not accessible/.test(line));
    assert.ok(said.length > 0, lines.join('\n'));
    assert.match(said[0] ?? '', new RegExp(`127\\.0\\.0\\.1:${closedPort}: connection refused \\(ECONNREFUSED\\)`));
    assert.match(said[0] ?? '', /nosuchhost\.invalid:2379: (host name not found \(ENOTFOUND\)|DNS lookup failed for now \(EAI_AGAIN\))/);
    assert.ok(
      said.some((line) => /DCS is still not accessible \(for 1\d s, \d+ failed reads\)/.test(line)),
      said.join('\n'),
    );
    assert.ok(
      said.some((line) => /DCS is still not accessible \(for 2\d s/.test(line)),
      said.join('\n'),
    );
    assert.ok(said.length <= 4, `repeated every 10 s, not every read (${said.length})`);
  });
});
