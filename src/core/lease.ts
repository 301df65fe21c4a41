// Lock-deadline arithmetic on the monotonic clock: when a lock holder must stop being primary.
import type { LockObservation } from './types.js';

/**
 * The margin between our own deadline and the earliest moment etcd can expire the lease. etcd starts the TTL when
 * it *receives* a keepalive, which is never earlier than when we *sent* it, so `sent + ttl` is a lower bound of the
 * server-side expiry and nobody else can acquire the key before it. The margin pays for the demote itself (an
 * immediate stop takes tens of milliseconds), timer jitter and a slow event loop; a quarter of the TTL, at most 1 s.
 */
export function safetyMarginMs(ttlMs: number): number {
  return Math.min(1000, ttlMs / 4);
}

export function lockDeadlineMs(lastRenewSentAtMs: number, ttlMs: number): number {
  return lastRenewSentAtMs + ttlMs - safetyMarginMs(ttlMs);
}

/**
 * The deadline of the lock as this agent last proved it: by a renewal, or (failsafe_mode, DCS unreachable) by a round
 * of POST /failsafe that every member confirmed, counted from when that round was sent. A confirmed round proves the
 * lock as well as a renewal would: each member that confirmed will not race for `ttl` after it received the round
 * (never earlier than it was sent), so nobody can take the lock and promote before `sent + ttl`. undefined: no lock.
 */
export function lockDeadlineOf(lock: LockObservation): number | undefined {
  if (lock.lastRenewSentAtMs === undefined) return undefined;
  const provedAtMs = Math.max(lock.lastRenewSentAtMs, lock.lastFailsafeSentAtMs ?? Number.NEGATIVE_INFINITY);
  return lockDeadlineMs(provedAtMs, lock.ttlMs);
}
