// Manual restart and reinitialize requests: acted on once, refused where they would break the rules.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decide } from '../../src/core/decide.js';
import { freshMemory, observe, pgState, primaryPg, view } from '../sim/builders.js';

const NOW = 100_000;

describe('manual commands', () => {
  it('restarts the leader as primary while renewing its lock, exactly once', () => {
    const obs = observe({ pg: primaryPg(), lock: { lastRenewSentAtMs: NOW - 1000 }, command: { id: 1, kind: 'restart' } });
    const first = decide(obs, freshMemory());
    assert.deepEqual(first.actions, [{ kind: 'renewLeader' }, { kind: 'restart', asPrimary: true, upstream: undefined }]);
    assert.equal(
      decide(obs, first.memory).actions.some((action) => action.kind === 'restart'),
      false,
    );
  });

  it('refuses to restart a primary whose lock is not valid', () => {
    const decision = decide(
      observe({
        pg: primaryPg(),
        lock: { lastRenewSentAtMs: NOW - 1000 },
        dcs: { kind: 'ok', view: view({ leaderName: 'node1' }) },
        command: { id: 1, kind: 'restart' },
        nowMs: NOW + 40_000,
      }),
      freshMemory(),
    );
    assert.equal(
      decision.actions.some((action) => action.kind === 'restart'),
      false,
    );
  });

  it('restarts a replica following its leader, and reinitializes it from the leader', () => {
    assert.deepEqual(decide(observe({ name: 'node2', command: { id: 7, kind: 'restart' } }), freshMemory()).actions, [
      { kind: 'restart', asPrimary: false, upstream: 'node1' },
    ]);
    assert.deepEqual(decide(observe({ name: 'node2', command: { id: 8, kind: 'reinitialize' } }), freshMemory()).actions, [
      { kind: 'reinitialize', from: 'node1' },
    ]);
  });

  it('never reinitializes the leader or a member of a leaderless cluster', () => {
    const leader = decide(
      observe({ pg: primaryPg(), lock: { lastRenewSentAtMs: NOW - 1000 }, command: { id: 1, kind: 'reinitialize' } }),
      freshMemory(),
    );
    assert.equal(leader.reason, 'I am the leader, can not reinitialize');
    const leaderless = decide(
      observe({ name: 'node2', pg: pgState(), dcs: { kind: 'ok', view: view({}) }, command: { id: 1, kind: 'reinitialize' } }),
      freshMemory(),
    );
    assert.equal(leaderless.reason, 'cluster has no leader, can not reinitialize');
  });

  it('still accepts manual commands in maintenance mode', () => {
    const decision = decide(observe({ name: 'node2', isPaused: true, command: { id: 3, kind: 'restart' } }), freshMemory());
    assert.equal(decision.actions[0]?.kind, 'restart');
    assert.match(decision.reason, /^PAUSE: /);
  });
});
