// The per-fault report of a chaos run (pure): write pauses through the proxy and straight to the members, whether a
// failover happened and whether the fault should have caused one, writes acknowledged by a member after another was
// promoted (direct clients included), and the per-kind summary.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { judgeFault, kindSummaryTable, lateAcks, summarizeByKind, type FaultOutcome } from '../../src/chaos/checker.js';
import { leaderChangesWithin } from '../../src/chaos/leader-watch.js';
import type { Ack } from '../../src/chaos/workload.js';

/** An ack sent at sentAtMs and received 5 ms later, by the server on `port` at `timeline`. */
const ack = (id: number, sentAtMs: number, port: number, timeline: number, latencyMs = 5): Ack => ({
  id,
  atMs: sentAtMs + latencyMs,
  sentAtMs,
  port,
  sysid: '1',
  timeline,
  lsn: id,
});

describe('writes acknowledged after a promotion', () => {
  it('counts a write the old primary received after the new one had acknowledged one', () => {
    const late = lateAcks([ack(1, 0, 5001, 1), ack(2, 100, 5002, 2), ack(3, 200, 5001, 1)]);
    assert.deepEqual(
      late.map((found) => found.id),
      [3],
    );
  });

  it('does not count a write sent before the promotion was visible and acknowledged after it (it may have committed before)', () => {
    const inFlight = ack(3, 90, 5001, 1, 5000);
    assert.deepEqual(lateAcks([ack(1, 0, 5001, 1), ack(2, 100, 5002, 2), inFlight]), []);
  });

  it('counts a second server on the same timeline, and accepts a plain move to a newer timeline', () => {
    assert.equal(lateAcks([ack(1, 0, 5001, 2), ack(2, 100, 5002, 2)]).length, 1);
    assert.deepEqual(lateAcks([ack(1, 0, 5001, 1), ack(2, 100, 5002, 2), ack(3, 200, 5002, 2), ack(4, 300, 5001, 3)]), []);
  });
});

describe('one fault judged', () => {
  const base = { startMs: 1000, endMs: 10_000, leaderBefore: 'node1', leaderChanges: [], expectation: 'allowed' } as const;

  it('measures the pause through the proxy and the direct writer separately, and sees a failover by its new timeline', () => {
    const proxyAcks = [ack(1, 900, 5001, 1), ack(2, 3000, 5002, 2), ack(3, 3100, 5002, 2)];
    const directAcks = [ack(100, 950, 5001, 1), ack(101, 6000, 5002, 2)];
    const judged = judgeFault({ ...base, proxyAcks, directAcks, expectation: 'forbidden' });
    assert.equal(judged.recoveryMs, 2100);
    assert.equal(judged.directRecoveryMs, 5050);
    assert.equal(judged.failover, true);
    assert.equal(judged.falseFailover, true);
    assert.equal(judged.missedFailover, false);
    assert.deepEqual(judged.lateAcks, { proxy: 0, direct: 0 });
  });

  it('counts the direct client writing on the old primary after the proxy client reached the new one', () => {
    const proxyAcks = [ack(1, 900, 5001, 1), ack(2, 3000, 5002, 2)];
    const directAcks = [ack(100, 950, 5001, 1), ack(101, 4000, 5001, 1), ack(102, 4100, 5001, 1)];
    const judged = judgeFault({
      ...base,
      proxyAcks,
      directAcks,
      leaderChanges: [{ atMs: 2500, leader: 'node2' }],
      expectation: 'required',
    });
    assert.deepEqual(judged.lateAcks, { proxy: 0, direct: 2 });
    assert.deepEqual(judged.newLeaders, ['node2']);
    assert.equal(judged.newLeaderMs, 1500);
    assert.equal(judged.missedFailover, false);
  });

  it('reports a missed failover, and no failover when the leader and the timeline stayed', () => {
    const proxyAcks = [ack(1, 900, 5001, 1), ack(2, 5000, 5001, 1)];
    const judged = judgeFault({ ...base, proxyAcks, directAcks: [], expectation: 'required' });
    assert.equal(judged.failover, false);
    assert.equal(judged.missedFailover, true);
    assert.equal(judged.directRecoveryMs, undefined, 'no direct write after the fault: the pause never ended');
  });

  it('judges a long run (more acks than a call takes arguments)', () => {
    const proxyAcks = Array.from({ length: 300_000 }, (_unused, index) => ack(index, index, 5001, 1));
    const judged = judgeFault({ ...base, startMs: 299_000, endMs: 400_000, proxyAcks, directAcks: [] });
    assert.equal(judged.recoveryMs, 1);
    assert.equal(judged.failover, false);
  });

  it('takes only the leader changes of the fault window, from the first that is not the leader before it', () => {
    const changes = [
      { atMs: 10, leader: 'node1' },
      { atMs: 2000, leader: 'node2' },
      { atMs: 20_000, leader: 'node3' },
    ];
    assert.deepEqual(leaderChangesWithin(changes, 'node1', 1000, 10_000), [{ atMs: 2000, leader: 'node2' }]);
    assert.deepEqual(leaderChangesWithin(changes, 'node1', 3000, 10_000), []);
    assert.deepEqual(leaderChangesWithin([{ atMs: 1500, leader: 'node1' }], 'node1', 1000, 10_000), []);
  });
});

describe('the per-kind summary', () => {
  const outcome = (kind: string, overrides: Partial<FaultOutcome>): FaultOutcome => ({
    index: 0,
    kind,
    target: 'node1',
    recoveryMs: 100,
    directRecoveryMs: 200,
    converged: true,
    expectation: 'allowed',
    failover: false,
    newLeaders: [],
    newLeaderMs: undefined,
    falseFailover: false,
    missedFailover: false,
    lateAcks: { proxy: 0, direct: 0 },
    ...overrides,
  });

  it('gives count, failovers (false, missed), median and max pauses, and late acks per kind, in order of first occurrence', () => {
    const rows = summarizeByKind([
      outcome('kill-etcd-leader', { recoveryMs: 50, falseFailover: true, failover: true }),
      outcome('blackhole-primary', { recoveryMs: 12_000, directRecoveryMs: undefined, failover: true, lateAcks: { proxy: 0, direct: 1 } }),
      outcome('kill-etcd-leader', { recoveryMs: 70, directRecoveryMs: 90 }),
      outcome('kill-etcd-leader', { recoveryMs: 60, converged: false }),
    ]);
    assert.deepEqual(
      rows.map((row) => row.kind),
      ['kill-etcd-leader', 'blackhole-primary'],
    );
    const etcd = rows[0]!;
    assert.equal(etcd.count, 3);
    assert.equal(etcd.failovers, 1);
    assert.equal(etcd.falseFailovers, 1);
    assert.equal(etcd.notConverged, 1);
    assert.deepEqual(etcd.proxyPause, { median: 60, max: 70 });
    assert.deepEqual(etcd.directPause, { median: 200, max: 200 });
    assert.deepEqual(rows[1]!.lateAcks, { proxy: 0, direct: 1 });
    assert.deepEqual(rows[1]!.directPause, { median: undefined, max: undefined });
    const table = kindSummaryTable(rows);
    assert.equal(table.length, 4);
    assert.equal(table[2], '| kill-etcd-leader | 3 | 1 | 1 | 0 | 1 | 60 / 70 | 200 / 200 | 0 / 0 |');
  });
});
