// Deadlines as AbortSignals: every DCS call and PostgreSQL command gets one.

/** A signal that aborts after `ms` or when `parent` aborts, whichever is first. */
export function deadline(ms: number, parent?: AbortSignal): AbortSignal {
  const timeout = AbortSignal.timeout(Math.max(1, Math.round(ms)));
  return parent === undefined ? timeout : AbortSignal.any([timeout, parent]);
}
