// failsafe_mode (Patroni 3.0+) in the core: the leader's rounds without the DCS, the failsafe key, the replicas' race
// held by a fresh POST /failsafe, the answer to POST /failsafe, and Patroni's documented corner cases.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decide } from '../../src/core/decide.js';
import { checkDecision } from '../../src/core/invariants.js';
import { lockDeadlineMs, lockDeadlineOf } from '../../src/core/lease.js';
import { answerFailsafe, failsafeTargetsOf, failsafeTopologyOf } from '../../src/core/rules/failsafe.js';
import type { Decision, FailsafeObservation, FailsafeRecord, LockObservation, Observation } from '../../src/core/types.js';
import { freshMemory, kinds, member, observe, pgState, primaryPg, TIMING, view } from '../sim/builders.js';

const NOW = 100_000;
const TOPOLOGY = {
  node1: 'http://127.0.0.1:8008/node1/patroni',
  node2: 'http://127.0.0.1:8008/node2/patroni',
  node3: 'http://127.0.0.1:8008/node3/patroni',
};
const ON: FailsafeObservation = { isEnabled: true, record: undefined, lastRound: undefined };

function withLock(obs: Observation, lock: LockObservation): Observation {
  return { ...obs, lock };
}

/** node1, the primary, whose last renewal was `renewedAgoMs` ago and whose DCS has been unreachable for `lostForMs`. */
function leaderWithoutDcs(options: {
  readonly failsafe?: FailsafeObservation;
  readonly renewedAgoMs?: number;
  readonly lostForMs?: number;
  readonly lastFailsafeAgoMs?: number;
  readonly topology?: Readonly<Record<string, string>> | undefined;
}): Observation {
  const lastView = view({ leaderName: 'node1', failsafe: 'topology' in options ? options.topology : TOPOLOGY });
  const obs = observe({
    pg: primaryPg(),
    dcs: { kind: 'unreachable', sinceMs: NOW - (options.lostForMs ?? 1000), lastView },
    failsafe: options.failsafe ?? ON,
  });
  return withLock(obs, {
    lastRenewSentAtMs: NOW - (options.renewedAgoMs ?? 2000),
    ttlMs: TIMING.ttlMs,
    ...(options.lastFailsafeAgoMs !== undefined ? { lastFailsafeSentAtMs: NOW - options.lastFailsafeAgoMs } : {}),
  });
}

function replica(options: {
  readonly failsafe?: FailsafeObservation;
  readonly topology?: Readonly<Record<string, string>> | undefined;
  readonly leaderName?: string;
}): Observation {
  return observe({
    name: 'node2',
    pg: pgState(),
    dcs: {
      kind: 'ok',
      view: view({
        ...(options.leaderName !== undefined ? { leaderName: options.leaderName } : {}),
        failsafe: 'topology' in options ? options.topology : TOPOLOGY,
      }),
    },
    failsafe: options.failsafe ?? ON,
  });
}

const record = (receivedAgoMs: number, leader = 'node1'): FailsafeRecord => ({
  leader,
  connUrl: `postgres://127.0.0.1:5432/${leader}`,
  apiUrl: TOPOLOGY.node1,
  receivedAtMs: NOW - receivedAgoMs,
  ttlMs: TIMING.ttlMs,
});

function decideChecked(obs: Observation): Decision {
  const decision = decide(obs, freshMemory());
  assert.deepEqual(checkDecision(obs, decision), [], 'the decision keeps the safety invariants');
  return decision;
}

describe('failsafe: the lock proved by a confirmed round', () => {
  it('counts from the round send time, like a renewal sent then, and never shortens a later renewal', () => {
    assert.equal(lockDeadlineOf({ lastRenewSentAtMs: undefined }), undefined);
    assert.equal(lockDeadlineOf({ lastRenewSentAtMs: 1000, ttlMs: 30_000 }), lockDeadlineMs(1000, 30_000));
    assert.equal(lockDeadlineOf({ lastRenewSentAtMs: 1000, ttlMs: 30_000, lastFailsafeSentAtMs: 25_000 }), lockDeadlineMs(25_000, 30_000));
    assert.equal(
      lockDeadlineOf({ lastRenewSentAtMs: 26_000, ttlMs: 30_000, lastFailsafeSentAtMs: 25_000 }),
      lockDeadlineMs(26_000, 30_000),
    );
  });
});

