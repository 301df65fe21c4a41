// System test of a cluster whose etcd requires TLS client certificates and authentication (LocalCluster etcdTls and
// etcdAuth): agents, the proxy and the CLI connect with etcd3.protocol/cacert/cert/key/username/password; bootstrap,
// a switchover and a failover work; when etcd refuses the agents' user, the primary demotes and says why once.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { parse } from 'yaml';
import { etcdctlArgs } from '../../src/local/etcd-cluster.js';
import type { LocalCluster } from '../../src/local/local-cluster.js';
import { runCommand } from '../../src/util/run-command.js';
import { waitUntil } from '../../src/util/wait-until.js';
import { assertStays } from '../kit/assert-stays.js';
import { runCli, sql, waitHealthy, writableAmong } from '../kit/cluster-kit.js';
import { FAST_TIMING, startTestCluster, teardownCluster } from '../kit/fixtures.js';

describe('a cluster on etcd with TLS client certificates and authentication', { timeout: 600_000 }, () => {
  let cluster: LocalCluster | undefined;
  const running = (): LocalCluster => cluster ?? assert.fail('the cluster did not start');
  const names = ['node1', 'node2', 'node3'];

  before(async () => {
    cluster = await startTestCluster('etcdtls', { etcdTls: true, etcdAuth: true, etcdMembers: 1, proxies: 1 });
  });

  after(() => teardownCluster(cluster));

  it('bootstraps a leader and two streaming replicas through the TLS, authenticated client', async () => {
    const cluster = running();
    const { leader } = await waitHealthy(cluster, 120_000);
    await sql(cluster, leader, 'CREATE TABLE tls_rows (id int primary key)');
    const etcd3 = (parse(readFileSync(cluster.node('node1').configPath, 'utf8')) as { etcd3: Record<string, string> }).etcd3;
    assert.equal(etcd3.protocol, 'https');
    assert.deepEqual(
      Object.keys(etcd3).sort(),
      ['cacert', 'cert', 'hosts', 'key', 'password', 'protocol', 'username'],
      'the node config carries every etcd3 key',
    );
    assert.match(cluster.etcd.endpoints[0]!, /^https:\/\//);
  });

  it('routes the proxy (its own TLS client) to the primary', async () => {
    const cluster = running();
    const proxy = cluster.proxies[0]!;
    const isRouted = async (): Promise<boolean> => {
      const client = new pg.Client({
        host: '127.0.0.1',
        port: proxy.primaryPort,
        user: 'postgres',
        password: cluster.superuserPassword,
        database: 'postgres',
        connectionTimeoutMillis: 2000,
      });
      client.on('error', () => undefined);
      try {
        await client.connect();
        return (await client.query<{ standby: boolean }>('SELECT pg_is_in_recovery() AS standby')).rows[0]?.standby === false;
      } catch {
        return false;
      } finally {
        await client.end().catch(() => undefined);
      }
    };
    await waitUntil(isRouted, { timeoutMs: 30_000, intervalMs: 200, describe: 'the proxy to route to the writable primary' });
  });

  it('switches over with the CLI, which reads etcd with the node config', async () => {
    const cluster = running();
    const { leader, replicas } = await waitHealthy(cluster, 60_000);
    const candidate = replicas[0]!;
    const result = await runCli(['-c', cluster.node(leader).configPath, 'switchover', '--candidate', candidate, '--force']);
    assert.equal(result.code, 0, result.stderr);
    const healthy = await waitHealthy(cluster, 60_000);
    assert.equal(healthy.leader, candidate);
    const listed = await runCli(['-c', cluster.node(leader).configPath, 'list']);
    assert.equal(listed.code, 0, listed.stderr);
    assert.match(listed.stdout, new RegExp(`${candidate}.*Leader`));
  });

  it('fails over when the leader is killed', async () => {
    const cluster = running();
    const { leader, replicas } = await waitHealthy(cluster, 60_000);
    const postmaster = await cluster.postmasterPid(leader);
    cluster.killAgent(leader, 'SIGKILL');
    if (postmaster !== undefined) process.kill(postmaster, 'SIGKILL');
    const newLeader = await waitUntil(() => writableAmong(cluster, replicas), {
      timeoutMs: 60_000,
      intervalMs: 200,
      describe: `a new writable primary among ${replicas.join(', ')}`,
    });
    await sql(cluster, newLeader, 'INSERT INTO tls_rows VALUES (1)');
    cluster.startAgent(leader);
    const healthy = await waitHealthy(cluster, 90_000);
    assert.equal(healthy.leader, newLeader);
  });

  it('demotes the primary when etcd refuses the agents their permission, logs why once, and recovers when granted again', async () => {
    const cluster = running();
    const { leader } = await waitHealthy(cluster, 60_000);
    const etcdctl = (...args: string[]): Promise<string> =>
      runCommand('etcdctl', [...etcdctlArgs(cluster.etcd), '--user', `root:${cluster.etcdRootPassword!}`, ...args]);
    const linesBefore = new Map(names.map((name) => [name, readFileSync(cluster.node(name).logFile, 'utf8').split('\n').length - 1]));
    const revokedAtMs = performance.now();
    await etcdctl('user', 'revoke-role', 'pgwarden', 'pgwarden-role');
    try {
      await waitUntil(async () => (await writableAmong(cluster, names)) === undefined, {
        timeoutMs: FAST_TIMING.ttl * 1000 + 15_000,
        intervalMs: 200,
        describe: `${leader} to demote once etcd refuses its user`,
      });
      await assertStays(async () => (await writableAmong(cluster, names)) === undefined, {
        forMs: FAST_TIMING.ttl * 1000,
        describe: 'no member is writable while none can use etcd',
      });
    } finally {
      await etcdctl('user', 'grant-role', 'pgwarden', 'pgwarden-role');
    }
    const outageMs = performance.now() - revokedAtMs;
    for (const name of names) {
      const log = readFileSync(cluster.node(name).logFile, 'utf8');
      const lines = log.split('\n').slice(linesBefore.get(name));
      // The agent reports the DCS as unusable once per outage, with etcd's refusal as the reason.
      const reports = lines.filter((line) => line.includes('"msg":"DCS is not accessible"'));
      assert.equal(reports.length, 1, `${name} reports the outage once:\n${reports.join('\n')}`);
      assert.match(
        reports[0]!,
        /etcd https:\/\/127\.0\.0\.1:\d+: user 'pgwarden' may not \/v3\/kv\/range \/service\/etcdtls\/ \(etcdserver: permission denied\)/,
      );
      // Failed writes (renewal, heartbeat) say why too, but a bounded number of times: no retry loop against etcd.
      const refusals = lines.filter((line) => line.includes("user 'pgwarden' may not"));
      assert.ok(refusals.length <= 3 * (outageMs / 1000) + 5, `${name}: ${refusals.length} refusal lines in ${Math.round(outageMs)} ms`);
      assert.doesNotMatch(log, /\n\s+at /, 'no stack traces in the agent log');
      assert.ok(!log.includes(cluster.etcd.client.password!), 'the etcd password is never logged');
    }
    await waitHealthy(cluster, 90_000);
  });
});
