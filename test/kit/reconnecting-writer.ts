// A client that opens a new connection for every write (as a pool recycling after errors would), recording which server
// acknowledged each write and whether failures happened while connecting or while querying.
import pg from 'pg';

export interface WriteAck {
  readonly id: number;
  readonly atMs: number;
  readonly serverPort: number;
  readonly connectMs: number;
}

export class ReconnectingWriter {
  readonly acks: WriteAck[] = [];
  readonly connectFailures: { startedAtMs: number; atMs: number; message: string }[] = [];
  readonly queryFailures: { atMs: number; message: string }[] = [];
  #nextId = 1;
  #isStopped = false;
  #loop: Promise<void> | undefined;

  constructor(
    private readonly port: number,
    private readonly password: string,
    private readonly table: string,
    private readonly intervalMs = 20,
    private readonly connectTimeoutMs = 35_000,
  ) {}

  start(): void {
    this.#loop = this.#run();
  }

  async stop(): Promise<void> {
    this.#isStopped = true;
    await this.#loop;
  }

  async #run(): Promise<void> {
    while (!this.#isStopped) {
      const client = new pg.Client({
        host: '127.0.0.1',
        port: this.port,
        user: 'postgres',
        password: this.password,
        database: 'postgres',
        connectionTimeoutMillis: this.connectTimeoutMs,
        query_timeout: 5000,
      });
      client.on('error', () => undefined);
      const startedAt = performance.now();
      try {
        await client.connect();
      } catch (error) {
        this.connectFailures.push({
          startedAtMs: startedAt,
          atMs: performance.now(),
          message: error instanceof Error ? error.message : String(error),
        });
        await client.end().catch(() => undefined);
        await new Promise((resolve) => setTimeout(resolve, this.intervalMs));
        continue;
      }
      const connectMs = performance.now() - startedAt;
      const id = this.#nextId++;
      try {
        const result = await client.query<{ port: number }>(
          `INSERT INTO ${this.table} (id) VALUES ($1) RETURNING inet_server_port() AS port`,
          [id],
        );
        this.acks.push({ id, atMs: performance.now(), serverPort: result.rows[0]!.port, connectMs });
      } catch (error) {
        this.queryFailures.push({ atMs: performance.now(), message: error instanceof Error ? error.message : String(error) });
      }
      await client.end().catch(() => undefined);
      await new Promise((resolve) => setTimeout(resolve, this.intervalMs));
    }
  }
}
