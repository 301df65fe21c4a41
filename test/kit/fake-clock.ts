// A Clock whose time moves only when the test says so.
import type { Clock } from '../../src/core/ports.js';

export class FakeClock implements Clock {
  #nowMs: number;
  #sleepers: { wakeAtMs: number; resolve: () => void }[] = [];

  constructor(startMs = 1_000_000) {
    this.#nowMs = startMs;
  }

  nowMs(): number {
    return this.#nowMs;
  }

  wallIso(): string {
    return new Date(Date.UTC(2026, 10, 24) + this.#nowMs).toISOString();
  }

  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => this.#sleepers.push({ wakeAtMs: this.#nowMs + ms, resolve }));
  }

  advance(ms: number): void {
    this.#nowMs += ms;
    const due = this.#sleepers.filter((sleeper) => sleeper.wakeAtMs <= this.#nowMs).sort((a, b) => a.wakeAtMs - b.wakeAtMs);
    this.#sleepers = this.#sleepers.filter((sleeper) => sleeper.wakeAtMs > this.#nowMs);
    for (const sleeper of due) sleeper.resolve();
  }
}
