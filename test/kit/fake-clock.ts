// A Clock whose time moves only when the test says so: sleeps, timers and deadlines fire as advance() passes them.
import type { Clock } from '../../src/core/ports.js';

interface Timer {
  readonly atMs: number;
  readonly seq: number;
  readonly fire: () => void;
}

export class FakeClock implements Clock {
  #nowMs: number;
  #timers: Timer[] = [];
  #seq = 0;

  constructor(startMs = 1_000_000) {
    this.#nowMs = startMs;
  }

  nowMs(): number {
    return this.#nowMs;
  }

  wallIso(): string {
    return new Date(Date.UTC(2026, 10, 24) + this.#nowMs).toISOString();
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
      if (signal?.aborted === true) {
        reject(signal.reason as Error);
        return;
      }
      const cancel = this.setTimer(ms, () => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      });
      const onAbort = (): void => {
        cancel();
        reject(signal?.reason as Error);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  deadline(ms: number, parent?: AbortSignal): AbortSignal {
    const controller = new AbortController();
    this.setTimer(ms, () => controller.abort(new DOMException('The operation timed out.', 'TimeoutError')));
    // AbortSignal.any holds the parent weakly: no listener piles up on a long-lived parent.
    return parent === undefined ? controller.signal : AbortSignal.any([controller.signal, parent]);
  }

  setTimer(ms: number, fire: () => void): () => void {
    const timer: Timer = { atMs: this.#nowMs + Math.max(0, ms), seq: this.#seq++, fire };
    this.#timers.push(timer);
    return () => {
      this.#timers = this.#timers.filter((candidate) => candidate !== timer);
    };
  }

  /** The time of the earliest pending timer, if any. */
  nextTimerAtMs(): number | undefined {
    return this.#timers.reduce<number | undefined>(
      (earliest, timer) => (earliest === undefined || timer.atMs < earliest ? timer.atMs : earliest),
      undefined,
    );
  }

  /** Moves time forward by `ms`, firing every timer due on the way in time order. */
  advance(ms: number): void {
    this.advanceTo(this.#nowMs + ms);
  }

  advanceTo(targetMs: number): void {
    for (;;) {
      const due = this.#timers.filter((timer) => timer.atMs <= targetMs).sort((a, b) => a.atMs - b.atMs || a.seq - b.seq)[0];
      if (due === undefined) break;
      this.#timers = this.#timers.filter((timer) => timer !== due);
      this.#nowMs = Math.max(this.#nowMs, due.atMs);
      due.fire();
    }
    this.#nowMs = Math.max(this.#nowMs, targetMs);
  }
}
