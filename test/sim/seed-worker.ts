// Worker entry for seed-runs.ts: runs seeds in a thread of its own, where node:test's async hooks (which track every
// promise of the test file's thread and made a seed about three times slower) are not installed.
import { parentPort, workerData } from 'node:worker_threads';
import { describeRun, runSeed } from './scenario.js';
import { simOptionsOf } from './seed-variants.js';
import type { SeedRunRequest, SeedRunResult } from './seed-runs.js';

const request = workerData as SeedRunRequest;
for (const seed of request.seeds) {
  const world = await runSeed(seed, simOptionsOf(request.options));
  const violation = world.violations[0];
  const problem = violation === undefined ? world.convergence() : `${violation.invariant}: ${violation.message}`;
  const result: SeedRunResult = {
    seed,
    problem,
    hasViolations: violation !== undefined,
    description: problem === undefined ? '' : describeRun(world, request.label, seed),
    promotions: world.promotions,
    ackedCommits: world.ackedCommits,
    eventCounts: request.countEvents.map((text) => world.events.filter((line) => line.includes(text)).length),
  };
  parentPort!.postMessage(result);
  if (problem !== undefined && request.stopAtFirstProblem) break;
}
