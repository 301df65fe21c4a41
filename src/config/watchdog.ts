// watchdog.mode as Patroni reads it. A Linux watchdog device is driven through the native addon (agent/watchdog-feed.ts)
// when the mode is automatic or required; pgwarden's fence process (src/fence) stops a stalled primary on every host
// whether or not there is one. `required` without a usable device means this member never becomes leader, as in Patroni.
import { accessSync, constants } from 'node:fs';
import { nativeAddon } from '../util/native-addon.js';

import type { WatchdogMode } from '../core/ports.js';

export type { WatchdogMode };

export const DEFAULT_WATCHDOG_DEVICE = '/dev/watchdog';

/** Patroni accepts off/automatic/required, and YAML turns a bare `off` into false. */
export function watchdogModeOf(mode: string | boolean | undefined): WatchdogMode {
  if (mode === undefined || mode === true) return 'automatic';
  if (mode === false) return 'off';
  return mode === 'required' || mode === 'off' ? mode : 'automatic';
}

/** Why the device cannot be driven (Patroni's check before a race: it exists and this user may write it), or undefined. */
export function watchdogDeviceProblem(device: string): string | undefined {
  try {
    accessSync(device, constants.W_OK);
  } catch (error) {
    const code = (error as { code?: string }).code;
    return code === 'ENOENT'
      ? `${device} does not exist (no watchdog driver loaded)`
      : `${device} is not writable by this user (${code ?? String(error)})`;
  }
  const addon = nativeAddon();
  return typeof addon === 'string' ? addon : undefined;
}

/**
 * Why this member must never become leader under `watchdog.mode: required` (published as nofailover, so no switchover
 * or race picks it), or undefined when it may.
 */
export function watchdogRefusal(
  watchdog: { readonly mode?: string | boolean | undefined; readonly device?: string | undefined } | undefined,
  deviceProblem: (device: string) => string | undefined = watchdogDeviceProblem,
): string | undefined {
  if (watchdogModeOf(watchdog?.mode) !== 'required') return undefined;
  const problem = deviceProblem(watchdog?.device ?? DEFAULT_WATCHDOG_DEVICE);
  if (problem === undefined) return undefined;
  return `watchdog.mode is required, but the watchdog cannot be used: ${problem}; this member never becomes leader (as Patroni without a usable watchdog). Load a watchdog driver (e.g. modprobe softdog) and let this user write the device, or set watchdog.mode: automatic or off (pgwarden's fence process still stops a primary whose agent stalls)`;
}
