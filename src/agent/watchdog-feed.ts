// watchdog.mode automatic/required as Patroni drives a Linux watchdog: activated just before this member acquires the
// lock (under `required`, a failed activation vetoes the acquire), kept alive after every renewal, and disabled (magic
// close) once PostgreSQL no longer runs as a primary. pgwarden's fence process stops a stalled primary at the lock
// deadline on every host; the watchdog adds what it cannot: a host reset when the fence process itself is stuck.
import type { WatchdogDevice, WatchdogMode } from '../core/ports.js';
import type { LockObservation } from '../core/types.js';
import { describeError, isPgwardenError } from '../util/errors.js';
import type { Log } from '../util/log.js';

export interface WatchdogFeedOptions {
  readonly mode: WatchdogMode;
  readonly device: WatchdogDevice;
  /** watchdog.safety_margin: seconds between the watchdog firing and the lock expiring; -1: half the ttl (Patroni). */
  readonly safetyMarginSeconds: number;
  readonly log: Log;
}

/** Patroni's default watchdog.safety_margin. */
export const DEFAULT_SAFETY_MARGIN_SECONDS = 5;

export function watchdogTimeoutSeconds(ttlMs: number, safetyMarginSeconds: number): number {
  const ttlSeconds = Math.floor(ttlMs / 1000);
  return safetyMarginSeconds === -1 ? Math.floor(ttlSeconds / 2) : ttlSeconds - safetyMarginSeconds;
}

export class WatchdogFeed {
  readonly #options: WatchdogFeedOptions;
  /** The timeout the device runs with, while active. */
  #activeTimeout: number | undefined;
  #lastError: string | undefined;
  /** Whether the last cycle found this member leading outside maintenance mode (a renewal may activate it then). */
  #isWanted = false;
  /**
   * The timeout an activation failed for during this leadership. Renewals do not try the device again for it (most
   * hosts have none, and opening it each renewal was a leader's largest idle cost); the next acquire, a new ttl, or a
   * new leadership does.
   */
  #failedTimeout: number | undefined;

  constructor(options: WatchdogFeedOptions) {
    this.#options = options;
  }

  isActive(): boolean {
    return this.#activeTimeout !== undefined;
  }

  /** Before an acquire: activates the watchdog; the reason not to acquire under `required` when it cannot. */
  vetoAcquire(ttlMs: number): string | undefined {
    if (this.#options.mode === 'off') return undefined;
    const error = this.#activate(ttlMs);
    if (error === undefined || this.#options.mode === 'automatic') return undefined;
    return `watchdog.mode is required and ${error}`;
  }

  /**
   * Every lock outcome: a held lock keeps an active watchdog alive, and activates one for a running primary that kept
   * its lock (an agent restarted under it, maintenance mode ended).
   */
  onLock(lock: LockObservation): void {
    if (this.#options.mode === 'off' || lock.lastRenewSentAtMs === undefined) return;
    if (!this.isActive() && !this.#isWanted) return;
    if (!this.isActive() && this.#failedTimeout === watchdogTimeoutSeconds(lock.ttlMs, this.#options.safetyMarginSeconds)) return;
    if (this.#activate(lock.ttlMs) !== undefined) return;
    try {
      this.#options.device.keepalive();
    } catch (error) {
      this.#report(`keepalive of ${this.#options.device.path} failed: ${describeError(error)}`);
    }
  }

  /**
   * After every cycle: once this member neither holds the lock nor runs a primary (or the cluster is paused, as in
   * Patroni), nothing needs a reset any more.
   */
  afterCycle(isLeading: boolean): void {
    this.#isWanted = isLeading;
    if (isLeading) return;
    this.#failedTimeout = undefined;
    this.close();
  }

  close(): void {
    if (this.#activeTimeout === undefined) return;
    this.#activeTimeout = undefined;
    try {
      this.#options.device.close();
      this.#options.log.info({ device: this.#options.device.path }, 'watchdog disabled');
    } catch (error) {
      this.#report(`disabling ${this.#options.device.path} failed: ${describeError(error)}`);
    }
  }

  /** Undefined when the watchdog runs with the timeout this ttl asks for; otherwise why not. */
  #activate(ttlMs: number): string | undefined {
    const { device, safetyMarginSeconds, log } = this.#options;
    const timeout = watchdogTimeoutSeconds(ttlMs, safetyMarginSeconds);
    if (this.#activeTimeout === timeout) return undefined;
    this.#failedTimeout = timeout;
    if (timeout < 1)
      return this.#report(`the watchdog timeout (ttl ${ttlMs / 1000} s - safety_margin ${safetyMarginSeconds} s) is under 1 s`);
    // A new ttl: the timer is set again (the driver takes a timeout only when opened here).
    this.close();
    try {
      const accepted = device.open(timeout);
      this.#activeTimeout = timeout;
      this.#failedTimeout = undefined;
      this.#lastError = undefined;
      if (accepted !== timeout)
        log.warn(
          { device: device.path, requested_s: timeout, accepted_s: accepted },
          'the watchdog device runs with another timeout than requested',
        );
      else log.info({ device: device.path, timeout_s: timeout }, 'watchdog activated');
      return undefined;
    } catch (error) {
      // No device at all under `automatic` is the common case (most VMs and containers): said at info, once.
      return this.#report(describeError(error), isPgwardenError(error, 'PGW_WATCHDOG_ABSENT') ? 'info' : undefined);
    }
  }

  /** Logs a failure once until it changes (no line per renewal); returns it. */
  #report(error: string, levelUnderAutomatic: 'info' | 'warn' = 'warn'): string {
    if (error !== this.#lastError) {
      this.#lastError = error;
      const level = this.#options.mode === 'required' ? 'error' : levelUnderAutomatic;
      this.#options.log[level]({ device: this.#options.device.path, mode: this.#options.mode }, `watchdog: ${error}`);
    }
    return error;
  }
}
