// One listener of the proxy: accepts TCP clients, holds them until a backend is chosen, then splices the two sockets.
// The client is not read while held, so nothing it sends piles up in our memory; piping applies backpressure both ways.
import { connect, createServer, type Server, type Socket } from 'node:net';
import { describeError } from '../util/errors.js';
import type { Log } from '../util/log.js';
import type { Backend } from './routing.js';
import { readRewrittenStartup } from './startup-packet.js';

/** How long a client routed to a rewriting backend may take to send its startup packet (PostgreSQL allows 60 s to log in). */
const STARTUP_TIMEOUT_MS = 30_000;

export type ListenerKind = 'primary' | 'replica';

export interface ForwarderEvents {
  accepted(kind: ListenerKind): void;
  held(kind: ListenerKind, isHeld: boolean): void;
  refused(kind: ListenerKind, reason: 'hold_timeout' | 'connect_failed' | 'shutdown'): void;
  forwarded(kind: ListenerKind, delta: 1 | -1, bytes?: { fromClient: number; toClient: number }): void;
}

export interface ForwarderOptions {
  readonly kind: ListenerKind;
  readonly host: string;
  readonly port: number;
  /** A backend now, or after waiting until `deadlineMs` (monotonic); undefined when there is none by then. */
  readonly chooseBackend: (deadlineMs: number, signal: AbortSignal) => Promise<Backend | undefined>;
  readonly holdTimeoutMs: () => number;
  readonly connectTimeoutMs: () => number;
  readonly nowMs: () => number;
  readonly log: Log;
  readonly events: ForwarderEvents;
}

export class ProxiedConnection {
  backend: Backend | undefined;
  #backendSocket: Socket | undefined;
  #isClosed = false;
  readonly #abort = new AbortController();
  /** The connect to a backend in progress, cancelled (not the client) when a reroute dooms that backend. */
  attempt: AbortController | undefined;

  /** Forwarding to a backend (its connect succeeded); until then the client is only being held or connected. */
  get isAttached(): boolean {
    return this.#backendSocket !== undefined;
  }

  constructor(
    readonly id: number,
    readonly client: Socket,
  ) {}

  get signal(): AbortSignal {
    return this.#abort.signal;
  }

  get isClosed(): boolean {
    return this.#isClosed;
  }

  attach(backend: Backend, socket: Socket): void {
    this.backend = backend;
    this.#backendSocket = socket;
  }

  get bufferedBytes(): number {
    return this.client.writableLength + (this.#backendSocket?.writableLength ?? 0);
  }

  get bytes(): { fromClient: number; toClient: number } {
    return { fromClient: this.client.bytesRead, toClient: this.client.bytesWritten };
  }

  /** Closes both sides. `reset` sends RST to the backend so a node that lost the lock gets nothing more from us. */
  close(reset = false): boolean {
    if (this.#isClosed) return false;
    this.#isClosed = true;
    this.#abort.abort();
    const backendSocket = this.#backendSocket;
    if (backendSocket !== undefined && !backendSocket.destroyed) {
      if (reset) backendSocket.resetAndDestroy();
      else backendSocket.destroy();
    }
    if (!this.client.destroyed) this.client.destroy();
    return true;
  }
}

const sleep = (ms: number, signal: AbortSignal): Promise<void> =>
  new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener(
      'abort',
      () => {
        clearTimeout(timer);
        resolve();
      },
      { once: true },
    );
  });

function connectBackend(backend: Backend, timeoutMs: number, signal: AbortSignal): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: backend.host, port: backend.port, noDelay: true, allowHalfOpen: true });
    const fail = (error: Error): void => {
      cleanup();
      socket.destroy();
      reject(error);
    };
    const onTimeout = (): void =>
      fail(new Error(`connect to ${backend.member} (${backend.host}:${backend.port}) timed out after ${timeoutMs} ms`));
    const onAbort = (): void => fail(new Error('client went away'));
    const timer = setTimeout(onTimeout, timeoutMs);
    const cleanup = (): void => {
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      socket.removeListener('error', fail);
    };
    signal.addEventListener('abort', onAbort, { once: true });
    socket.once('error', fail);
    socket.once('connect', () => {
      cleanup();
      resolve(socket);
    });
  });
}

export class Forwarder {
  readonly #options: ForwarderOptions;
  readonly #server: Server;
  readonly connections = new Set<ProxiedConnection>();
  #nextId = 1;

  constructor(options: ForwarderOptions) {
    this.#options = options;
    this.#server = createServer({ allowHalfOpen: true, pauseOnConnect: true, noDelay: true }, (client) => void this.#serve(client));
  }

  get kind(): ListenerKind {
    return this.#options.kind;
  }

