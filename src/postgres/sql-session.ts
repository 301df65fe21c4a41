// The one way pgwarden opens a PostgreSQL session (node-postgres): the local socket and every upstream alike, with
// connect and query deadlines, abort, and node-postgres errors turned into PgwardenErrors.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import type { Upstream } from '../core/ports.js';
import { describeError, PgwardenError } from '../util/errors.js';
import type { PgSecurity } from './conninfo.js';
import { nodeTlsPlan, TlsSettingsError, type ConnectionAttempt, type NodeTlsPlan, type TlsFiles } from './tls-options.js';

export interface SqlTarget {
  /** Host name, address, or the directory of a Unix socket. */
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly password?: string | undefined;
  readonly database: string;
  readonly connectTimeoutMs: number;
  readonly queryTimeoutMs: number;
  /** Names the node in error messages. */
  readonly member: string;
  /** The user's TLS settings (postgresql.authentication.<user>.ssl*), applied as libpq would (tls-options.ts). */
  readonly security?: PgSecurity | undefined;
}

export type SqlClient = pg.Client;

/** Socket-level failures: nothing accepted the connection, so the server is down or out of reach. */
const UNREACHABLE_CODES = new Set(['ECONNREFUSED', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'ENOENT']);

function isUnreachable(error: unknown): boolean {
  const code = (error as { code?: unknown } | undefined)?.code;
  if (typeof code === 'string' && UNREACHABLE_CODES.has(code)) return true;
  return /timeout expired|connection timeout/i.test(describeError(error));
}

/** Where an upstream's conn_url points (postgres://host:port/db). */
export function addressOf(upstream: Upstream): { readonly host: string; readonly port: number } {
  const url = new URL(upstream.connUrl);
  return { host: url.hostname, port: Number(url.port || '5432') };
}

/** Certificate files are read at each connect, so a renewed certificate is used without a restart. */
const NODE_FILES: TlsFiles = {
  read: (path) => {
    try {
      return readFileSync(path);
    } catch {
      return undefined;
    }
  },
  list: (path) => {
    try {
      return readdirSync(path).filter((name) => statSync(join(path, name)).isFile());
    } catch {
      return undefined;
    }
  },
  homeDir: homedir(),
};

function planFor(target: SqlTarget): NodeTlsPlan {
  try {
    return nodeTlsPlan(target.security ?? {}, target.host, NODE_FILES);
  } catch (error) {
    if (!(error instanceof TlsSettingsError)) throw error;
    throw new PgwardenError(
      'PGW_CONFIG_INVALID',
      `[${target.member}] cannot connect to ${target.host}:${target.port} as ${target.user}: ${error.message}`,
      {
        cause: error,
        context: {
          member: target.member,
          key: 'postgresql.authentication',
          hint: 'fix the TLS keys of this user in postgresql.authentication',
        },
      },
    );
  }
}

/** Internals of node-postgres's Client used to tell whether the login was channel-bound (channel_binding=require). */
interface ClientConnection {
  readonly connection: {
    on(event: 'authenticationSASL', listener: (message: { mechanisms: string[] }) => void): void;
    on(event: 'authenticationOk', listener: () => void): void;
    emit(event: 'error', error: Error): boolean;
  };
}

async function connectOnce(
  target: SqlTarget,
  attempt: ConnectionAttempt,
  plan: NodeTlsPlan,
  signal: AbortSignal | undefined,
  onError: (() => void) | undefined,
): Promise<SqlClient> {
  const client = new pg.Client({
    host: target.host,
    port: target.port,
    user: target.user,
    password: target.password,
    database: target.database,
    application_name: 'pgwarden',
    connectionTimeoutMillis: target.connectTimeoutMs,
    query_timeout: target.queryTimeoutMs,
    // Always explicit: node-postgres would otherwise read PGSSLMODE itself, with other semantics than libpq's.
    ssl: attempt,
    enableChannelBinding: plan.isChannelBindingEnabled && attempt !== false,
  });
  if (plan.isChannelBindingRequired) {
    // libpq's check: the login must have used SCRAM-SHA-256-PLUS (offered only over TLS); trust, md5 or plain SCRAM fail.
    const { connection } = client as unknown as ClientConnection;
    let isBound = false;
    connection.on('authenticationSASL', (message) => {
      isBound = attempt !== false && message.mechanisms.includes('SCRAM-SHA-256-PLUS');
    });
    connection.on('authenticationOk', () => {
      if (!isBound) connection.emit('error', new Error('channel binding required, but the server authenticated the client without it'));
    });
  }
  // node-postgres emits 'error' on a broken idle session; unhandled it would crash the agent.
  client.on('error', () => onError?.());
  const onAbort = (): void => void client.end().catch(() => undefined);
  signal?.addEventListener('abort', onAbort, { once: true });
  try {
    if (signal?.aborted === true) throw new Error('aborted before connecting');
    await client.connect();
    return client;
  } catch (error) {
    await client.end().catch(() => undefined);
    throw error;
  } finally {
    signal?.removeEventListener('abort', onAbort);
  }
}

/**
 * Opens a session, with TLS as the user's sslmode says: a second connection (plain after TLS for prefer, TLS after
 * plain for allow) when the first was refused, never when nothing answered. Rejects with PGW_PG_UNREACHABLE when
 * nothing accepts the connection, PGW_CONFIG_INVALID for TLS settings that cannot work, and PGW_PG_QUERY_FAILED
 * otherwise (authentication, TLS verification, a server still starting up). `onError` hears of a session that
 * breaks later. Messages never carry a password or sslpassword.
 */
