// SystemClock: monotonic time from performance.now(); wall time only for values written to the DCS.
import { performance } from 'node:perf_hooks';
import { setTimeout as delay } from 'node:timers/promises';
import { deadline } from './abort.js';

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

  deadline(ms: number, parent?: AbortSignal): AbortSignal {
    return deadline(ms, parent);
  }

  setTimer(ms: number, fire: () => void): () => void {
    const timer = setTimeout(fire, Math.max(0, ms));
    // A pending timer (the lease fence) must not keep a stopping process alive.
    timer.unref();
    return () => clearTimeout(timer);
  }
}
