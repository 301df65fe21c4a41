// Decisions that used to live in the agent shell: scheduled-restart gating, when to reconfigure PostgreSQL, and the
// lock judged by the TTL its lease was granted with.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decide } from '../../src/core/decide.js';
import { parametersFingerprint } from '../../src/core/parameters.js';
import { checkTimingRules, deriveTiming } from '../../src/core/timing-rules.js';
import { freshMemory, kinds, observe, pgState, primaryPg, TIMING, view } from '../sim/builders.js';

const NOW = 100_000;
const WALL = '2026-11-24T00:00:00.000Z';
const BEFORE = '2026-11-23T23:59:00.000Z';
const AFTER = '2026-11-24T00:01:00.000Z';

describe('scheduled restart', () => {
  it('waits until it is due', () => {
    const decision = decide(
      observe({ name: 'node2', wallIso: WALL, scheduledRestart: { atIso: AFTER, isPendingOnly: false } }),
      freshMemory(),
    );
    assert.equal(kinds(decision.actions).includes('restart') || kinds(decision.actions).includes('clearScheduledRestart'), false);
  });

  it('restarts a replica when due, clearing the schedule first', () => {
    const decision = decide(
      observe({ name: 'node2', wallIso: WALL, scheduledRestart: { atIso: BEFORE, isPendingOnly: false } }),
      freshMemory(),
    );
    assert.deepEqual(decision.actions, [{ kind: 'clearScheduledRestart' }, { kind: 'restart', asPrimary: false, upstream: 'node1' }]);
    assert.match(decision.reason, /^scheduled restart at /);
  });

  it('restarts the leader as primary only while renewing its lock', () => {
    const decision = decide(
      observe({
        pg: primaryPg(),
        lock: { lastRenewSentAtMs: NOW - 1000 },
        wallIso: WALL,
        scheduledRestart: { atIso: BEFORE, role: 'master', isPendingOnly: false },
      }),
      freshMemory(),
    );
    assert.deepEqual(kinds(decision.actions), ['clearScheduledRestart', 'renewLeader', 'restart']);
  });

  for (const [what, overrides, why] of [
    ['in maintenance mode', { isPaused: true }, /maintenance mode/],
    ['for another role', { scheduledRestart: { atIso: BEFORE, role: 'primary', isPendingOnly: false } }, /role is replica, not primary/],
    ['with no restart pending', { scheduledRestart: { atIso: BEFORE, isPendingOnly: true } }, /no restart is pending/],
  ] as const) {
    it(`is skipped ${what}, and the schedule cleared`, () => {
      const decision = decide(
        observe({
          name: 'node2',
          wallIso: WALL,
          scheduledRestart: { atIso: BEFORE, isPendingOnly: false },
          ...overrides,
        }),
        freshMemory(),
      );
      assert.deepEqual(decision.actions, [{ kind: 'clearScheduledRestart' }]);
      assert.match(decision.reason, why);
    });
  }

  it('runs when its pending filter is met', () => {
    const decision = decide(
      observe({
        name: 'node2',
        wallIso: WALL,
        pg: pgState({ isPendingRestart: true }),
        scheduledRestart: { atIso: BEFORE, isPendingOnly: true },
      }),
      freshMemory(),
    );
    assert.deepEqual(kinds(decision.actions), ['clearScheduledRestart', 'restart']);
  });
});

describe('reconfiguring PostgreSQL', () => {
  const wanted = { work_mem: '8MB', max_connections: 100 };

  it('applies a changed GUC set once, after the lock renewal, and reloads only after the first time', () => {
    const leader = (applied: string | undefined): ReturnType<typeof decide> =>
      decide(
        observe({ pg: primaryPg(), lock: { lastRenewSentAtMs: NOW - 1000 }, parameters: { wanted, appliedFingerprint: applied } }),
        freshMemory(),
      );
    const first = leader(undefined);
    assert.deepEqual(kinds(first.actions).slice(0, 2), ['renewLeader', 'reconfigure']);
    assert.equal(first.actions[1]?.kind === 'reconfigure' && first.actions[1].reloadCallbackRole, undefined);
    const changed = leader(parametersFingerprint({ work_mem: '4MB', max_connections: 100 }));
    assert.equal(changed.actions[1]?.kind === 'reconfigure' && changed.actions[1].reloadCallbackRole, 'primary');
    assert.equal(kinds(leader(parametersFingerprint({ max_connections: 100, work_mem: '8MB' })).actions).includes('reconfigure'), false);
  });

  it('never delays a demote', () => {
    const decision = decide(
      observe({ pg: primaryPg(), lock: { lastRenewSentAtMs: NOW - 40_000 }, parameters: { wanted, appliedFingerprint: undefined } }),
      freshMemory(),
    );
    assert.deepEqual(kinds(decision.actions), ['demote']);
  });

  it('waits for the DCS config (no parameters observed: nothing to apply)', () => {
    assert.equal(kinds(decide(observe({ name: 'node2' }), freshMemory()).actions).includes('reconfigure'), false);
  });
});