export async function connectTo(target: SqlTarget, signal?: AbortSignal, onError?: () => void): Promise<SqlClient> {
  const plan = planFor(target);
  const failures: string[] = [];
  let lastError: unknown;
  for (const attempt of plan.attempts) {
    try {
      return await connectOnce(target, attempt, plan, signal, onError);
    } catch (error) {
      lastError = error;
      failures.push(`${plan.attempts.length > 1 ? (attempt === false ? 'without TLS: ' : 'with TLS: ') : ''}${describeError(error)}`);
      if (isUnreachable(error) || signal?.aborted === true) break;
    }
  }
  const isTcp = !target.host.startsWith('/');
  throw new PgwardenError(
    isUnreachable(lastError) ? 'PGW_PG_UNREACHABLE' : 'PGW_PG_QUERY_FAILED',
    `[${target.member}] could not connect to PostgreSQL at ${target.host}:${target.port} (database ${target.database}${isTcp ? `, sslmode ${plan.sslmode}` : ''}): ${failures.join('; ')}`,
    {
      cause: lastError,
      context: {
        member: target.member,
        hint: isTcp
          ? 'is PostgreSQL running there, does pg_hba let the user in, and do its TLS settings (postgresql.authentication) match the server certificate?'
          : 'is PostgreSQL running there, and does pg_hba let the superuser in?',
      },
    },
  );
}

/** A session for the length of `work`: an abort ends it (failing the query in flight), and it is always closed. */
export async function withSession<T>(target: SqlTarget, signal: AbortSignal, work: (client: SqlClient) => Promise<T>): Promise<T> {
  const client = await connectTo(target, signal);
  const onAbort = (): void => void client.end().catch(() => undefined);
  signal.addEventListener('abort', onAbort, { once: true });
  try {
    return await work(client);
  } catch (error) {
    if (error instanceof PgwardenError) throw error;
    throw new PgwardenError(
      'PGW_PG_QUERY_FAILED',
      `[${target.member}] query on ${target.host}:${target.port} failed: ${describeError(error)}`,
      {
        cause: error,
        context: { member: target.member },
      },
    );
  } finally {
    signal.removeEventListener('abort', onAbort);
    await client.end().catch(() => undefined);
  }
}

/**
 * The agent's own session to its local PostgreSQL, kept open between probes (one backend, not one per cycle) and
 * dropped on any error or when the postmaster exits, so the next query reconnects.
 */
export class LocalSession {
  readonly #target: SqlTarget;
  /** The connect in flight or done; concurrent callers share it rather than each opening a backend. */
  #client: Promise<SqlClient> | undefined;

  constructor(target: SqlTarget) {
    this.#target = target;
  }

  /**
   * `statementName` makes it a named prepared statement: parsed and planned once per connection (node-postgres keeps
   * the name per client and prepares it again on a new one). For the queries every cycle runs.
   */
  async query<T extends object>(text: string, signal: AbortSignal, params: unknown[] = [], statementName?: string): Promise<T[]> {
    if (signal.aborted) throw new PgwardenError('PGW_PG_TIMEOUT', `[${this.#target.member}] aborted before the query`);
    // The deadline is kept here, whatever node-postgres does with a session ended under a query: a caller (the HA
    // cycle, a REST request) never waits past its signal.
    let onAbort: () => void = () => undefined;
    const aborted = new Promise<never>((_resolve, reject) => {
      onAbort = (): void => {
        void this.drop();
        reject(
          new PgwardenError('PGW_PG_TIMEOUT', `[${this.#target.member}] query aborted at its deadline`, {
            context: { member: this.#target.member },
          }),
        );
      };
    });
    signal.addEventListener('abort', onAbort, { once: true });
    try {
      this.#client ??= connectTo(this.#target, signal, () => void this.drop());
      const client = this.#client;
      const running = (async () =>
        statementName === undefined
          ? (await client).query<T>(text, params)
          : (await client).query<T>({ name: statementName, text, values: params }))();
      // Whichever loses the race must not become an unhandled rejection.
      running.catch(() => undefined);
      aborted.catch(() => undefined);
      const result = await Promise.race([running, aborted]);
      return result.rows;
    } catch (error) {
      await this.drop();
      throw new PgwardenError('PGW_PG_QUERY_FAILED', `[${this.#target.member}] query failed: ${describeError(error)}`, {
        cause: error,
        context: { member: this.#target.member },
      });
    } finally {
      signal.removeEventListener('abort', onAbort);
    }
  }

  /** A one-off session in another database of the local server (logical slots live in one database). */
  async queryIn(database: string, text: string, params: unknown[], signal: AbortSignal): Promise<void> {
    try {
      await withSession({ ...this.#target, database, queryTimeoutMs: 30_000 }, signal, (client) => client.query(text, params));
    } catch (error) {
      throw new PgwardenError(
        'PGW_PG_QUERY_FAILED',
        `[${this.#target.member}] query in database ${database} failed: ${describeError(error)}`,
        {
          cause: error,
          context: { member: this.#target.member },
        },
      );
    }
  }

  async drop(): Promise<void> {
    const pending = this.#client;
    this.#client = undefined;
    const client = await pending?.catch(() => undefined);
    await client?.end().catch(() => undefined);
  }
}
