// Seeded simulation in every synchronous mode: no promotion ever loses a commit a primary acknowledged, and the
// cluster converges after the faults. Replay a seed with PGWARDEN_SIM_SEED=<n>.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { describeRun, runSeed } from './scenario.js';
import { seedsToRun } from './seeds.js';
import { SYNC_MODES } from './sync-modes.js';

describe('HA simulation, synchronous replication', () => {
  for (const mode of ['priority', 'priority-strict', 'priority-2', 'quorum', 'quorum-strict']) {
    it(`${mode}: no promotion loses an acknowledged commit, and the cluster converges`, async (context) => {
      const seeds = seedsToRun(40);
      let promotions = 0;
      let acked = 0;
      for (const seed of seeds) {
        const world = await runSeed(seed, { sync: SYNC_MODES[mode]! });
        promotions += world.promotions;
        acked += world.ackedCommits;
        assert.deepEqual(world.violations, [], describeRun(world, mode, seed));
        assert.equal(world.convergence(), undefined, `did not converge after faults healed: ${describeRun(world, mode, seed)}`);
      }
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
      const world = await runSeed(seed, { sync: SYNC_MODES[mode]! });
      assert.deepEqual(world.violations, [], describeRun(world, mode, seed));
      assert.equal(world.convergence(), undefined, describeRun(world, mode, seed));
    });
  }
});
