// Seeded simulation of 3 real Agents (shell, cycle, executor, core) on simulated time under faults and operator
// actions; the invariants are checked after every step. Replay a seed with PGWARDEN_SIM_SEED=<n>.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { NAMES } from './scenario.js';
import { runSeedsOffThread } from './seed-runs.js';
import { seedsToRun } from './seeds.js';
import { SimWorld } from './sim-world.js';

describe('HA simulation, asynchronous replication', () => {
  it('keeps at most one writable primary with a valid lock, and converges after every fault', async (context) => {
    const seeds = seedsToRun(100);
    const runs = await runSeedsOffThread(seeds, {}, { label: 'async', countEvents: ['FAULT'] });
    for (const run of runs) assert.equal(run.problem, undefined, run.description);
    const faults = runs.reduce((sum, run) => sum + run.eventCounts[0]!, 0);
    const promotions = runs.reduce((sum, run) => sum + run.promotions, 0);
    context.diagnostic(`${seeds.length} seeds, ${faults} faults injected, ${promotions} promotions, 0 invariant violations`);
    assert.ok(faults > seeds.length * 4 && promotions > seeds.length, 'the simulation really exercises failovers');
  });

  it('elects exactly one leader on a clean start and exercises slots, switchovers and maintenance mode', async () => {
    const world = new SimWorld(4242, NAMES);
    await world.runUntil(30_000);
    assert.equal(world.convergence(), undefined);
    const leader = world.leaderName()!;
    const replica = NAMES.find((name) => name !== leader)!;
    assert.deepEqual(
      world.pg
        .inspect(leader)
        .slots.map((slot) => slot.name)
        .sort(),
      ['permanent_physical', ...NAMES.filter((name) => name !== leader)].sort(),
      'member and permanent slots on the leader',
    );
    world.requestSwitchover(replica);
    await world.runUntil(40_000);
    assert.equal(world.leaderName(), replica, 'the switchover went to the named candidate');
    assert.equal(world.convergence(), undefined);
    world.setMaintenance(true);
    world.crashPostmaster(world.node(NAMES.find((name) => name !== replica)!));
    await world.runUntil(50_000);
    assert.notEqual(world.convergence(), undefined, 'in maintenance mode a crashed postmaster stays down');
    world.setMaintenance(false);
    await world.runUntil(60_000);
    assert.equal(world.convergence(), undefined, 'and is started again once maintenance mode ends');
    world.stop();
    assert.deepEqual(world.violations, []);
  });
});
