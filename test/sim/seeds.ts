// Which seeds a simulator test runs: PGWARDEN_SIM_SEED replays one, PGWARDEN_SIM_SEEDS sets how many.
import { runSeedsOffThread } from './seed-runs.js';
import type { SeedRunOptions } from './seed-variants.js';

export function seedsToRun(defaultCount: number): number[] {
  const only = process.env.PGWARDEN_SIM_SEED;
  if (only !== undefined) return [Number(only)];
  const count = Number(process.env.PGWARDEN_SIM_SEEDS ?? defaultCount);
  return Array.from({ length: count }, (_unused, index) => index + 1);
}

/**
 * The seeds among `seedsToRun(defaultCount)` with a problem (an invariant violation, or no convergence) under
 * `options`, run off-thread. Showing that a rule is load-bearing needs one failing seed, so the search stops at the
 * first; PGWARDEN_SIM_ALL_SEEDS=1 (or `isListingAll`, for checks that every seed passes) runs every seed.
 */
export async function findFailingSeeds(
  defaultCount: number,
  options: SeedRunOptions,
  label: string,
  isListingAll = process.env.PGWARDEN_SIM_ALL_SEEDS === '1',
): Promise<{ readonly seeds: number[]; readonly first: string | undefined }> {
  const runs = await runSeedsOffThread(seedsToRun(defaultCount), options, { label, stopAtFirstProblem: !isListingAll });
  const failing = runs.filter((run) => run.problem !== undefined);
  const first = failing[0];
  return { seeds: failing.map((run) => run.seed), first: first === undefined ? undefined : `seed ${first.seed}: ${first.problem}` };
}
