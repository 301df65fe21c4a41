// The proxy's view of each member's WAL position: one kept-open session per member (the monitor role of
// proxy.monitor), one small query per poll. It answers what routing needs and nothing more.
import type { MemberPosition, PositionReader } from '../core/ports.js';
import type { MemberRecord } from '../core/types.js';
import { PgwardenError } from '../util/errors.js';
import type { PgSecurity } from './conninfo.js';
import { LocalSession, addressOf } from './sql-session.js';

export interface MonitorCredentials {
  readonly username: string;
  readonly password?: string | undefined;
  readonly database: string;
  /** sslmode, sslrootcert, sslcert, sslkey… as libpq reads them. */
  readonly security: PgSecurity;
}

/**
 * pg_stat_wal_receiver's status is visible to superusers and pg_read_all_stats (pg_monitor) only; for other roles it is
 * null, which reads as "unknown" rather than "not streaming".
 */
const POSITION_QUERY = `SELECT pg_is_in_recovery() AS recovery,
  ((CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END) - '0/0'::pg_lsn)::float8 AS lsn,
  (SELECT status FROM pg_stat_wal_receiver LIMIT 1) AS receiver,
  (SELECT count(*) FROM pg_stat_wal_receiver)::int AS receivers,
  (extract(epoch FROM clock_timestamp() - pg_last_xact_replay_timestamp()) * 1000)::float8 AS replay_age_ms`;

interface PositionRow {
  readonly recovery: boolean;
  readonly lsn: number | null;
  readonly receiver: string | null;
  readonly receivers: number;
  readonly replay_age_ms: number | null;
}

const CONNECT_TIMEOUT_MS = 1000;
const QUERY_TIMEOUT_MS = 1000;

export class PgPositionReader implements PositionReader {
  readonly #credentials: MonitorCredentials;
  /** By member name, with the conn_url it was opened for (a member that moved gets a new session). */
  readonly #sessions = new Map<string, { connUrl: string; session: LocalSession }>();

  constructor(credentials: MonitorCredentials) {
    this.#credentials = credentials;
  }

  async read(member: MemberRecord, signal: AbortSignal): Promise<MemberPosition> {
    const rows = await this.#sessionOf(member).query<PositionRow>(POSITION_QUERY, signal);
    const row = rows[0];
    if (row === undefined)
      throw new PgwardenError('PGW_PG_QUERY_FAILED', `[${member.name}] the position query returned no row`, {
        context: { member: member.name },
      });
    return {
      isInRecovery: row.recovery,
      lsn: row.lsn ?? undefined,
      isStreaming: !row.recovery
        ? undefined
        : row.receiver !== null
          ? row.receiver === 'streaming'
          : row.receivers === 0
            ? false
            : undefined,
      replayAgeMs: row.replay_age_ms ?? undefined,
    };
  }

  retain(keep: ReadonlySet<string>): void {
    for (const [name, entry] of this.#sessions)
      if (!keep.has(name)) {
        void entry.session.drop();
        this.#sessions.delete(name);
      }
  }

  async close(): Promise<void> {
    await Promise.all([...this.#sessions.values()].map((entry) => entry.session.drop()));
    this.#sessions.clear();
  }

  #sessionOf(member: MemberRecord): LocalSession {
    const existing = this.#sessions.get(member.name);
    if (existing !== undefined && existing.connUrl === member.conn_url) return existing.session;
    if (existing !== undefined) void existing.session.drop();
    const address = addressOf({ name: member.name, connUrl: member.conn_url });
    const credentials = this.#credentials;
    const session = new LocalSession({
      host: address.host,
      port: address.port,
      user: credentials.username,
      password: credentials.password,
      database: credentials.database,
      connectTimeoutMs: CONNECT_TIMEOUT_MS,
      queryTimeoutMs: QUERY_TIMEOUT_MS,
      member: member.name,
      security: credentials.security,
    });
    this.#sessions.set(member.name, { connUrl: member.conn_url, session });
    return session;
  }
}
