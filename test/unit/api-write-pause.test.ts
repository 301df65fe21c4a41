// The dashboard's write pause of a switchover (old primary's demote -> history entry) and of a failover (the old
// lock's lease reading -> history entry, an upper bound), and the agent's lease reading it is computed from.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { leaseForDecision, leaseReadingOf } from '../../src/agent/old-lease.js';
import { writePauseOf } from '../../src/api/write-pause.js';
import type { DecisionEvent, LeaderRecord } from '../../src/core/types.js';

const T0 = Date.parse('2026-12-07T10:00:00.000Z');
const iso = (offsetMs: number): string => new Date(T0 + offsetMs).toISOString();
const entry = (timeline: number, atMs: number, leader: string): unknown[] => [
  timeline,
  50_000_000,
  'no recovery target specified',
  iso(atMs),
  leader,
];
const event = (member: string, atMs: number, actions: string[], extra: Partial<DecisionEvent> = {}): DecisionEvent => ({
  seq: 1,
  at: iso(atMs),
  member,
  role: 'replica',
  timeline: 1,
  actions,
  reason: actions.join(' '),
  ...extra,
});
const lockOf = (name: string, createRevision: string): LeaderRecord => ({ name, modRevision: createRevision, createRevision });

describe('lease reading (agent/old-lease.ts)', () => {
  it('bounds the last renewal by readAt - (ttl - whole seconds left), and bounds nothing with nothing left', () => {
    const reading = leaseReadingOf(lockOf('pg1', '7'), T0 + 10_000, 5000, 8000);
    assert.deepEqual(reading, {
      leader: 'pg1',
      term: '7',
      readAt: iso(10_000),
      leftS: 5,
      ttlS: 8,
      renewedNotBefore: iso(7000),
    });
    // etcd's figure is rounded down (5.9 s left reads as 5): the bound is the earliest renewal that reading allows.
    assert.equal(leaseReadingOf(lockOf('pg1', '7'), T0 + 10_000, 5900, 8000)?.renewedNotBefore, iso(7000));
    assert.equal(leaseReadingOf(lockOf('pg1', '7'), T0, 0, 8000), undefined, 'expired or under a second: no bound');
    assert.equal(leaseReadingOf(lockOf('pg1', '7'), T0, 30_000, 8000), undefined, 'more left than the ttl: not this lock');
    assert.equal(leaseReadingOf(lockOf('pg1', '7'), Number.NaN, 5000, 8000), undefined);
  });

  it('goes with the decision that deletes that very lock, or takes the lock after it, never with another term', () => {
    const reading = leaseReadingOf(lockOf('pg1', '7'), T0, 5000, 8000);
    assert.equal(leaseForDecision([{ kind: 'deleteStaleLeader', leader: lockOf('pg1', '7') }], reading, undefined, 'pg2'), reading);
    assert.equal(leaseForDecision([{ kind: 'deleteStaleLeader', leader: lockOf('pg1', '9') }], reading, undefined, 'pg2'), undefined);
    assert.equal(leaseForDecision([{ kind: 'acquireLeader' }], reading, lockOf('pg1', '7'), 'pg2'), reading);
    assert.equal(leaseForDecision([{ kind: 'acquireLeader' }], reading, lockOf('pg1', '9'), 'pg2'), undefined, 'a later term');
    assert.equal(leaseForDecision([{ kind: 'acquireLeader' }], reading, lockOf('pg2', '7'), 'pg2'), undefined, 'its own lock');
    assert.equal(leaseForDecision([{ kind: 'renewLeader' }], reading, lockOf('pg1', '7'), 'pg2'), undefined);
    assert.equal(leaseForDecision([{ kind: 'acquireLeader' }], undefined, lockOf('pg1', '7'), 'pg2'), undefined);
  });
});

