// Timing rules for the dynamic config: minimums and loop_wait + 2*retry_timeout <= ttl, checked or adjusted (pure).
import type { DynamicConfig, SilenceDetection, Timing } from './types.js';

/** pgwarden's minimums (seconds): lower than Patroni's ttl >= 20 so that fast failover profiles are possible. */
export const TIMING_MINIMUMS = { ttl: 2, loop_wait: 1, retry_timeout: 1 } as const;
export const TIMING_DEFAULTS = { ttl: 30, loop_wait: 10, retry_timeout: 10, maximum_lag_on_failover: 1048576 } as const;

export interface TimingSeconds {
  readonly ttl: number;
  readonly loop_wait: number;
  readonly retry_timeout: number;
  /** The silent-leader detector (seconds); fence_window 0 turns it off. */
  readonly heartbeat_interval?: number | undefined;
  readonly fence_window?: number | undefined;
  readonly silence_margin?: number | undefined;
}

/**
 * Defaults of the silent-leader detector: a silent primary is replaced about fence_window + silence_margin + two
 * intervals after its last beat (about 2 s), whatever the ttl. An etcd leader election (about 1-2 s with etcd's default
 * election timeout) pauses writes for its duration but causes no failover: the replicas wait until etcd has answered
 * them promptly for four intervals while the beat stays unchanged, and a live leader beats within one.
 */
export const SILENCE_DEFAULTS = { heartbeat_interval: 0.25, fence_window: 1, silence_margin: 0.4 } as const;
const SILENCE_MINIMUMS = { heartbeat_interval: 0.05, fence_window: 0.5, silence_margin: 0.2 } as const;

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
  problems.push(...checkSilenceRules(timing));
  return problems;
}

/** The detector's rules: each value at least its minimum, several beats per fence window, and detection within the ttl. */
export function checkSilenceRules(timing: TimingSeconds): string[] {
  const problems: string[] = [];
  const interval = timing.heartbeat_interval ?? SILENCE_DEFAULTS.heartbeat_interval;
  const window = timing.fence_window ?? SILENCE_DEFAULTS.fence_window;
  const margin = timing.silence_margin ?? SILENCE_DEFAULTS.silence_margin;
  for (const [key, value] of [
    ['heartbeat_interval', interval],
    ['fence_window', window],
    ['silence_margin', margin],
  ] as const) {
    if (typeof value !== 'number' || !Number.isFinite(value)) problems.push(`${key}: must be a number of seconds (got ${String(value)})`);
  }
  if (problems.length > 0 || window === 0) return problems;
  if (window < SILENCE_MINIMUMS.fence_window)
    problems.push(`fence_window: must be 0 (detector off) or at least ${SILENCE_MINIMUMS.fence_window} (got ${window})`);
  if (interval < SILENCE_MINIMUMS.heartbeat_interval)
    problems.push(`heartbeat_interval: must be at least ${SILENCE_MINIMUMS.heartbeat_interval} (got ${interval})`);
  if (margin < SILENCE_MINIMUMS.silence_margin)
    problems.push(`silence_margin: must be at least ${SILENCE_MINIMUMS.silence_margin} (got ${margin}): it pays for the fence's own delay`);
  if (interval * 3 > window)
    problems.push(
      `heartbeat_interval: at least three beats must fit in fence_window (3*${interval} > ${window}); lower heartbeat_interval or raise fence_window`,
    );
  if (window + margin + 2 * interval >= timing.ttl)
    problems.push(
      `fence_window: fence_window + silence_margin + 2*heartbeat_interval (${window + margin + 2 * interval}) must be < ttl (${timing.ttl}), or the ttl replaces a silent leader first; lower them, raise ttl, or set fence_window: 0`,
    );
  return problems;
}

