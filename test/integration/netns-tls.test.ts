// A cluster across hosts rather than on loopback: each etcd member and each node in its own network namespace with
// its own address, etcd over TLS with client certificates, PostgreSQL replication over TLS (hostssl, verify-full), and
// a proxy. Bootstrap, a SIGKILL failover (agent and postmaster of the leader) and a switchover through the CLI, with
// writes through the proxy (TLS, verify-full) checked to land on the new primary's address after each.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { parse } from 'yaml';
import type { LocalCluster } from '../../src/local/local-cluster.js';
import { isAlive } from '../../src/local/process.js';
import { waitUntil } from '../../src/util/wait-until.js';
import { runCliOk, sql, waitHealthy, writableAmong } from '../kit/cluster-kit.js';
import { startTestCluster, teardownCluster } from '../kit/fixtures.js';

/** One write through the proxy's primary port, over TLS verified as the test's clients do (CA, client certificate). */
async function writeViaProxy(cluster: LocalCluster, id: number): Promise<{ address: string }> {
  const tls = cluster.postgresTls ?? assert.fail('a postgresTls cluster');
  const certificate = tls.clients.get('postgres') ?? assert.fail('a client certificate for postgres');
  const proxy = cluster.proxies[0] ?? assert.fail('a proxy');
  const client = new pg.Client({
    host: '127.0.0.1',
    port: proxy.primaryPort,
    user: 'postgres',
    password: cluster.superuserPassword,
    database: 'postgres',
    connectionTimeoutMillis: 10_000,
    query_timeout: 5000,
    // verify-full: the node certificates name 127.0.0.1 too, the address the client dialled.
    ssl: { ca: readFileSync(tls.ca.certFile), cert: readFileSync(certificate.certFile), key: readFileSync(certificate.keyFile) },
  });
  client.on('error', () => undefined);
  await client.connect();
  try {
    const result = await client.query<{ address: string; ssl: boolean }>(
      'INSERT INTO across_hosts VALUES ($1) RETURNING host(inet_server_addr()) AS address, (SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()) AS ssl',
      [id],
    );
    const row = result.rows[0] ?? assert.fail('a row');
    assert.equal(row.ssl, true, 'the session through the proxy is TLS end to end');
    return { address: row.address };
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** Retries a write through the proxy until it is acknowledged, and says which server address took it. */
async function writeLandsOn(cluster: LocalCluster, id: number, leader: string): Promise<void> {
  let last: unknown;
  const written = await waitUntil(
    async () => {
      try {
        return await writeViaProxy(cluster, id);
      } catch (error) {
        last = error instanceof Error ? error.message : error;
        return undefined;
      }
    },
    { timeoutMs: 60_000, intervalMs: 250, describe: `write ${id} through the proxy`, lastState: () => last },
  );
  assert.equal(written.address, cluster.node(leader).host, `write ${id} landed on ${leader}'s own address`);
}

/** Each replica streams from the leader over TLS, from its own namespace address, with the replication certificate. */
async function waitStreamingAcrossHosts(cluster: LocalCluster, leader: string, replicas: readonly string[]): Promise<void> {
  const expected = replicas.map((name) => `${name} ${cluster.node(name).host} true /CN=replicator`).sort();
  let last: string[] = [];
  await waitUntil(
    async () => {
      const rows = await sql<{ application_name: string; client_addr: string; ssl: boolean; client_dn: string }>(
        cluster,
        leader,
        'SELECT r.application_name, host(r.client_addr) AS client_addr, s.ssl, s.client_dn FROM pg_stat_replication r JOIN pg_stat_ssl s USING (pid)',
      );
      last = rows.map((row) => `${row.application_name} ${row.client_addr} ${row.ssl} ${row.client_dn}`).sort();
      return last.join('\n') === expected.join('\n');
    },
    { timeoutMs: 60_000, intervalMs: 250, describe: `${replicas.join(', ')} streaming from ${leader} over TLS`, lastState: () => last },
  );
}

describe(
  'across hosts: a namespace per etcd member and node, etcd and replication over TLS, a proxy',
  { timeout: 300_000, skip: process.getuid?.() === 0 ? false : 'network namespaces need root' },
  () => {
    let cluster: LocalCluster | undefined;
    const running = (): LocalCluster => cluster ?? assert.fail('the cluster did not start');

    before(async () => {
      cluster = await startTestCluster('netnstls', { network: 'netns', etcdTls: true, postgresTls: true, proxies: 1 });
    });

    after(() => teardownCluster(cluster));

    it('bootstraps with every member on its own address, etcd over https with a client certificate, replicas over TLS', async () => {
      const cluster = running();
      const { leader, replicas } = await waitHealthy(cluster, 120_000);
      const hosts = cluster.nodes.map((node) => node.host);
      assert.equal(new Set(hosts).size, hosts.length, `one address per node: ${hosts.join(' ')}`);
      assert.ok(
        hosts.every((host) => /^10\./.test(host)),
        `namespace addresses, not loopback: ${hosts.join(' ')}`,
      );
      const etcdHosts = cluster.etcd.endpoints.map((endpoint) => new URL(endpoint));
      assert.ok(
        etcdHosts.every((url) => url.protocol === 'https:' && /^10\./.test(url.hostname) && !hosts.includes(url.hostname)),
        `etcd members on https at addresses of their own: ${cluster.etcd.endpoints.join(' ')}`,
      );
      for (const node of cluster.nodes) {
        const config = parse(readFileSync(node.configPath, 'utf8')) as { etcd3: Record<string, unknown> };
        assert.equal(config.etcd3.protocol, 'https', node.name);
        for (const key of ['cacert', 'cert', 'key']) assert.equal(typeof config.etcd3[key], 'string', `${node.name} etcd3.${key}`);
      }
      const view = await cluster.view();
      for (const member of view.members)
        assert.match(member.conn_url, new RegExp(`@?${cluster.node(member.name).host.replaceAll('.', '\\.')}:`));
      await waitStreamingAcrossHosts(cluster, leader, replicas);
      await sql(cluster, leader, 'CREATE TABLE across_hosts (id int PRIMARY KEY)');
      await writeLandsOn(cluster, 1, leader);
    });

    it('fails over after SIGKILL of the leader agent and postmaster; writes through the proxy reach the new primary', async () => {
      const cluster = running();
      const { leader: old, replicas: survivors } = await waitHealthy(cluster, 60_000);
      cluster.killAgent(old, 'SIGKILL');
      const postmaster = await cluster.killPostmaster(old, 'SIGKILL');
      await waitUntil(() => postmaster === undefined || !isAlive(postmaster), {
        timeoutMs: 5000,
        intervalMs: 20,
        describe: `the killed postmaster of ${old} to exit`,
      });
      const promoted = await waitUntil(() => writableAmong(cluster, survivors), {
        timeoutMs: 60_000,
        intervalMs: 200,
        describe: `a new writable primary among ${survivors.join(', ')}`,
      });
      await writeLandsOn(cluster, 2, promoted);
      // The old primary comes back as a replica of the new one, across the namespaces and over TLS (rewind or clone).
      cluster.startAgent(old);
      const healthy = await waitHealthy(cluster, 90_000);
      assert.equal(healthy.leader, promoted);
      await waitStreamingAcrossHosts(cluster, promoted, healthy.replicas);
      const rows = await waitUntil(
        async () => {
          const found = await sql<{ id: number }>(cluster, old, 'SELECT id FROM across_hosts ORDER BY id').catch(() => []);
          return found.length === 2 ? found : undefined;
        },
        { timeoutMs: 20_000, intervalMs: 250, describe: `both rows replicated to ${old}` },
      );
      assert.deepEqual(
        rows.map((row) => row.id),
        [1, 2],
      );
    });

    it('switches over through the CLI (etcd over TLS from outside the namespaces); writes through the proxy follow', async () => {
      const cluster = running();
      const { leader, replicas } = await waitHealthy(cluster, 60_000);
      const candidate = replicas[0] ?? assert.fail('a replica');
      await runCliOk(['-c', cluster.node(leader).configPath, 'switchover', '--leader', leader, '--candidate', candidate, '--force']);
      const healthy = await waitUntil(
        async () => {
          const state = await waitHealthy(cluster, 60_000);
          return state.leader === candidate ? state : undefined;
        },
        { timeoutMs: 90_000, intervalMs: 500, describe: `${candidate} leading a healthy cluster` },
      );
      await writeLandsOn(cluster, 3, candidate);
      await waitStreamingAcrossHosts(cluster, candidate, healthy.replicas);
      const listed = await runCliOk(['-c', cluster.node(candidate).configPath, 'list']);
      assert.match(listed.stdout, new RegExp(`${candidate}.*(Leader|leader)`));
    });
  },
);
