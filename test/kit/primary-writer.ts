// A writer that keeps one connection to whichever node is the writable primary (as libpq's target_session_attrs
// would), commits one row at a time and records every commit the server acknowledged, with the acknowledging port.
import pg from 'pg';

export interface Ack {
  readonly id: number;
  readonly port: number;
  readonly atMs: number;
}

export class PrimaryWriter {
  readonly acks: Ack[] = [];
  readonly errors: string[] = [];
  #nextId = 1;
  #isStopped = false;
  #loop: Promise<void> | undefined;
  #client: pg.Client | undefined;
  /** When the commit in flight was sent (undefined when idle): shows writes waiting for a synchronous standby. */
  inFlightSinceMs: number | undefined;

  constructor(
    private readonly ports: readonly number[],
    private readonly password: string,
    private readonly table: string,
    private readonly queryTimeoutMs = 10_000,
  ) {}

  start(): void {
    this.#loop = this.#run();
  }

  async stop(): Promise<void> {
    this.#isStopped = true;
    await this.#client?.end().catch(() => undefined);
    await this.#loop;
  }

  lastAck(): Ack | undefined {
    return this.acks.at(-1);
  }

  async #connectPrimary(): Promise<{ client: pg.Client; port: number } | undefined> {
    for (const port of this.ports) {
      const client = new pg.Client({
        host: '127.0.0.1',
        port,
        user: 'postgres',
        password: this.password,
        database: 'postgres',
        connectionTimeoutMillis: 1000,
        query_timeout: this.queryTimeoutMs,
      });
      client.on('error', () => undefined);
      try {
        await client.connect();
        const rows = await client.query<{ is_primary: boolean }>('SELECT NOT pg_is_in_recovery() AS is_primary');
        if (rows.rows[0]?.is_primary === true) return { client, port };
      } catch {
        // not up or not reachable: try the next node
      }
      await client.end().catch(() => undefined);
    }
    return undefined;
  }

  async #run(): Promise<void> {
    let port = 0;
    while (!this.#isStopped) {
      if (this.#client === undefined) {
        const found = await this.#connectPrimary();
        if (found === undefined) {
          await new Promise((resolve) => setTimeout(resolve, 100));
          continue;
        }
        this.#client = found.client;
        port = found.port;
      }
      const id = this.#nextId++;
      this.inFlightSinceMs = performance.now();
      try {
        await this.#client.query(`INSERT INTO ${this.table} (id) VALUES ($1)`, [id]);
        this.acks.push({ id, port, atMs: performance.now() });
      } catch (error) {
        this.errors.push(error instanceof Error ? error.message : String(error));
        const client = this.#client;
        this.#client = undefined;
        await client?.end().catch(() => undefined);
      } finally {
        this.inFlightSinceMs = undefined;
      }
    }
  }
}
