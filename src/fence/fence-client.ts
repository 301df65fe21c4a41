// The agent's side of the fence (the ExternalFence port): finds the fence process of this data dir on its Unix socket,
// starts one when none answers, and sends it the newest deadline. Only the last message matters, so a message that
// cannot be delivered now is kept until the connection is back, replaced by any newer one.
import { createConnection, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { ExternalFence } from '../core/ports.js';
import { describeError } from '../util/errors.js';
import type { Log } from '../util/log.js';
import { formatFenceMessage, type FenceMessage } from './fence-state.js';

export interface FenceClientOptions {
  readonly socketPath: string;
  /** Starts the fence process (detached: it must outlive the agent). */
  readonly startFence: () => void;
  /** The agent's clock (ms) to CLOCK_MONOTONIC ns, which the fence process shares. */
  readonly toMonotonicNs: (deadlineMs: number) => bigint;
  readonly log: Log;
}

const RECONNECT_DELAYS_MS = [0, 20, 50, 100, 200, 400, 800];
const RETRY_AFTER_FAILURE_MS = 30_000;

export class FenceClient implements ExternalFence {
  readonly #options: FenceClientOptions;
  #socket: Socket | undefined;
  #connecting: Promise<Socket | undefined> | undefined;
  #pending: FenceMessage | undefined;
  #isClosed = false;
  /** After a series of attempts found no fence, the next one waits this long (no process spawned per renewal). */
  #retryNotBeforeMs = 0;

  constructor(options: FenceClientOptions) {
    this.#options = options;
  }

  armUntil(deadlineMs: number, freezeAtMs?: number): void {
    const toNs = this.#options.toMonotonicNs;
    this.#send({ kind: 'arm', deadlineNs: toNs(deadlineMs), freezeAtNs: freezeAtMs === undefined ? undefined : toNs(freezeAtMs) });
  }

  isConnected(): boolean {
    return this.#socket !== undefined && !this.#socket.destroyed;
  }

  disarm(): void {
    this.#send({ kind: 'disarm' });
  }

  async close(options: { readonly exit: boolean }): Promise<void> {
    if (options.exit) {
      this.#pending = { kind: 'exit' };
      await this.#flush();
    }
    this.#isClosed = true;
    this.#socket?.end();
    this.#socket = undefined;
  }

  #send(message: FenceMessage): void {
    if (this.#isClosed) return;
    this.#pending = message;
    void this.#flush();
  }

  async #flush(): Promise<void> {
    const socket = this.#socket ?? (await this.#connect());
    const message = this.#pending;
    if (socket === undefined || message === undefined) return;
    this.#pending = undefined;
    socket.write(`${formatFenceMessage(message)}\n`);
  }

  #connect(): Promise<Socket | undefined> {
    this.#connecting ??= this.#connectWithRetries().finally(() => (this.#connecting = undefined));
    return this.#connecting;
  }

  async #connectWithRetries(): Promise<Socket | undefined> {
    if (performance.now() < this.#retryNotBeforeMs) return undefined;
    let lastError: unknown;
    for (const [attempt, delayMs] of RECONNECT_DELAYS_MS.entries()) {
      if (delayMs > 0) await new Promise((resolve) => setTimeout(resolve, delayMs));
      try {
        const socket = await this.#open();
        this.#socket = socket;
        socket.on('close', () => {
          if (this.#socket === socket) this.#socket = undefined;
        });
        return socket;
      } catch (error) {
        lastError = error;
        // Nothing answers: start the fence once per series of attempts, then give it time to listen.
        if (attempt === 0) this.#options.startFence();
      }
    }
    this.#retryNotBeforeMs = performance.now() + RETRY_AFTER_FAILURE_MS;
    this.#options.log.error(
      { socket: this.#options.socketPath, error: describeError(lastError), retry_in_ms: RETRY_AFTER_FAILURE_MS },
      'the fence process does not answer: a stalled agent could not be fenced; trying again later',
    );
    return undefined;
  }

  #open(): Promise<Socket> {
    return new Promise((resolve, reject) => {
      const socket = createConnection(this.#options.socketPath);
      socket.once('connect', () => {
        socket.off('error', reject);
        socket.on('error', () => undefined);
        resolve(socket);
      });
      socket.once('error', reject);
    });
  }
}
