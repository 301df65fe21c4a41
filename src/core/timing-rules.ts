// Timing rules for the dynamic config: minimums and loop_wait + 2*retry_timeout <= ttl, checked or adjusted (pure).
import type { DynamicConfig, Timing } from './types.js';

/** pgwarden's minimums (seconds): lower than Patroni's ttl >= 20 so that fast failover profiles are possible. */
export const TIMING_MINIMUMS = { ttl: 2, loop_wait: 1, retry_timeout: 1 } as const;
export const TIMING_DEFAULTS = { ttl: 30, loop_wait: 10, retry_timeout: 10, maximum_lag_on_failover: 1048576 } as const;

export interface TimingSeconds {
  readonly ttl: number;
  readonly loop_wait: number;
  readonly retry_timeout: number;
}

/** Human-readable violations, each saying what to change; empty when the values are usable as they are. */
export function checkTimingRules(timing: TimingSeconds): string[] {
  const problems: string[] = [];
  for (const key of ['ttl', 'loop_wait', 'retry_timeout'] as const) {
    if (!(timing[key] >= TIMING_MINIMUMS[key])) problems.push(`${key}: must be at least ${TIMING_MINIMUMS[key]} (got ${timing[key]})`);
  }
  const total = timing.loop_wait + 2 * timing.retry_timeout;
  if (total > timing.ttl) {
    problems.push(
      `loop_wait: loop_wait + 2*retry_timeout (${timing.loop_wait} + 2*${timing.retry_timeout} = ${total}) must be <= ttl (${timing.ttl}); lower loop_wait or retry_timeout, or raise ttl`,
    );
  }
  return problems;
}

/**
 * Runtime values (from the DCS, which anyone can edit) are not rejected but repaired, as Patroni does: raise values
 * under the minimum, then shrink loop_wait, then retry_timeout, until the leader can renew in time.
 */
export function adjustTiming(timing: TimingSeconds): { timing: TimingSeconds; warnings: string[] } {
  const warnings: string[] = [];
  let ttl = Math.max(TIMING_MINIMUMS.ttl, finite(timing.ttl, TIMING_DEFAULTS.ttl));
  let loopWait = Math.max(TIMING_MINIMUMS.loop_wait, finite(timing.loop_wait, TIMING_DEFAULTS.loop_wait));
  let retryTimeout = Math.max(TIMING_MINIMUMS.retry_timeout, finite(timing.retry_timeout, TIMING_DEFAULTS.retry_timeout));
  if (ttl !== timing.ttl || loopWait !== timing.loop_wait || retryTimeout !== timing.retry_timeout)
    warnings.push('timing values below the minimum were raised');
  if (loopWait + 2 * retryTimeout > ttl) {
    loopWait = Math.max(TIMING_MINIMUMS.loop_wait, ttl - 2 * retryTimeout);
    if (loopWait + 2 * retryTimeout > ttl) retryTimeout = Math.max(TIMING_MINIMUMS.retry_timeout, Math.floor((ttl - loopWait) / 2));
    if (loopWait + 2 * retryTimeout > ttl) ttl = loopWait + 2 * retryTimeout;
    warnings.push(`loop_wait + 2*retry_timeout must be <= ttl: using ttl=${ttl} loop_wait=${loopWait} retry_timeout=${retryTimeout}`);
  }
  return { timing: { ttl, loop_wait: loopWait, retry_timeout: retryTimeout }, warnings };
}

function finite(value: unknown, fallback: number): number {
  const number = typeof value === 'string' ? Number(value) : value;
  return typeof number === 'number' && Number.isFinite(number) ? number : fallback;
}

/**
 * The one derivation of effective timing from a dynamic config (agent, proxy, API): validated, repaired as Patroni
 * does, with the repairs made said so that the caller can log them. A missing config means Patroni's defaults.
 */
export function deriveTiming(config: Partial<TimingSeconds> | undefined): {
  readonly timing: Timing;
  readonly adjustments: readonly string[];
} {
  const { timing, warnings } = adjustTiming({
    ttl: config?.ttl ?? TIMING_DEFAULTS.ttl,
    loop_wait: config?.loop_wait ?? TIMING_DEFAULTS.loop_wait,
    retry_timeout: config?.retry_timeout ?? TIMING_DEFAULTS.retry_timeout,
  });
  return {
    timing: { ttlMs: timing.ttl * 1000, loopWaitMs: timing.loop_wait * 1000, retryTimeoutMs: timing.retry_timeout * 1000 },
    adjustments: warnings,
  };
}

export function timingFromDynamicConfig(config: DynamicConfig | undefined): Timing {
  return deriveTiming(config).timing;
}
