// Planned switchover and manual failover through the `failover` key: who demotes, who races, when it is dropped.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decide } from '../../src/core/decide.js';
import { isDue } from '../../src/core/failover-intent.js';
import type { FailoverIntent } from '../../src/core/types.js';
import { freshMemory, kinds, member, observe, pgState, primaryPg, view } from '../sim/builders.js';

const NOW = 100_000;
const leaderObs = (failover: FailoverIntent | undefined, members = [member('node1'), member('node2'), member('node3')]) =>
  observe({
    pg: primaryPg(),
    lock: { lastRenewSentAtMs: NOW - 1000 },
    dcs: { kind: 'ok', view: view({ leaderName: 'node1', failover, members }) },
  });

describe('switchover on the leader', () => {
  it('demotes gracefully for a switchover to a running candidate', () => {
    const decision = decide(leaderObs({ leader: 'node1', member: 'node2' }), freshMemory());
    assert.deepEqual(decision.actions, [{ kind: 'demote', mode: 'graceful' }]);
    assert.match(decision.reason, /manual switchover: demoting myself in favour of node2/);
  });

  it('drops a request naming a stopped or nofailover candidate, or itself, and stays leader', () => {
    const stopped = decide(
      leaderObs({ leader: 'node1', member: 'node2' }, [member('node1'), member('node2', { state: 'stopped' })]),
      freshMemory(),
    );
    assert.deepEqual(kinds(stopped.actions), ['renewLeader', 'clearFailover']);
    const nofailover = decide(
      leaderObs({ leader: 'node1', member: 'node2' }, [member('node1'), member('node2', { tags: { nofailover: true } })]),
      freshMemory(),
    );
    assert.deepEqual(kinds(nofailover.actions), ['renewLeader', 'clearFailover']);
    assert.deepEqual(kinds(decide(leaderObs({ leader: 'node1', member: 'node1' }), freshMemory()).actions), [
      'renewLeader',
      'clearFailover',
    ]);
  });

  it('does not judge lag from member keys (they may be a loop old): the API checked it live', () => {
    const stale = decide(
      leaderObs({ leader: 'node1', member: 'node2' }, [member('node1'), member('node2', { xlog_location: 0 })]),
      freshMemory(),
    );
    assert.deepEqual(stale.actions, [{ kind: 'demote', mode: 'graceful' }]);
  });

  it('waits for a scheduled switchover, and acts once it is due', () => {
    const early = decide(leaderObs({ leader: 'node1', member: 'node2', scheduled_at: '2026-11-24T00:10:00+00:00' }), freshMemory());
    assert.equal(
      early.actions.some((action) => action.kind === 'demote' || action.kind === 'clearFailover'),
      false,
    );
    const due = decide(leaderObs({ leader: 'node1', member: 'node2', scheduled_at: '2026-11-23T23:59:00+00:00' }), freshMemory());
    assert.deepEqual(due.actions, [{ kind: 'demote', mode: 'graceful' }]);
    assert.equal(isDue({ scheduled_at: 'not a date' }, '2026-11-24T00:00:00.000Z'), false);
  });

  it('ignores an intent for another leader (it is stale) and clears it', () => {
    const decision = decide(leaderObs({ leader: 'node3', member: 'node2' }), freshMemory());
    assert.ok(kinds(decision.actions).includes('clearFailover'));
    assert.equal(kinds(decision.actions).includes('demote'), false);
  });
});

describe('the race during a switchover', () => {
  const noLeader = (failover: FailoverIntent | undefined) => view({ failover });
  const ahead = {
    name: 'node3',
    isReachable: true,
    role: 'replica' as const,
    isRunning: true,
    walPosition: 99_999n,
    timeline: 1,
    tags: {},
  };

  it('lets only the named candidate race, even if another replica has more WAL', () => {
    assert.deepEqual(
      kinds(
        decide(
          observe({ name: 'node2', dcs: { kind: 'ok', view: noLeader({ leader: 'node1', member: 'node2' }) }, peers: [ahead] }),
          freshMemory(),
        ).actions,
      ),
      ['acquireLeader'],
    );
    const other = decide(
      observe({ name: 'node3', dcs: { kind: 'ok', view: noLeader({ leader: 'node1', member: 'node2' }) } }),
      freshMemory(),
    );
    assert.deepEqual(other.actions, []);
    assert.match(other.reason, /switchover to node2 is pending/);
  });

  it('does not wait for a named candidate that is too far behind to race', () => {
    const v = view({
      failover: { leader: 'node1', member: 'node2' },
      optime: 10 * 1048576,
      members: [member('node1'), member('node2', { xlog_location: 0 }), member('node3', { xlog_location: 10 * 1048576 })],
    });
    const other = decide(
      observe({
        name: 'node3',
        pg: pgState({ receivedLsn: BigInt(10 * 1048576), replayedLsn: BigInt(10 * 1048576) }),
        dcs: { kind: 'ok', view: v },
      }),
      freshMemory(),
    );
    assert.deepEqual(kinds(other.actions), ['acquireLeader']);
  });

  it('keeps the old leader out of a switchover without candidate', () => {
    const old = decide(observe({ name: 'node1', pg: pgState(), dcs: { kind: 'ok', view: noLeader({ leader: 'node1' }) } }), freshMemory());
    assert.deepEqual(old.actions, []);
    const peersWithOldLeaderAhead = [{ ...ahead, name: 'node1' }];
    assert.deepEqual(
      kinds(
        decide(
          observe({ name: 'node2', dcs: { kind: 'ok', view: noLeader({ leader: 'node1' }) }, peers: peersWithOldLeaderAhead }),
          freshMemory(),
        ).actions,
      ),
      ['acquireLeader'],
    );
  });
});