describe('failsafe: the leader without the DCS', () => {
  it('without failsafe_mode behaves as before: tries to renew, demotes after retry_timeout', () => {
    const off = { ...ON, isEnabled: false };
    assert.deepEqual(kinds(decideChecked(leaderWithoutDcs({ failsafe: off })).actions), ['renewLeader']);
    const late = decideChecked(leaderWithoutDcs({ failsafe: off, lostForMs: TIMING.retryTimeoutMs }));
    assert.deepEqual(late.actions, [{ kind: 'demote', mode: 'offline' }]);
  });

  it('asks every member of the failsafe key and of its last view to confirm it, within a bounded budget', () => {
    const obs = leaderWithoutDcs({ topology: { node1: TOPOLOGY.node1, node2: TOPOLOGY.node2 } });
    const decision = decideChecked(obs);
    assert.deepEqual(decision.actions, [
      {
        kind: 'confirmFailsafe',
        targets: [
          { name: 'node2', apiUrl: TOPOLOGY.node2 },
          // Not in the key it read yet, but in its last view: it may be in the key written in that cycle.
          { name: 'node3', apiUrl: member('node3').api_url },
        ],
        budgetMs: 2000,
      },
    ]);
    assert.match(decision.reason, /asking node2, node3 to confirm me/);
    assert.ok(decision.wakeAfterMs <= TIMING.loopWaitMs);
  });

  it('stays primary past retry_timeout while rounds are confirmed (Patroni: continue to run as a leader)', () => {
    const decision = decideChecked(leaderWithoutDcs({ renewedAgoMs: 25_000, lostForMs: 24_000, lastFailsafeAgoMs: 5000 }));
    assert.deepEqual(kinds(decision.actions), ['confirmFailsafe']);
    assert.equal(decision.reason, 'continue to run as a leader because failsafe mode is enabled and all members are accessible');
    // The next round is due well before the deadline the last one gave (sent 5 s ago + ttl - margin).
    assert.ok(NOW + decision.wakeAfterMs + 2 * 2000 < lockDeadlineMs(NOW - 5000, TIMING.ttlMs));
  });

  it('corner case: a member unreachable too -> the round is not confirmed and the leader demotes at once', () => {
    const obs = leaderWithoutDcs({
      lostForMs: 3000,
      failsafe: { ...ON, lastRound: { sentAtMs: NOW - 2500, isConfirmed: false, unconfirmed: ['node3'] } },
    });
    const decision = decideChecked(obs);
    assert.deepEqual(decision.actions, [{ kind: 'demote', mode: 'offline' }]);
    assert.match(decision.reason, /did not confirm me: node3/);
  });

  it('a refused round from an earlier outage does not count against this one', () => {
    const obs = leaderWithoutDcs({
      lostForMs: 1000,
      failsafe: { ...ON, lastRound: { sentAtMs: NOW - 60_000, isConfirmed: false, unconfirmed: ['node3'] } },
    });
    assert.deepEqual(kinds(decideChecked(obs).actions), ['confirmFailsafe']);
  });

  it('demotes once the proof ran out (no confirmed round since the deadline passed)', () => {
    const decision = decideChecked(leaderWithoutDcs({ renewedAgoMs: 40_000, lostForMs: 39_000, lastFailsafeAgoMs: 29_500 }));
    assert.deepEqual(decision.actions, [{ kind: 'demote', mode: 'offline' }]);
  });

  it('without a topology that lists it, failsafe does not apply (as in Patroni) and the old rule demotes', () => {
    for (const topology of [undefined, { node2: TOPOLOGY.node2 }]) {
      const decision = decideChecked(leaderWithoutDcs({ topology, lostForMs: TIMING.retryTimeoutMs }));
      assert.deepEqual(decision.actions, [{ kind: 'demote', mode: 'offline' }]);
    }
  });

  it('a single-member cluster confirms itself (nobody to ask)', () => {
    const obs = leaderWithoutDcs({ topology: { node1: TOPOLOGY.node1 } });
    const alone = {
      ...obs,
      dcs: { ...obs.dcs, lastView: view({ leaderName: 'node1', members: [member('node1')], failsafe: { node1: TOPOLOGY.node1 } }) },
    };
    assert.deepEqual(decideChecked(alone).actions, [{ kind: 'confirmFailsafe', targets: [], budgetMs: 2000 }]);
  });
});

