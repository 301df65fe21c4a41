// System test of PostgreSQL over TLS on real etcd and PostgreSQL 15: pg_hba takes TCP only as hostssl with a client
// certificate, and both users connect with sslmode verify-full. Bootstrap, streaming (walsenders over TLS), a SIGKILL
// failover with the old primary rewound over TLS, and a clone that fails on a wrong sslrootcert with a clear log line.
import assert from 'node:assert/strict';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { chmod, chown, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { parse, stringify } from 'yaml';
import type { LocalCluster } from '../../src/local/local-cluster.js';
import { createCertificateAuthority, shareCaCertificate } from '../../src/local/tls-certs.js';
import { runCommand } from '../../src/util/run-command.js';
import type { PgSecurity } from '../../src/postgres/conninfo.js';
import { connectTo, type SqlTarget } from '../../src/postgres/sql-session.js';
import { waitUntil } from '../../src/util/wait-until.js';
import { agentLogTail, runCliOk, sql, waitHealthy, writableAmong } from '../kit/cluster-kit.js';
import { startTestCluster, teardownCluster } from '../kit/fixtures.js';

/** The walsenders of `leader` with their TLS state and the client certificate they were given. */
async function walsenders(
  cluster: LocalCluster,
  leader: string,
): Promise<{ application_name: string; ssl: boolean; client_dn: string | null }[]> {
  return sql(
    cluster,
    leader,
    'SELECT r.application_name, s.ssl, s.client_dn FROM pg_stat_replication r JOIN pg_stat_ssl s USING (pid) ORDER BY 1',
  );
}

/** Waits until every replica streams from `leader` over TLS with the replication user's certificate. */
async function waitStreamingOverTls(cluster: LocalCluster, leader: string, replicas: readonly string[]): Promise<void> {
  let last: unknown;
  await waitUntil(
    async () => {
      const rows = await walsenders(cluster, leader);
      last = rows;
      return (
        rows.length === replicas.length &&
        rows.every((row) => row.ssl && row.client_dn === '/CN=replicator') &&
        rows.map((row) => row.application_name).join() === [...replicas].sort().join()
      );
    },
    { timeoutMs: 30_000, intervalMs: 250, describe: `${replicas.join(', ')} streaming from ${leader} over TLS`, lastState: () => last },
  );
  for (const replica of replicas) {
    const [receiver] = await sql<{ conninfo: string; status: string }>(
      cluster,
      replica,
      'SELECT conninfo, status FROM pg_stat_wal_receiver',
    );
    assert.equal(receiver?.status, 'streaming', replica);
    assert.match(receiver.conninfo, /sslmode=verify-full/, `${replica}'s WAL receiver verifies the server`);
    assert.match(receiver.conninfo, /sslrootcert=\S+ca\.pem/);
    assert.match(receiver.conninfo, /sslcert=\S+client-replicator\.pem/);
  }
}

/** Lines of an agent's log written after `offset` bytes. */
function logSince(cluster: LocalCluster, name: string, offset: number): string {
  return readFileSync(cluster.node(name).logFile).subarray(offset).toString('utf8');
}

type Users = Record<'superuser' | 'replication', Record<string, unknown>>;

async function editAuthentication(cluster: LocalCluster, name: string, edit: (users: Users) => void): Promise<void> {
  const path = cluster.node(name).configPath;
  const config = parse(await readFile(path, 'utf8')) as { postgresql: { authentication: Users } };
  edit(config.postgresql.authentication);
  await writeFile(path, stringify(config), { mode: 0o600 });
}

describe('PostgreSQL over TLS only (hostssl, clientcert=verify-full, sslmode verify-full)', { timeout: 600_000 }, () => {
  let cluster: LocalCluster | undefined;
  const running = (): LocalCluster => cluster ?? assert.fail('the cluster did not start');

  before(async () => {
    // log_connections: the postgresql.log shows who pg_rewind connected as.
    cluster = await startTestCluster('pgtls', { postgresTls: true, parameters: { log_connections: 'on' } });
    const { leader } = await waitHealthy(cluster, 90_000);
    await sql(cluster, leader, 'CREATE TABLE tls_rows (id int primary key, note text)');
  });

  after(() => teardownCluster(cluster));

  it('bootstraps, and the replicas stream over verified TLS with their client certificate', async () => {
    const cluster = running();
    const { leader, replicas } = await waitHealthy(cluster, 90_000);
    const tls = cluster.postgresTls ?? assert.fail('no certificates');
    const hba = readFileSync(join(cluster.node(leader).dataDir, 'pg_hba.conf'), 'utf8');
    assert.doesNotMatch(hba, /^host\s/m, 'no plain TCP line in pg_hba');
    assert.match(hba, /^hostssl replication replicator 127\.0\.0\.1\/32 scram-sha-256 clientcert=verify-full$/m);
    const [settings] = await sql<{ ssl: string; cert: string }>(
      cluster,
      leader,
      "SELECT current_setting('ssl') AS ssl, current_setting('ssl_cert_file') AS cert",
    );
    assert.deepEqual(settings, { ssl: 'on', cert: tls.servers.get(leader)?.certFile });
    for (const pair of [...tls.servers.values(), ...tls.clients.values()]) {
      const key = statSync(pair.keyFile);
      assert.equal(key.mode & 0o777, 0o600, `${pair.keyFile} is 0600`);
      assert.notEqual(key.uid, 0, `${pair.keyFile} belongs to postgres`);
    }
    assert.equal(statSync(join(cluster.node(leader).nodeDir, 'pgpass')).mode & 0o777, 0o600);
    await waitStreamingOverTls(cluster, leader, replicas);

    // The agents' own sessions (node-postgres): each replica's agent keeps one to the leader to see it go away; over
    // TCP it is TLS with the superuser's certificate, verified as verify-full. The leader's agent uses the socket.
    let sessions: unknown;
    await waitUntil(
      async () => {
        const rows = await sql<{ ssl: boolean; client_dn: string | null }>(
          cluster,
          leader,
          "SELECT s.ssl, s.client_dn FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) WHERE a.application_name = 'pgwarden' AND a.client_addr IS NOT NULL",
        );
        sessions = rows;
        return rows.length >= replicas.length && rows.every((row) => row.ssl && row.client_dn === '/CN=postgres');
      },
      { timeoutMs: 20_000, intervalMs: 250, describe: "the replicas' agents watching the leader over TLS", lastState: () => sessions },
    );

    // Without TLS the server turns the superuser away, password or not.
    const plain = new pg.Client({
      host: '127.0.0.1',
      port: cluster.node(leader).pgPort,
      user: 'postgres',
      password: cluster.superuserPassword,
      database: 'postgres',
      ssl: false,
      connectionTimeoutMillis: 2000,
    });
    plain.on('error', () => undefined);
    await assert.rejects(plain.connect(), /no pg_hba\.conf entry .* no encryption/);
    await plain.end().catch(() => undefined);

    await sql(cluster, leader, "INSERT INTO tls_rows VALUES (1, 'over TLS')");
    for (const replica of replicas)
      await waitUntil(async () => (await sql(cluster, replica, 'SELECT 1 FROM tls_rows WHERE id = 1')).length === 1, {
        timeoutMs: 15_000,
        intervalMs: 200,
        describe: `row 1 on ${replica}`,
      });

    // pgwarden query runs psql with the superuser's keys as libpq variables (PGSSLMODE, PGSSLCERT, ...).
    const { stdout } = await runCliOk([
      '-c',
      cluster.node(leader).configPath,
      'query',
      '-c',
      'SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()',
    ]);
    assert.match(stdout, /^ssl\nt$/m);
  });

  it("the agent's session factory honours sslmode and channel_binding against the hostssl-only server", async () => {
    const cluster = running();
    const { leader } = await waitHealthy(cluster, 60_000);
    const tls = cluster.postgresTls ?? assert.fail('no certificates');
    const superuser = tls.clients.get('postgres') ?? assert.fail('no superuser certificate');
    const target = (security: PgSecurity, host = '127.0.0.1'): SqlTarget => ({
      host,
      port: cluster.node(leader).pgPort,
      user: 'postgres',
      password: cluster.superuserPassword,
      database: 'postgres',
      connectTimeoutMs: 3000,
      queryTimeoutMs: 3000,
      member: 'test',
      security,
    });
    const certificate = { sslcert: superuser.certFile, sslkey: superuser.keyFile };
    const isTls = async (security: PgSecurity, host?: string): Promise<boolean> => {
      const client = await connectTo(target(security, host));
      try {
        const result = await client.query<{ ssl: boolean }>('SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()');
        return result.rows[0]?.ssl === true;
      } finally {
        await client.end();
      }
    };
    assert.equal(await isTls({ sslmode: 'verify-full', sslrootcert: tls.ca.certFile, ...certificate, channel_binding: 'require' }), true);
    assert.equal(await isTls({ sslmode: 'verify-full', sslrootcert: tls.ca.certFile, ...certificate }, 'localhost'), true, 'SAN DNS');
    assert.equal(await isTls({ sslmode: 'verify-ca', sslrootcert: tls.ca.certFile, ...certificate }), true);
    assert.equal(await isTls({ sslmode: 'require', ...certificate }), true, 'require without a root certificate: no verification');
    // prefer (the default) starts with TLS; allow starts plain, is turned away by pg_hba, and retries with TLS.
    assert.equal(await isTls({ ...certificate }), true);
    assert.equal(await isTls({ sslmode: 'allow', ...certificate }), true);
    await assert.rejects(connectTo(target({ sslmode: 'disable', ...certificate })), /sslmode disable.*no encryption/);
    const wrongCa = await createCertificateAuthority(join(cluster.dir, 'tls-other'), 'other-ca');
    await shareCaCertificate(wrongCa);
    await assert.rejects(
      connectTo(target({ sslmode: 'verify-ca', sslrootcert: wrongCa.cert, ...certificate })),
      (error: Error) => /sslmode verify-ca/.test(error.message) && /certificate/.test(error.message),
    );
    await assert.rejects(
      connectTo(target({ sslmode: 'verify-full', sslrootcert: join(cluster.dir, 'missing.crt') })),
      /needs a root certificate/,
    );
    // No client certificate: clientcert=verify-full turns the login away even with the right password.
    await assert.rejects(
      connectTo(target({ sslmode: 'verify-full', sslrootcert: tls.ca.certFile, sslcert: join(cluster.dir, 'none.crt') })),
      /certificate/,
    );
  });

  it("fails over on SIGKILL; the old primary is rewound over TLS (the rewind user's certificate) and streams again", async () => {
    const cluster = running();
    const { leader: oldLeader, replicas: survivors } = await waitHealthy(cluster, 60_000);
    const postmaster = await cluster.postmasterPid(oldLeader);
    cluster.killAgent(oldLeader, 'SIGKILL');
    if (postmaster !== undefined) process.kill(postmaster, 'SIGKILL');
    const newLeader = await waitUntil(() => writableAmong(cluster, survivors), {
      timeoutMs: 60_000,
      intervalMs: 200,
      describe: `a new writable primary among ${survivors.join(', ')}`,
    });
    await sql(cluster, newLeader, "INSERT INTO tls_rows VALUES (2, 'after failover')");

    // The killed postmaster's parent (its agent) is dead too: until PID 1 reaps it, its PID in postmaster.pid still
    // "runs", and PostgreSQL (the crash recovery before pg_rewind) refuses the data dir. Not what this test is about.
    if (postmaster !== undefined)
      await waitUntil(() => !existsSync(`/proc/${postmaster}`), {
        timeoutMs: 60_000,
        intervalMs: 200,
        describe: `the killed postmaster ${postmaster} of ${oldLeader} to be reaped`,
      });
    const logOffset = statSync(cluster.node(oldLeader).logFile).size;
    cluster.startAgent(oldLeader);
    const healthy = await waitHealthy(cluster, 90_000);
    assert.equal(healthy.leader, newLeader);
    await waitUntil(async () => (await sql(cluster, oldLeader, 'SELECT 1 FROM tls_rows WHERE id = 2')).length === 1, {
      timeoutMs: 30_000,
      intervalMs: 200,
      describe: `the post-failover row on the rejoined ${oldLeader}`,
    });
    const rejoin = logSince(cluster, oldLeader, logOffset);
    assert.match(rejoin, /pg_rewind finished/, 'the old primary was rewound');
    // As postgresql.authentication.rewind (created at bootstrap with what pg_rewind needs), over TLS.
    const sourceLog = readFileSync(join(cluster.node(newLeader).nodeDir, 'postgresql.log'), 'utf8');
    assert.match(sourceLog, /connection authorized: user=rewind_user database=postgres SSL enabled/);
    assert.doesNotMatch(rejoin, /pg_rewind.*failed|reinitializ/i, 'pg_rewind connected over TLS: no fallback to a re-clone');
    await waitStreamingOverTls(cluster, newLeader, healthy.replicas);
  });

  it('a replication sslrootcert of another CA: the clone fails with the TLS error and a hint in the agent log', async () => {
    const cluster = running();
    const { leader, replicas } = await waitHealthy(cluster, 60_000);
    const victim = replicas[0]!;
    const wrongCa = await createCertificateAuthority(join(cluster.dir, 'tls-wrong'), 'wrong-ca');
    await shareCaCertificate(wrongCa);
    const rightCa = cluster.postgresTls?.ca.certFile ?? assert.fail('no certificates');
    await cluster.stopAgent(victim);
    await rm(cluster.node(victim).dataDir, { recursive: true, force: true });
    await editAuthentication(cluster, victim, (users) => (users.replication.sslrootcert = wrongCa.cert));
    const logOffset = statSync(cluster.node(victim).logFile).size;
    cluster.startAgent(victim);
    const failure = await waitUntil(
      () => {
        const line = logSince(cluster, victim, logOffset)
          .split('\n')
          .find((text) => /pg_basebackup/.test(text) && /certificate verify failed/.test(text));
        return line;
      },
      {
        timeoutMs: 60_000,
        intervalMs: 500,
        describe: `${victim}'s clone failing on the server certificate`,
        lastState: () => agentLogTail(cluster, victim, /./, 5),
      },
    );
    assert.match(failure, /sslmode=verify-full/, 'the command line in the error shows the TLS settings');
    assert.match(failure, /check the TLS keys of the user in postgresql\.authentication/, 'the hint names the keys to fix');
    assert.doesNotMatch(failure, new RegExp(cluster.superuserPassword), 'no password in the log');
    assert.equal((await cluster.view()).leader?.name, leader, 'the leader is untouched');

    // With the right CA the member clones and streams again.
    await cluster.stopAgent(victim);
    await editAuthentication(cluster, victim, (users) => (users.replication.sslrootcert = rightCa));
    cluster.startAgent(victim);
    const healthy = await waitHealthy(cluster, 90_000);
    await waitStreamingOverTls(cluster, healthy.leader, healthy.replicas);
  });
  it('encrypted client keys: sslpassword reaches pg_basebackup (service file), the WAL receiver and the agent', async () => {
    const cluster = running();
    const { replicas } = await waitHealthy(cluster, 60_000);
    const victim = replicas[replicas.length - 1]!;
    const tls = cluster.postgresTls ?? assert.fail('no certificates');
    const sslpassword = "se cr'et\\pass";
    const encrypted = async (user: string): Promise<string> => {
      const pair = tls.clients.get(user) ?? assert.fail(`no ${user} certificate`);
      const keyFile = join(tls.dir, `client-${user}-encrypted.key`);
      await runCommand('openssl', ['pkey', '-in', pair.keyFile, '-aes256', '-passout', `pass:${sslpassword}`, '-out', keyFile]);
      const owner = statSync(pair.keyFile);
      await chown(keyFile, owner.uid, owner.gid);
      await chmod(keyFile, 0o600);
      return keyFile;
    };
    const replicationKey = await encrypted('replicator');
    const superuserKey = await encrypted('postgres');
    await cluster.stopAgent(victim);
    await rm(cluster.node(victim).dataDir, { recursive: true, force: true });
    await editAuthentication(cluster, victim, (users) => {
      users.replication.sslkey = replicationKey;
      users.replication.sslpassword = sslpassword;
      users.superuser.sslkey = superuserKey;
      users.superuser.sslpassword = sslpassword;
    });
    const logOffset = statSync(cluster.node(victim).logFile).size;
    cluster.startAgent(victim);
    const healthy = await waitHealthy(cluster, 90_000);
    await waitStreamingOverTls(cluster, healthy.leader, healthy.replicas);
    assert.ok(healthy.replicas.includes(victim));
    const log = logSince(cluster, victim, logOffset);
    assert.match(log, /task basebackup finished|task reinitialize finished|started postmaster/);
    assert.ok(!log.includes('se cr'), 'the sslpassword is not in the agent log');
    const serviceFile = `${join(cluster.node(victim).nodeDir, 'pgpass')}.service.conf`;
    const service = statSync(serviceFile);
    assert.equal(service.mode & 0o777, 0o600, 'the service file is 0600');
    assert.notEqual(service.uid, 0, 'and belongs to postgres');
    assert.equal(readFileSync(serviceFile, 'utf8').match(/^sslpassword=(.*)$/m)?.[1], sslpassword);
    // The victim's agent watches the leader with its encrypted superuser key.
    let sessions: unknown;
    await waitUntil(
      async () => {
        const rows = await sql<{ ssl: boolean }>(
          cluster,
          healthy.leader,
          "SELECT s.ssl FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) WHERE a.application_name = 'pgwarden' AND a.client_addr IS NOT NULL",
        );
        sessions = rows;
        return rows.length >= healthy.replicas.length && rows.every((row) => row.ssl);
      },
      { timeoutMs: 20_000, intervalMs: 250, describe: 'every replica agent watching the leader over TLS', lastState: () => sessions },
    );
  });
});
