// The one bounded wait: check a predicate until it holds or the deadline passes; a timeout is a PgwardenError that
// names what was awaited and the last state seen, so a failed test or chaos run shows why instead of "timed out".
import { describeError, PgwardenError, type ErrorContext } from './errors.js';
import { SystemClock } from './clock.js';

/** Not yet: undefined, null or false. Anything else ends the wait and is returned. */
export type Pending = undefined | null | false;

export interface WaitClock {
  nowMs(): number;
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

export interface WaitOptions {
  readonly timeoutMs: number;
  /** Pause between checks (default 100 ms); the first check runs at once and one more runs at the deadline. */
  readonly intervalMs?: number;
  /** What is awaited, as the error's subject: "a healthy cluster (1 leader, all others streaming)". */
  readonly describe: string;
  /** The state to report on timeout (read once, then); without it, the predicate's last value or error. */
  readonly lastState?: () => unknown;
  /** Aborting stops the wait: the promise rejects with the signal's reason. */
  readonly signal?: AbortSignal;
  /** Time source; the default is monotonic (performance.now). Tests pass a FakeClock. */
  readonly clock?: WaitClock;
  /** Merged into the timeout error's context (member, key, command...). */
  readonly context?: ErrorContext;
}

const systemClock = new SystemClock();

function render(value: unknown): string {
  if (typeof value === 'string') return value;
  try {
    return JSON.stringify(value, (_key, item: unknown) => (typeof item === 'bigint' ? item.toString() : item)) ?? String(value);
  } catch {
    return String(value);
  }
}

/**
 * Resolves with the predicate's first value that is not Pending. A predicate that throws counts as not yet (the
 * error is kept for the report). A check still running at the deadline is not awaited further: the wait is bounded
 * even when the predicate's own I/O is not.
 */
export async function waitUntil<T>(predicate: () => T | Promise<T>, options: WaitOptions): Promise<Exclude<T, Pending>> {
  const clock = options.clock ?? systemClock;
  const intervalMs = options.intervalMs ?? 100;
  const startedAt = clock.nowMs();
  const deadlineAt = startedAt + options.timeoutMs;
  let checks = 0;
  let last: { readonly kind: 'value'; readonly value: unknown } | { readonly kind: 'error'; readonly error: unknown } | undefined;
  for (;;) {
    options.signal?.throwIfAborted();
    checks++;
    const remainingMs = deadlineAt - clock.nowMs();
    const outcome = await settleWithin(predicate, remainingMs, clock, options.signal);
    if (outcome.kind === 'value' && outcome.value !== undefined && outcome.value !== null && outcome.value !== false)
      return outcome.value as Exclude<T, Pending>;
    if (outcome.kind !== 'late') last = outcome;
    const now = clock.nowMs();
    if (now >= deadlineAt) break;
    await clock.sleep(Math.min(intervalMs, deadlineAt - now), options.signal).catch((error: unknown) => {
      // A timer aborted by the signal rejects with a generic AbortError: report the caller's reason instead.
      options.signal?.throwIfAborted();
      throw error;
    });
  }
  options.signal?.throwIfAborted();
  const lastState = describeLast(options.lastState, last);
  throw new PgwardenError(
    'PGW_WAIT_TIMEOUT',
    `timed out after ${options.timeoutMs} ms waiting for ${options.describe}; last state: ${lastState}`,
    {
      context: { ...options.context, waitingFor: options.describe, timeoutMs: options.timeoutMs, checks, lastState },
      ...(last?.kind === 'error' ? { cause: last.error } : {}),
    },
  );
}

/** True for the error waitUntil throws when its deadline passes (not for an abort or a bug in the predicate). */
export function isWaitTimeout(error: unknown): error is PgwardenError {
  return error instanceof PgwardenError && error.code === 'PGW_WAIT_TIMEOUT';
}

type Outcome =
  { readonly kind: 'value'; readonly value: unknown } | { readonly kind: 'error'; readonly error: unknown } | { readonly kind: 'late' };

async function settleWithin<T>(
  predicate: () => T | Promise<T>,
  remainingMs: number,
  clock: WaitClock,
  signal?: AbortSignal,
): Promise<Outcome> {
  const check = (async (): Promise<Outcome> => {
    try {
      return { kind: 'value', value: await predicate() };
    } catch (error) {
      return { kind: 'error', error };
    }
  })();
  // The timer must not outlive a quick check: it is cancelled as soon as the check settles.
  const cancel = new AbortController();
  const late = clock.sleep(Math.max(0, remainingMs), signal === undefined ? cancel.signal : AbortSignal.any([cancel.signal, signal])).then(
    (): Outcome => ({ kind: 'late' }),
    (): Outcome => ({ kind: 'late' }),
  );
  try {
    return await Promise.race([check, late]);
  } finally {
    cancel.abort();
  }
}

function describeLast(
  lastState: (() => unknown) | undefined,
  last: { readonly kind: 'value'; readonly value: unknown } | { readonly kind: 'error'; readonly error: unknown } | undefined,
): string {
  const fromPredicate =
    last === undefined
      ? 'no check finished in time'
      : last.kind === 'error'
        ? `last check threw: ${describeError(last.error)}`
        : `last check returned ${render(last.value)}`;
  if (lastState === undefined) return fromPredicate;
  try {
    return `${render(lastState())} (${fromPredicate})`;
  } catch (error) {
    return `${fromPredicate}; reading the state failed: ${describeError(error)}`;
  }
}
