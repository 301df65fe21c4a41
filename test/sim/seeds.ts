// Which seeds a simulator test runs: PGWARDEN_SIM_SEED replays one, PGWARDEN_SIM_SEEDS sets how many.
export function seedsToRun(defaultCount: number): number[] {
  const only = process.env.PGWARDEN_SIM_SEED;
  if (only !== undefined) return [Number(only)];
  const count = Number(process.env.PGWARDEN_SIM_SEEDS ?? defaultCount);
  return Array.from({ length: count }, (_unused, index) => index + 1);
}

/**
 * The seeds among `seedsToRun(defaultCount)` where `problemOf` finds a problem. Showing that a rule is load-bearing
 * needs one failing seed, so the search stops at the first; PGWARDEN_SIM_ALL_SEEDS=1 (or `isListingAll`, for checks
 * that every seed passes) runs every seed.
 */
export async function findFailingSeeds(
  defaultCount: number,
  problemOf: (seed: number) => Promise<string | undefined>,
  isListingAll = process.env.PGWARDEN_SIM_ALL_SEEDS === '1',
): Promise<{ readonly seeds: number[]; readonly first: string | undefined }> {
  const seeds: number[] = [];
  let first: string | undefined;
  for (const seed of seedsToRun(defaultCount)) {
    const problem = await problemOf(seed);
    if (problem === undefined) continue;
    seeds.push(seed);
    first ??= `seed ${seed}: ${problem}`;
    if (!isListingAll) break;
  }
  return { seeds, first };
}
