// Server connections pooled per (server, database, user): at most `poolSize` per pool, idle ones reused, and a
// bounded FIFO wait when all are busy (PgBouncer's query_wait_timeout). Generic over the connection so that the
// limits are tested without a server.
import { PgwardenError } from '../../util/errors.js';

export interface Poolable {
  readonly closed: boolean;
  close(): void;
  onClose(listener: () => void): () => void;
}

export interface PoolOptions<C extends Poolable> {
  readonly poolSize: () => number;
  /** Opens a connection for a pool key (the caller encodes server, database and user in it). */
  readonly open: (key: string) => Promise<C>;
}

interface Waiter<C> {
  readonly resolve: (connection: C) => void;
  readonly reject: (error: unknown) => void;
  readonly timer: NodeJS.Timeout;
}

interface Pool<C> {
  readonly idle: C[];
  readonly busy: Set<C>;
  /** Connections being opened, counted against the size. */
  opening: number;
  readonly waiters: Waiter<C>[];
}

export class ServerPool<C extends Poolable> {
  readonly #options: PoolOptions<C>;
  readonly #pools = new Map<string, Pool<C>>();

  constructor(options: PoolOptions<C>) {
    this.#options = options;
  }

  #pool(key: string): Pool<C> {
    let pool = this.#pools.get(key);
    if (pool === undefined) {
      pool = { idle: [], busy: new Set(), opening: 0, waiters: [] };
      this.#pools.set(key, pool);
    }
    return pool;
  }

  /** An idle connection of `key`, lent now, or undefined when none is idle. */
  lendIdle(key: string): C | undefined {
    const pool = this.#pool(key);
    for (;;) {
      const idle = pool.idle.pop();
      if (idle === undefined) return undefined;
      if (idle.closed) continue;
      pool.busy.add(idle);
      return idle;
    }
  }

  /** An idle or new connection of `key`; waits up to `timeoutMs` for one when the pool is full. */
  async acquire(key: string, timeoutMs: number): Promise<C> {
    const pool = this.#pool(key);
    const idle = this.lendIdle(key);
    if (idle !== undefined) return idle;
    if (pool.busy.size + pool.opening < this.#options.poolSize()) return this.#open(key, pool);
    return new Promise<C>((resolve, reject) => {
      const waiter: Waiter<C> = {
        resolve,
        reject,
        timer: setTimeout(() => {
          const index = pool.waiters.indexOf(waiter);
          if (index !== -1) pool.waiters.splice(index, 1);
          reject(
            new PgwardenError('PGW_PROXY_POOL_TIMEOUT', `no server connection of ${key} became free within ${timeoutMs} ms`, {
              context: { key: 'proxy.split.query_wait_timeout', hint: 'raise proxy.split.pool_size or shorten transactions' },
            }),
          );
        }, timeoutMs),
      };
      pool.waiters.push(waiter);
    });
  }

  async #open(key: string, pool: Pool<C>): Promise<C> {
    pool.opening++;
    let connection: C;
    try {
      connection = await this.#options.open(key);
    } finally {
      pool.opening--;
    }
    pool.busy.add(connection);
    connection.onClose(() => {
      pool.busy.delete(connection);
      const index = pool.idle.indexOf(connection);
      if (index !== -1) pool.idle.splice(index, 1);
      this.#serveWaiter(key, pool);
    });
    return connection;
  }

  /** Gives a connection back: to the first waiter, else to the idle list; a closed one frees its place. */
  release(key: string, connection: C): void {
    const pool = this.#pools.get(key);
    if (pool === undefined || !pool.busy.has(connection)) return;
    if (connection.closed) return; // onClose already freed the place
    const waiter = pool.waiters.shift();
    if (waiter !== undefined) {
      clearTimeout(waiter.timer);
      waiter.resolve(connection);
      return;
    }
    pool.busy.delete(connection);
    pool.idle.push(connection);
  }

  /** A place became free: the first waiter gets a new connection. */
  #serveWaiter(key: string, pool: Pool<C>): void {
    if (pool.waiters.length === 0 || pool.busy.size + pool.opening >= this.#options.poolSize()) return;
    const waiter = pool.waiters.shift()!;
    clearTimeout(waiter.timer);
    this.#open(key, pool).then(waiter.resolve, waiter.reject);
  }

  /** Closes the idle connections of matching keys (busy ones are their clients' to end). */
  closeIdle(matches: (key: string) => boolean): number {
    let closed = 0;
    for (const [key, pool] of this.#pools) {
      if (!matches(key)) continue;
      for (const connection of pool.idle.splice(0)) {
        connection.close();
        closed++;
      }
    }
    return closed;
  }

  /** Busy connections of every pool, by key (for load balancing and metrics). */
  busyCount(matches: (key: string) => boolean): number {
    let count = 0;
    for (const [key, pool] of this.#pools) if (matches(key)) count += pool.busy.size + pool.opening;
    return count;
  }

  /** Busy (and opening) connections per pool key, in one pass (per transaction, for load balancing). */
  *busyByKey(): Iterable<[string, number]> {
    for (const [key, pool] of this.#pools) yield [key, pool.busy.size + pool.opening];
  }

  stats(): { idle: number; busy: number; waiting: number } {
    let idle = 0;
    let busy = 0;
    let waiting = 0;
    for (const pool of this.#pools.values()) {
      idle += pool.idle.length;
      busy += pool.busy.size;
      waiting += pool.waiters.length;
    }
    return { idle, busy, waiting };
  }

  closeAll(): void {
    for (const pool of this.#pools.values()) {
      for (const waiter of pool.waiters.splice(0)) {
        clearTimeout(waiter.timer);
        waiter.reject(new PgwardenError('PGW_PROXY_POOL_TIMEOUT', 'the proxy is stopping', {}));
      }
      for (const connection of [...pool.idle.splice(0), ...pool.busy]) connection.close();
    }
  }
}
