// The optional native addon (native/linux, built by node-gyp at install): what Node cannot do without madvise and
// ioctl. Loaded once; when it was not built, callers get the reason instead and carry on without it.
import { createRequire } from 'node:module';

export interface NativeAddon {
  trimReadOnlyFilePages(): number;
  /** Opens a Linux watchdog device and sets its timeout; throws (code ENOTTY: not a watchdog) on failure. */
  watchdogOpen(path: string, timeoutSeconds: number): { readonly fd: number; readonly timeout: number };
  watchdogKeepalive(fd: number): void;
  /** Magic close: writes 'V' and closes, which stops the timer unless the driver was built with nowayout. */
  watchdogClose(fd: number): void;
}

const ADDON_PATH = new URL('../../../native/linux/build/Release/pgwarden_linux.node', import.meta.url).pathname;

let loaded: NativeAddon | string | undefined;

/** The addon, or why it is not available (a sentence to log). */
export function nativeAddon(): NativeAddon | string {
  if (loaded === undefined) {
    if (process.platform !== 'linux') loaded = 'the native addon is for Linux only';
    else
      try {
        loaded = createRequire(import.meta.url)(ADDON_PATH) as NativeAddon;
      } catch (error) {
        loaded = `native addon ${ADDON_PATH} not loaded (${error instanceof Error ? error.message.split('\n')[0] : String(error)}); build it with \`npm run build:native\``;
      }
  }
  return loaded;
}