describe('switchover in maintenance mode (Patroni: only to a named candidate, never a scheduled one)', () => {
  const intent = { leader: 'node1', member: 'node2' };
  const stoppedOldLeader = primaryPg({ isRunning: false, controlState: 'shut down' });

  it('the leader demotes gracefully for a named candidate and remembers whom it handed over to', () => {
    const decision = decide({ ...leaderObs(intent), isPaused: true }, freshMemory());
    assert.deepEqual(decision.actions, [{ kind: 'demote', mode: 'graceful' }]);
    assert.match(decision.reason, /^PAUSE: manual switchover: demoting myself in favour of node2/);
    assert.equal(decision.memory.handedOverInPauseTo, 'node2');
  });

  it('the leader ignores a request without candidate or a scheduled one', () => {
    for (const failover of [{ leader: 'node1' }, { ...intent, scheduled_at: '2026-11-23T23:59:00+00:00' }]) {
      const decision = decide({ ...leaderObs(failover), isPaused: true }, freshMemory());
      assert.deepEqual(kinds(decision.actions), ['renewLeader'], JSON.stringify(failover));
      assert.match(decision.reason, /^PAUSE: no action/);
    }
  });

  it('only the candidate takes the free lock, and promotes once it holds it', () => {
    const noLeader = { kind: 'ok' as const, view: view({ failover: intent }) };
    const candidate = decide(observe({ name: 'node2', isPaused: true, dcs: noLeader }), freshMemory());
    assert.deepEqual(kinds(candidate.actions), ['acquireLeader']);
    assert.match(candidate.reason, /^PAUSE: acquiring the leader lock as the switchover candidate/);
    const other = decide(observe({ name: 'node3', isPaused: true, dcs: noLeader }), freshMemory());
    assert.deepEqual(other.actions, []);
    const holding = decide(
      observe({
        name: 'node2',
        isPaused: true,
        lock: { lastRenewSentAtMs: NOW - 100 },
        dcs: { kind: 'ok', view: view({ leaderName: 'node2', failover: intent }) },
      }),
      freshMemory(),
    );
    assert.deepEqual(kinds(holding.actions), ['renewLeader', 'promote']);
    // Without the request, a replica holding the lock in maintenance mode does not promote on its own.
    const unrequested = decide(
      observe({
        name: 'node2',
        isPaused: true,
        lock: { lastRenewSentAtMs: NOW - 100 },
        dcs: { kind: 'ok', view: view({ leaderName: 'node2' }) },
      }),
      freshMemory(),
    );
    assert.equal(
      unrequested.actions.some((action) => action.kind === 'promote'),
      false,
    );
  });

  it('the new primary writes its history entry and clears the request', () => {
    const decision = decide(
      observe({
        name: 'node2',
        isPaused: true,
        pg: primaryPg({ timeline: 2, writeLsn: 7100n }),
        lock: { lastRenewSentAtMs: NOW - 100 },
        dcs: { kind: 'ok', view: view({ leaderName: 'node2', failover: intent }) },
      }),
      { ...freshMemory(), promotedFrom: { timeline: 1, lsn: 7000n } },
    );
    assert.ok(kinds(decision.actions).includes('writeHistory'));
    assert.ok(kinds(decision.actions).includes('clearFailover'));
    assert.equal(decision.memory.promotedFrom, undefined);
  });

  it('the old leader starts again as a replica of the member it handed over to, and only then', () => {
    const oldLeader = (leaderName: string | undefined) =>
      observe({ isPaused: true, pg: stoppedOldLeader, dcs: { kind: 'ok', view: view({ ...(leaderName ? { leaderName } : {}) }) } });
    const handedOver = { ...freshMemory(), handedOverInPauseTo: 'node2' };
    assert.deepEqual(decide(oldLeader('node2'), handedOver).actions, [{ kind: 'rewind', from: 'node2' }]);
    assert.deepEqual(decide(oldLeader(undefined), handedOver).actions, [], 'no leader yet: wait');
    assert.deepEqual(decide(oldLeader('node3'), handedOver).actions, [], 'another leader than the candidate: stay stopped');
    assert.deepEqual(decide(oldLeader('node2'), freshMemory()).actions, [], 'a primary stopped for another reason stays stopped');
    const running = decide(observe({ isPaused: true, dcs: { kind: 'ok', view: view({ leaderName: 'node2' }) } }), handedOver);
    assert.equal(running.memory.handedOverInPauseTo, undefined, 'forgotten once PostgreSQL runs');
  });
});
