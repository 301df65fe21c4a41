// The agent shell on simulated time: manual commands, and the lock judged by the TTL it was granted with when the
// ttl changes at runtime.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { lockDeadlineMs } from '../../src/core/lease.js';
import { NAMES } from './scenario.js';
import { SimWorld } from './sim-world.js';

async function healthyWorld(seed: number): Promise<{ world: SimWorld; leader: string; replica: string }> {
  const world = new SimWorld(seed, NAMES);
  await world.runUntil(30_000);
  assert.equal(world.convergence(), undefined);
  const leader = world.leaderName()!;
  return { world, leader, replica: NAMES.find((name) => name !== leader)! };
}

describe('agent shell', () => {
  it('restarts the leader and a replica on request and says so once the restart finished', async () => {
    const { world, leader, replica } = await healthyWorld(7);
    for (const name of [leader, replica]) {
      const before = world.pg.inspect(name).timeline;
      const outcome = world.node(name).agent.runCommand('restart', 30_000);
      await world.runUntil(world.runtime.nowMs + 5_000);
      assert.deepEqual(await outcome, { isOk: true, message: 'restarted successfully' }, name);
      assert.equal(world.pg.inspect(name).timeline, before, 'a restart is not a promotion');
    }
    await world.runUntil(world.runtime.nowMs + 5_000);
    assert.equal(world.leaderName(), leader, 'a restart is not a failover');
    world.stop();
    assert.deepEqual(world.violations, []);
  });

  for (const withFence of [false, true]) {
    it(`judges the lock by the TTL its lease was granted with when ttl is raised at runtime (lease fence ${withFence ? 'on' : 'off'})`, async () => {
      const world = new SimWorld(11, NAMES, { withoutFence: !withFence });
      await world.runUntil(30_000);
      const leader = world.leaderName()!;
      const node = world.node(leader);
      assert.equal(node.agent.lock().ttlMs, 5_000);
      // The leader's writes start timing out while it still reads the DCS, and ttl is raised to 30 s: it adopts the
      // new timing but cannot renew, so its lease still ends 5 s after its last renewal. It must stop being primary
      // by then (another member may hold the lock right after), not 30 s later.
      world.cutWrites(node, true);
      world.raiseTtl(30);
      const sentAt = node.agent.lock().lastRenewSentAtMs!;
      await world.runUntil(world.runtime.nowMs + 2_000);
      assert.equal(node.agent.snapshot().ttlMs, 30_000, 'the new ttl is in force');
      await world.runUntil(lockDeadlineMs(sentAt, 5_000) + 300);
      const pg = world.pg.inspect(leader);
      assert.equal(pg.isRunning && pg.role === 'primary', false, 'demoted by the deadline of the lease it holds');
      world.stop();
      assert.deepEqual(world.violations, []);
    });
  }

  it('logs an invalid timing written into the DCS by another tool once per value, with what it uses instead', async () => {
    const { world, leader } = await healthyWorld(5);
    const before = world.node(leader).agent.snapshot().ttlMs;
    world.writeConfigDirectly({ loop_wait: 'abc' });
    await world.runUntil(world.runtime.nowMs + 10_000);
    const said = world.warnings.filter((warning) => warning.message.startsWith('invalid dynamic configuration in the DCS'));
    assert.equal(said.length, NAMES.length, said.map((warning) => `${warning.name}: ${warning.message}`).join('\n'));
    for (const warning of said) {
      assert.match(
        warning.message,
        /loop_wait: must be a number of seconds \(got "abc"\)\): using ttl=5 loop_wait=1 retry_timeout=2 instead/,
      );
      assert.deepEqual((warning.fields.given as Record<string, unknown>).loop_wait, 'abc');
      assert.equal((warning.fields.using as Record<string, unknown>).loop_wait, 1);
    }
    assert.equal(world.node(leader).agent.snapshot().ttlMs, before, 'ttl unchanged: only the bad key falls back');
    world.writeConfigDirectly({ loop_wait: 1, ttl: -1 });
    await world.runUntil(world.runtime.nowMs + 10_000);
    const next = world.warnings.filter((warning) => /ttl: must be at least 2 \(got -1\)/.test(warning.message));
    assert.equal(next.length, NAMES.length, 'a new bad value is said once per member');
    world.stop();
  });
  it("keeps the decisions that changed something as events: a failover is in the new leader's, with its reason", async () => {
    const { world, leader } = await healthyWorld(11);
    const events = (name: string): readonly { readonly seq: number; readonly reason: string; readonly actions: readonly string[] }[] =>
      world.node(name).agent.snapshot().events?.since() ?? [];
    const before = Object.fromEntries(NAMES.map((name) => [name, events(name).at(-1)?.seq ?? 0]));
    await world.runUntil(world.runtime.nowMs + 60_000);
    for (const name of NAMES)
      assert.equal(events(name).at(-1)?.seq ?? 0, before[name], `${name}: a quiet minute adds no event (the same reason, no action)`);
    world.crashPostmaster(world.node(leader));
    world.killAgent(world.node(leader), true);
    await world.runUntil(world.runtime.nowMs + 60_000);
    const newLeader = world.leaderName();
    assert.ok(newLeader !== undefined && newLeader !== leader, 'another member leads');
    const promoted = events(newLeader).filter((event) => event.seq > before[newLeader]!);
    assert.ok(
      promoted.some((event) => event.actions.includes('promote')),
      `${newLeader}'s events include its promotion: ${JSON.stringify(promoted.map((event) => [event.actions, event.reason]))}`,
    );
    world.stop();
    assert.deepEqual(world.violations, []);
  });
});
