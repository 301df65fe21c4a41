// A benchmark writer: one INSERT every interval through a multi-host, read-write-only connection, recording every acknowledged write.
import pg from 'pg';

export interface HostPort {
  readonly host: string;
  readonly port: number;
}

export interface Ack {
  readonly id: number;
  readonly atMs: number;
  readonly port: number;
}

/**
 * node-postgres has no multi-host support, so this follows libpq's documented algorithm for
 * `host=a,b,c target_session_attrs=read-write`: try the hosts in order with connect_timeout, and skip a session
 * whose `transaction_read_only` is on. A broken connection is dropped and the next write starts over.
 */
export class MultiHostWriter {
  readonly acks: Ack[] = [];
  readonly errors: { atMs: number; message: string }[] = [];
  #client: pg.Client | undefined;
  #clientPort = 0;
  #nextId = 1;
  #stopped = false;
  #loop: Promise<void> | undefined;

  constructor(
    private readonly hosts: readonly HostPort[],
    private readonly password: string,
    private readonly intervalMs: number,
    private readonly table: string,
  ) {}

  start(): void {
    this.#loop = this.#run();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    await this.#loop;
    await this.#client?.end().catch(() => undefined);
  }

  async #connect(): Promise<pg.Client | undefined> {
    for (const { host, port } of this.hosts) {
      const client = new pg.Client({
        host,
        port,
        user: 'postgres',
        password: this.password,
        database: 'postgres',
        connectionTimeoutMillis: 1000,
        query_timeout: 2000,
      });
      client.on('error', () => undefined);
      try {
        await client.connect();
        const result = await client.query<{ transaction_read_only: string }>('SHOW transaction_read_only');
        if (result.rows[0]?.transaction_read_only === 'off') {
          this.#clientPort = port;
          return client;
        }
      } catch {
        // next host
      }
      await client.end().catch(() => undefined);
    }
    return undefined;
  }

  async #run(): Promise<void> {
    let next = performance.now();
    while (!this.#stopped) {
      next += this.intervalMs;
      if (this.#client === undefined) this.#client = await this.#connect();
      if (this.#client !== undefined) {
        const id = this.#nextId++;
        try {
          await this.#client.query(`INSERT INTO ${this.table} (id) VALUES ($1)`, [id]);
          this.acks.push({ id, atMs: performance.now(), port: this.#clientPort });
        } catch (error) {
          this.errors.push({ atMs: performance.now(), message: error instanceof Error ? error.message : String(error) });
          await this.#client.end().catch(() => undefined);
          this.#client = undefined;
        }
      }
      const wait = next - performance.now();
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
      else next = performance.now();
    }
  }

  /**
   * The write outage caused by a fault at `faultAtMs`: the longest interval between consecutive acknowledgements
   * from the last one before the fault up to `recoveredAtMs` (a write in flight may still be acknowledged just
   * after the fault was injected, so the first ack after the fault is not necessarily the end of the outage).
   */
  outage(faultAtMs: number, recoveredAtMs: number): number {
    let worst = Number.NaN;
    let previous: Ack | undefined;
    for (const ack of this.acks) {
      if (previous !== undefined && ack.atMs > faultAtMs && previous.atMs <= recoveredAtMs) {
        const gap = ack.atMs - previous.atMs;
        if (!(gap <= worst)) worst = gap;
      }
      previous = ack;
      if (ack.atMs > recoveredAtMs) break;
    }
    return worst;
  }
}
