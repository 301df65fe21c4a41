// The chaos suite's pure parts: schedules replay exactly from their seed, and the checker finds lost writes,
// dual-writable periods and divergent members.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { checkRun, findDualWrites, type Ack } from '../../src/chaos/checker.js';
import { faultSchedule, FAULT_KINDS } from '../../src/chaos/schedule.js';

const ack = (id: number, atMs: number, port: number, timeline: number): Ack => ({ id, atMs, port, sysid: '1', timeline });

describe('fault schedules', () => {
  it('are the same for the same seed and differ between seeds', () => {
    assert.deepEqual(faultSchedule(7, 10), faultSchedule(7, 10));
    assert.notDeepEqual(faultSchedule(7, 10), faultSchedule(8, 10));
    assert.ok(faultSchedule(7, 50).every((fault) => FAULT_KINDS.includes(fault.kind)));
    assert.ok(new Set(faultSchedule(3, 60).map((fault) => fault.kind)).size >= 5, 'every kind gets drawn over a long schedule');
  });

  it('refuses a bad fault count', () => {
    assert.throws(() => faultSchedule(1, 0), /--faults must be a positive integer/);
  });
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

  it('counts acknowledged writes missing on the leader and names divergent members', () => {
    const report = checkRun([ack(1, 1, 5001, 1), ack(2, 2, 5001, 1), ack(3, 3, 5001, 1)], new Set([1, 3]), new Map([['node1', 'a'], ['node2', 'a'], ['node3', 'b']]));
    assert.deepEqual(report.lost, [2]);
    assert.deepEqual(report.divergentMembers, ['node3']);
    assert.equal(report.acknowledged, 3);
  });
});
