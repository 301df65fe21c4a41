// The chaos checker (pure): it finds lost writes, dual-writable periods and divergent members, and judges async loss
// against maximum_lag_on_failover. The schedules are pinned in chaos-schedule.test.ts.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { checkRun, findDualWrites, lostWalSpan } from '../../src/chaos/checker.js';
import { isViolation, scheduleSlice } from '../../src/chaos/runner.js';
import { faultSchedule, PROCESS_FAULT_KINDS } from '../../src/chaos/schedule.js';
import { longestWriteGap, type Ack } from '../../src/chaos/workload.js';

const ack = (id: number, atMs: number, port: number, timeline: number): Ack => ({
  id,
  atMs,
  sentAtMs: atMs,
  port,
  sysid: '1',
  timeline,
  lsn: id,
});

describe('the consistency checker', () => {
  it('accepts a failover that moves to a higher timeline', () => {
    assert.deepEqual(findDualWrites([ack(1, 1, 5001, 1), ack(2, 2, 5001, 1), ack(3, 3, 5002, 2), ack(4, 4, 5001, 3)]), []);
  });

  it('flags an old primary acknowledging after the new one, and two servers on one timeline', () => {
    const regress = findDualWrites([ack(1, 1, 5001, 1), ack(2, 2, 5002, 2), ack(3, 3, 5001, 1)]);
    assert.equal(regress.length, 1);
    assert.equal(regress[0]?.later.id, 3);
    assert.equal(findDualWrites([ack(1, 1, 5001, 2), ack(2, 2, 5002, 2)]).length, 1);
  });

  it('does not flag an old primary whose answer to a write sent before the new primary served anyone arrives late', () => {
    // A second writer's write reached the old primary before the failover; a blackhole held its answer for seconds.
    const delayed: Ack = { ...ack(3, 13, 5001, 1), sentAtMs: 9 };
    assert.deepEqual(findDualWrites([ack(1, 8, 5001, 1), ack(2, 10, 5002, 2), delayed]), []);
    // Sent after the new primary's ack arrived: that old primary was still writable then.
    assert.equal(findDualWrites([ack(1, 8, 5001, 1), ack(2, 10, 5002, 2), { ...ack(3, 13, 5001, 1), sentAtMs: 11 }]).length, 1);
  });

  it('counts acknowledged writes missing on the leader and names divergent members', () => {
    const report = checkRun(
      [ack(1, 1, 5001, 1), ack(2, 2, 5001, 1), ack(3, 3, 5001, 1)],
      new Set([1, 3]),
      new Map([
        ['node1', 'a'],
        ['node2', 'a'],
        ['node3', 'b'],
      ]),
    );
    assert.deepEqual(report.lost, [2]);
    assert.deepEqual(report.divergentMembers, ['node3']);
    assert.equal(report.acknowledged, 3);
  });
});

describe('asynchronous loss against maximum_lag_on_failover', () => {
  const withLsn = (id: number, timeline: number, lsn: number): Ack => ({ ...ack(id, id, 5001, timeline), lsn });

  it('measures the WAL the lost writes covered on the server that acknowledged them', () => {
    const acks = [withLsn(1, 1, 1000), withLsn(2, 1, 1100), withLsn(3, 1, 1200), withLsn(4, 1, 1300), withLsn(5, 2, 5000)];
    assert.equal(lostWalSpan(acks, new Set([3, 4])), 200, 'from after write 2 to after write 4');
    assert.equal(lostWalSpan(acks, new Set()), 0);
  });

  it('is a violation in async mode only beyond the bound, and any loss in sync mode', () => {
    const base = {
      seed: 1,
      faults: [],
      byKind: [],
      acknowledged: 10,
      lost: [7],
      dualWritable: 0,
      divergentMembers: [],
      converged: true,
      timelines: [1],
      writerErrors: 0,
      directAcknowledged: 0,
      reads: { ok: 1, failed: 0 },
      network: 'loopback',
      kinds: [],
      maximumLagOnFailover: 1000,
      reportPath: '',
    } as const;
    assert.equal(isViolation({ ...base, isSync: false, lostWalBytes: 900 }), false);
    assert.equal(isViolation({ ...base, isSync: false, lostWalBytes: 1001 }), true);
    assert.equal(isViolation({ ...base, isSync: true, lostWalBytes: 10 }), true);
    assert.equal(isViolation({ ...base, isSync: false, lostWalBytes: 0, dualWritable: 1 }), true);
  });
});

describe('the longest write gap', () => {
  const at = (...times: number[]): { atMs: number }[] => times.map((atMs) => ({ atMs }));

  it('is the longest interval between acks that ends after the fault, including the write in flight at the fault', () => {
    assert.equal(longestWriteGap(at(0, 10, 20, 900, 910), 15), 880);
    assert.equal(longestWriteGap(at(0, 10, 20, 25, 900), 22), 875, 'an ack just after the fault does not end the outage');
  });

  it('ignores gaps that end after the recovery ack, and is undefined without an ack after the fault', () => {
    assert.equal(longestWriteGap(at(0, 10, 500, 510, 5000), 5, 510), 490);
    assert.equal(longestWriteGap(at(0, 10, 20), 20), undefined);
    assert.equal(longestWriteGap([], 0), undefined);
  });
});

describe('a slice of a seeded schedule (the regression replays)', () => {
  it('keeps each fault of the slice as the whole schedule drew it, and refuses a slice outside it', () => {
    const whole = faultSchedule(200, 8, PROCESS_FAULT_KINDS);
    assert.equal(scheduleSlice(whole, undefined), whole);
    assert.deepEqual(scheduleSlice(whole, { from: 3, to: 3 }), [whole[2]]);
    assert.deepEqual(scheduleSlice(whole, { from: 3, to: 3 })[0], { index: 2, kind: 'switchover-replica-kill', pick: 278, settleS: 3 });
    assert.deepEqual(scheduleSlice(whole, { from: 7 }), whole.slice(6));
    for (const only of [{ from: 0 }, { from: 4, to: 3 }, { from: 1, to: 9 }, { from: 1.5 }])
      assert.throws(() => scheduleSlice(whole, only), /PGW_CHAOS_USAGE|not within the schedule/);
  });
});
