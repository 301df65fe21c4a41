// A `pgwarden local start` cluster on a shared host: another OS user (nobody) can neither connect to PostgreSQL, nor
// read the state, configs and keys, nor write etcd keys; unsafe REST calls need the generated credentials, which the
// CLI finds in a node's config by itself.
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { stopClusterProcesses } from '../../src/local/cluster-processes.js';
import type { LocalClusterState } from '../../src/local/local-cluster.js';

const CLI = fileURLToPath(new URL('../../src/bin/pgwarden.js', import.meta.url));
const PSQL = '/usr/lib/postgresql/15/bin/psql';
/** Two nodes with the system tests' timing: healthy within about 15 s. */
const SMALL = ['--nodes', '2', '--ttl', '8', '--loop-wait', '1', '--retry-timeout', '3'];

interface Outcome {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

function run(command: string, args: readonly string[], timeoutMs = 30_000): Promise<Outcome> {
  return new Promise((resolve) => {
    // cwd /: the unprivileged user may not enter the test's working directory.
    execFile(command, [...args], { timeout: timeoutMs, cwd: '/' }, (error, stdout, stderr) =>
      resolve({ code: error === null ? 0 : typeof error.code === 'number' ? error.code : 1, stdout, stderr }),
    );
  });
}

/** As the unprivileged OS user nobody, with an environment of its own (no PGPASSFILE, no etcd variables). */
const asNobody = (command: string, args: readonly string[]): Promise<Outcome> =>
  run('setpriv', ['--reuid=nobody', '--regid=nogroup', '--clear-groups', '--reset-env', '--', command, ...args]);

function startLocal(dir: string): Promise<Outcome> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, 'local', 'start', '--background', '--dir', dir, ...SMALL], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 180_000);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? 1, stdout, stderr });
    });
  });
}

const modeOf = (path: string): string => (statSync(path).mode & 0o777).toString(8).padStart(4, '0');

