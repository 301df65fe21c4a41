// Runs a range of seeds and prints one line per failing seed: `node dist/test/sim/sim-batch.js <from> <to> [sync-mode] [rule-to-remove]`.
import { runSeed } from './scenario.js';
import { SYNC_MODES } from './sync-modes.js';

const from = Number(process.argv[2] ?? 1);
const to = Number(process.argv[3] ?? from);
const sync = SYNC_MODES[process.argv[4] ?? 'off'];
const without = process.argv[5] === undefined || process.argv[5] === '-' ? [] : process.argv[5].split(',');
const withoutFence = process.env.PGWARDEN_SIM_NO_FENCE === '1';
let failed = 0;
const startedAt = performance.now();
for (let seed = from; seed <= to; seed++) {
  const world = await runSeed(seed, { ...(sync !== undefined ? { sync } : {}), withoutRules: without, withoutFence });
  const problem = world.violations[0]?.message ?? world.convergence();
  if (problem !== undefined) {
    failed++;
    process.stdout.write(`seed ${seed}: ${problem}\n`);
  }
}
process.stdout.write(`${to - from + 1} seeds, ${failed} failed, ${Math.round(performance.now() - startedAt)} ms\n`);
