// SystemClock: monotonic time from performance.now(); wall time only for values written to the DCS.
import { performance } from 'node:perf_hooks';
import { setTimeout as delay } from 'node:timers/promises';

/** Satisfies core's Clock port structurally: util/ may not import core/. */
export class SystemClock {
  nowMs(): number {
    return performance.now();
  }

  wallIso(): string {
    return new Date().toISOString();
  }

  async sleep(ms: number, signal?: AbortSignal): Promise<void> {
    await delay(Math.max(0, ms), undefined, signal === undefined ? undefined : { signal });
  }
}
