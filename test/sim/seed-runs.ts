// Runs simulator seeds in a worker thread and returns one summary per seed. The seeds are the same, the agents the
// same; only node:test's per-promise bookkeeping is left behind, which cut the simulator tier's time by about 3x.
import { Worker } from 'node:worker_threads';
import type { SeedRunOptions } from './seed-variants.js';

export interface SeedRunRequest {
  readonly seeds: readonly number[];
  readonly options: SeedRunOptions;
  /** Names the run in a failure description (describeRun). */
  readonly label: string;
  /** Substrings of world events to count per seed (e.g. 'FAULT'). */
  readonly countEvents: readonly string[];
  /** Stop after the first seed with a problem (showing a rule is load-bearing needs one). */
  readonly stopAtFirstProblem: boolean;
}

export interface SeedRunResult {
  readonly seed: number;
  /** The first invariant violation (`invariant: message`), or why the cluster did not converge; undefined if neither. */
  readonly problem: string | undefined;
  readonly hasViolations: boolean;
  /** describeRun's text (replay hint, violations, last events) when there is a problem. */
  readonly description: string;
  readonly promotions: number;
  readonly ackedCommits: number;
  /** One count per `countEvents` entry. */
  readonly eventCounts: readonly number[];
}

export function runSeedsOffThread(
  seeds: readonly number[],
  options: SeedRunOptions,
  settings: { readonly label: string; readonly countEvents?: readonly string[]; readonly stopAtFirstProblem?: boolean },
): Promise<SeedRunResult[]> {
  const request: SeedRunRequest = {
    seeds,
    options,
    label: settings.label,
    countEvents: settings.countEvents ?? [],
    stopAtFirstProblem: settings.stopAtFirstProblem ?? false,
  };
  const results: SeedRunResult[] = [];
  return new Promise((resolve, reject) => {
    const worker = new Worker(new URL('./seed-worker.js', import.meta.url), { workerData: request });
    worker.on('message', (result: SeedRunResult) => results.push(result));
    worker.once('error', reject);
    worker.once('exit', (code) => {
      if (code === 0) resolve(results);
      else reject(new Error(`simulator worker (${settings.label}) exited with code ${code} after ${results.length} seeds`));
    });
  });
}
