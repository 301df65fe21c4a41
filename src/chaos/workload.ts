// The chaos workload: one sequential writer through the proxy's primary port, recording for every acknowledged
// commit which server (port, system identifier, timeline) acknowledged it.
import pg from 'pg';
import type { Ack } from './checker.js';

const INSERT_SQL = `INSERT INTO chaos_acks (id) VALUES ($1)
  RETURNING inet_server_port() AS port, (SELECT system_identifier::text FROM pg_control_system()) AS sysid,
  ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int AS timeline,
  (pg_current_wal_lsn() - '0/0')::text AS lsn`;

/** A client through one of the proxy's ports; the long connect timeout lets the proxy hold it through a failover. */
function proxyClient(port: number, password: string): pg.Client {
  const client = new pg.Client({
    host: '127.0.0.1',
    port,
    user: 'postgres',
    password,
    database: 'postgres',
    connectionTimeoutMillis: 35_000,
    query_timeout: 10_000,
  });
  client.on('error', () => undefined);
  return client;
}

export const CHAOS_TABLE_SQL = 'CREATE TABLE IF NOT EXISTS chaos_acks (id bigint PRIMARY KEY)';

export class ChaosWriter {
  readonly acks: Ack[] = [];
  errors = 0;
  #nextId = 1;
  #isStopped = false;
  #loop: Promise<void> | undefined;
  #client: pg.Client | undefined;

  constructor(
    private readonly port: number,
    private readonly password: string,
  ) {}

  start(): void {
    this.#loop = this.#run();
  }

  async stop(): Promise<void> {
    this.#isStopped = true;
    await this.#client?.end().catch(() => undefined);
    await this.#loop;
  }

  async #run(): Promise<void> {
    while (!this.#isStopped) {
      if (this.#client === undefined) {
        const client = proxyClient(this.port, this.password);
        try {
          await client.connect();
          this.#client = client;
        } catch {
          this.errors++;
          await client.end().catch(() => undefined);
          await new Promise((resolve) => setTimeout(resolve, 100));
          continue;
        }
      }
      const id = this.#nextId++;
      try {
        const result = await this.#client.query<{ port: number; sysid: string; timeline: number; lsn: string }>(INSERT_SQL, [id]);
        const row = result.rows[0]!;
        this.acks.push({ id, atMs: performance.now(), port: row.port, sysid: row.sysid, timeline: row.timeline, lsn: Number(row.lsn) });
      } catch {
        this.errors++;
        const client = this.#client;
        this.#client = undefined;
        await client?.end().catch(() => undefined);
      }
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  }
}

/** Readers through the proxy's replica port: what a read-only application sees during the faults. */
export class ChaosReader {
  ok = 0;
  failed = 0;
  #isStopped = false;
  #loop: Promise<void> | undefined;

  constructor(
    private readonly port: number,
    private readonly password: string,
  ) {}

  start(): void {
    this.#loop = this.#run();
  }

  async stop(): Promise<void> {
    this.#isStopped = true;
    await this.#loop;
  }

  async #run(): Promise<void> {
    let client: pg.Client | undefined;
    while (!this.#isStopped) {
      try {
        if (client === undefined) {
          const fresh = proxyClient(this.port, this.password);
          client = fresh;
          await fresh.connect();
        }
        await client.query('SELECT count(*) FROM chaos_acks WHERE id > (SELECT coalesce(max(id), 0) - 100 FROM chaos_acks)');
        this.ok++;
      } catch {
        this.failed++;
        await client?.end().catch(() => undefined);
        client = undefined;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    await client?.end().catch(() => undefined);
  }
}
