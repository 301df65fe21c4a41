// One connection from the proxy to a PostgreSQL server: startup and authentication (SCRAM, md5 or cleartext from a
// plain password; SCRAM from a client's proven key), then a message stream the split listener relays, and small
// queries of the proxy's own between transactions (the commit LSN, pg_proc).
import { createHash } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import { PgwardenError } from '../../util/errors.js';
import {
  AUTH_CLEARTEXT,
  AUTH_MD5,
  AUTH_OK,
  AUTH_SASL,
  AUTH_SASL_CONTINUE,
  AUTH_SASL_FINAL,
  decodeDataRow,
  decodeError,
  MessageReader,
  passwordMessage,
  query,
  readCString,
  saslInitialResponse,
  saslResponse,
  startupMessage,
  terminate,
  type WireMessage,
} from './pg-wire.js';
import { ScramClient, ScramError, type ServerCredential } from './scram.js';

export interface ServerTarget {
  readonly member: string;
  readonly host: string;
  readonly port: number;
}

export interface ServerLogin {
  readonly user: string;
  readonly database: string;
  readonly credential: ServerCredential;
  /** The client's other startup parameters (options, client_encoding, DateStyle, TimeZone...): the connection is opened with them. */
  readonly parameters?: Readonly<Record<string, string>>;
  /** application_name at login (a lend sets the borrower's own); default pgwarden-split. */
  readonly applicationName?: string;
}

/** A server's ErrorResponse during login, to pass on to the client as it came (SQLSTATE and message). */
export class ServerLoginError extends PgwardenError {
  constructor(
    readonly fields: Record<string, string>,
    target: ServerTarget,
  ) {
    super('PGW_PROXY_SERVER_LOGIN', `${target.member} refused the login: ${fields.M ?? 'unknown error'} (SQLSTATE ${fields.C ?? '?'})`, {
      context: { member: target.member },
    });
  }
}

let nextId = 1;

/** The application_name of a server connection whose client gave none (what pg_stat_activity shows for the proxy). */
export const DEFAULT_APPLICATION_NAME = 'pgwarden-split';

export class ServerConnection {
  readonly id = nextId++;
  readonly #socket: Socket;
  readonly #reader = new MessageReader();
  readonly parameters = new Map<string, string>();
  backendKey: { pid: number; secret: number } | undefined;
  /** The last ReadyForQuery status. */
  status: 'I' | 'T' | 'E' = 'I';
  #closed = false;
  /** Where relayed messages go while a client holds this connection. */
  onMessage: ((message: WireMessage) => void) | undefined;
  readonly #closeListeners = new Set<(error?: Error) => void>();

  private constructor(
    readonly target: ServerTarget,
    socket: Socket,
  ) {
    this.#socket = socket;
  }

  get closed(): boolean {
    return this.#closed;
  }

