// proxy.split_listen: a PostgreSQL endpoint that authenticates clients itself (SCRAM-SHA-256 against the auth file),
// lends them pooled server connections per transaction, and sends each transaction to a replica only when the
// classifier proves it read-only and a replica has replayed the session's last commit (read-your-writes).
import { randomInt } from 'node:crypto';
import { statSync, readFileSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { createSecureContext, TLSSocket, type SecureContext } from 'node:tls';
import { describeError, PgwardenError } from '../../util/errors.js';
import type { Log } from '../../util/log.js';
import type { Backend } from '../routing.js';
import type { ObservedPosition } from '../member-positions.js';
import type { SplitStats } from '../proxy-metrics.js';
import { createClassifier, functionVolatilityFromPgProc, type FunctionVolatility, type SqlClassifier } from '../sql-classifier.js';
import { TransactionTracker } from '../transaction-tracker.js';
import { parseAuthFile, prepareEntry, type AuthEntry } from './auth-file.js';
import { Inbox } from './inbox.js';
import {
  AUTH_OK,
  AUTH_SASL_CONTINUE,
  AUTH_SASL_FINAL,
  authentication,
  authenticationSasl,
  backendKeyData,
  cancelRequest,
  decodeParse,
  decodeSaslInitialResponse,
  dollarQuoted,
  errorResponse,
  message,
  parameterStatus,
  queryText,
  readyForQuery,
  singleValueResult,
  type ErrorFields,
  type WireMessage,
} from './pg-wire.js';
import { parseScramSecret, ScramError, ScramServer, type ServerCredential } from './scram.js';
import { DEFAULT_APPLICATION_NAME, ServerConnection, ServerLoginError, type ServerLogin } from './server-connection.js';
import { ServerPool } from './server-pool.js';
import {
  closestReplica,
  formatLsn,
  MENTIONS_PGWARDEN_SETTING,
  parseLsn,
  pickReadTarget,
  setMinLsnValue,
  SHOW_LAST_COMMIT_LSN,
} from './split-routing.js';

export interface SplitSettings {
  readonly auth_file: string;
  readonly pool_size: number;
  readonly max_client_conn: number;
  /** Seconds a transaction waits for a server connection (a full pool, or no primary during a failover). */
  readonly query_wait_timeout: number;
  /** Seconds to connect and log in to a server. */
  readonly connect_timeout: number;
  /** Seconds a read waits for a replica to replay the session's floor before it goes to the primary. */
  readonly causal_wait: number;
  /** session: a client holds one primary connection from login to logout, and nothing is routed (default transaction). */
  readonly pool_mode?: 'transaction' | 'session';
  /** TLS towards clients (PgBouncer's client_tls_*): prefer/allow answer an SSLRequest with TLS, require refuses plaintext. */
  readonly client_tls_sslmode?: 'disable' | 'allow' | 'prefer' | 'require' | undefined;
  readonly client_tls_cert_file?: string | undefined;
  readonly client_tls_key_file?: string | undefined;
  /** PgBouncer's auth_user / auth_query: users missing from auth_file are looked up on the primary. */
  readonly auth_user?: string | undefined;
  readonly auth_query?: string | undefined;
}

/** PgBouncer's default auth_query (pg_shadow needs a superuser; a SECURITY DEFINER function is the usual way around). */
export const DEFAULT_AUTH_QUERY = 'SELECT usename, passwd FROM pg_shadow WHERE usename = $1';

export interface SplitRoutes {
  /** The confirmed lock holder, or undefined while the primary route holds. */
  primary(): Backend | undefined;
  /** Replicas the replica route allows (not the primary fallback). */
  replicas(): readonly Backend[];
  positions(): ReadonlyMap<string, ObservedPosition> | undefined;
  /** Resolves at the next routing change, at the deadline, or when `signal` aborts. */
  changed(deadlineMs: number, signal: AbortSignal): Promise<void>;
}

export interface SplitListenerOptions {
  readonly host: string;
  readonly port: number;
  readonly settings: () => SplitSettings;
  readonly routes: SplitRoutes;
  readonly nowMs: () => number;
  readonly log: Log;
}

/** Seconds a client has to finish the startup and authentication (PgBouncer's client_login_timeout is 60). */
const LOGIN_TIMEOUT_MS = 30_000;
const SSL_REQUEST = 80877103;
const GSSENC_REQUEST = 80877104;
const CANCEL_REQUEST = 80877102;
/** Messages a server answers with a ReadyForQuery: Query, Sync, FunctionCall. */
const ANSWERED_BY_READY = new Set(['Q', 'S', 'F']);
/** An extended-protocol batch larger than this is not held for classification: it goes to the primary as it comes. */
const MAX_BATCH_BYTES = 1024 * 1024;
/** Extended-protocol and function-call messages. */
const EXTENDED = new Set(['P', 'B', 'D', 'E', 'C', 'H', 'S', 'F']);
/** After a write: where the session's floor comes from. The insert position is at or past the commit record's end. */
const FLOOR_QUERY = "SELECT (pg_current_wal_insert_lsn() - '0/0'::pg_lsn)::float8";
/** On a replica: how far it has replayed (NULL before any replay, which proves nothing). */
const REPLAY_QUERY = "SELECT (pg_last_wal_replay_lsn() - '0/0'::pg_lsn)::float8";

type Role = 'primary' | 'replica';

/** The startup parameters a pool key carries, in a stable order (empty for a client that sent none). */
export function parametersKey(parameters: Readonly<Record<string, string>> | undefined): string {
  const entries = Object.entries(parameters ?? {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return entries.length === 0 ? '' : JSON.stringify(entries);
}

interface Assigned {
  readonly connection: ServerConnection;
  readonly key: string;
  readonly role: Role;
  /** Messages sent that a ReadyForQuery will answer. */
  pending: number;
  /** Something that may write ran on it since it was lent: read the floor before giving it back. */
  wrote: boolean;
  readonly detachClose: () => void;
}

class ClientError extends Error {
  constructor(readonly fields: ErrorFields) {
    super(fields.message);
  }
}

export class SplitListener {
  readonly #options: SplitListenerOptions;
  #server: Server | undefined;
  readonly #sessions = new Set<ClientSession>();
  readonly #byKey = new Map<string, ClientSession>();
  readonly pool: ServerPool<ServerConnection>;
  #classifier: SqlClassifier | undefined;
  readonly #volatility = new Map<string, Promise<FunctionVolatility>>();
  #authFile: { mtimeMs: number; size: number; entries: ReturnType<typeof parseAuthFile>['entries'] } | undefined;
  readonly #prepared = new Map<string, { source: unknown; entry: Promise<AuthEntry> }>();
  #rotation = 0;
  readonly #stopping = new AbortController();
  /** Per pool key, the login the connections are opened with (the last client's credential for that user). */
  readonly #logins = new Map<string, { readonly backend: Backend; readonly login: ServerLogin }>();
  /** parametersKey per session's parameters object (fixed at login): not sorted and serialised per transaction. */
  readonly #parameterKeys = new WeakMap<object, string>();

  constructor(options: SplitListenerOptions) {
    this.#options = options;
    this.pool = new ServerPool<ServerConnection>({
      poolSize: () => options.settings().pool_size,
      open: (key) => {
        const { backend, login } = this.#logins.get(key)!;
        return ServerConnection.open(backend, login, options.settings().connect_timeout * 1000);
      },
    });
  }

  get clientCount(): number {
    return this.#sessions.size;
  }

  readonly #transactions = { primary: 0, replica: 0 };
  #readsBelowFloor = 0;

  countBelowFloor(): void {
    this.#readsBelowFloor++;
  }

  /** Counted when a session is lent a server connection for a transaction. */
  countTransaction(role: Role): void {
    this.#transactions[role]++;
  }

  stats(): SplitStats {
    const pool = this.pool.stats();
    return {
      clients: this.#sessions.size,
      serverIdle: pool.idle,
      serverBusy: pool.busy,
      waiting: pool.waiting,
      transactions: { ...this.#transactions },
      readsBelowFloor: this.#readsBelowFloor,
    };
  }

  #tls: { readonly context: SecureContext; readonly required: boolean } | undefined;

  /** The TLS context for clients that ask, and whether plaintext is refused; undefined when TLS is off. */
  get tls(): { readonly context: SecureContext; readonly required: boolean } | undefined {
    return this.#tls;
  }

  #loadTls(): void {
    const settings = this.settings;
    const mode = settings.client_tls_sslmode ?? (settings.client_tls_cert_file !== undefined ? 'prefer' : 'disable');
    if (mode === 'disable') return;
    const { client_tls_cert_file: certFile, client_tls_key_file: keyFile } = settings;
    try {
      this.#tls = {
        context: createSecureContext({ cert: readFileSync(certFile!), key: readFileSync(keyFile!) }),
        required: mode === 'require',
      };
    } catch (error) {
      throw new PgwardenError(
        'PGW_CONFIG_UNREADABLE',
        `proxy.split.client_tls_cert_file ${certFile ?? '(unset)'} / client_tls_key_file ${keyFile ?? '(unset)'}: ${describeError(error)}`,
        { context: { key: 'proxy.split.client_tls_cert_file', hint: 'PEM files the proxy can read, the key matching the certificate' } },
      );
    }
  }

  async listen(): Promise<number> {
    this.#loadTls(); // an unreadable certificate fails the start, not the first TLS client
    this.#classifier = await createClassifier();
    this.#loadAuthFile(); // a missing or unreadable file fails the start, not the first login
    const server = createServer({ noDelay: true }, (socket) => this.#accept(socket));
    this.#server = server;
    const { host, port } = this.#options;
    await new Promise<void>((resolve, reject) => {
      server.once('error', (error) =>
        reject(
          new PgwardenError('PGW_PROXY_LISTEN', `proxy split_listen cannot bind ${host}:${port}: ${error.message}`, {
            context: { key: 'proxy.split_listen', hint: 'choose a free port or stop what listens there' },
            cause: error,
          }),
        ),
      );
      server.listen(port, host, () => resolve());
    });
    const bound = server.address();
    return typeof bound === 'object' && bound !== null ? bound.port : port;
  }

  /**
   * Routes changed. When the lock holder changed, server connections lent as primary to any other member are cut
   * (their clients get an error and reconnect) and idle ones closed, as the primary port does; connections to members
   * that left the cluster are cut always.
   */
  onRoutesChanged(change: {
    primaryChanged: boolean;
    keepPrimary: string | undefined;
    knownMembers: ReadonlySet<string> | undefined;
  }): void {
    const { primaryChanged, keepPrimary, knownMembers } = change;
    const doomed = (role: string, member: string): boolean =>
      (primaryChanged && role === 'primary' && member !== keepPrimary) || (knownMembers !== undefined && !knownMembers.has(member));
    for (const session of this.#sessions) {
      const assigned = session.assigned;
      if (assigned === undefined) continue;
      const member = assigned.connection.target.member;
      if (doomed(assigned.role, member))
        session.abort({ severity: 'FATAL', code: '57P01', message: `pgwarden: ${member} is no longer the primary; reconnect` });
    }
    this.pool.closeIdle((key) => {
      const [role, member] = key.split('|');
      return doomed(role!, member!);
    });
  }

  async stop(): Promise<void> {
    this.#stopping.abort();
    const server = this.#server;
    if (server !== undefined) await new Promise<void>((resolve) => server.close(() => resolve()));
    for (const session of [...this.#sessions])
      session.abort({ severity: 'FATAL', code: '57P01', message: 'pgwarden proxy is shutting down' });
    this.pool.closeAll();
  }

  #accept(socket: Socket): void {
    socket.setNoDelay(true);
    socket.on('error', () => undefined);
    const session = new ClientSession(this, socket);
    this.#sessions.add(session);
    void session.run().finally(() => {
      this.#sessions.delete(session);
      this.#byKey.delete(session.cancelKey);
    });
  }

  // --- what sessions ask the listener ---

  get log(): Log {
    return this.#options.log;
  }

  get settings(): SplitSettings {
    return this.#options.settings();
  }

  register(session: ClientSession): void {
    this.#byKey.set(session.cancelKey, session);
  }

  /** A CancelRequest: passed to the server the session's transaction runs on, with that server's own key. */
  cancel(pid: number, secret: number): void {
    const session = this.#byKey.get(`${pid}:${secret}`);
    const connection = session?.assigned?.connection;
    const key = connection?.backendKey;
    if (connection === undefined || key === undefined) return;
    const socket = connect({ host: connection.target.host, port: connection.target.port });
    socket.on('error', () => undefined);
    socket.setTimeout(5000, () => socket.destroy());
    socket.once('connect', () => socket.end(cancelRequest(key.pid, key.secret)));
  }

  #loadAuthFile(): ReturnType<typeof parseAuthFile>['entries'] {
    const path = this.settings.auth_file;
    let stat;
    try {
      stat = statSync(path);
    } catch (error) {
      throw new PgwardenError('PGW_CONFIG_UNREADABLE', `proxy.split.auth_file ${path} cannot be read: ${describeError(error)}`, {
        context: { path, key: 'proxy.split.auth_file' },
      });
    }
    const cached = this.#authFile;
    if (cached !== undefined && cached.mtimeMs === stat.mtimeMs && cached.size === stat.size) return cached.entries;
    const parsed = parseAuthFile(readFileSync(path, 'utf8'));
    for (const problem of parsed.problems) this.log.warn({ path, problem }, 'auth_file: line ignored');
    this.#authFile = { mtimeMs: stat.mtimeMs, size: stat.size, entries: parsed.entries };
    return parsed.entries;
  }

  /** The user's entry, re-reading the auth file when it changed; undefined for an unknown user. */
  async authEntry(user: string, database: string): Promise<AuthEntry | undefined> {
    let entries;
    try {
      entries = this.#loadAuthFile();
    } catch (error) {
      this.log.error({ error: describeError(error) }, 'auth_file unreadable: logins fail until it is fixed');
      return undefined;
    }
    const source = entries.get(user);
    if (source === undefined) return this.settings.auth_user === undefined ? undefined : this.#queryAuth(user, database, entries);
    let prepared = this.#prepared.get(user);
    if (prepared === undefined || prepared.source !== source) {
      prepared = { source, entry: prepareEntry(source) };
      this.#prepared.set(user, prepared);
    }
    return prepared.entry;
  }

  /**
   * PgBouncer's auth_query: a user missing from the auth file is looked up on the primary, in the client's database,
   * over a pooled connection of auth_user (whose plain password is in the auth file). Only a SCRAM-SHA-256 secret is
   * usable; anything else (no row, NULL, md5) is an unknown user. Secrets are never logged.
   */
  async #queryAuth(user: string, database: string, entries: ReturnType<typeof parseAuthFile>['entries']): Promise<AuthEntry | undefined> {
    const settings = this.settings;
    const authUser = settings.auth_user!;
    const own = entries.get(authUser);
    if (own?.kind !== 'password') {
      this.log.error(
        { auth_user: authUser },
        'proxy.split.auth_user needs a plain password line in auth_file (the proxy logs in as it on its own); auth_query logins fail',
      );
      return undefined;
    }
    const text = (settings.auth_query ?? DEFAULT_AUTH_QUERY).replace(/\$1\b/g, () => dollarQuoted(user));
    let lent: { connection: ServerConnection; key: string } | undefined;
    try {
      lent = await this.acquire('primary', () => this.primaryBackend(), {
        user: authUser,
        database,
        credential: { kind: 'password', password: own.password },
      });
      const rows = await lent.connection.query(text, settings.connect_timeout * 1000);
      const secret = rows[0]?.[1];
      const parsed = secret === null || secret === undefined ? undefined : parseScramSecret(secret);
      if (parsed === undefined && rows.length > 0)
        this.log.warn({ user }, 'auth_query: the user has no SCRAM-SHA-256 secret (md5 or none); login refused');
      return parsed === undefined ? undefined : { kind: 'scram', secret: parsed };
    } catch (error) {
      this.log.error({ user, auth_user: authUser, error: describeError(error) }, 'auth_query failed; login refused');
      return undefined;
    } finally {
      if (lent !== undefined) this.release(lent.key, lent.connection);
    }
  }

  /** Lends a server connection of the primary or a chosen replica; waits for a primary during a failover. */
  async acquire(
    role: Role,
    backendFor: () => Backend | undefined,
    login: ServerLogin,
  ): Promise<{ connection: ServerConnection; key: string }> {
    const deadlineMs = this.#options.nowMs() + this.settings.query_wait_timeout * 1000;
    for (;;) {
      const backend = backendFor();
      if (backend !== undefined) {
        const key = this.#poolKey(role, backend, login);
        const remainingMs = Math.max(1, deadlineMs - this.#options.nowMs());
        return { connection: await this.pool.acquire(key, remainingMs), key };
      }
      if (this.#options.nowMs() >= deadlineMs || this.#stopping.signal.aborted)
        throw new ClientError({
          severity: 'FATAL',
          code: '08006',
          message: `pgwarden: no ${role} to route to within query_wait_timeout (${this.settings.query_wait_timeout} s)`,
        });
      await this.#options.routes.changed(deadlineMs, this.#stopping.signal);
    }
  }

  /**
   * The pool key of a server for a login, and the login its new connections are opened with. Startup parameters other
   * than application_name are part of the key: a connection opened with them carries them exactly (options,
   * DateStyle...), and a client never gets another's. application_name is set per lend.
   */
  #poolKey(role: Role, backend: Backend, login: ServerLogin): string {
    const key = [
      role,
      backend.member,
      `${backend.host}:${backend.port}`,
      login.database,
      login.user,
      this.#parametersKey(login.parameters),
    ].join('|');
    const stored = this.#logins.get(key);
    if (stored?.login !== login || stored.backend !== backend) this.#logins.set(key, { backend, login });
    return key;
  }

  /**
   * An idle server connection of the primary or the given replica, lent at once, or undefined (none idle, or no
   * primary now): then acquire() opens one or waits. The common case of a transaction takes no promise.
   */
  lendIdle(role: Role, replica: Backend | undefined, login: ServerLogin): { connection: ServerConnection; key: string } | undefined {
    const backend = role === 'replica' ? replica : this.primaryBackend();
    if (backend === undefined) return undefined;
    const key = this.#poolKey(role, backend, login);
    const connection = this.pool.lendIdle(key);
    return connection === undefined ? undefined : { connection, key };
  }

  #parametersKey(parameters: Readonly<Record<string, string>> | undefined): string {
    if (parameters === undefined) return '';
    let key = this.#parameterKeys.get(parameters);
    if (key === undefined) {
      key = parametersKey(parameters);
      this.#parameterKeys.set(parameters, key);
    }
    return key;
  }

  release(key: string, connection: ServerConnection): void {
    connection.onMessage = undefined;
    // Paused for a slow client that has since had all it asked for: the next borrower must be read.
    connection.resume();
    if (connection.status !== 'I') connection.close();
    else this.pool.release(key, connection);
  }

  primaryBackend(): Backend | undefined {
    return this.#options.routes.primary();
  }

  #readInput(): Omit<Parameters<typeof pickReadTarget>[0], 'floor'> {
    const routes = this.#options.routes;
    const replicas = routes.replicas();
    const load = new Map<string, number>();
    for (const backend of replicas) load.set(backend.member, 0);
    for (const [key, busy] of this.pool.busyByKey()) {
      const member = key.slice(key.indexOf('|') + 1, key.indexOf('|', key.indexOf('|') + 1));
      const known = load.get(member);
      if (known !== undefined) load.set(member, known + busy);
    }
    return { replicas, positions: routes.positions(), nowMs: this.#options.nowMs(), load, rotation: this.#rotation++ };
  }

  /** A replica for a read-only transaction given the session's floor, or undefined (then the primary). */
  readBackend(floor: number | undefined): Backend | undefined {
    const target = pickReadTarget({ ...this.#readInput(), floor });
    return target.kind === 'replica' ? target.backend : undefined;
  }

  /** The replica to ask whether it has replayed a floor the monitor has not seen it reach yet. */
  closestReplica(): Backend | undefined {
    return closestReplica(this.#readInput());
  }

  classify(sql: string, database: string): ReturnType<SqlClassifier['classifyStatement']> {
    return this.#classifier!.classifyStatement(sql, this.#functions(database));
  }

  #loadedVolatility = new Map<string, FunctionVolatility>();

  #functions(database: string): FunctionVolatility {
    // Until pg_proc is read every function counts as volatile: such statements go to the primary.
    return this.#loadedVolatility.get(database) ?? { lookup: () => undefined };
  }

  /** Reads pg_proc once per database over a primary connection (new functions later count as volatile). */
  async loadFunctions(database: string, connection: ServerConnection): Promise<void> {
    if (this.#volatility.has(database)) return;
    const loading = connection
      .query(
        'SELECT n.nspname, p.proname, p.provolatile FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace',
        10_000,
      )
      .then((rows) =>
        functionVolatilityFromPgProc(
          rows.map(([schema, name, provolatile]) => ({ schema: schema ?? '', name: name ?? '', provolatile: provolatile ?? 'v' })),
        ),
      );
    this.#volatility.set(database, loading);
    try {
      this.#loadedVolatility.set(database, await loading);
    } catch (error) {
      this.#volatility.delete(database);
      this.log.warn({ database, error: describeError(error) }, 'cannot read pg_proc: statements calling functions go to the primary');
    }
  }
}

class ClientSession {
  readonly #listener: SplitListener;
  #socket: Socket;
  #inbox: Inbox;
  #encrypted = false;
  readonly #pid = randomInt(1, 2 ** 31 - 1);
  readonly #secret = randomInt(0, 2 ** 31 - 1);
  #user = '';
  #database = '';
  #credential: ServerCredential | undefined;
  #parameters: Readonly<Record<string, string>> = {};
  #applicationName = DEFAULT_APPLICATION_NAME;
  #tracker: TransactionTracker | undefined;
  assigned: Assigned | undefined;
  /** The last ReadyForQuery status the client was given. */
  #status: 'I' | 'T' | 'E' = 'I';
  #floor: number | undefined;
  #releasing: Promise<void> | undefined;
  #closed = false;

  constructor(listener: SplitListener, socket: Socket) {
    this.#listener = listener;
    this.#socket = socket;
    this.#inbox = new Inbox(socket);
  }

  get cancelKey(): string {
    return `${this.#pid}:${this.#secret}`;
  }

  async run(): Promise<void> {
    try {
      const started = await this.#login();
      if (!started) return;
      for (;;) {
        const item = await this.#inbox.next();
        if (item === undefined || item.type === 'X') break;
        await this.#handle(item);
        if (this.#closed) break;
      }
    } catch (error) {
      if (error instanceof ClientError) this.abort(error.fields);
      else {
        this.#listener.log.warn({ user: this.#user, error: describeError(error) }, 'split listener: client session ended on an error');
        this.abort({ severity: 'FATAL', code: '08P01', message: `pgwarden: ${describeError(error)}` });
      }
    } finally {
      this.#close();
    }
  }

  /** Ends the session with an error the client sees. */
  abort(fields: ErrorFields): void {
    if (this.#closed) return;
    if (this.#socket.writable) this.#socket.end(errorResponse(fields));
    this.#close();
  }

  #close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#wakeReadyWaiters();
    const assigned = this.assigned;
    this.assigned = undefined;
    if (assigned !== undefined) {
      assigned.detachClose();
      // The end of the last transaction may still be reading the floor on this connection: settle it after that.
      const releasing = this.#releasing;
      if (releasing !== undefined) void releasing.then(() => this.#settle(assigned));
      else this.#settle(assigned);
    }
    this.#socket.destroy();
  }

  /** What happens to the server connection of a session that ended. */
  #settle(assigned: Assigned): void {
    const { connection, key } = assigned;
    if (this.#sessionMode && assigned.pending === 0 && connection.status === 'I' && !connection.closed) {
      // Session pooling: the connection goes back once DISCARD ALL has dropped what the session left on it
      // (PgBouncer's server_reset_query); if that fails it is closed.
      connection.onMessage = undefined;
      connection.query('DISCARD ALL', this.#listener.settings.connect_timeout * 1000).then(
        () => this.#listener.release(key, connection),
        () => {
          connection.close();
          this.#listener.release(key, connection);
        },
      );
    } else {
      // A session's server connection that may hold its state (pinned, or mid-transaction) is not lent to anyone else.
      if (assigned.pending > 0 || (this.#tracker?.pinnedBy.length ?? 0) > 0 || this.#sessionMode) connection.close();
      this.#listener.release(key, connection);
    }
  }

  #corked = false;
  #awaitingDrain = false;

  #send(bytes: Buffer): void {
    if (this.#closed) return;
    // The messages of one server read leave in one segment (a result is T, D..., C, Z: not four packets).
    if (!this.#corked) {
      this.#corked = true;
      this.#socket.cork();
      process.nextTick(() => {
        this.#corked = false;
        this.#socket.uncork();
      });
    }
    // A slow client slows its server down (one drain listener at a time, however many writes filled the buffer).
    if (!this.#socket.write(bytes) && !this.#awaitingDrain) {
      const connection = this.assigned?.connection;
      if (connection !== undefined) {
        this.#awaitingDrain = true;
        connection.pause();
        this.#socket.once('drain', () => {
          this.#awaitingDrain = false;
          connection.resume();
        });
      }
    }
  }

  async #login(): Promise<boolean> {
    const timer = setTimeout(
      () => this.abort({ severity: 'FATAL', code: '08P01', message: 'pgwarden: login timed out' }),
      LOGIN_TIMEOUT_MS,
    );
    try {
      return await this.#loginSteps();
    } finally {
      clearTimeout(timer);
    }
  }

  /** Answers an SSLRequest with S and goes on over TLS (the client sends nothing more until it has our answer). */
  #startTls(context: SecureContext): void {
    if (this.#inbox.buffered > 0)
      throw new ClientError({ severity: 'FATAL', code: '08P01', message: 'pgwarden: data sent before the TLS handshake' });
    this.#socket.write('S');
    this.#inbox.detach();
    const secure = new TLSSocket(this.#socket, { isServer: true, secureContext: context });
    secure.on('error', () => undefined);
    this.#socket = secure;
    this.#inbox = new Inbox(secure);
    this.#encrypted = true;
  }

  async #loginSteps(): Promise<boolean> {
    let parameters: Map<string, string> | undefined;
    for (let attempt = 0; attempt < 3 && parameters === undefined; attempt++) {
      const first = await this.#inbox.startup();
      if (first === undefined) return false;
      const code = first.readInt32BE(4);
      if (first.length === 8 && code === SSL_REQUEST && this.#listener.tls !== undefined && !this.#encrypted) {
        this.#startTls(this.#listener.tls.context);
        continue;
      }
      if (first.length === 8 && (code === SSL_REQUEST || code === GSSENC_REQUEST)) {
        this.#socket.write('N'); // no TLS here (or no GSS encryption): the client goes on in plaintext or gives up
        continue;
      }
      if (first.length === 16 && code === CANCEL_REQUEST) {
        this.#listener.cancel(first.readInt32BE(8), first.readInt32BE(12));
        return false;
      }
      if (code >> 16 !== 3) throw new ClientError({ severity: 'FATAL', code: '0A000', message: 'unsupported frontend protocol' });
      parameters = new Map();
      let offset = 8;
      for (;;) {
        const keyEnd = first.indexOf(0, offset);
        if (keyEnd === -1 || keyEnd === offset) break;
        const valueEnd = first.indexOf(0, keyEnd + 1);
        if (valueEnd === -1) break;
        parameters.set(first.toString('utf8', offset, keyEnd), first.toString('utf8', keyEnd + 1, valueEnd));
        offset = valueEnd + 1;
      }
    }
    if (parameters === undefined) return false;
    if (this.#listener.tls?.required === true && !this.#encrypted)
      throw new ClientError({
        severity: 'FATAL',
        code: '28000',
        message: 'pgwarden: SSL required (proxy.split.client_tls_sslmode: require); connect with sslmode=require',
      });
    const user = parameters.get('user') ?? '';
    if (user === '')
      throw new ClientError({ severity: 'FATAL', code: '28000', message: 'no PostgreSQL user name specified in startup packet' });
    this.#user = user;
    this.#database = parameters.get('database') || user;
    if (parameters.has('replication'))
      throw new ClientError({
        severity: 'FATAL',
        code: '08P01',
        message: 'pgwarden: the split listener does not serve replication connections',
      });
    const carried: Record<string, string> = {};
    for (const [name, value] of parameters)
      if (name !== 'user' && name !== 'database' && name !== 'application_name') carried[name] = value;
    this.#parameters = carried;
    this.#applicationName = parameters.get('application_name') || DEFAULT_APPLICATION_NAME;
    const settings = this.#listener.settings;
    if (this.#listener.clientCount > settings.max_client_conn)
      throw new ClientError({
        severity: 'FATAL',
        code: '53300',
        message: `pgwarden: too many clients already (max_client_conn ${settings.max_client_conn})`,
      });
    await this.#authenticate();
    // One primary connection at login: it checks the server accepts this user and database, and gives the parameters.
    const { connection, key } = await this.#acquireForLogin();
    let kept = false;
    try {
      await this.#listener.loadFunctions(this.#database, connection);
      for (const [name, value] of connection.parameters)
        this.#send(parameterStatus(name, name === 'application_name' ? this.#applicationName : value));
      if (this.#sessionMode) {
        // Session pooling: this primary connection is the client's until it leaves.
        await this.#carryApplicationName(connection);
        this.#adopt('primary', { connection, key });
        kept = true;
      }
    } finally {
      if (!kept) this.#listener.release(key, connection);
    }
    this.#tracker = new TransactionTracker((sql) => this.#listener.classify(sql, this.#database));
    this.#listener.register(this);
    this.#send(Buffer.concat([backendKeyData(this.#pid, this.#secret), readyForQuery('I')]));
    return true;
  }

  async #authenticate(): Promise<void> {
    const entry = await this.#listener.authEntry(this.#user, this.#database);
    const scram = new ScramServer(entry?.secret, this.#user);
    const failed = new ClientError({
      severity: 'FATAL',
      code: '28P01',
      message: `password authentication failed for user "${this.#user}"`,
    });
    this.#socket.write(authenticationSasl(['SCRAM-SHA-256']));
    try {
      const initial = await this.#inbox.next();
      if (initial?.type !== 'p') throw failed;
      const { mechanism, data } = decodeSaslInitialResponse(initial.body);
      if (mechanism !== 'SCRAM-SHA-256')
        throw new ClientError({ severity: 'FATAL', code: '28000', message: `pgwarden: SASL mechanism ${mechanism} is not supported` });
      this.#socket.write(authentication(AUTH_SASL_CONTINUE, Buffer.from(scram.first(data.toString('utf8')))));
      const final = await this.#inbox.next();
      if (final?.type !== 'p') throw failed;
      const serverFinal = scram.final(final.body.toString('utf8'));
      if (serverFinal === undefined || entry === undefined || scram.clientKey === undefined) {
        this.#listener.log.info({ user: this.#user }, 'split listener: password authentication failed');
        throw failed;
      }
      this.#credential =
        entry.kind === 'password'
          ? { kind: 'password', password: entry.password }
          : { kind: 'client-key', clientKey: scram.clientKey, secret: entry.secret };
      this.#socket.write(Buffer.concat([authentication(AUTH_SASL_FINAL, Buffer.from(serverFinal)), authentication(AUTH_OK)]));
    } catch (error) {
      if (error instanceof ScramError) throw new ClientError({ severity: 'FATAL', code: '08P01', message: `pgwarden: ${error.message}` });
      throw error;
    }
  }

  async #acquireForLogin(): Promise<{ connection: ServerConnection; key: string }> {
    try {
      return await this.#listener.acquire('primary', () => this.#listener.primaryBackend(), this.#serverLogin());
    } catch (error) {
      if (error instanceof ServerLoginError)
        throw new ClientError({ severity: 'FATAL', code: error.fields.C ?? '08006', message: error.fields.M ?? error.message });
      throw error;
    }
  }

  #serverLoginValue: ServerLogin | undefined;

  /** Built once, after authentication (its fields do not change afterwards): the listener keys its logins by it. */
  #serverLogin(): ServerLogin {
    this.#serverLoginValue ??= {
      user: this.#user,
      database: this.#database,
      credential: this.#credential!,
      parameters: this.#parameters,
      applicationName: this.#applicationName,
    };
    return this.#serverLoginValue;
  }

  /** A lent connection last used by a client of another application_name is given this client's (one round trip). */
  async #carryApplicationName(connection: ServerConnection): Promise<void> {
    if (connection.parameters.get('application_name') === this.#applicationName) return;
    await connection.query(`SET application_name = ${dollarQuoted(this.#applicationName)}`, this.#listener.settings.connect_timeout * 1000);
  }

  get #sessionMode(): boolean {
    return this.#listener.settings.pool_mode === 'session';
  }

  /**
   * Session pooling: everything goes to the session's own primary connection, in order. The classifier only tells
   * whether a transaction may have written (then its end reads the floor, for SHOW pgwarden.last_commit_lsn).
   */
  async #handleInSession(item: WireMessage): Promise<void> {
    const assigned = this.assigned;
    if (assigned === undefined) return;
    if (item.type === 'Q') {
      const sql = queryText(item.body);
      if (SHOW_LAST_COMMIT_LSN.test(sql) || MENTIONS_PGWARDEN_SETTING.test(sql)) {
        // Answered by the proxy: after what the server still owes the client, so that answers stay in order.
        while (!this.#closed && (assigned.pending > 0 || this.#releasing !== undefined)) {
          if (this.#releasing !== undefined) await this.#releasing;
          else await new Promise<void>((resolve) => this.#readyWaiters.push(resolve));
        }
        this.#send(SHOW_LAST_COMMIT_LSN.test(sql) ? this.#lastCommitAnswer() : this.#answerSetting(sql));
        return;
      }
      if (this.#listener.classify(sql, this.#database).route !== 'replica-ok') assigned.wrote = true;
    } else if (item.type === 'P') {
      if (this.#listener.classify(decodeParse(item.body).sql, this.#database).route !== 'replica-ok') assigned.wrote = true;
    } else if (item.type === 'F') assigned.wrote = true;
    this.#forward(assigned, item);
  }

  #lastCommitAnswer(): Buffer {
    return Buffer.concat([
      singleValueResult(
        'last_commit_lsn',
        this.#floor === undefined || !Number.isFinite(this.#floor) ? null : formatLsn(this.#floor),
        'SHOW',
      ),
      readyForQuery(this.#status),
    ]);
  }

  async #handle(item: WireMessage): Promise<void> {
    if (this.#sessionMode) {
      await this.#handleInSession(item);
      return;
    }
    let assigned: Assigned | undefined;
    for (;;) {
      if (this.#releasing !== undefined) await this.#releasing;
      assigned = this.assigned;
      // A statement pipelined behind an autocommit one waits for it to finish, then is routed on its own.
      const mustWait =
        assigned !== undefined &&
        this.#status === 'I' &&
        assigned.pending > 0 &&
        (this.#tracker?.pinnedBy.length ?? 0) === 0 &&
        (item.type === 'Q' || assigned.role === 'replica');
      if (!mustWait || this.#closed) break;
      await new Promise<void>((resolve) => this.#readyWaiters.push(resolve));
    }
    if (this.#closed) return;
    const tracker = this.#tracker!;
    if (item.type === 'Q') {
      const sql = queryText(item.body);
      if (SHOW_LAST_COMMIT_LSN.test(sql)) {
        this.#send(this.#lastCommitAnswer());
        return;
      }
      if (MENTIONS_PGWARDEN_SETTING.test(sql)) {
        this.#send(this.#answerSetting(sql));
        return;
      }
      const decision = tracker.onQuery(sql);
      if (decision.route === 'refuse') {
        this.#send(
          Buffer.concat([
            errorResponse({ severity: 'ERROR', code: '25006', message: `pgwarden: ${decision.reason}` }),
            readyForQuery(this.#status),
          ]),
        );
        return;
      }
      if (assigned === undefined) {
        const lending = decision.route === 'replica-ok' ? this.#assignRead() : this.#assign('primary', undefined);
        assigned = lending instanceof Promise ? await lending : lending;
        tracker.onForwarded(assigned.role);
      }
      if (decision.route === 'primary' && assigned.role === 'primary') assigned.wrote = true;
      this.#forward(assigned, item);
      return;
    }
    if (EXTENDED.has(item.type)) {
      if (assigned === undefined) {
        // Between transactions an extended-protocol batch is held until its Sync, then routed as a whole.
        this.#batch.push(item);
        this.#batchBytes += item.frame.length;
        if (item.type === 'S') await this.#routeBatch(true);
        // Flush or a function call waits for answers before any Sync; a huge batch is not held either: the primary.
        else if (item.type === 'H' || item.type === 'F' || this.#batchBytes > MAX_BATCH_BYTES) await this.#routeBatch(false);
        return;
      }
      if (item.type === 'P') {
        const { name, sql } = decodeParse(item.body);
        const decision = tracker.onParse(name, sql);
        if (decision.route !== 'replica-ok' && assigned.role === 'primary') assigned.wrote = true;
      } else if (item.type === 'F' && assigned.role === 'primary') assigned.wrote = true;
      this.#forward(assigned, item);
      return;
    }
    if (this.#batch.length > 0) await this.#routeBatch(false);
    assigned = this.assigned;
    // COPY data and the rest follow the transaction; with nothing running they have nowhere to go.
    if (assigned !== undefined) this.#forward(assigned, item);
  }

  readonly #batch: WireMessage[] = [];
  #batchBytes = 0;

  /**
   * Routes a held extended-protocol batch: to a replica when it ends in Sync, every Parse in it is replica-ok and
   * there is at least one (a Bind of a statement parsed in an earlier batch cannot be judged); else to the primary.
   */
  async #routeBatch(endsInSync: boolean): Promise<void> {
    const batch = this.#batch.splice(0);
    this.#batchBytes = 0;
    const tracker = this.#tracker!;
    let parses = 0;
    let replicaOk = endsInSync;
    for (const item of batch) {
      if (item.type === 'P') {
        parses++;
        const { name, sql } = decodeParse(item.body);
        if (tracker.onParse(name, sql).route !== 'replica-ok') replicaOk = false;
      } else if (item.type === 'F') replicaOk = false;
    }
    if (parses === 0) replicaOk = false;
    const assigned = replicaOk ? await this.#assignRead() : await this.#assign('primary', undefined);
    tracker.onForwarded(assigned.role);
    if (assigned.role === 'primary' && !replicaOk) assigned.wrote = true;
    for (const item of batch) this.#forward(assigned, item);
  }

  /**
   * `SET pgwarden.min_lsn = 'X/Y'` raises the session's floor to an LSN another session or process got from
   * `SHOW pgwarden.last_commit_lsn`: its later reads see that commit too. Other pgwarden.* statements are refused.
   */
  #answerSetting(sql: string): Buffer {
    const value = setMinLsnValue(sql);
    const lsn = value === undefined ? undefined : parseLsn(value);
    if (lsn === undefined) {
      const fields: ErrorFields =
        value === undefined
          ? {
              severity: 'ERROR',
              code: '42704',
              message: "pgwarden: only SHOW pgwarden.last_commit_lsn and SET pgwarden.min_lsn = 'X/Y' are known",
            }
          : {
              severity: 'ERROR',
              code: '22023',
              message: `pgwarden: invalid value for pgwarden.min_lsn: "${value}" (expected an LSN like 16/B374D848)`,
            };
      return Buffer.concat([errorResponse(fields), readyForQuery(this.#status)]);
    }
    this.#floor = Math.max(this.#floor ?? 0, lsn);
    return Buffer.concat([message('C', Buffer.from('SET\0')), readyForQuery(this.#status)]);
  }

  #forward(assigned: Assigned, item: WireMessage): void {
    if (ANSWERED_BY_READY.has(item.type)) assigned.pending++;
    assigned.connection.send(item.frame);
  }

  /**
   * A read-only transaction: a replica the monitor already saw past the session's floor; else the least busy
   * replica, asked for its replay position on the lent connection (again every 2 ms for up to causal_wait); else
   * the primary. A replica whose replay position is at or past the floor when asked shows the session's commits
   * to any later snapshot, and replay only moves forward.
   */
  #assignRead(): Assigned | Promise<Assigned> {
    const floor = this.#floor;
    const seen = this.#listener.readBackend(floor);
    if (seen !== undefined) return this.#assign('replica', seen);
    return this.#assignReadBelowFloor(floor);
  }

  async #assignReadBelowFloor(floor: number | undefined): Promise<Assigned> {
    const candidate = floor !== undefined && Number.isFinite(floor) ? this.#listener.closestReplica() : undefined;
    if (candidate !== undefined) {
      const lent = await this.#lend('replica', candidate);
      if (await this.#hasReplayed(lent.connection, floor!)) return this.#adopt('replica', lent);
      this.#listener.release(lent.key, lent.connection);
    }
    if (floor !== undefined) this.#listener.countBelowFloor();
    return this.#assign('primary', undefined);
  }

  async #hasReplayed(connection: ServerConnection, floor: number): Promise<boolean> {
    const settings = this.#listener.settings;
    const deadline = performance.now() + settings.causal_wait * 1000;
    try {
      for (;;) {
        const rows = await connection.query(REPLAY_QUERY, settings.connect_timeout * 1000);
        const lsn = Number(rows[0]?.[0]);
        if (Number.isFinite(lsn) && lsn >= floor) return true;
        if (performance.now() >= deadline || connection.closed) return false;
        await new Promise((resolve) => setTimeout(resolve, 2));
      }
    } catch {
      return false; // the replica did not answer: the primary serves this read
    }
  }

  /** Synchronous when an idle connection that already runs under this client's application_name is there. */
  #assign(role: Role, replica: Backend | undefined): Assigned | Promise<Assigned> {
    const idle = this.#listener.lendIdle(role, replica, this.#serverLogin());
    if (idle !== undefined && idle.connection.parameters.get('application_name') === this.#applicationName) return this.#adopt(role, idle);
    return (async () => this.#adopt(role, idle === undefined ? await this.#lend(role, replica) : await this.#carried(idle)))();
  }

  async #lend(role: Role, replica: Backend | undefined): Promise<{ connection: ServerConnection; key: string }> {
    let lent: { connection: ServerConnection; key: string };
    try {
      lent = await this.#listener.acquire(
        role,
        () => (role === 'replica' ? replica : this.#listener.primaryBackend()),
        this.#serverLogin(),
      );
    } catch (error) {
      if (error instanceof ServerLoginError)
        throw new ClientError({ severity: 'FATAL', code: error.fields.C ?? '08006', message: error.fields.M ?? error.message });
      if (error instanceof PgwardenError && error.code === 'PGW_PROXY_POOL_TIMEOUT')
        throw new ClientError({ severity: 'FATAL', code: '08P01', message: `pgwarden: query_wait_timeout: ${error.message}` });
      throw error;
    }
    return this.#carried(lent);
  }

  /** A lent connection given this client's application_name; closed and given back if that fails. */
  async #carried(lent: { connection: ServerConnection; key: string }): Promise<{ connection: ServerConnection; key: string }> {
    try {
      await this.#carryApplicationName(lent.connection);
    } catch (error) {
      lent.connection.close();
      this.#listener.release(lent.key, lent.connection);
      throw new ClientError({ severity: 'FATAL', code: '08006', message: `pgwarden: ${describeError(error)}` });
    }
    return lent;
  }

  #adopt(role: Role, lent: { connection: ServerConnection; key: string }): Assigned {
    const { connection, key } = lent;
    this.#listener.countTransaction(role);
    const assigned: Assigned = {
      connection,
      key,
      role,
      pending: 0,
      wrote: false,
      detachClose: connection.onClose(() => {
        if (this.assigned === assigned) {
          this.assigned = undefined;
          this.abort({ severity: 'FATAL', code: '08006', message: `pgwarden: the connection to ${connection.target.member} was lost` });
        }
      }),
    };
    connection.onMessage = (item) => this.#fromServer(assigned, item);
    this.assigned = assigned;
    return assigned;
  }

  #fromServer(assigned: Assigned, item: WireMessage): void {
    if (item.type !== 'Z') {
      this.#send(item.frame);
      return;
    }
    assigned.pending = Math.max(0, assigned.pending - 1);
    const status = item.body.toString('latin1', 0, 1) as 'I' | 'T' | 'E';
    const tracker = this.#tracker!;
    tracker.onReadyForQuery(status);
    if (status !== 'I' || assigned.pending > 0) {
      this.#status = status;
      this.#send(item.frame);
      this.#wakeReadyWaiters();
      return;
    }
    if (!(assigned.wrote && assigned.role === 'primary')) {
      // A transaction that did not write: nothing to wait for, the connection goes back at once.
      this.#complete(assigned, item.frame);
      this.#wakeReadyWaiters();
      return;
    }
    // End of a transaction that wrote: read the floor before the client learns of the commit, then give the connection back.
    this.#releasing = this.#finish(assigned, item.frame).finally(() => {
      this.#releasing = undefined;
      this.#wakeReadyWaiters();
    });
  }

  readonly #readyWaiters: Array<() => void> = [];

  #wakeReadyWaiters(): void {
    for (const wake of this.#readyWaiters.splice(0)) wake();
  }

  async #finish(assigned: Assigned, ready: Buffer): Promise<void> {
    const { connection } = assigned;
    if (assigned.wrote && assigned.role === 'primary') {
      try {
        const rows = await connection.query(FLOOR_QUERY, this.#listener.settings.connect_timeout * 1000);
        const lsn = Number(rows[0]?.[0]);
        if (Number.isFinite(lsn)) this.#floor = Math.max(this.#floor ?? 0, lsn);
        else this.#floor = Number.POSITIVE_INFINITY;
      } catch (error) {
        // Without the floor no replica can be proven current for this session: its reads stay on the primary.
        this.#floor = Number.POSITIVE_INFINITY;
        this.#listener.log.warn(
          { user: this.#user, error: describeError(error) },
          'split listener: cannot read the commit LSN; the session reads from the primary',
        );
      }
      assigned.wrote = false;
    }
    this.#complete(assigned, ready);
  }

  /** The end of a transaction: the connection goes back to the pool (unless pinned) and the client gets ReadyForQuery. */
  #complete(assigned: Assigned, ready: Buffer): void {
    const { connection } = assigned;
    this.#status = 'I';
    const pinned = (this.#tracker?.pinnedBy.length ?? 0) > 0 || this.#sessionMode;
    if (!pinned && this.assigned === assigned) {
      this.assigned = undefined;
      assigned.detachClose();
      this.#listener.release(assigned.key, connection);
    } else if (this.assigned === assigned) connection.onMessage = (item) => this.#fromServer(assigned, item);
    this.#send(ready);
  }
}
