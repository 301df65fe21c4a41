// The split listener (proxy.split_listen) on a real cluster: SCRAM logins against an auth file, writes and
// not-provably-read-only statements on the primary, plain reads on replicas, read-your-writes while one replica's
// replay is paused, and wrong passwords refused with SQLSTATE 28P01.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import type { LocalCluster, LocalProxy } from '../../src/local/local-cluster.js';
import { waitUntil } from '../../src/util/wait-until.js';
import { sql, waitHealthy } from '../kit/cluster-kit.js';
import { startTestCluster, teardownCluster } from '../kit/fixtures.js';
import { checkStaleReads, toggleApplyDelay } from '../kit/stale-reads.js';
import { createCertificateAuthority } from '../../src/local/tls-certs.js';

const APP_PASSWORD = 'app-secret-Ω';

describe('pgwarden proxy split listener on a real cluster', { timeout: 600_000 }, () => {
  let started: LocalCluster | undefined;
  let cluster: LocalCluster;
  let proxy: LocalProxy;
  let leader: string;
  let primaryPort: number;
  let replicaPorts: Set<number>;

  const client = async (user = 'postgres', password = cluster.superuserPassword): Promise<pg.Client> => {
    const connection = new pg.Client({
      host: '127.0.0.1',
      port: proxy.splitPort!,
      user,
      password,
      database: 'postgres',
      connectionTimeoutMillis: 20_000,
    });
    connection.on('error', () => undefined);
    await connection.connect();
    return connection;
  };
  const portOf = async (connection: pg.Client, text: string, params: unknown[] = []): Promise<number> =>
    Number(((await connection.query(text, params)).rows[0] as { port: number }).port);

  before(async () => {
    started = await startTestCluster('splittest', { proxies: 0 });
    cluster = started;
    ({ leader } = await waitHealthy(cluster, 120_000));
    primaryPort = cluster.node(leader).pgPort;
    replicaPorts = new Set(cluster.nodes.filter((node) => node.name !== leader).map((node) => node.pgPort));
    await sql(cluster, leader, 'CREATE TABLE split_items (id int primary key, note text)');
    await sql(cluster, leader, 'CREATE SEQUENCE split_seq');
    await sql(cluster, leader, `CREATE ROLE app LOGIN PASSWORD '${APP_PASSWORD}'`);
    await sql(cluster, leader, 'GRANT ALL ON split_items, split_seq TO app');
    // postgres: the SCRAM secret PostgreSQL stores (the proxy logs in to servers with the key the client proves);
    // app: a plain password (used towards both sides).
    const [secret] = await sql<{ rolpassword: string }>(cluster, leader, "SELECT rolpassword FROM pg_authid WHERE rolname = 'postgres'");
    const authFile = join(cluster.dir, 'userlist.txt');
    await writeFile(authFile, `; users of the split listener\n"postgres" "${secret!.rolpassword}"\n"app" "${APP_PASSWORD}"\n`, {
      mode: 0o600,
    });
    proxy = await cluster.startProxy({}, { authFile, settings: { pool_size: 4, query_wait_timeout: 20 } });
    // Both replicas streaming and read by the proxy's monitor before routing is judged.
    await waitUntil(
      async () => {
        const status = (await (await fetch(`http://127.0.0.1:${proxy.apiPort}/status`)).json()) as {
          replicas: { members?: string[]; is_fallback?: boolean };
        };
        return status.replicas.members?.length === 2 && status.replicas.is_fallback === false;
      },
      { timeoutMs: 60_000, describe: 'the proxy to route reads to both replicas' },
    );
  });

  after(() => teardownCluster(started));

  it('logs a client in with SCRAM; a read-only SELECT goes to a replica, writes to the primary', async () => {
    const connection = await client();
    try {
      const readPort = await portOf(connection, 'SELECT inet_server_port() AS port');
      assert.ok(replicaPorts.has(readPort), `a read-only SELECT went to port ${readPort}, not a replica (${[...replicaPorts].join(', ')})`);
      assert.equal(await portOf(connection, "INSERT INTO split_items VALUES (1, 'one') RETURNING inet_server_port() AS port"), primaryPort);
    } finally {
      await connection.end();
    }
  });

  it('routes extended-protocol (parameterised) statements the same way', async () => {
    const connection = await client();
    try {
      const readPort = await portOf(connection, 'SELECT inet_server_port() AS port WHERE $1::int = 1', [1]);
      assert.ok(replicaPorts.has(readPort), `a parameterised read-only SELECT went to port ${readPort}`);
      assert.equal(
        await portOf(connection, 'INSERT INTO split_items VALUES ($1, $2) RETURNING inet_server_port() AS port', [6, 'six']),
        primaryPort,
      );
      assert.equal(await portOf(connection, 'SELECT nextval($1::regclass), inet_server_port() AS port', ['split_seq']), primaryPort);
      // A named prepared statement pins the session to its primary connection.
      const named = { name: 'port_of', text: 'SELECT inet_server_port() AS port WHERE $1::int = 1', values: [1] };
      assert.equal(Number(((await connection.query(named)).rows[0] as { port: number }).port), primaryPort);
      assert.equal(Number(((await connection.query(named)).rows[0] as { port: number }).port), primaryPort);
    } finally {
      await connection.end();
    }
  });

  it('sends nextval(), SELECT ... FOR UPDATE and a writable CTE to the primary', async () => {
    const connection = await client();
    try {
      assert.equal(await portOf(connection, "SELECT nextval('split_seq'), inet_server_port() AS port"), primaryPort);
      assert.equal(await portOf(connection, 'SELECT inet_server_port() AS port FROM split_items WHERE id = 1 FOR UPDATE'), primaryPort);
      assert.equal(
        await portOf(connection, 'SELECT inet_server_port() AS port FROM split_items WHERE id = 1 FOR NO KEY UPDATE'),
        primaryPort,
      );
      assert.equal(
        await portOf(
          connection,
          "WITH added AS (INSERT INTO split_items VALUES (2, 'two') RETURNING id) SELECT inet_server_port() AS port FROM added",
        ),
        primaryPort,
      );
    } finally {
      await connection.end();
    }
  });

  it('sends BEGIN READ ONLY transactions to a replica and other explicit transactions to the primary', async () => {
    const connection = await client();
    try {
      await connection.query('BEGIN READ ONLY');
      const readOnlyPort = await portOf(connection, 'SELECT inet_server_port() AS port');
      assert.equal(await portOf(connection, 'SELECT inet_server_port() AS port'), readOnlyPort, 'a transaction stays where it began');
      await connection.query('COMMIT');
      assert.ok(replicaPorts.has(readOnlyPort), `BEGIN READ ONLY ran on port ${readOnlyPort}`);
      await connection.query('BEGIN');
      assert.equal(await portOf(connection, 'SELECT inet_server_port() AS port'), primaryPort);
      await connection.query('COMMIT');
      // A multi-statement message with a write goes to the primary as a whole.
      const results = (await connection.query(
        "INSERT INTO split_items VALUES (3, 'three'); SELECT inet_server_port() AS port",
      )) as unknown as pg.QueryResult[];
      assert.equal(Number((results[1]!.rows[0] as { port: number }).port), primaryPort);
    } finally {
      await connection.end();
    }
  });

  /** Runs a psql script through the split listener statement by statement; its output lines (unaligned, tuples only). */
  const psql = (script: string, env: Record<string, string> = {}): string[] => {
    const result = spawnSync(
      '/usr/lib/postgresql/15/bin/psql',
      [
        '-h',
        '127.0.0.1',
        '-p',
        String(proxy.splitPort!),
        '-U',
        'postgres',
        '-d',
        'postgres',
        '-X',
        '-tA',
        '-v',
        'ON_ERROR_STOP=1',
        '-f',
        '-',
      ],
      { input: script, encoding: 'utf8', env: { ...process.env, PGPASSWORD: cluster.superuserPassword, ...env }, timeout: 30_000 },
    );
    assert.equal(result.status, 0, `psql failed: ${result.stderr}`);
    return result.stdout.split('\n').filter((line) => line !== '');
  };

  it('runs what other splitters got wrong on the primary, without read-only errors (psql, one session each)', async () => {
    await sql(
      cluster,
      leader,
      "CREATE FUNCTION split_bump() RETURNS int LANGUAGE sql AS $$ INSERT INTO split_items VALUES (4, 'bump') RETURNING 1 $$",
    );
    const cases: Record<string, string> = {
      // A read after the COPY may go to a replica that replayed it: the marker is a statement that never does.
      'COPY FROM STDIN':
        "COPY split_items (id, note) FROM STDIN;\n10\tcopied\n11\tcopied\n\\.\nSELECT nextval('split_seq'), inet_server_port();\n",
      'a volatile user function created after the proxy read pg_proc': 'SELECT split_bump(), inet_server_port();\n',
      'PREPARE / EXECUTE': 'PREPARE port_of AS SELECT inet_server_port();\nEXECUTE port_of;\n',
      'a cursor in a transaction': 'BEGIN;\nDECLARE c CURSOR FOR SELECT inet_server_port();\nFETCH c;\nCOMMIT;\n',
      'LISTEN then SELECT': 'LISTEN split_channel;\nSELECT inet_server_port();\n',
      'SET then SELECT': "SET work_mem = '8MB';\nSELECT inet_server_port();\n",
      'CREATE TEMP TABLE then SELECT from it': 'CREATE TEMP TABLE t AS SELECT 1 AS x;\nSELECT inet_server_port() FROM t;\n',
    };
    for (const [name, script] of Object.entries(cases)) {
      const lines = psql(script);
      const ports = lines.map((line) => line.split('|').pop()!).filter((field) => /^\d+$/.test(field));
      assert.equal(ports.length, 1, `${name}: ${lines.join(' / ')}`);
      assert.equal(Number(ports[0]), primaryPort, `${name}: ${lines.join(' / ')}`);
    }
    const [copied] = await sql<{ n: number }>(
      cluster,
      leader,
      "SELECT count(*)::int AS n FROM split_items WHERE note IN ('copied', 'bump')",
    );
    assert.equal(copied!.n, 3);
    // A plain read in a new psql session still goes to a replica.
    assert.ok(replicaPorts.has(Number(psql('SELECT inet_server_port();\n')[0])));
  });

  it("carries a client's startup parameters (application_name, options, client_encoding, DateStyle, TimeZone) to its reads and writes", async () => {
    const show =
      "SELECT concat_ws(',', current_setting('application_name'), current_setting('search_path'), current_setting('work_mem'), current_setting('client_encoding'), current_setting('DateStyle'), current_setting('TimeZone')), inet_server_port();\n";
    const script = `${show}INSERT INTO split_items VALUES (9100, 'params') ON CONFLICT DO NOTHING;\nBEGIN;\n${show}COMMIT;\n`;
    const env = (app: string): Record<string, string> => ({
      PGAPPNAME: app,
      PGOPTIONS: '-c search_path=split_ns,public -c work_mem=7MB',
      PGCLIENTENCODING: 'LATIN1',
      PGDATESTYLE: 'SQL, DMY',
      PGTZ: 'Asia/Tokyo',
    });
    // Two applications one after the other share pooled connections: each sees its own name.
    for (const app of ['split-app-a', 'split-app-b', 'split-app-a']) {
      const lines = psql(script, env(app)).filter((line) => line.includes('|'));
      assert.equal(lines.length, 2, lines.join(' / '));
      const [onReplica, onPrimary] = lines.map((line) => line.split('|'));
      assert.equal(onReplica![0], `${app},split_ns,public,7MB,LATIN1,SQL, DMY,Asia/Tokyo`);
      assert.ok(replicaPorts.has(Number(onReplica![1])), `the read ran on port ${onReplica![1]}`);
      assert.equal(onPrimary![0], onReplica![0], 'a transaction on the primary runs with the same settings');
      assert.equal(Number(onPrimary![1]), primaryPort);
    }
    // A client without those parameters is not given a connection opened with them.
    const [plain] = psql("SELECT current_setting('work_mem'), current_setting('TimeZone') <> 'Asia/Tokyo';\n");
    assert.notEqual(plain!.split('|')[0], '7MB');
    assert.equal(plain!.split('|')[1], 't');
  });

  it('closes a connection that sends garbage and goes on serving others', async () => {
    for (const garbage of [Buffer.from('GET / HTTP/1.1\r\n\r\n'), Buffer.from([0, 0, 0, 8, 0, 3, 0, 0]), Buffer.alloc(64, 0xff)]) {
      const closed = await new Promise<boolean>((resolve) => {
        const socket = connect({ host: '127.0.0.1', port: proxy.splitPort! }, () => socket.write(garbage));
        socket.on('error', () => resolve(true));
        socket.on('close', () => resolve(true));
        socket.setTimeout(10_000, () => {
          socket.destroy();
          resolve(false);
        });
        socket.resume();
      });
      assert.ok(closed, `the proxy did not close a connection that sent ${garbage.toString('hex').slice(0, 20)}`);
    }
    const connection = await client();
    await connection.query('SELECT 1');
    await connection.end();
  });

  it('logs in a user whose auth file entry is a plain password; a temporary table pins the session', async () => {
    const connection = await client('app', APP_PASSWORD);
    try {
      await connection.query('CREATE TEMP TABLE scratch (x int)');
      await connection.query('INSERT INTO scratch VALUES (1)');
      // Pinned to the same primary session: the temporary table is still there, and reads stay on the primary.
      assert.equal(await portOf(connection, 'SELECT inet_server_port() AS port FROM scratch'), primaryPort);
      assert.equal(await portOf(connection, 'SELECT inet_server_port() AS port'), primaryPort);
    } finally {
      await connection.end();
    }
  });

  it("passes a client's CancelRequest to the server its statement runs on", async () => {
    const connection = await client();
    try {
      const { processID, secretKey } = connection as unknown as { processID: number; secretKey: number };
      const sleeping = connection.query('SELECT pg_sleep(60)');
      const outcome = sleeping.then(
        () => undefined,
        (error: { code?: string }) => error.code,
      );
      await waitUntil(
        async () => (await sql(cluster, leader, "SELECT 1 FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(60)'")).length === 1,
        { timeoutMs: 10_000, describe: 'the sleeping statement to run on the primary' },
      );
      const request = Buffer.alloc(16);
      request.writeInt32BE(16, 0);
      request.writeInt32BE(80877102, 4);
      request.writeInt32BE(processID, 8);
      request.writeInt32BE(secretKey, 12);
      const socket = connect({ host: '127.0.0.1', port: proxy.splitPort! }, () => socket.end(request));
      socket.on('error', () => undefined);
      const startedAt = Date.now();
      assert.equal(await outcome, '57014', 'the statement was cancelled (query_canceled)');
      assert.ok(Date.now() - startedAt < 10_000);
      // The session goes on (on the primary or a replica past its floor: pg_sleep() is volatile, so it counted as a write).
      const port = await portOf(connection, 'SELECT inet_server_port() AS port');
      assert.ok(port === primaryPort || replicaPorts.has(port));
    } finally {
      await connection.end();
    }
  });

  it('refuses a wrong password and an unknown user with SQLSTATE 28P01', async () => {
    for (const [user, password] of [
      ['postgres', 'wrong'],
      ['nobody', 'whatever'],
    ] as const) {
      await assert.rejects(client(user, password), (error: { code?: string; message?: string }) => {
        assert.equal(error.code, '28P01', `${user}: ${error.message}`);
        return true;
      });
    }
  });

  it('reads its own writes 200 times in a row while one replica does not replay', async () => {
    const paused = cluster.nodes.find((node) => node.name !== leader)!.name;
    await sql(cluster, paused, 'SELECT pg_wal_replay_pause()');
    const connection = await client();
    const served = new Map<number, number>();
    try {
      let lsn: string | undefined;
      for (let index = 0; index < 200; index++) {
        const id = 1000 + index;
        await connection.query('INSERT INTO split_items VALUES ($1, $2)', [id, 'ryw']);
        lsn ??= String((await connection.query<{ last_commit_lsn: string }>('SHOW pgwarden.last_commit_lsn')).rows[0]!.last_commit_lsn);
        // Simple protocol on even rounds, extended (parameterised) on odd ones.
        const result =
          index % 2 === 0
            ? await connection.query(`SELECT count(*)::int AS n, inet_server_port() AS port FROM split_items WHERE id = ${id}`)
            : await connection.query('SELECT count(*)::int AS n, inet_server_port() AS port FROM split_items WHERE id = $1', [id]);
        const row = result.rows[0] as { n: number; port: number };
        served.set(row.port, (served.get(row.port) ?? 0) + 1);
        assert.equal(row.n, 1, `read ${index} of its own write missed it (served by port ${row.port})`);
      }
      assert.match(lsn ?? '', /^[0-9A-F]+\/[0-9A-F]+$/, 'SHOW pgwarden.last_commit_lsn answers an LSN after a write');
      assert.equal(served.get(cluster.node(paused).pgPort) ?? 0, 0, 'the replica that does not replay served no read');
      // The replaying replica is asked whether it replayed each write (causal_wait): it serves most of these reads.
      const live = cluster.nodes.find((node) => node.name !== leader && node.name !== paused)!.pgPort;
      assert.ok((served.get(live) ?? 0) > 100, `the replaying replica served ${served.get(live) ?? 0} of 200 reads`);
      // The pause was real: that replica misses the rows (what a read routed there would have seen).
      const [missing] = await sql<{ n: number }>(cluster, paused, "SELECT count(*)::int AS n FROM split_items WHERE note = 'ryw'");
      assert.ok(missing!.n < 200, `the paused replica has ${missing!.n} of the 200 rows`);
      // Once the replaying replica's position passes the floor, the session's reads go there again, still correct.
      await waitUntil(
        async () => {
          const row = (await connection.query("SELECT count(*)::int AS n, inet_server_port() AS port FROM split_items WHERE note = 'ryw'"))
            .rows[0] as { n: number; port: number };
          assert.equal(row.n, 200, `a read after the writes saw ${row.n} rows on port ${row.port}`);
          return row.port === live;
        },
        { timeoutMs: 10_000, intervalMs: 50, describe: 'a read of the session to go to the replaying replica once it passed the floor' },
      );
    } finally {
      await connection.end();
      await sql(cluster, paused, 'SELECT pg_wal_replay_resume()');
    }
    console.log(`read-your-writes: reads served by port ${JSON.stringify(Object.fromEntries(served))} (primary ${primaryPort})`);
  });

  it('carries a floor to another session with SET pgwarden.min_lsn (the paused replica serves it nothing)', async () => {
    const paused = cluster.nodes.find((node) => node.name !== leader)!.name;
    await sql(cluster, paused, 'SELECT pg_wal_replay_pause()');
    const [writer, reader] = [await client(), await client()];
    try {
      await assert.rejects(reader.query("SET pgwarden.min_lsn = 'nonsense'"), (error: { code?: string }) => error.code === '22023');
      for (let index = 0; index < 20; index++) {
        const id = 7000 + index;
        await writer.query('INSERT INTO split_items VALUES ($1, $2)', [id, 'carried']);
        const lsn = (await writer.query<{ last_commit_lsn: string }>('SHOW pgwarden.last_commit_lsn')).rows[0]!.last_commit_lsn;
        await reader.query(`SET pgwarden.min_lsn = '${lsn}'`);
        const row = (await reader.query('SELECT count(*)::int AS n, inet_server_port() AS port FROM split_items WHERE id = $1', [id]))
          .rows[0] as { n: number; port: number };
        assert.equal(row.n, 1, `round ${index}: the other session missed the write (port ${row.port})`);
        assert.notEqual(row.port, cluster.node(paused).pgPort);
      }
    } finally {
      await Promise.all([writer.end(), reader.end()]);
      await sql(cluster, paused, 'SELECT pg_wal_replay_resume()');
    }
  });

  it('insert-then-read: no stale read through the split listener while replay is delayed; the plain replica port shows them', async () => {
    // 400 rounds here (a delayed read waits causal_wait before the primary serves it); npm run bench:stale-reads runs 10,000.
    const rounds = 400;
    await sql(cluster, leader, 'CREATE TABLE stale_check (id int primary key)');
    const replicas = cluster.nodes.filter((node) => node.name !== leader).map((node) => node.name);
    const toggler = toggleApplyDelay(cluster, replicas, { delayMs: 300, periodMs: 1000 });
    const plain = (port: number): pg.Client =>
      new pg.Client({ host: '127.0.0.1', port, user: 'postgres', password: cluster.superuserPassword, database: 'postgres' });
    const split = await client();
    const [writer, reader] = [plain(proxy.primaryPort), plain(proxy.replicaPort)];
    try {
      await Promise.all([writer.connect(), reader.connect()]);
      const throughSplit = await checkStaleReads({ writer: split, reader: split, table: 'stale_check', firstId: 1, rounds });
      const throughPorts = await checkStaleReads({ writer, reader, table: 'stale_check', firstId: 100_000, rounds });
      const describe = (result: typeof throughSplit): string =>
        `${result.stale} stale, served by ${JSON.stringify(Object.fromEntries(result.servedBy))}`;
      console.log(
        `stale reads (${toggler.toggles()} delay toggles): split ${describe(throughSplit)}; primary+replica ports ${describe(throughPorts)}`,
      );
      assert.ok(toggler.toggles() >= 2, 'the apply delay was toggled during the run');
      assert.equal(throughSplit.stale, 0, `through the split listener: ${describe(throughSplit)}`);
      const onReplicas = [...throughSplit.servedBy].filter(([port]) => replicaPorts.has(port)).reduce((sum, [, n]) => sum + n, 0);
      assert.ok(onReplicas > 0, `replicas served none of the split listener's reads: ${describe(throughSplit)}`);
      assert.ok(throughPorts.stale > 0, `the replica port showed no stale read, so the check proves nothing: ${describe(throughPorts)}`);
    } finally {
      await toggler.stop();
      await Promise.all([split.end(), writer.end().catch(() => undefined), reader.end().catch(() => undefined)]);
    }
  });

  it('shows its clients, pooled connections and where transactions went on /metrics', async () => {
    const text = await (await fetch(`http://127.0.0.1:${proxy.apiPort}/metrics`)).text();
    const value = (pattern: RegExp): number => Number(pattern.exec(text)?.[1] ?? Number.NaN);
    assert.ok(value(/pgwarden_proxy_split_transactions_total\{target="replica"\} (\d+)/) > 0, text);
    assert.ok(value(/pgwarden_proxy_split_transactions_total\{target="primary"\} (\d+)/) > 200);
    assert.ok(value(/pgwarden_proxy_split_reads_below_floor_total (\d+)/) >= 0);
    assert.ok(value(/pgwarden_proxy_split_server_connections\{state="idle"\} (\d+)/) > 0);
    assert.ok(value(/pgwarden_proxy_split_clients (\d+)/) >= 0);
  });

  it('never writes a password or a SCRAM secret to its log', async () => {
    const [secret] = await sql<{ rolpassword: string }>(cluster, leader, "SELECT rolpassword FROM pg_authid WHERE rolname = 'postgres'");
    const log = await readFile(proxy.logFile, 'utf8');
    assert.ok(log.includes('password authentication failed'), 'the failed logins were logged');
    for (const text of [APP_PASSWORD, cluster.superuserPassword, secret!.rolpassword.split('$')[2]!]) assert.ok(!log.includes(text));
  });

  it('pool_mode session: a client holds one primary connection until it leaves; the next client gets it reset', async () => {
    const authFile = join(cluster.dir, 'userlist.txt');
    const sessionProxy = await cluster.startProxy(
      {},
      { authFile, settings: { pool_mode: 'session', pool_size: 1, query_wait_timeout: 60 } },
    );
    const connectTo = async (): Promise<pg.Client> => {
      const connection = new pg.Client({
        host: '127.0.0.1',
        port: sessionProxy.splitPort!,
        user: 'postgres',
        password: cluster.superuserPassword,
        database: 'postgres',
      });
      connection.on('error', () => undefined);
      await connection.connect();
      return connection;
    };
    const one = async <T>(connection: pg.Client, text: string): Promise<T> => (await connection.query(text)).rows[0] as T;
    const first = await connectTo();
    let firstEnded = false;
    let second: pg.Client | undefined;
    try {
      await first.query("SET work_mem = '9MB'");
      await first.query('CREATE TEMP TABLE session_scratch (x int)');
      const state = await one<{ pid: number; port: number; work_mem: string }>(
        first,
        "SELECT pg_backend_pid() AS pid, inet_server_port() AS port, current_setting('work_mem') AS work_mem FROM session_scratch RIGHT JOIN (SELECT 1) one ON true",
      );
      // Reads too run on the session's primary connection, with what the session set.
      assert.equal(Number(state.port), primaryPort);
      assert.equal(state.work_mem, '9MB');
      await first.query("INSERT INTO split_items VALUES (9200, 'session') ON CONFLICT DO NOTHING");
      const lsn = await one<{ last_commit_lsn: string | null }>(first, 'SHOW pgwarden.last_commit_lsn');
      assert.match(lsn.last_commit_lsn ?? '', /^[0-9A-F]+\/[0-9A-F]+$/);
      // pool_size 1: a second client waits for the first one's connection.
      const secondConnecting = connectTo();
      await waitUntil(
        async () =>
          /pgwarden_proxy_split_waiting_clients 1\b/.test(await (await fetch(`http://127.0.0.1:${sessionProxy.apiPort}/metrics`)).text()),
        { timeoutMs: 20_000, describe: 'the second client to wait for the only server connection' },
      );
      await first.end();
      firstEnded = true;
      second = await secondConnecting;
      const after = await one<{ pid: number; work_mem: string; temps: number }>(
        second,
        "SELECT pg_backend_pid() AS pid, current_setting('work_mem') AS work_mem, (SELECT count(*)::int FROM pg_class WHERE relname = 'session_scratch') AS temps",
      );
      assert.equal(after.pid, state.pid, 'the second client got the same server connection');
      assert.notEqual(after.work_mem, '9MB', 'DISCARD ALL reset the first session’s SET');
      assert.equal(after.temps, 0, 'DISCARD ALL dropped the first session’s temporary table');
    } finally {
      if (!firstEnded) await first.end();
      await second?.end();
    }
  });

  it('client_tls_sslmode require: TLS clients are served (certificate verified), plaintext ones refused with 28000', async () => {
    const ca = await createCertificateAuthority(join(cluster.dir, 'split-ca'));
    const certificate = await ca.issue('split-listener', { server: { ips: ['127.0.0.1'] } });
    const tlsProxy = await cluster.startProxy(
      {},
      {
        authFile: join(cluster.dir, 'userlist.txt'),
        settings: { client_tls_sslmode: 'require', client_tls_cert_file: certificate.cert, client_tls_key_file: certificate.key },
      },
    );
    const options = {
      host: '127.0.0.1',
      port: tlsProxy.splitPort!,
      user: 'postgres',
      password: cluster.superuserPassword,
      database: 'postgres',
    };
    const secure = new pg.Client({ ...options, ssl: { ca: await readFile(ca.cert, 'utf8') } });
    secure.on('error', () => undefined);
    await secure.connect();
    try {
      const stream = (secure as unknown as { connection: { stream: { encrypted?: boolean } } }).connection.stream;
      assert.equal(stream.encrypted, true, 'the client connection is TLS');
      assert.ok(replicaPorts.has(await portOf(secure, 'SELECT inet_server_port() AS port')), 'reads are routed over TLS too');
      assert.equal(await portOf(secure, "INSERT INTO split_items VALUES (9300, 'tls') RETURNING inet_server_port() AS port"), primaryPort);
    } finally {
      await secure.end();
    }
    const plain = new pg.Client({ ...options, ssl: false });
    plain.on('error', () => undefined);
    await assert.rejects(plain.connect(), (error: { code?: string; message?: string }) => {
      assert.equal(error.code, '28000', error.message);
      assert.match(error.message ?? '', /SSL required/);
      return true;
    });
    // A client that does not trust the certificate's CA gives up during the handshake.
    const untrusting = new pg.Client({ ...options, ssl: { rejectUnauthorized: true } });
    untrusting.on('error', () => undefined);
    await assert.rejects(untrusting.connect());
  });

  it('auth_query: a user missing from auth_file is looked up on the primary (SCRAM secret), wrong passwords still refused', async () => {
    await sql(cluster, leader, "CREATE ROLE split_auth LOGIN SUPERUSER PASSWORD 'auth-secret'");
    await sql(cluster, leader, "CREATE ROLE looked_up LOGIN PASSWORD 'looked-up-secret'");
    await sql(cluster, leader, 'GRANT SELECT ON split_items TO looked_up');
    const authFile = join(cluster.dir, 'userlist-auth-query.txt');
    await writeFile(authFile, '"split_auth" "auth-secret"\n', { mode: 0o600 });
    const queried = await cluster.startProxy({}, { authFile, settings: { auth_user: 'split_auth' } });
    const login = async (user: string, password: string): Promise<pg.Client> => {
      const connection = new pg.Client({ host: '127.0.0.1', port: queried.splitPort!, user, password, database: 'postgres' });
      connection.on('error', () => undefined);
      await connection.connect();
      return connection;
    };
    const connection = await login('looked_up', 'looked-up-secret');
    try {
      const row = (await connection.query('SELECT current_user AS who, inet_server_port() AS port')).rows[0] as {
        who: string;
        port: number;
      };
      assert.equal(row.who, 'looked_up');
      assert.ok(replicaPorts.has(Number(row.port)));
    } finally {
      await connection.end();
    }
    for (const [user, password] of [
      ['looked_up', 'wrong'],
      ['nobody_at_all', 'whatever'],
    ] as const)
      await assert.rejects(login(user, password), (error: { code?: string }) => error.code === '28P01');
    const log = await readFile(queried.logFile, 'utf8');
    assert.ok(!log.includes('looked-up-secret') && !log.includes('auth-secret'), 'no password in the proxy log');
  });

  it('an idle session follows a switchover: its next write runs on the new primary, and it reads its own writes', async () => {
    const connection = await client();
    try {
      assert.equal(
        await portOf(connection, "INSERT INTO split_items VALUES (5000, 'before') RETURNING inet_server_port() AS port"),
        primaryPort,
      );
      const candidate = cluster.nodes.find((node) => node.name !== leader)!.name;
      const response = await fetch(`http://127.0.0.1:${cluster.node(leader).apiPort}/switchover`, {
        method: 'POST',
        body: JSON.stringify({ leader, candidate }),
      });
      assert.equal(response.status, 200, await response.text());
      await waitUntil(async () => (await waitHealthy(cluster, 60_000)).leader === candidate, {
        timeoutMs: 60_000,
        describe: `${candidate} to lead`,
      });
      const newPrimaryPort = cluster.node(candidate).pgPort;
      assert.equal(
        await portOf(connection, "INSERT INTO split_items VALUES (5001, 'after') RETURNING inet_server_port() AS port"),
        newPrimaryPort,
      );
      const row = (await connection.query('SELECT count(*)::int AS n FROM split_items WHERE id IN (5000, 5001)')).rows[0] as { n: number };
      assert.equal(row.n, 2);
    } finally {
      await connection.end();
    }
  });
});