/** Runtime values: a detector whose settings break a rule is turned off (said), never run with unchecked values. */
function deriveSilence(timing: TimingSeconds): { silence: SilenceDetection | undefined; warnings: string[] } {
  if (timing.fence_window === 0) return { silence: undefined, warnings: [] };
  const problems = checkSilenceRules(timing);
  if (problems.length > 0)
    return { silence: undefined, warnings: [`silent-leader detector off (failover after ttl only): ${problems.join('; ')}`] };
  const intervalMs = (timing.heartbeat_interval ?? SILENCE_DEFAULTS.heartbeat_interval) * 1000;
  const fenceWindowMs = (timing.fence_window ?? SILENCE_DEFAULTS.fence_window) * 1000;
  const marginMs = (timing.silence_margin ?? SILENCE_DEFAULTS.silence_margin) * 1000;
  return {
    silence: {
      intervalMs,
      fenceWindowMs,
      marginMs,
      // etcd must have answered promptly for four beats (a live leader lands one within that after an election), and
      // the confirmation runs inside the window, starting at least one beat after the last one seen: it adds nothing
      // to the time a silent host is replaced in while etcd answers.
      confirmMs: Math.min(4 * intervalMs, fenceWindowMs + marginMs - intervalMs),
    },
    warnings: [],
  };
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

/** A number given as a string ("0.5", as edit-config --set writes it) is that number; anything else stays as it is. */
function numberOrRaw(value: unknown): number | undefined {
  if (value === undefined) return undefined;
  const number = typeof value === 'string' && value.trim() !== '' ? Number(value) : value;
  return number as number;
}

function finite(value: unknown, fallback: number): number {
  const number = typeof value === 'string' ? Number(value) : value;
  return typeof number === 'number' && Number.isFinite(number) ? number : fallback;
}

/** The timing keys of the dynamic config, each a number of seconds when present. */
export const TIMING_KEYS = ['ttl', 'loop_wait', 'retry_timeout', 'heartbeat_interval', 'fence_window', 'silence_margin'] as const;

/**
 * The one check of timing values from any source (config file, REST, edit-config, the DCS): each present key a finite
 * number, then checkTimingRules. Strings are refused: "abc" is nonsense, and "10" would be read differently by tools.
 */
export function checkTimingValues(config: Readonly<Record<string, unknown>> | undefined): string[] {
  const problems: string[] = [];
  for (const key of TIMING_KEYS) {
    const value = config?.[key];
    if (value !== undefined && (typeof value !== 'number' || !Number.isFinite(value)))
      problems.push(`${key}: must be a number of seconds (got ${typeof value === 'number' ? String(value) : JSON.stringify(value)})`);
  }
  if (problems.length > 0) return problems;
  const number = (key: (typeof TIMING_KEYS)[number]): number | undefined => config?.[key] as number | undefined;
  return checkTimingRules({
    ttl: number('ttl') ?? TIMING_DEFAULTS.ttl,
    loop_wait: number('loop_wait') ?? TIMING_DEFAULTS.loop_wait,
    retry_timeout: number('retry_timeout') ?? TIMING_DEFAULTS.retry_timeout,
    heartbeat_interval: number('heartbeat_interval'),
    fence_window: number('fence_window'),
    silence_margin: number('silence_margin'),
  });
}

/**
 * The one derivation of effective timing from a dynamic config (agent, proxy, API). A config that breaks a rule (only
 * possible in the DCS: every write path refuses it) is repaired as Patroni does, deterministically so that every
 * member runs the same timing, and the adjustment names each bad key, its value and the values used instead.
 * A missing config means Patroni's defaults.
 */
export function deriveTiming(config: Partial<Record<string, unknown>> | undefined): {
  readonly timing: Timing;
  readonly adjustments: readonly string[];
} {
  // The silent-leader keys are judged by deriveSilence (which says what it does); these are ttl, loop_wait, retry_timeout.
  const timingProblems = checkTimingValues({ ttl: config?.ttl, loop_wait: config?.loop_wait, retry_timeout: config?.retry_timeout });
  const { timing } = adjustTiming({
    ttl: finite(config?.ttl, TIMING_DEFAULTS.ttl),
    loop_wait: finite(config?.loop_wait, TIMING_DEFAULTS.loop_wait),
    retry_timeout: finite(config?.retry_timeout, TIMING_DEFAULTS.retry_timeout),
  });
  const silence = deriveSilence({
    ...timing,
    heartbeat_interval: numberOrRaw(config?.heartbeat_interval),
    fence_window: numberOrRaw(config?.fence_window),
    silence_margin: numberOrRaw(config?.silence_margin),
  });
  const adjustments: string[] = [];
  if (timingProblems.length > 0)
    adjustments.push(
      `invalid timing (${timingProblems.join('; ')}): using ttl=${timing.ttl} loop_wait=${timing.loop_wait} retry_timeout=${timing.retry_timeout} instead`,
    );
  adjustments.push(...silence.warnings);
  return {
    timing: {
      ttlMs: timing.ttl * 1000,
      loopWaitMs: timing.loop_wait * 1000,
      retryTimeoutMs: timing.retry_timeout * 1000,
      silence: silence.silence,
    },
    adjustments,
  };
}

export function timingFromDynamicConfig(config: DynamicConfig | undefined): Timing {
  return deriveTiming(config).timing;
}
