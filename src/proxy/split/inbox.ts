// Pull-based reading of a client socket: the startup packet (untyped), then typed messages, with backpressure (the
// socket is paused while more than HIGH_WATER bytes wait to be handled).
import type { Socket } from 'node:net';
import { MAX_MESSAGE_BYTES, type WireMessage } from './pg-wire.js';

const HIGH_WATER = 1024 * 1024;
/** PostgreSQL's MAX_STARTUP_PACKET_LENGTH. */
const MAX_STARTUP_BYTES = 10_000;

export class Inbox {
  readonly #socket: Socket;
  #buffer: Buffer = Buffer.alloc(0);
  #ended = false;
  #wake: (() => void) | undefined;

  readonly #onData: (chunk: Buffer) => void;
  readonly #onEnd: () => void;

  constructor(socket: Socket) {
    this.#socket = socket;
    this.#onData = (chunk: Buffer) => {
      this.#buffer = this.#buffer.length === 0 ? chunk : Buffer.concat([this.#buffer, chunk]);
      if (this.#buffer.length > HIGH_WATER) socket.pause();
      this.#wake?.();
    };
    this.#onEnd = (): void => {
      this.#ended = true;
      this.#wake?.();
    };
    socket.on('data', this.#onData);
    socket.once('end', this.#onEnd);
    socket.once('close', this.#onEnd);
    socket.once('error', this.#onEnd);
  }

  /** Stops reading the socket (a TLS layer takes it over); bytes not taken yet would be lost, so there must be none. */
  detach(): void {
    this.#socket.off('data', this.#onData);
    this.#socket.off('end', this.#onEnd);
    this.#socket.off('close', this.#onEnd);
    this.#socket.off('error', this.#onEnd);
  }

  /** Bytes received and not taken yet. */
  get buffered(): number {
    return this.#buffer.length;
  }

  async #need(bytes: number): Promise<boolean> {
    while (this.#buffer.length < bytes) {
      if (this.#ended) return false;
      if (this.#socket.isPaused()) this.#socket.resume();
      await new Promise<void>((resolve) => (this.#wake = resolve));
      this.#wake = undefined;
    }
    return true;
  }

  #take(bytes: number): Buffer {
    const taken = this.#buffer.subarray(0, bytes);
    this.#buffer = this.#buffer.subarray(bytes);
    if (this.#buffer.length <= HIGH_WATER && this.#socket.isPaused() && !this.#ended) this.#socket.resume();
    return taken;
  }

  /** The untyped first message (StartupMessage, SSLRequest, CancelRequest); undefined at end or on garbage. */
  async startup(): Promise<Buffer | undefined> {
    if (!(await this.#need(4))) return undefined;
    const length = this.#buffer.readInt32BE(0);
    if (length < 8 || length > MAX_STARTUP_BYTES) return undefined;
    if (!(await this.#need(length))) return undefined;
    return this.#take(length);
  }

  /** The next typed message; undefined at end of stream; throws on a length no client sends. */
  async next(): Promise<WireMessage | undefined> {
    if (!(await this.#need(5))) return undefined;
    const length = this.#buffer.readInt32BE(1);
    if (length < 4 || length > MAX_MESSAGE_BYTES) throw new Error(`invalid message length ${length}`);
    if (!(await this.#need(1 + length))) return undefined;
    const frame = this.#take(1 + length);
    return { type: String.fromCharCode(frame[0]!), body: frame.subarray(5), frame };
  }
}