  async listen(): Promise<number> {
    const { host, port } = this.#options;
    await new Promise<void>((resolve, reject) => {
      const onError = (error: Error): void =>
        reject(new Error(`proxy ${this.#options.kind} listener cannot bind ${host}:${port}: ${error.message}`));
      this.#server.once('error', onError);
      this.#server.listen({ host, port, backlog: 1024 }, () => {
        this.#server.removeListener('error', onError);
        resolve();
      });
    });
    this.#server.on('error', (error) =>
      this.#options.log.error({ listener: this.#options.kind, error: describeError(error) }, 'proxy listener error'),
    );
    const address = this.#server.address();
    return typeof address === 'object' && address !== null ? address.port : port;
  }

  /** Stops accepting; open connections stay (server.close's callback would wait for them, so it is not awaited). */
  async stopListening(): Promise<void> {
    if (this.#server.listening) this.#server.close();
  }

  /** Bytes queued in our sockets' write buffers: bounded by backpressure, whatever the clients do. */
  bufferedBytes(): number {
    let total = 0;
    for (const connection of this.connections) total += connection.bufferedBytes;
    return total;
  }

  /** Open (forwarded) connections per backend member. */
  countsByMember(): Map<string, number> {
    const counts = new Map<string, number>();
    for (const connection of this.connections) {
      const member = connection.backend?.member;
      if (member !== undefined) counts.set(member, (counts.get(member) ?? 0) + 1);
    }
    return counts;
  }

  /**
   * Closes the matching forwarded connections. A matching client still connecting is not cut: its connect to the doomed
   * backend is cancelled and it chooses again (held until there is a route), as a client arriving now would be.
   */
  closeWhere(predicate: (connection: ProxiedConnection) => boolean, reset: boolean): number {
    this.#routeEpoch++;
    let closed = 0;
    for (const connection of [...this.connections]) {
      if (!predicate(connection)) continue;
      if (!connection.isAttached) {
        connection.attempt?.abort();
        continue;
      }
      if (connection.close(reset)) closed++;
    }
    return closed;
  }

  /** Bumped by every reroute: a connect that began before one must choose again (it may lead to a doomed backend). */
  #routeEpoch = 0;

  async #serve(client: Socket): Promise<void> {
    const { kind, events, log } = this.#options;
    const connection = new ProxiedConnection(this.#nextId++, client);
    this.connections.add(connection);
    events.accepted(kind);
    let isForwarding = false;
    let heldSince: number | undefined;
    const finish = (): void => {
      if (!this.connections.delete(connection)) return;
      connection.close();
      if (heldSince !== undefined) events.held(kind, false);
      if (isForwarding) events.forwarded(kind, -1, connection.bytes);
    };
    client.on('error', finish);
    client.on('close', finish);
    const giveUpAtMs = this.#options.nowMs() + this.#options.holdTimeoutMs();
    let lastError = '';
    /** The client's startup packet, already read and rewritten (sent first to whichever backend it lands on). */
    let startup: Buffer | undefined;
    while (!connection.isClosed) {
      let backend = await this.#options.chooseBackend(this.#options.nowMs(), connection.signal);
      if (backend === undefined && !connection.isClosed) {
        if (heldSince === undefined) {
          heldSince = this.#options.nowMs();
          events.held(kind, true);
        }
        backend = await this.#options.chooseBackend(giveUpAtMs, connection.signal);
      }
      if (connection.isClosed) return;
      if (backend === undefined) {
        events.refused(kind, 'hold_timeout');
        log.warn(
          {
            listener: kind,
            client: client.remoteAddress ?? '',
            held_ms: Math.round(this.#options.nowMs() - (heldSince ?? giveUpAtMs)),
            last_error: lastError,
          },
          'no backend within hold_timeout: closing the client connection',
        );
        finish();
        return;
      }
      if (backend.sessionSettings !== undefined && startup === undefined) {
        // A session with settings of ours (a read-only fallback): its startup packet is read and rewritten before any
        // byte reaches the server. Kept for a retry on another backend, which gets the same (read-only) session.
        startup = await readRewrittenStartup(client, backend.sessionSettings, connection.signal, STARTUP_TIMEOUT_MS);
        if (startup === undefined) {
          log.warn(
            { listener: kind, client: client.remoteAddress ?? '', backend: backend.member },
            'no usable PostgreSQL startup packet from the client: closing it rather than giving it a session without the read-only setting',
          );
          finish();
          return;
        }
        if (connection.isClosed) return;
      }
      // Counted against the member from now on, so a burst of new clients spreads over replicas and a reroute sees it.
      connection.backend = backend;
      const epoch = this.#routeEpoch;
      const attempt = new AbortController();
      connection.attempt = attempt;
      try {
        const socket = await connectBackend(
          backend,
          this.#options.connectTimeoutMs(),
          AbortSignal.any([connection.signal, attempt.signal]),
        );
        connection.attempt = undefined;
        if (connection.isClosed) {
          socket.destroy();
          return;
        }
        if (this.#routeEpoch !== epoch) {
          // Rerouted while connecting: this backend may have lost the lock; choose again rather than forward to it.
          socket.destroy();
          connection.backend = undefined;
          continue;
        }
        connection.attach(backend, socket);
        if (heldSince !== undefined) {
          events.held(kind, false);
          heldSince = undefined;
        }
        isForwarding = true;
        events.forwarded(kind, 1);
        socket.on('error', finish);
        socket.on('close', finish);
        if (startup !== undefined) socket.write(startup);
        socket.pipe(client);
        client.pipe(socket);
        client.resume();
        return;
      } catch (error) {
        connection.attempt = undefined;
        lastError = describeError(error);
        connection.backend = undefined;
        if (connection.isClosed) return;
        if (this.#options.nowMs() >= giveUpAtMs) {
          events.refused(kind, 'connect_failed');
          log.warn(
            { listener: kind, backend: backend.member, error: lastError },
            'backend unreachable until hold_timeout: closing the client connection',
          );
          finish();
          return;
        }
        if (heldSince === undefined) {
          heldSince = this.#options.nowMs();
          events.held(kind, true);
        }
        // A primary that restarts or is being replaced refuses connections for a moment: retry within the hold.
        await sleep(50, connection.signal);
      }
    }
  }
}