describe('lease timing', () => {
  it('judges a renewal by the TTL its lease was granted with, not by a ttl raised since', () => {
    // Renewed at t=0 under ttl 10 s; ttl is now 30 s. The lease still ends at 10 s, so at 9.5 s the primary is past
    // its own deadline (10 s - 1 s margin) and must demote, although 30 s would leave it 19.5 s more.
    const decision = decide(
      observe({
        pg: primaryPg(),
        nowMs: 9_500,
        timing: { ...TIMING, ttlMs: 30_000 },
        lock: { lastRenewSentAtMs: 0, ttlMs: 10_000 },
      }),
      freshMemory(),
    );
    assert.deepEqual(kinds(decision.actions), ['demote']);
  });

  it('derives timing once, repairing a config as Patroni does and saying what it changed', () => {
    assert.deepEqual(deriveTiming({ ttl: 10, loop_wait: 10, retry_timeout: 10 }).timing, {
      ttlMs: 10_000,
      loopWaitMs: 1_000,
      retryTimeoutMs: 4_000,
      silence: { intervalMs: 250, fenceWindowMs: 1000, marginMs: 400, confirmMs: 1000 },
    });
    assert.match(deriveTiming({ ttl: 10, loop_wait: 10, retry_timeout: 10 }).adjustments.join(), /loop_wait \+ 2\*retry_timeout/);
    assert.deepEqual(deriveTiming(undefined).adjustments, []);
    assert.equal(deriveTiming(undefined).timing.ttlMs, 30_000);
  });

  it('derives the silent-leader detector, turns it off when asked, and refuses values that break its rules', () => {
    assert.equal(deriveTiming({ ttl: 30, loop_wait: 10, retry_timeout: 10, fence_window: 0 }).timing.silence, undefined);
    assert.deepEqual(deriveTiming({ ttl: 30, loop_wait: 10, retry_timeout: 10, fence_window: 2, heartbeat_interval: 0.5 }).timing.silence, {
      intervalMs: 500,
      fenceWindowMs: 2000,
      marginMs: 400,
      confirmMs: 1900,
    });
    // At runtime (the DCS config) a bad combination turns the detector off, and says why.
    const tooSlow = deriveTiming({ ttl: 30, loop_wait: 10, retry_timeout: 10, fence_window: 1, heartbeat_interval: 0.5 });
    assert.equal(tooSlow.timing.silence, undefined);
    assert.match(tooSlow.adjustments.join(), /at least three beats must fit in fence_window/);
    const pastTtl = deriveTiming({ ttl: 3, loop_wait: 1, retry_timeout: 1, fence_window: 2.5 });
    assert.equal(pastTtl.timing.silence, undefined);
    assert.match(pastTtl.adjustments.join(), /must be < ttl/);
    assert.match(
      checkTimingRules({ ttl: 30, loop_wait: 10, retry_timeout: 10, silence_margin: 0.01 }).join(),
      /silence_margin: must be at least/,
    );
    assert.match(checkTimingRules({ ttl: 30, loop_wait: 10, retry_timeout: 10, fence_window: 0.1 }).join(), /fence_window: must be 0/);
    assert.deepEqual(checkTimingRules({ ttl: 30, loop_wait: 10, retry_timeout: 10 }), []);
  });
});

describe('cluster timeline (synchronous mode)', () => {
  const sync = { mode: 'priority', isStrict: false, nodeCount: 1 } as const;
  const history = [[1, 1000, 'no recovery target specified']] as const;

  it('a running primary behind the cluster timeline does not take back a vanished lock: it demotes', () => {
    const decision = decide(
      observe({
        sync,
        pg: primaryPg({ timeline: 1 }),
        lock: { lastRenewSentAtMs: NOW - 1000 },
        dcs: { kind: 'ok', view: view({ history: [...history] }) },
      }),
      freshMemory(),
    );
    assert.deepEqual(kinds(decision.actions), ['demote']);
    assert.match(decision.reason, /my timeline 1 is behind last known cluster timeline 2/);
  });

  it('a replica behind it stays out of the race, and does not count as a rival of one on it', () => {
    const behind = decide(
      observe({ name: 'node2', sync, pg: pgState({ timeline: 1 }), dcs: { kind: 'ok', view: view({ history: [...history] }) } }),
      freshMemory(),
    );
    assert.equal(kinds(behind.actions).includes('acquireLeader'), false);
    const current = decide(
      observe({
        name: 'node3',
        sync,
        pg: pgState({ timeline: 2, receivedLsn: 2000n, replayedLsn: 2000n }),
        dcs: { kind: 'ok', view: view({ history: [...history], sync: { leader: 'node1', sync_standby: 'node3' } }) },
        peers: [{ name: 'node2', isReachable: true, role: 'replica', isRunning: true, walPosition: 9000n, timeline: 1, tags: {} }],
      }),
      freshMemory(),
    );
    assert.deepEqual(kinds(current.actions), ['acquireLeader'], current.reason);
  });

  it('does not apply in asynchronous mode (Patroni checks timelines only when asked)', () => {
    const decision = decide(
      observe({
        pg: primaryPg({ timeline: 1 }),
        lock: { lastRenewSentAtMs: NOW - 1000 },
        dcs: { kind: 'ok', view: view({ history: [...history] }) },
      }),
      freshMemory(),
    );
    assert.deepEqual(kinds(decision.actions).includes('demote'), false);
  });
});
