// The bounded poll for "nothing happens": a condition checked throughout a window, failing at the first check where
// it no longer holds (waitUntil waiting for the violation), instead of one look after a fixed sleep.
import assert from 'node:assert/strict';
import { isWaitTimeout, waitUntil, type WaitClock } from '../../src/util/wait-until.js';

export interface StaysOptions {
  /** How long it must hold: a period the system defines (a ttl, a few loop_waits), not a guess at its speed. */
  readonly forMs: number;
  readonly intervalMs?: number;
  /** What must keep holding, for the failure: "node1 stays writable". */
  readonly describe: string;
  readonly clock?: WaitClock;
}

/** Resolves when `holds` was true at every check for `forMs`; rejects with what it saw at the first check it was not. */
export async function assertStays(holds: () => boolean | Promise<boolean>, options: StaysOptions): Promise<void> {
  let broken: string | undefined;
  try {
    broken = await waitUntil(
      async () => {
        try {
          return (await holds()) ? undefined : 'it no longer held';
        } catch (error) {
          return `its check threw: ${error instanceof Error ? error.message : String(error)}`;
        }
      },
      {
        timeoutMs: options.forMs,
        intervalMs: options.intervalMs ?? 100,
        describe: `a violation of: ${options.describe}`,
        ...(options.clock !== undefined ? { clock: options.clock } : {}),
      },
    );
  } catch (error) {
    if (isWaitTimeout(error)) return;
    throw error;
  }
  assert.fail(`expected ${options.describe} for ${options.forMs} ms, but ${broken}`);
}
