// Replays one seed and prints its events: `node dist/test/sim/sim-debug.js <seed> [sync-mode] [rule-to-remove]`.
import { runSeed } from './scenario.js';
import { SYNC_MODES } from './sync-modes.js';

const seed = Number(process.argv[2] ?? 1);
const sync = SYNC_MODES[process.argv[3] ?? 'off'];
const without = process.argv[4] === undefined ? [] : [process.argv[4]];
const startedAt = performance.now();
const world = await runSeed(seed, {
  ...(sync !== undefined ? { sync } : {}),
  withoutRules: without,
  withoutFence: process.env.PGWARDEN_SIM_NO_FENCE === '1',
});
process.stdout.write(`${world.events.join('\n')}\n`);
process.stdout.write(
  `seed ${seed}: ${Math.round(performance.now() - startedAt)} ms, ${world.promotions} promotions, ${world.runtime.settledSteps} steps, ${world.ackedCommits} acks, convergence: ${world.convergence() ?? 'ok'}\nviolations: ${JSON.stringify(world.violations.slice(0, 5), null, 1)}\n`,
);
