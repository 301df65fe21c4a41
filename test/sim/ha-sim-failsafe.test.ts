// failsafe_mode in the simulator: the real agents, their POST /failsafe to each other and the DCS lost for everyone or
// for the leader alone. The invariants (one writable primary, none past its deadline or its fence's) hold in every seed.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { NAMES } from './scenario.js';
import { runSeedsOffThread } from './seed-runs.js';
import { findFailingSeeds, seedsToRun } from './seeds.js';
import { SIM_TIMING, SimWorld } from './sim-world.js';

function isWritablePrimary(world: SimWorld, name: string): boolean {
  const pg = world.pg.inspect(name);
  return pg.isRunning && pg.role === 'primary';
}

describe('HA simulation, failsafe_mode', () => {
  it('keeps the invariants and converges with whole-DCS outages among the faults', async (context) => {
    const seeds = seedsToRun(40);
    const runs = await runSeedsOffThread(
      seeds,
      { failsafeMode: true },
      { label: 'failsafe', countEvents: ['DCS is down for every member'] },
    );
    for (const run of runs) assert.equal(run.problem, undefined, run.description);
    const outages = runs.reduce((sum, run) => sum + run.eventCounts[0]!, 0);
    context.diagnostic(`${seeds.length} seeds, ${outages} whole-DCS outages, 0 invariant violations`);
    assert.ok(seeds.length < 10 || outages >= seeds.length / 2, 'the outages really happen');
  });

  it('without the DCS the primary lives on confirmed rounds; a member that stops answering makes it demote', async () => {
    const world = new SimWorld(11, NAMES, { failsafeMode: true });
    await world.runUntil(30_000);
    assert.equal(world.convergence(), undefined);
    const leader = world.leaderName()!;
    const [victim, other] = NAMES.filter((name) => name !== leader) as [string, string];
    const promotions = world.promotions;
    world.dcsOutage(true);
    await world.runUntil(30_000 + 4 * SIM_TIMING.ttlMs);
    assert.ok(isWritablePrimary(world, leader), `${leader} still writable ${4 * SIM_TIMING.ttlMs} ms into the outage`);
    assert.equal(world.promotions, promotions, 'nobody promoted');
    assert.equal(world.node(leader).agent.snapshot().isFailsafeActive, true, 'the leader reports failsafe active');
    assert.equal(world.node(victim).agent.snapshot().isFailsafeActive, true, 'a replica that confirmed it too');
    world.killAgent(world.node(victim), false);
    const killedAt = world.runtime.nowMs;
    await world.runUntil(killedAt + SIM_TIMING.ttlMs);
    assert.equal(isWritablePrimary(world, leader), false, `${leader} demoted once ${victim} stopped confirming`);
    assert.equal(isWritablePrimary(world, other), false, 'and nobody else is writable without the DCS');
    world.dcsOutage(false);
    world.restartAgent(world.node(victim));
    await world.runUntil(killedAt + 60_000);
    world.stop();
    assert.deepEqual(world.violations, []);
    assert.equal(world.convergence(), undefined, 'one leader again once the DCS is back');
  });

  it('a leader cut off from the DCS alone outlives its lease key: the replicas confirm it and do not race', async () => {
    const world = new SimWorld(12, NAMES, { failsafeMode: true });
    await world.runUntil(30_000);
    const leader = world.leaderName()!;
    const promotions = world.promotions;
    world.partition(world.node(leader), true);
    await world.runUntil(30_000 + 3 * SIM_TIMING.ttlMs);
    assert.equal(world.leaderName(), undefined, 'its key expired with its lease');
    assert.ok(isWritablePrimary(world, leader), `${leader} still the writable primary`);
    assert.equal(world.promotions, promotions, 'no replica raced against the failsafe leader');
    world.partition(world.node(leader), false);
    await world.runUntil(30_000 + 3 * SIM_TIMING.ttlMs + 20_000);
    world.stop();
    assert.deepEqual(world.violations, []);
    assert.equal(world.leaderName(), leader, 'it took its key back');
    assert.equal(world.convergence(), undefined);
  });
});

describe('failsafe rules are load-bearing', () => {
  // As in ha-sim-rules: without the fence process a killed agent's primary stays writable (not judged here); every
  // other invariant, including no primary past its (failsafe-extended) deadline while its agent runs, must hold.
  it('the core keeps every invariant on its own (lease fence and fence process off)', async () => {
    const runs = await runSeedsOffThread(
      seedsToRun(15),
      { failsafeMode: true, withoutFence: true, withoutFenceProcess: true },
      { label: 'failsafe, fences off' },
    );
    for (const run of runs) assert.equal(run.problem, undefined, run.description);
  });

  it('replicas that ignore a fresh POST /failsafe and race are caught', async (context) => {
    const { seeds: failing } = await findFailingSeeds(15, { failsafeMode: true, mutation: 'replicas-ignore-failsafe-record' }, 'failsafe');
    context.diagnostic(`failing seeds: ${failing.join(', ')}`);
    assert.ok(failing.length > 0, 'racing against a confirmed failsafe leader must break an invariant');
  });
  it('a leader that just wrote the failsafe key counts on it when the DCS goes away before its next read', async () => {
    // failsafe_mode switched on at runtime: the leader writes the key at the end of a cycle, after that cycle's read.
    // Taking etcd away right then used to leave it with a view whose key did not list it, and it demoted (chaos seed
    // 2027, fault 8, and seed 2026, fault 76).
    const world = new SimWorld(21, NAMES);
    await world.runUntil(30_000);
    assert.equal(world.convergence(), undefined);
    const leader = world.leaderName()!;
    const promotions = world.promotions;
    world.writeConfigDirectly({ failsafe_mode: true });
    const reader = world.node(leader).dcs;
    let listed = false;
    for (let step = 0; step < 2000 && !listed; step++) {
      await world.runUntil(world.runtime.nowMs + 5);
      listed = Object.keys((await reader.loadCluster(AbortSignal.timeout(1000))).failsafe ?? {}).length === NAMES.length;
    }
    assert.ok(listed, 'the leader wrote the failsafe key');
    world.dcsOutage(true);
    const outageAt = world.runtime.nowMs;
    await world.runUntil(outageAt + 4 * SIM_TIMING.ttlMs);
    assert.ok(isWritablePrimary(world, leader), `${leader} still writable ${4 * SIM_TIMING.ttlMs} ms into the outage`);
    assert.equal(world.promotions, promotions, 'nobody promoted');
    world.dcsOutage(false);
    await world.runUntil(world.runtime.nowMs + 30_000);
    world.stop();
    assert.deepEqual(world.violations, []);
    assert.equal(world.convergence(), undefined);
  });
});