describe('failsafe: the DCS comes back', () => {
  it('corner case: another member holds the leader key -> the failsafe leader demotes at once', () => {
    const obs = withLock(
      observe({ pg: primaryPg(), dcs: { kind: 'ok', view: view({ leaderName: 'node2', failsafe: TOPOLOGY }) }, failsafe: ON }),
      {
        lastRenewSentAtMs: NOW - 40_000,
        ttlMs: TIMING.ttlMs,
        lastFailsafeSentAtMs: NOW - 3000,
      },
    );
    const decision = decideChecked(obs);
    assert.deepEqual(decision.actions, [{ kind: 'demote', mode: 'immediate-nolock' }]);
  });

  it('corner case: no leader key -> the failsafe leader (still proved) re-acquires it', () => {
    const obs = withLock(observe({ pg: primaryPg(), dcs: { kind: 'ok', view: view({ failsafe: TOPOLOGY }) }, failsafe: ON }), {
      lastRenewSentAtMs: NOW - 40_000,
      ttlMs: TIMING.ttlMs,
      lastFailsafeSentAtMs: NOW - 3000,
    });
    assert.deepEqual(kinds(decideChecked(obs).actions), ['acquireLeader']);
  });

  it('corner case: no leader key -> a replica holding a fresh POST /failsafe does not race', () => {
    const decision = decideChecked(replica({ failsafe: { ...ON, record: record(5000) } }));
    assert.deepEqual(decision.actions, []);
    assert.match(decision.reason, /^following failsafe leader node1/);
  });

  it('the record holds even if failsafe_mode was switched off meanwhile (the leader still runs on it)', () => {
    const decision = decideChecked(replica({ failsafe: { isEnabled: false, record: record(5000), lastRound: undefined } }));
    assert.deepEqual(decision.actions, []);
  });

  it('without a fresh record the replicas race as usual', () => {
    assert.deepEqual(kinds(decideChecked(replica({})).actions), ['acquireLeader']);
    assert.deepEqual(kinds(decideChecked(replica({ failsafe: { ...ON, record: undefined } })).actions), ['acquireLeader']);
  });

  it('a member missing from a non-empty failsafe key never races (Patroni); an empty or absent key restricts nobody', () => {
    const missing = decideChecked(replica({ topology: { node1: TOPOLOGY.node1, node3: TOPOLOGY.node3 } }));
    assert.deepEqual(missing.actions, []);
    assert.match(missing.reason, /not in the failsafe topology/);
    assert.deepEqual(kinds(decideChecked(replica({ topology: {} })).actions), ['acquireLeader']);
    assert.deepEqual(kinds(decideChecked(replica({ topology: undefined })).actions), ['acquireLeader']);
  });

  it('the old leader of a switchover to anyone races when no other member may (only it is in the failsafe key)', () => {
    const oldLeader = (topology: Readonly<Record<string, string>>): Observation =>
      observe({
        name: 'node1',
        pg: pgState(),
        dcs: { kind: 'ok', view: { ...view({ failsafe: topology }), failover: { leader: 'node1' } } },
        failsafe: ON,
      });
    // Seed 8 of the failsafe simulation ended here for good: the others never race, and the old leader waited for them.
    assert.deepEqual(kinds(decideChecked(oldLeader({ node1: TOPOLOGY.node1 })).actions), ['acquireLeader']);
    const waits = decideChecked(oldLeader({ node1: TOPOLOGY.node1, node3: TOPOLOGY.node3 }));
    assert.deepEqual(waits.actions, []);
    assert.match(waits.reason, /I am the leader that is being switched over/);
  });

  it('a restarted agent does not race during its first ttl: it forgot what it confirmed', () => {
    const early = decideChecked(replica({ failsafe: { ...ON, agentStartedAtMs: NOW - 10_000 } }));
    assert.deepEqual(early.actions, []);
    assert.match(early.reason, /started less than ttl ago/);
    assert.deepEqual(kinds(decideChecked(replica({ failsafe: { ...ON, agentStartedAtMs: NOW - TIMING.ttlMs } })).actions), [
      'acquireLeader',
    ]);
  });

  it('a replica follows a leader named in the key as usual, whatever its record says', () => {
    const decision = decideChecked(replica({ leaderName: 'node3', failsafe: { ...ON, record: record(1000) } }));
    assert.doesNotMatch(decision.reason, /failsafe/);
  });
});

