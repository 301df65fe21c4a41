// The WatchdogDevice port on a Linux watchdog device (/dev/watchdog), through the native addon.
import { nativeAddon } from '../util/native-addon.js';
import { PgwardenError } from '../util/errors.js';
import type { WatchdogDevice } from '../core/ports.js';

export class LinuxWatchdogDevice implements WatchdogDevice {
  readonly path: string;
  #fd: number | undefined;

  constructor(path: string) {
    this.path = path;
  }

  open(timeoutSeconds: number): number {
    const addon = nativeAddon();
    if (typeof addon === 'string')
      throw new PgwardenError('PGW_WATCHDOG_UNAVAILABLE', `cannot drive the watchdog device ${this.path}: ${addon}`, {
        context: { device: this.path, hint: 'build the native addon (npm run build:native) or set watchdog.mode: off' },
      });
    try {
      const { fd, timeout } = addon.watchdogOpen(this.path, timeoutSeconds);
      this.#fd = fd;
      return timeout;
    } catch (error) {
      const isNotWatchdog = (error as { code?: string }).code === 'ENOTTY';
      const isAbsent = error instanceof Error && error.message.includes('No such file or directory');
      throw new PgwardenError(
        isAbsent ? 'PGW_WATCHDOG_ABSENT' : 'PGW_WATCHDOG_UNAVAILABLE',
        `watchdog device ${this.path} cannot be activated: ${isNotWatchdog ? 'it is not a watchdog device' : error instanceof Error ? error.message : String(error)}`,
        {
          cause: error,
          context: {
            device: this.path,
            hint: 'load a watchdog driver (e.g. modprobe softdog), let the postgres user write to the device, or set watchdog.mode: off',
          },
        },
      );
    }
  }

  keepalive(): void {
    const addon = nativeAddon();
    if (this.#fd === undefined || typeof addon === 'string') return;
    addon.watchdogKeepalive(this.#fd);
  }

  close(): void {
    const addon = nativeAddon();
    const fd = this.#fd;
    this.#fd = undefined;
    if (fd !== undefined && typeof addon !== 'string') addon.watchdogClose(fd);
  }
}
