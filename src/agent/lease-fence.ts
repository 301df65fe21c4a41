// Enforces the lock deadline even while the loop is stuck in a slow call: at the deadline a primary stops at once.
import { lockDeadlineOf } from '../core/lease.js';
import type { Clock } from '../core/ports.js';
import type { LockObservation } from '../core/types.js';

/**
 * The HA loop demotes at its deadline too, but an observe or renew that hangs (quorum loss makes etcd answer
 * only after seconds) could delay that decision past the moment another node may promote. This timer is the
 * independent backstop: armed with each successful renewal's deadline (judged by the TTL that renewal asked for),
 * it fires `onExpired` if no newer renewal re-armed it. It decides nothing else.
 */
export class LeaseFence {
  #cancel: (() => void) | undefined;
  readonly #clock: Clock;
  readonly #onExpired: () => void;

  constructor(clock: Clock, onExpired: () => void) {
    this.#clock = clock;
    this.#onExpired = onExpired;
  }

  /** Arms at the lock's deadline, or disarms when there is no lock. */
  follow(lock: LockObservation): void {
    const deadlineMs = lockDeadlineOf(lock);
    if (deadlineMs === undefined) {
      this.disarm();
      return;
    }
    this.arm(deadlineMs);
  }

  arm(deadlineMs: number): void {
    this.disarm();
    this.#cancel = this.#clock.setTimer(Math.max(0, deadlineMs - this.#clock.nowMs()), () => {
      this.#cancel = undefined;
      this.#onExpired();
    });
  }

  disarm(): void {
    this.#cancel?.();
    this.#cancel = undefined;
  }
}