  static async open(target: ServerTarget, login: ServerLogin, timeoutMs: number): Promise<ServerConnection> {
    const socket = connect({ host: target.host, port: target.port });
    socket.setNoDelay(true);
    const connection = new ServerConnection(target, socket);
    const fail = (message: string, cause?: unknown): PgwardenError =>
      new PgwardenError(
        'PGW_PROXY_SERVER_LOGIN',
        `cannot log in to ${target.member} (${target.host}:${target.port}) as ${login.user}: ${message}`,
        {
          context: { member: target.member },
          ...(cause === undefined ? {} : { cause }),
        },
      );
    try {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(fail(`no answer within ${timeoutMs} ms`)), timeoutMs);
        const queue: WireMessage[] = [];
        let waiting: (() => void) | undefined;
        const next = async (): Promise<WireMessage> => {
          while (queue.length === 0) await new Promise<void>((wake) => (waiting = wake));
          return queue.shift()!;
        };
        socket.on('data', (chunk: Buffer) => {
          try {
            queue.push(...connection.#reader.push(chunk));
          } catch (error) {
            socket.destroy(error as Error);
          }
          waiting?.();
        });
        socket.once('error', (error) => reject(fail(error.message, error)));
        socket.once('close', () => reject(fail('the server closed the connection')));
        socket.once('connect', () => {
          socket.write(
            startupMessage({
              ...login.parameters,
              user: login.user,
              database: login.database,
              application_name: login.applicationName ?? DEFAULT_APPLICATION_NAME,
            }),
          );
          connection
            .#login(login, next)
            .then(resolve, reject)
            .finally(() => clearTimeout(timer));
        });
      });
    } catch (error) {
      socket.destroy();
      if (error instanceof ServerLoginError) throw error;
      throw error instanceof ScramError ? fail(error.message) : error;
    }
    socket.removeAllListeners('data');
    socket.removeAllListeners('error');
    socket.removeAllListeners('close');
    socket.on('data', (chunk: Buffer) => connection.#onData(chunk));
    socket.on('error', (error) => connection.#end(error));
    socket.on('close', () => connection.#end());
    return connection;
  }

  async #login(login: ServerLogin, next: () => Promise<WireMessage>): Promise<void> {
    let scram: ScramClient | undefined;
    for (;;) {
      const reply = await next();
      if (reply.type === 'E') throw new ServerLoginError(decodeError(reply.body), this.target);
      if (reply.type === 'S') {
        const [name, at] = readCString(reply.body, 0);
        this.parameters.set(name, readCString(reply.body, at)[0]);
      } else if (reply.type === 'K') {
        this.backendKey = { pid: reply.body.readInt32BE(0), secret: reply.body.readInt32BE(4) };
      } else if (reply.type === 'Z') {
        this.status = reply.body.toString('latin1', 0, 1) as 'I';
        return;
      } else if (reply.type === 'R') {
        const code = reply.body.readInt32BE(0);
        const credential = login.credential;
        if (code === AUTH_OK) continue;
        if (code === AUTH_SASL) {
          const mechanisms: string[] = [];
          for (let offset = 4; offset < reply.body.length && reply.body[offset] !== 0;) {
            const [name, after] = readCString(reply.body, offset);
            mechanisms.push(name);
            offset = after;
          }
          if (!mechanisms.includes('SCRAM-SHA-256')) throw new ScramError(`the server offers only ${mechanisms.join(', ')}`);
          scram = new ScramClient(credential);
          this.#socket.write(saslInitialResponse('SCRAM-SHA-256', Buffer.from(scram.clientFirst)));
        } else if (code === AUTH_SASL_CONTINUE && scram !== undefined) {
          this.#socket.write(saslResponse(Buffer.from(await scram.final(reply.body.toString('utf8', 4)))));
        } else if (code === AUTH_SASL_FINAL && scram !== undefined) {
          scram.verify(reply.body.toString('utf8', 4));
        } else if ((code === AUTH_CLEARTEXT || code === AUTH_MD5) && credential.kind === 'password') {
          const password =
            code === AUTH_CLEARTEXT
              ? credential.password
              : `md5${md5(Buffer.concat([Buffer.from(md5(Buffer.from(credential.password + login.user))), reply.body.subarray(4, 8)]))}`;
          this.#socket.write(passwordMessage(password));
        } else {
          throw new ScramError(
            code === AUTH_CLEARTEXT || code === AUTH_MD5
              ? 'the server asks for a password but the auth file holds only a SCRAM secret for this user; use scram-sha-256 in pg_hba'
              : `unsupported authentication request ${code}`,
          );
        }
      }
    }
  }

  #onData(chunk: Buffer): void {
    let messages: WireMessage[];
    try {
      messages = this.#reader.push(chunk);
    } catch (error) {
      this.#socket.destroy(error as Error);
      return;
    }
    for (const item of messages) {
      if (item.type === 'Z') this.status = item.body.toString('latin1', 0, 1) as 'I' | 'T' | 'E';
      else if (item.type === 'S') {
        // A reported setting changed (SET application_name, SET TimeZone...): what this connection runs with now.
        const [name, at] = readCString(item.body, 0);
        this.parameters.set(name, readCString(item.body, at)[0]);
      }
      this.onMessage?.(item);
    }
  }

  send(bytes: Buffer): boolean {
    return this.#closed ? false : this.#socket.write(bytes);
  }

  pause(): void {
    this.#socket.pause();
  }

  resume(): void {
    this.#socket.resume();
  }

  onceDrained(callback: () => void): void {
    this.#socket.once('drain', callback);
  }

  onClose(listener: (error?: Error) => void): () => void {
    this.#closeListeners.add(listener);
    return () => this.#closeListeners.delete(listener);
  }

  /** A query of the proxy's own on an idle connection nobody relays: its rows as text. */
  query(sql: string, timeoutMs: number): Promise<(string | null)[][]> {
    return new Promise((resolve, reject) => {
      const rows: (string | null)[][] = [];
      let error: Record<string, string> | undefined;
      const previous = this.onMessage;
      const done = (outcome: Error | undefined): void => {
        clearTimeout(timer);
        removeClose();
        this.onMessage = previous;
        if (outcome === undefined) resolve(rows);
        else reject(outcome);
      };
      const timer = setTimeout(() => {
        this.close();
        done(
          new PgwardenError('PGW_PG_TIMEOUT', `${this.target.member}: no answer to the proxy's query within ${timeoutMs} ms`, {
            context: { member: this.target.member },
          }),
        );
      }, timeoutMs);
      const removeClose = this.onClose(() =>
        done(
          new PgwardenError('PGW_PG_UNREACHABLE', `${this.target.member} closed the connection during the proxy's query`, {
            context: { member: this.target.member },
          }),
        ),
      );
      this.onMessage = (item) => {
        if (item.type === 'D') rows.push(decodeDataRow(item.body));
        else if (item.type === 'E') error = decodeError(item.body);
        else if (item.type === 'Z')
          done(
            error === undefined
              ? undefined
              : new PgwardenError('PGW_PG_QUERY_FAILED', `${this.target.member}: ${error.M ?? 'error'} (SQLSTATE ${error.C ?? '?'})`, {
                  context: { member: this.target.member },
                }),
          );
      };
      this.send(query(sql));
    });
  }

  close(): void {
    if (this.#closed) return;
    if (!this.#socket.destroyed && this.#socket.writable) this.#socket.end(terminate());
    this.#socket.destroy();
    this.#end();
  }

  #end(error?: Error): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#socket.destroy();
    for (const listener of [...this.#closeListeners]) listener(error);
  }
}

const md5 = (data: Buffer): string => createHash('md5').update(data).digest('hex');