describe('write pause (api/write-pause.ts)', () => {
  const previous = entry(1, -600_000, 'pg1');

  it("a switchover: the old primary's demote to the new leader's history entry", () => {
    const events = [event('pg1', 1000, ['demote']), event('pg2', 1500, ['acquireLeader']), event('pg1', -700_000, ['demote'])];
    const pause = writePauseOf(entry(2, 2400, 'pg2'), previous, events);
    assert.equal(pause?.basis, 'demote');
    assert.equal(pause?.seconds, 1.4);
    assert.match(pause?.text ?? '', /^writes paused ~1\.4 s \(pg1 demoted at 10:00:01\.0\)$/);
  });

  it('a failover: at most the history entry minus the earliest last renewal the lease readings allow', () => {
    const stale = event('pg3', 3000, ['deleteStaleLeader'], {
      oldLease: { leader: 'pg1', term: '7', readAt: iso(3000), leftS: 6, ttlS: 8, renewedNotBefore: iso(1000) },
    });
    // pg2's own later reading of the same lock (before it went) is the tighter bound.
    const acquire = event('pg2', 3100, ['acquireLeader'], {
      oldLease: { leader: 'pg1', term: '7', readAt: iso(2900), leftS: 7, ttlS: 8, renewedNotBefore: iso(1900) },
    });
    const pause = writePauseOf(entry(2, 4900, 'pg2'), previous, [stale, acquire]);
    assert.equal(pause?.basis, 'lease');
    assert.equal(pause?.seconds, 3);
    assert.equal(
      pause?.text,
      'writes paused \u2264 3.0 s (pg1 last renewed its lease no earlier than 10:00:01.9: pg2 read 7 of 8 s left at 10:00:02.9)',
    );
    // With pg3's reading alone (pg2 had none).
    const alone = writePauseOf(entry(2, 4900, 'pg2'), previous, [stale, event('pg2', 3100, ['acquireLeader'])]);
    assert.equal(alone?.seconds, 3.9);
    assert.match(alone?.text ?? '', /pg3 read 6 of 8 s left/);
  });

  it('says unknown for a takeover nobody read the lease of, and nothing without events', () => {
    const pause = writePauseOf(entry(2, 4900, 'pg2'), previous, [event('pg2', 3100, ['acquireLeader'])]);
    assert.deepEqual(pause, {
      basis: 'unknown',
      seconds: undefined,
      text: 'write pause unknown (no member read the old lock\u2019s lease before it went)',
    });
    assert.equal(writePauseOf(entry(2, 4900, 'pg2'), previous, []), undefined);
    assert.equal(writePauseOf([1, 0, 'x', 'not a time', 'pg2'], previous, []), undefined);
  });

  it('ignores readings before the previous entry, of the new leader itself, after the entry, and malformed events', () => {
    const oldReading = event('pg3', -700_000, ['deleteStaleLeader'], {
      oldLease: { leader: 'pg1', term: '5', readAt: iso(-700_000), leftS: 6, ttlS: 8, renewedNotBefore: iso(-702_000) },
    });
    const ofSelf = event('pg3', 3000, ['deleteStaleLeader'], {
      oldLease: { leader: 'pg2', term: '8', readAt: iso(3000), leftS: 6, ttlS: 8, renewedNotBefore: iso(1000) },
    });
    const future = event('pg3', 3000, ['deleteStaleLeader'], {
      oldLease: { leader: 'pg1', term: '7', readAt: iso(9000), leftS: 7, ttlS: 8, renewedNotBefore: iso(8000) },
    });
    const junk = [
      null,
      'x',
      { at: 3, member: 'pg3', actions: [] },
      { at: iso(3000), member: 'pg3', actions: ['deleteStaleLeader'], oldLease: 'x' },
    ];
    const pause = writePauseOf(entry(2, 4900, 'pg2'), previous, [
      oldReading,
      ofSelf,
      future,
      ...junk,
      event('pg2', 3100, ['acquireLeader']),
    ]);
    assert.equal(pause?.basis, 'unknown');
  });
});
