// Watches the port of the backend the kernel routes to with plain TCP connects, so a crashed postmaster is noticed
// within one interval instead of after the leader key expires. Connect-and-close costs PostgreSQL one short-lived
// child that exits at EOF without logging; a kept-open connection would not do, since a child waiting for its
// startup packet outlives a SIGKILLed postmaster.
import { connect } from 'node:net';

export interface ProbeTarget {
  readonly host: string;
  readonly port: number;
}

const keyOf = (target: ProbeTarget): string => `${target.host}:${target.port}`;

export class BackendProbe {
  readonly #target: () => ProbeTarget | undefined;
  readonly #onChange: () => void;
  readonly #intervalMs: number;
  readonly #timeoutMs: number;
  #unreachable: string | undefined;
  #timer: NodeJS.Timeout | undefined;
  #isProbing = false;

  constructor(options: { target: () => ProbeTarget | undefined; onChange: () => void; intervalMs: number; timeoutMs: number }) {
    this.#target = options.target;
    this.#onChange = options.onChange;
    this.#intervalMs = options.intervalMs;
    this.#timeoutMs = options.timeoutMs;
  }

  start(): void {
    this.#timer = setInterval(() => void this.probeNow(), this.#intervalMs);
    this.#timer.unref();
  }

  stop(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
  }

  isUnreachable(target: ProbeTarget): boolean {
    return this.#unreachable === keyOf(target);
  }

  async probeNow(): Promise<void> {
    const target = this.#target();
    if (target === undefined || this.#isProbing) return;
    this.#isProbing = true;
    try {
      const isUp = await new Promise<boolean>((resolve) => {
        const socket = connect({ host: target.host, port: target.port });
        const done = (result: boolean): void => {
          clearTimeout(timer);
          socket.destroy();
          resolve(result);
        };
        const timer = setTimeout(() => done(false), this.#timeoutMs);
        socket.once('connect', () => done(true));
        socket.once('error', () => done(false));
      });
      const key = keyOf(target);
      const next = isUp ? (this.#unreachable === key ? undefined : this.#unreachable) : key;
      if (next !== this.#unreachable) {
        this.#unreachable = next;
        this.#onChange();
      }
    } finally {
      this.#isProbing = false;
    }
  }
}
