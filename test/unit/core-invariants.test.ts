// The safety invariants as code: each check catches the decision or cluster state it names, and passes the good one.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decide } from '../../src/core/decide.js';
import { checkDecision, checkKeepsAcknowledged, checkWritablePrimaries } from '../../src/core/invariants.js';
import type { Action, Decision } from '../../src/core/types.js';
import { freshMemory, observe, pgState, primaryPg, view } from '../sim/builders.js';

const NOW = 100_000;
const decided = (...actions: Action[]): Decision => ({ actions, reason: 'test', memory: freshMemory(), wakeAfterMs: 0 });
const names = (violations: readonly { invariant: string }[]): string[] => violations.map((violation) => violation.invariant);

describe('decision invariants', () => {
  it('flag a promotion without a valid lock, and pass one with it', () => {
    const replica = observe({ name: 'node2', dcs: { kind: 'ok', view: view({ leaderName: 'node2' }) } });
    assert.deepEqual(names(checkDecision(replica, decided({ kind: 'promote' }))), ['promote-needs-lock']);
    const holding = observe({
      name: 'node2',
      dcs: { kind: 'ok', view: view({ leaderName: 'node2' }) },
      lock: { lastRenewSentAtMs: NOW - 1000 },
    });
    assert.deepEqual(checkDecision(holding, decided({ kind: 'promote' })), []);
  });

  it('flag a race against a holder', () => {
    assert.deepEqual(names(checkDecision(observe({ name: 'node2' }), decided({ kind: 'acquireLeader' }))), ['no-race-against-holder']);
  });

  it('flag a synchronous-mode race by a member outside the sync key', () => {
    const sync = { mode: 'priority', isStrict: false, nodeCount: 1 } as const;
    const obs = observe({
      name: 'node3',
      sync,
      dcs: { kind: 'ok', view: view({ sync: { leader: 'node1', sync_standby: 'node2' } }) },
    });
    assert.deepEqual(names(checkDecision(obs, decided({ kind: 'acquireLeader' }))), ['sync-race-in-set']);
    const listed = observe({ ...obs, self: { ...obs.self, name: 'node2' } });
    assert.deepEqual(checkDecision(listed, decided({ kind: 'acquireLeader' })), []);
  });

  it('flag waiting for a standby before the key covers it, and narrowing the key under a standby still waited for', () => {
    const sync = { mode: 'priority', isStrict: false, nodeCount: 1 } as const;
    const obs = observe({
      sync,
      pg: primaryPg({ synchronousStandbyNames: '"node2"' }),
      lock: { lastRenewSentAtMs: NOW - 1000 },
      dcs: { kind: 'ok', view: view({ leaderName: 'node1', sync: { leader: 'node1', sync_standby: 'node2' } }) },
    });
    assert.deepEqual(names(checkDecision(obs, decided({ kind: 'setSynchronousStandbyNames', value: '"node3"' }))), [
      'sync-widen-before-wait',
    ]);
    const widened = decided(
      { kind: 'writeSync', state: { leader: 'node1', sync_standby: 'node2,node3', quorum: 1 } },
      { kind: 'setSynchronousStandbyNames', value: '"node3"' },
    );
    assert.deepEqual(checkDecision(obs, widened), []);
    assert.deepEqual(names(checkDecision(obs, decided({ kind: 'writeSync', state: { leader: 'node1', sync_standby: 'node3' } }))), [
      'sync-narrow-after-confirm',
    ]);
  });

  it('hold for every decision the real core makes in the table cases it is checked against', () => {
    const cases = [
      observe({ name: 'node2' }),
      observe({ pg: primaryPg(), lock: { lastRenewSentAtMs: NOW - 1000 } }),
      observe({ pg: primaryPg(), lock: { lastRenewSentAtMs: NOW - 40_000 } }),
      observe({ name: 'node2', dcs: { kind: 'ok', view: view() } }),
      observe({ name: 'node2', pg: pgState({ isRunning: false }) }),
    ];
    for (const obs of cases) assert.deepEqual(checkDecision(obs, decide(obs, freshMemory())), [], decide(obs, freshMemory()).reason);
  });
});

describe('cluster invariants', () => {
  it('allow one writable primary with a valid lock, flag two, and flag a running agent past its deadline', () => {
    const node = (name: string, deadline: number | undefined, isAgentRunning = true) => ({
      name,
      isWritablePrimary: true,
      lockDeadlineMs: deadline,
      isAgentRunning,
    });
    assert.deepEqual(checkWritablePrimaries([node('a', 200), node('b', 50)], 100, 150), []);
    assert.deepEqual(names(checkWritablePrimaries([node('a', 200), node('b', 300)], 100, 150)), ['single-writable-primary']);
    assert.deepEqual(names(checkWritablePrimaries([node('a', 200)], 400, 150)), ['no-primary-past-deadline']);
    assert.deepEqual(checkWritablePrimaries([node('a', 200, false)], 400, 150), []);
  });

  it('flag a takeover that misses an acknowledged commit', () => {
    const acked = new Map([[1, 500n]]);
    assert.deepEqual(checkKeepsAcknowledged('b', { timeline: 2, lsn: 900n, forks: new Map([[1, 600n]]) }, acked), []);
    assert.deepEqual(names(checkKeepsAcknowledged('b', { timeline: 2, lsn: 900n, forks: new Map([[1, 400n]]) }, acked)), [
      'acknowledged-commit-kept',
    ]);
    assert.deepEqual(names(checkKeepsAcknowledged('b', { timeline: 1, lsn: 499n, forks: new Map() }, acked)), ['acknowledged-commit-kept']);
  });
});
