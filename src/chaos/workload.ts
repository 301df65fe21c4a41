// The one write/read workload of chaos runs, system tests and benchmarks: a sequential writer that records, for every
// commit a server acknowledged, which server it was (port, system identifier, timeline) and the WAL position; a
// reader through a replica port; and the longest write gap, the outage an application saw.
import pg from 'pg';

export interface Ack {
  readonly id: number;
  /** When the acknowledgement arrived (monotonic ms, performance.now()). */
  readonly atMs: number;
  /** When the INSERT was sent: atMs - sentAtMs is the commit latency. */
  readonly sentAtMs: number;
  /** Which server acknowledged: its port, system identifier and timeline at the time. */
  readonly port: number;
  readonly sysid: string;
  readonly timeline: number;
  /** WAL position right after the commit (bytes). */
  readonly lsn: number;
}

export interface WriteFailure {
  /** connect: no session (refused, timed out, or no writable target); write: the INSERT failed on an open session. */
  readonly phase: 'connect' | 'write';
  readonly startedAtMs: number;
  readonly atMs: number;
  readonly message: string;
}

export interface Target {
  readonly host: string;
  readonly port: number;
}

export interface WriterOptions {
  /**
   * Where to connect. One target (a proxy port, HAProxy) is used as is; with several, the first whose session is
   * writable wins, as libpq's target_session_attrs=read-write does.
   */
  readonly targets: readonly Target[];
  readonly password: string;
  /** A table with an integer primary key `id` (see ackTableSql). */
  readonly table: string;
  /**
   * session (default): one connection, replaced after an error. per-write: a new connection for every write, as a
   * pool recycling after errors would; shows connects refused or held during a failover.
   */
  readonly connection?: 'session' | 'per-write';
  /** Writes start at most this often (ms); 0 writes back to back. */
  readonly intervalMs?: number;
  /** Pause after a failed connect before the next attempt (ms). */
  readonly reconnectDelayMs?: number;
  /** A proxy holds a connect through a failover: the default waits for it as long as a patient client would. */
  readonly connectTimeoutMs?: number;
  readonly queryTimeoutMs?: number;
  /** The first id written (ids then count up): writers sharing one table use disjoint ranges. */
  readonly firstId?: number;
}

const WRITE_DEFAULTS = {
  connection: 'session',
  intervalMs: 5,
  reconnectDelayMs: 100,
  connectTimeoutMs: 35_000,
  queryTimeoutMs: 10_000,
  firstId: 1,
} as const;

/** The table the writer fills (bigint: a long run outgrows int). */
export const ackTableSql = (table: string): string => `CREATE TABLE IF NOT EXISTS ${table} (id bigint PRIMARY KEY)`;

const insertSql = (table: string): string => `INSERT INTO ${table} (id) VALUES ($1)
  RETURNING inet_server_port() AS port, (SELECT system_identifier::text FROM pg_control_system()) AS sysid,
  ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int AS timeline,
  (pg_current_wal_lsn() - '0/0')::text AS lsn`;

const messageOf = (error: unknown): string => (error instanceof Error ? error.message : String(error));
const pause = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** How long a session's orderly end may take before its socket is destroyed. */
const SESSION_END_BUDGET_MS = 1000;

/**
 * Ends a session without waiting on the server: pg's end() resolves only when the server closes its side, which a frozen
 * (SIGSTOPped) or blackholed server never does; a writer waiting there stops writing (a proxy test through the kernel
 * data path waited out its minute on one). After the budget the socket is destroyed.
 */
async function closeSession(session: pg.Client): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const budget = new Promise<void>((resolve) => (timer = setTimeout(resolve, SESSION_END_BUDGET_MS)));
  await Promise.race([session.end().catch(() => undefined), budget]);
  clearTimeout(timer);
  session.connection.stream.destroy();
}

function client(target: Target, password: string, connectTimeoutMs: number, queryTimeoutMs: number): pg.Client {
  const fresh = new pg.Client({
    host: target.host,
    port: target.port,
    user: 'postgres',
    password,
    database: 'postgres',
    connectionTimeoutMillis: connectTimeoutMs,
    query_timeout: queryTimeoutMs,
  });
  // A server dying under an idle session emits 'error' on the client; the next query reports it.
  fresh.on('error', () => undefined);
  return fresh;
}

export class Writer {
  readonly acks: Ack[] = [];
  readonly failures: WriteFailure[] = [];
  /** When the commit in flight was sent (undefined when idle): shows writes waiting for a synchronous standby. */
  inFlightSinceMs: number | undefined;
  readonly #options: Required<WriterOptions>;
  readonly #insert: string;
  #session: pg.Client | undefined;
  #nextId = 1;
  #isStopped = false;
  #loop: Promise<void> | undefined;

  constructor(options: WriterOptions) {
    this.#options = { ...WRITE_DEFAULTS, ...options };
    this.#nextId = this.#options.firstId;
    this.#insert = insertSql(options.table);
  }

  start(): void {
    this.#loop = this.#run();
  }

