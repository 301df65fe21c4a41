// Lock-deadline arithmetic on the monotonic clock: when a lock holder must stop being primary.

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
