// Seeded simulation in every synchronous mode: no promotion ever loses a commit a primary acknowledged, and the
// cluster converges after the faults. Replay a seed with PGWARDEN_SIM_SEED=<n>.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { runSeedsOffThread } from './seed-runs.js';
import { seedsToRun } from './seeds.js';
import { SYNC_MODES } from './sync-modes.js';

describe('HA simulation, synchronous replication', () => {
  for (const mode of ['priority', 'priority-strict', 'priority-2', 'quorum', 'quorum-strict']) {
    it(`${mode}: no promotion loses an acknowledged commit, and the cluster converges`, async (context) => {
      const seeds = seedsToRun(40);
      const runs = await runSeedsOffThread(seeds, { sync: SYNC_MODES[mode]! }, { label: mode });
      for (const run of runs) assert.equal(run.problem, undefined, run.description);
      const promotions = runs.reduce((sum, run) => sum + run.promotions, 0);
      const acked = runs.reduce((sum, run) => sum + run.ackedCommits, 0);
      context.diagnostic(`${mode}: ${seeds.length} seeds, ${promotions} promotions, ${acked} acknowledgement steps, 0 lost, all converged`);
      assert.ok(promotions > seeds.length / 2 && acked > seeds.length, 'the simulation really fails over and acknowledges commits');
    });
  }

  // Seeds that found holes in the product (see the commit history); they stay in every run whatever the seed count.
  const REGRESSIONS: readonly (readonly [string, number])[] = [
    ['priority-strict', 28],
    ['priority-strict', 112],
    ['quorum', 78],
    ['quorum-strict', 131],
  ];
  for (const [mode, seed] of REGRESSIONS) {
    it(`${mode}, regression seed ${seed}: no acknowledged commit lost, converged`, async () => {
      const [run] = await runSeedsOffThread([seed], { sync: SYNC_MODES[mode]! }, { label: `${mode}, regression` });
      assert.equal(run?.problem, undefined, run?.description);
    });
  }
});