  /** Ends the session (a write in flight fails, unrecorded) and waits for the loop to finish. */
  async stop(): Promise<void> {
    this.#isStopped = true;
    if (this.#session !== undefined) await closeSession(this.#session);
    await this.#loop;
  }

  async #connect(): Promise<pg.Client | undefined> {
    const { targets, password, connectTimeoutMs, queryTimeoutMs } = this.#options;
    const startedAtMs = performance.now();
    let message = 'no target';
    for (const target of targets) {
      const fresh = client(target, password, connectTimeoutMs, queryTimeoutMs);
      try {
        await fresh.connect();
        if (targets.length === 1) return fresh;
        const result = await fresh.query<{ transaction_read_only: string }>('SHOW transaction_read_only');
        if (result.rows[0]?.transaction_read_only === 'off') return fresh;
        message = `${target.host}:${target.port} is read-only`;
      } catch (error) {
        message = `${target.host}:${target.port}: ${messageOf(error)}`;
      }
      await closeSession(fresh);
    }
    this.failures.push({ phase: 'connect', startedAtMs, atMs: performance.now(), message });
    return undefined;
  }

  async #write(session: pg.Client): Promise<boolean> {
    const id = this.#nextId++;
    const sentAtMs = performance.now();
    this.inFlightSinceMs = sentAtMs;
    try {
      const result = await session.query<{ port: number; sysid: string; timeline: number; lsn: string }>(this.#insert, [id]);
      const row = result.rows[0]!;
      this.acks.push({
        id,
        atMs: performance.now(),
        sentAtMs,
        port: row.port,
        sysid: row.sysid,
        timeline: row.timeline,
        lsn: Number(row.lsn),
      });
      return true;
    } catch (error) {
      // A write cut short by stop() ending the session says nothing about the cluster.
      if (!this.#isStopped)
        this.failures.push({ phase: 'write', startedAtMs: sentAtMs, atMs: performance.now(), message: messageOf(error) });
      return false;
    } finally {
      this.inFlightSinceMs = undefined;
    }
  }

  async #run(): Promise<void> {
    const { intervalMs, reconnectDelayMs, connection } = this.#options;
    let nextAtMs = performance.now();
    while (!this.#isStopped) {
      if (this.#session === undefined) {
        const fresh = await this.#connect();
        if (fresh === undefined) {
          await pause(reconnectDelayMs);
          nextAtMs = performance.now();
          continue;
        }
        // stop() may have come while connecting: it could not end a session it did not know yet.
        if (this.#isStopped) {
          await closeSession(fresh);
          break;
        }
        this.#session = fresh;
      }
      const session = this.#session;
      const isOk = await this.#write(session);
      if (!isOk || connection === 'per-write') {
        this.#session = undefined;
        await closeSession(session);
      }
      // A fixed rate, not a fixed pause: a slow commit does not lower the offered load, a stall does not bunch writes.
      nextAtMs += intervalMs;
      const waitMs = nextAtMs - performance.now();
      if (waitMs > 0) await pause(waitMs);
      else nextAtMs = performance.now();
    }
    if (this.#session !== undefined) await closeSession(this.#session);
  }
}

/** Reads through the proxy's replica port: what a read-only application sees during the faults. */
export class Reader {
  ok = 0;
  failed = 0;
  #isStopped = false;
  #loop: Promise<void> | undefined;

  constructor(
    private readonly target: Target,
    private readonly password: string,
    private readonly table: string,
  ) {}

  start(): void {
    this.#loop = this.#run();
  }

  async stop(): Promise<void> {
    this.#isStopped = true;
    await this.#loop;
  }

  async #run(): Promise<void> {
    let session: pg.Client | undefined;
    while (!this.#isStopped) {
      try {
        if (session === undefined) {
          const fresh = client(this.target, this.password, WRITE_DEFAULTS.connectTimeoutMs, WRITE_DEFAULTS.queryTimeoutMs);
          session = fresh;
          await fresh.connect();
        }
        await session.query(`SELECT count(*) FROM ${this.table} WHERE id > (SELECT coalesce(max(id), 0) - 100 FROM ${this.table})`);
        this.ok++;
      } catch {
        this.failed++;
        if (session !== undefined) await closeSession(session);
        session = undefined;
        await pause(100);
      }
      await pause(20);
    }
    if (session !== undefined) await closeSession(session);
  }
}

/**
 * The longest interval between consecutive acknowledgements that ends after `afterMs` and no later than `untilMs`:
 * the write outage a fault at afterMs caused, when untilMs is the ack that showed recovery. A write in flight may
 * still be acknowledged just after the fault, so the first ack after it is not necessarily the end of the outage.
 * Undefined when no such interval exists (no write acknowledged after the fault).
 */
export function longestWriteGap(
  acks: readonly Pick<Ack, 'atMs'>[],
  afterMs: number,
  untilMs = Number.POSITIVE_INFINITY,
): number | undefined {
  let longest: number | undefined;
  for (let index = 1; index < acks.length; index++) {
    const ack = acks[index]!;
    if (ack.atMs > untilMs) break;
    if (ack.atMs <= afterMs) continue;
    longest = Math.max(longest ?? 0, ack.atMs - acks[index - 1]!.atMs);
  }
  return longest;
}
