// Lets the HA loop sleep until its wake time or until something (DCS watch, postmaster exit, API) nudges it.
import type { Clock } from '../core/ports.js';

export class Wakeup {
  readonly #clock: Clock;
  #pending = false;
  #resolve: (() => void) | undefined;
  #cancelTimer: (() => void) | undefined;

  constructor(clock: Clock) {
    this.#clock = clock;
  }

  /** Wakes the sleeper now, or makes the next wait return at once. */
  nudge(): void {
    if (this.#resolve !== undefined) {
      const resolve = this.#resolve;
      this.#clear();
      resolve();
    } else {
      this.#pending = true;
    }
  }

  wait(ms: number): Promise<void> {
    if (this.#pending || ms <= 0) {
      this.#pending = false;
      return Promise.resolve();
    }
    return new Promise<void>((resolve) => {
      this.#resolve = resolve;
      this.#cancelTimer = this.#clock.setTimer(ms, () => {
        this.#clear();
        resolve();
      });
    });
  }

  #clear(): void {
    this.#cancelTimer?.();
    this.#cancelTimer = undefined;
    this.#resolve = undefined;
  }
}