describe('failsafe: the leader keeps the failsafe key', () => {
  const leader = (failsafe: FailsafeObservation, topology: Readonly<Record<string, string>> | undefined): Observation =>
    observe({
      pg: primaryPg(),
      self: { name: 'node1', tags: {}, canBootstrap: true, apiUrl: TOPOLOGY.node1 },
      dcs: { kind: 'ok', view: view({ leaderName: 'node1', failsafe: topology }) },
      lock: { lastRenewSentAtMs: NOW - 1000 },
      failsafe,
    });
  const expected = Object.fromEntries(['node1', 'node2', 'node3'].map((name) => [name, member(name).api_url]));

  it('writes every member name -> api_url right after its renewal when the key differs', () => {
    const decision = decideChecked(leader(ON, undefined));
    assert.deepEqual(decision.actions.slice(0, 2), [{ kind: 'renewLeader' }, { kind: 'writeFailsafe', topology: expected }]);
  });

  it('does not rewrite an unchanged key, and writes nothing with failsafe_mode off', () => {
    assert.equal(kinds(decideChecked(leader(ON, expected)).actions).includes('writeFailsafe'), false);
    assert.equal(kinds(decideChecked(leader({ ...ON, isEnabled: false }, undefined)).actions).includes('writeFailsafe'), false);
    assert.equal(kinds(decideChecked(leader({ ...ON, isEnabled: false }, {})).actions).includes('writeFailsafe'), false);
  });

  it('empties the key once failsafe_mode is off, so that turning it on again rewrites it', () => {
    const decision = decideChecked(leader({ ...ON, isEnabled: false }, expected));
    assert.deepEqual(decision.actions.slice(0, 2), [{ kind: 'renewLeader' }, { kind: 'writeFailsafe', topology: {} }]);
  });

  it('lists itself even before its member key shows in the view', () => {
    const alone = view({ leaderName: 'node1', members: [member('node2')] });
    assert.deepEqual(failsafeTopologyOf(alone, 'node1', TOPOLOGY.node1), { node1: TOPOLOGY.node1, node2: member('node2').api_url });
    assert.deepEqual(failsafeTargetsOf(alone, { node1: TOPOLOGY.node1 }, 'node1'), [{ name: 'node2', apiUrl: member('node2').api_url }]);
  });
});

describe('failsafe: answering POST /failsafe', () => {
  const facts = { self: 'node2', sender: 'node1', isEnabled: true, isRunningPrimary: false, isLockBusy: false, viewLeader: undefined };

  it('accepts from a leader the member does not see replaced (DCS away, no key, or the key names the sender)', () => {
    assert.deepEqual(answerFailsafe(facts), { isAccepted: true });
    assert.deepEqual(answerFailsafe({ ...facts, viewLeader: 'node1' }), { isAccepted: true });
  });

  it('refuses when failsafe_mode is off (502), as a running primary, while taking the lock, or when another member holds it', () => {
    assert.deepEqual(answerFailsafe({ ...facts, isEnabled: false }), {
      isAccepted: false,
      status: 502,
      message: 'failsafe_mode is not enabled',
    });
    assert.deepEqual(answerFailsafe({ ...facts, isRunningPrimary: true }), {
      isAccepted: false,
      status: 500,
      message: 'Running as a leader',
    });
    assert.equal(answerFailsafe({ ...facts, isLockBusy: true }).isAccepted, false);
    assert.deepEqual(answerFailsafe({ ...facts, viewLeader: 'node3' }), {
      isAccepted: false,
      status: 500,
      message: 'node3 holds the leader lock',
    });
    assert.equal(answerFailsafe({ ...facts, sender: 'node2' }).isAccepted, false);
  });
});

describe('failsafe: the invariant', () => {
  it('flags a race decided while a fresh failsafe record names another member', () => {
    const obs = replica({ failsafe: { ...ON, record: record(1000) } });
    const violations = checkDecision(obs, { actions: [{ kind: 'acquireLeader' }], reason: 'x', memory: freshMemory(), wakeAfterMs: 0 });
    assert.deepEqual(
      violations.map((violation) => violation.invariant),
      ['no-race-against-failsafe-leader'],
    );
    const stale = replica({ failsafe: { ...ON, record: record(TIMING.ttlMs) } });
    assert.deepEqual(
      checkDecision(stale, { actions: [{ kind: 'acquireLeader' }], reason: 'x', memory: freshMemory(), wakeAfterMs: 0 }),
      [],
    );
  });
});
