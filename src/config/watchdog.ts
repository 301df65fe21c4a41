// watchdog.mode as Patroni reads it. pgwarden fences with its own process (src/fence) on every host; it does not
// drive a Linux watchdog device (that needs ioctl WDIOC_SETTIMEOUT, which Node cannot issue without a native addon),
// so `required` is honoured the way Patroni honours it when no watchdog can be activated: never leader.

export type WatchdogMode = 'off' | 'automatic' | 'required';

/** Patroni accepts off/automatic/required, and YAML turns a bare `off` into false. */
export function watchdogModeOf(mode: string | boolean | undefined): WatchdogMode {
  if (mode === undefined || mode === true) return 'automatic';
  if (mode === false) return 'off';
  return mode === 'required' || mode === 'off' ? mode : 'automatic';
}

/**
 * Why this member must never become leader under `watchdog.mode: required` (published as nofailover, so no switchover
 * or race picks it), or undefined when it may.
 */
export function watchdogRefusal(
  watchdog: { readonly mode?: string | boolean | undefined; readonly device?: string | undefined } | undefined,
): string | undefined {
  if (watchdogModeOf(watchdog?.mode) !== 'required') return undefined;
  const device = watchdog?.device ?? '/dev/watchdog';
  return `watchdog.mode is required, but pgwarden does not drive a watchdog device (${device}); this member never becomes leader (as Patroni without a usable watchdog). Set watchdog.mode: automatic or off: pgwarden's fence process stops a primary whose agent stalls`;
}
