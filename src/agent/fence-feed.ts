// What the agent hands its fence process: the lock deadline (from renewals and failsafe rounds) and the heartbeat's
// freeze instant, always together, since each arm replaces both.
import { lockDeadlineOf } from '../core/lease.js';
import type { ExternalFence } from '../core/ports.js';
import type { LockObservation } from '../core/types.js';
import type { FenceStatus } from './snapshot.js';

export class FenceFeed {
  readonly #fence: ExternalFence | undefined;
  #deadlineMs: number | undefined;
  /** From the last acknowledged beat (leader-heartbeat.ts), or undefined: nothing announced, nothing to freeze. */
  #beatFreezeAtMs: number | undefined;
  /** failsafe_mode: while confirmed rounds prove the lock, nothing freezes before the lock deadline they give. */
  #failsafeFreezeAtMs: number | undefined;

  constructor(fence: ExternalFence | undefined) {
    this.#fence = fence;
  }

  /**
   * Every lock outcome. A lost lock changes nothing in the fence (the old deadline stands and passes). Maintenance mode
   * keeps it armed, unlike Patroni's watchdog: an agent that dies while paused leaves a primary nobody would stop once
   * the cluster is resumed and another member takes the lock (the simulator found it). Only a clean stop under pause
   * disarms it.
   */
  onLock(lock: LockObservation): void {
    const deadlineMs = lockDeadlineOf(lock);
    if (deadlineMs === undefined) return;
    this.#deadlineMs = deadlineMs;
    // Every member that confirmed a failsafe round keeps off the lock, the silent-leader path included, for a ttl from
    // its receipt: that bound stands after the DCS is back, until the next acknowledged beat gives a fresher one.
    if (lock.lastFailsafeSentAtMs !== undefined) this.#failsafeFreezeAtMs = deadlineMs;
    this.#send();
  }

  /** A beat was acknowledged (or a term began, or the window ended): the freeze instant it proves. */
  onBeatProof(freezeAtMs: number | undefined): void {
    this.#beatFreezeAtMs = freezeAtMs;
    this.#failsafeFreezeAtMs = undefined;
    this.#send();
  }

  /** Whether the fence is connected (only then may a beat announce a window). */
  isConnected(): boolean {
    return this.#fence?.isConnected() === true;
  }

  /** What GET /metrics shows; undefined without a fence process. */
  status(nowMs: number): FenceStatus | undefined {
    if (this.#fence === undefined) return undefined;
    const freezeAtMs = this.#freezeAtMs();
    return {
      isConnected: this.#fence.isConnected(),
      killInMs: this.#deadlineMs === undefined ? undefined : this.#deadlineMs - nowMs,
      freezeInMs: freezeAtMs === undefined ? undefined : freezeAtMs - nowMs,
    };
  }

  #freezeAtMs(): number | undefined {
    return this.#beatFreezeAtMs === undefined ? undefined : Math.max(this.#beatFreezeAtMs, this.#failsafeFreezeAtMs ?? -Infinity);
  }

  #send(): void {
    if (this.#deadlineMs === undefined) return;
    this.#fence?.armUntil(this.#deadlineMs, this.#freezeAtMs());
  }
}
