// Which seeds a simulator test runs: PGWARDEN_SIM_SEED replays one, PGWARDEN_SIM_SEEDS sets how many.
export function seedsToRun(defaultCount: number): number[] {
  const only = process.env.PGWARDEN_SIM_SEED;
  if (only !== undefined) return [Number(only)];
  const count = Number(process.env.PGWARDEN_SIM_SEEDS ?? defaultCount);
  return Array.from({ length: count }, (_unused, index) => index + 1);
}
