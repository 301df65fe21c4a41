// Enforces the lock deadline even while the loop is stuck in a slow call: at the deadline a primary stops at once.
import type { Clock } from '../core/ports.js';

/**
 * The HA loop demotes at its deadline too, but an observe or renew that hangs (quorum loss makes etcd answer
 * only after seconds) could delay that decision past the moment another node may promote. This timer is the
 * independent backstop: armed with each successful renewal's deadline, it fires `onExpired` if no newer
 * renewal re-armed it. It decides nothing else.
 */
export class LeaseFence {
  #timer: NodeJS.Timeout | undefined;
  readonly #clock: Clock;
  readonly #onExpired: () => void;

  constructor(clock: Clock, onExpired: () => void) {
    this.#clock = clock;
    this.#onExpired = onExpired;
  }

  arm(deadlineMs: number): void {
    this.disarm();
    const delayMs = Math.max(0, deadlineMs - this.#clock.nowMs());
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#onExpired();
    }, delayMs);
    // The fence must not keep a stopping agent alive.
    this.#timer.unref();
  }

  disarm(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}