describe('a local cluster on a shared host', { timeout: 240_000 }, () => {
  let dir: string;
  let state: LocalClusterState;
  let startOutput: string;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pgw-security-'));
    const started = await startLocal(dir);
    assert.equal(started.code, 0, `start failed: ${started.stderr}\n${started.stdout}`);
    startOutput = started.stdout;
    state = JSON.parse(readFileSync(join(dir, 'cluster-state.json'), 'utf8')) as LocalClusterState;
  });

  after(async () => {
    await stopClusterProcesses(dir).catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  });

  it('directories are closed to others, and every file holding a secret is 0600', () => {
    const postgresUid = statSync(join(dir, 'node1', 'data')).uid;
    assert.notEqual(postgresUid, 0, 'the data dir belongs to postgres');
    assert.equal(modeOf(dir), '0710', 'the cluster dir: postgres may only traverse it');
    for (const node of state.nodes) {
      const nodeDir = join(dir, node.name);
      assert.equal(modeOf(nodeDir), '0700', `${node.name}: node dir (the socket directory)`);
      assert.equal(statSync(nodeDir).uid, postgresUid, `${node.name}: node dir owned by postgres`);
      assert.equal(modeOf(node.dataDir), '0700');
      assert.equal(modeOf(join(nodeDir, 'pgwarden.yml')), '0600');
      assert.equal(modeOf(join(nodeDir, 'pgpass')), '0600');
      assert.doesNotMatch(readFileSync(join(node.dataDir, 'pg_hba.conf'), 'utf8'), /\btrust\b/);
    }
    for (const private_ of ['etcd', 'etcd-tls', 'proxy1']) assert.equal(modeOf(join(dir, private_)), '0700', private_);
    for (const file of ['cluster-state.json', 'pgpass', 'proxy1/proxy.yml', state.etcdClient?.key ?? 'missing client key'])
      assert.equal(modeOf(file.startsWith('/') ? file : join(dir, file)), '0600', file);
    // Printed once: where the secrets are, never the secrets themselves.
    assert.match(startOutput, /REST credentials: +user pgwarden, password in .*cluster-state\.json/);
    assert.ok(state.restapiAuthentication !== undefined && !startOutput.includes(state.restapiAuthentication.password));
    assert.ok(!startOutput.includes(state.superuserPassword));
  });

  it('nobody cannot connect to PostgreSQL, by the socket or by TCP', async () => {
    const node = state.nodes[0]!;
    const bySocket = await asNobody(PSQL, [
      '-w',
      '-h',
      join(dir, node.name),
      '-p',
      String(node.pgPort),
      '-U',
      'postgres',
      '-c',
      'SELECT 1',
    ]);
    assert.notEqual(bySocket.code, 0, `psql by the socket as nobody: ${bySocket.stdout}`);
    assert.match(bySocket.stderr, /Permission denied|No such file/);
    const byTcp = await asNobody(PSQL, ['-w', '-h', '127.0.0.1', '-p', String(node.pgPort), '-U', 'postgres', '-c', 'SELECT 1']);
    assert.notEqual(byTcp.code, 0, `psql over TCP as nobody: ${byTcp.stdout}`);
    assert.match(byTcp.stderr, /password/);
  });

  it('nobody cannot read the state file, configs, pgpass files or keys, nor list the cluster dir', async () => {
    const secrets = [
      join(dir, 'cluster-state.json'),
      join(dir, 'pgpass'),
      join(dir, 'node1', 'pgwarden.yml'),
      join(dir, 'node1', 'pgpass'),
      join(dir, 'proxy1', 'proxy.yml'),
      state.etcdClient?.key ?? join(dir, 'etcd-tls', 'missing'),
    ];
    for (const path of secrets) {
      const outcome = await asNobody('cat', [path]);
      assert.notEqual(outcome.code, 0, `nobody read ${path}`);
      assert.match(outcome.stderr, /Permission denied/, path);
    }
    const listing = await asNobody('ls', [dir]);
    assert.notEqual(listing.code, 0, 'nobody listed the cluster dir');
  });

  it('unsafe REST calls need the generated credentials; the CLI finds them in the node config', async () => {
    const api = `http://127.0.0.1:${state.nodes[0]!.apiPort}`;
    const patch = { method: 'PATCH', body: JSON.stringify({ postgresql: { parameters: { work_mem: '8MB' } } }) };
    assert.equal((await fetch(`${api}/config`, patch)).status, 401);
    const wrong = `Basic ${Buffer.from('pgwarden:guess').toString('base64')}`;
    assert.equal((await fetch(`${api}/config`, { ...patch, headers: { authorization: wrong } })).status, 401);
    const credentials = state.restapiAuthentication!;
    const right = `Basic ${Buffer.from(`${credentials.username}:${credentials.password}`).toString('base64')}`;
    assert.equal((await fetch(`${api}/config`, { ...patch, headers: { authorization: right } })).status, 200);
    // Reads stay open (health checks, load balancers).
    assert.equal((await fetch(`${api}/patroni`)).status, 200);
    const config = join(dir, 'node1', 'pgwarden.yml');
    const paused = await run(process.execPath, [CLI, '-c', config, 'pause']);
    assert.equal(paused.code, 0, `pgwarden pause with the node config: ${paused.stderr}`);
    const resumed = await run(process.execPath, [CLI, '-c', config, 'resume']);
    assert.equal(resumed.code, 0, `pgwarden resume with the node config: ${resumed.stderr}`);
  });

  it("etcd refuses writes without the cluster's client certificate and password", async () => {
    const client = state.etcdClient!;
    assert.equal(client.protocol, 'https');
    const endpoints = `--endpoints=${state.etcdEndpoints.join(',')}`;
    const key = `${state.namespace}/${state.scope}/leader`;
    const asOther = await asNobody('etcdctl', [endpoints, '--dial-timeout=3s', '--command-timeout=5s', 'put', key, 'intruder']);
    assert.notEqual(asOther.code, 0, `etcdctl put as nobody: ${asOther.stdout}`);
    // Even root, with the CA but without a client certificate: refused by the TLS handshake.
    const withoutCertificate = await run('etcdctl', [
      endpoints,
      `--cacert=${client.cacert!}`,
      '--dial-timeout=3s',
      '--command-timeout=5s',
      'put',
      key,
      'intruder',
    ]);
    assert.notEqual(withoutCertificate.code, 0, `etcdctl put without a client certificate: ${withoutCertificate.stdout}`);
    // With the certificate but no user: etcd's authentication refuses it.
    const tls = [`--cacert=${client.cacert!}`, `--cert=${client.cert!}`, `--key=${client.key!}`];
    const withoutUser = await run('etcdctl', [endpoints, ...tls, '--dial-timeout=3s', '--command-timeout=5s', 'put', key, 'intruder']);
    assert.notEqual(withoutUser.code, 0, `etcdctl put without a user: ${withoutUser.stdout}`);
    // The cluster's own user reads its keys: the refusals above are about credentials, not a broken etcd.
    const own = await run('etcdctl', [
      endpoints,
      ...tls,
      `--user=${client.username!}:${client.password!}`,
      '--dial-timeout=3s',
      'get',
      '--prefix',
      '--keys-only',
      `${state.namespace}/${state.scope}/`,
    ]);
    assert.equal(own.code, 0, own.stderr);
    assert.match(own.stdout, /\/members\//);
  });
});
