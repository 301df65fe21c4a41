// The in-place major upgrade's plan (core/major-upgrade.ts): the order of the steps, resuming from the record, the
// point of no return and what rollback undoes from each step; the host-step guards; the record's round trip through
// the DCS codec and the proxies' hold of primary connections while the record asks for it.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  hostStepRefusal,
  isPastNoReturn,
  majorUpgradeSteps,
  nextMajorStep,
  recordDone,
  rollbackSteps,
  stepId,
  type MajorUpgradeRecord,
} from '../../src/core/major-upgrade.js';
import type { ClusterView } from '../../src/core/types.js';
import { decodeUpgrade, encodeUpgrade } from '../../src/dcs/codec.js';
import { routePrimary } from '../../src/proxy/routing.js';

const RECORD: MajorUpgradeRecord = {
  kind: 'major',
  bin_dir: '/usr/lib/postgresql/17/bin',
  to: 17,
  old_bin_dir: '/usr/lib/postgresql/15/bin',
  leader: 'node1',
  replicas: ['node3', 'node2'],
  old_sysid: '7300000000000000001',
  was_paused: false,
  permanent_slots: ['keep'],
  has_backup: false,
  hold_writes: false,
  started: '2026-12-07T00:00:00.000Z',
  done: [],
  steps: [],
};

/** The record after the steps up to (not including) the one whose id is `until`, with `until` begun. */
function upTo(until: string, record = RECORD): MajorUpgradeRecord {
  let current = record;
  for (const step of majorUpgradeSteps(record)) {
    const id = stepId(step);
    if (id === until) return { ...current, current: id };
    current = recordDone(current, id, id);
  }
  throw new Error(`no step ${until}`);
}

describe('major upgrade plan', () => {
  it('orders the steps: hold and stop after the prepare, verify, pg_upgrade, swap, start, release, then the replicas', () => {
    assert.deepEqual(majorUpgradeSteps(RECORD).map(stepId), [
      'pause',
      'prepare:node1',
      'holdWrites',
      'stopPrimary:node1',
      'verifyReplicas',
      'pgUpgrade:node1',
      'swap:node1',
      'startPrimary:node1',
      'releaseHold',
      'createSlots:node1',
      'reinitReplica:node2',
      'reinitReplica:node3',
      'resume',
      'analyze:node1',
      'slots:node1',
    ]);
  });

  it('with backups, upgrades the stanza once writes flow again and takes a full backup last', () => {
    const ids = majorUpgradeSteps({ ...RECORD, has_backup: true }).map(stepId);
    assert.equal(ids[ids.indexOf('createSlots:node1') + 1], 'stanzaUpgrade:node1');
    assert.ok(ids.indexOf('stanzaUpgrade:node1') > ids.indexOf('releaseHold'), 'not inside the write pause');
    assert.equal(ids.at(-1), 'backup:node1');
    assert.equal(hostStepRefusal('stanza', { isLeaderWithLock: true, isPaused: false, isRunning: true }), undefined);
    assert.match(hostStepRefusal('stanza', { isLeaderWithLock: true, isPaused: false, isRunning: false }) ?? '', /not running/);
  });

  it('keeps a paused cluster paused, and then cannot wait for slots the paused leader will not make', () => {
    const ids = majorUpgradeSteps({ ...RECORD, was_paused: true }).map(stepId);
    assert.ok(!ids.includes('resume'));
    assert.ok(!ids.includes('slots:node1'));
  });

  it('resumes at the first step not done, repeating a step begun but not done', () => {
    assert.equal(stepId(nextMajorStep(RECORD)!), 'pause');
    const midway = upTo('pgUpgrade:node1');
    assert.equal(stepId(nextMajorStep(midway)!), 'pgUpgrade:node1');
    const all = majorUpgradeSteps(RECORD).reduce((record, step) => recordDone(record, stepId(step), 'x'), RECORD);
    assert.equal(nextMajorStep(all), undefined);
  });

  it('puts the point of no return at the swap: begun counts', () => {
    assert.equal(isPastNoReturn(upTo('pgUpgrade:node1')), false);
    assert.equal(isPastNoReturn(upTo('swap:node1')), true);
    assert.equal(isPastNoReturn(upTo('startPrimary:node1')), true);
    assert.equal(rollbackSteps(upTo('swap:node1')), undefined);
  });

  it('rolls back what was begun, in reverse', () => {
    const kinds = (until: string): string[] => rollbackSteps(upTo(until))!.map((step) => step.kind);
    assert.deepEqual(kinds('pause'), ['resume']);
    assert.deepEqual(kinds('prepare:node1'), ['discardNew', 'resume']);
    assert.deepEqual(kinds('holdWrites'), ['discardNew', 'releaseHold', 'resume']);
    assert.deepEqual(kinds('stopPrimary:node1'), ['discardNew', 'startOld', 'releaseHold', 'resume']);
    assert.deepEqual(kinds('pgUpgrade:node1'), ['discardNew', 'startOld', 'releaseHold', 'resume']);
    assert.deepEqual(
      rollbackSteps(upTo('pgUpgrade:node1', { ...RECORD, was_paused: true }))!.map((step) => step.kind),
      ['discardNew', 'startOld', 'releaseHold'],
    );
  });

  it('refuses host steps out of place', () => {
    const leader = { isLeaderWithLock: true, isPaused: true, isRunning: false };
    assert.equal(hostStepRefusal('link', leader), undefined);
    assert.match(hostStepRefusal('link', { ...leader, isRunning: true }) ?? '', /must be shut down cleanly first/);
    assert.match(hostStepRefusal('swap', { ...leader, isPaused: false }) ?? '', /maintenance mode/);
    assert.match(hostStepRefusal('prepare', leader) ?? '', /old primary must run/);
    assert.match(hostStepRefusal('link', { ...leader, isLeaderWithLock: false }) ?? '', /only the leader/);
    assert.equal(hostStepRefusal('inspect', { isLeaderWithLock: false, isPaused: false, isRunning: true }), undefined);
    assert.equal(
      hostStepRefusal('rollback', { ...leader, isRunning: true }),
      undefined,
      'a failed prepare rolls back beside the running primary',
    );
  });
});

describe('major upgrade record in the DCS', () => {
  it('round-trips through the codec, and a hand-written one missing fields is not a record', () => {
    const record = { ...upTo('stopPrimary:node1'), hold_writes: true, checkpoint_lsn: '0/3000028' };
    assert.deepEqual(decodeUpgrade(encodeUpgrade(record)), { ...record, new_sysid: undefined, rolling_back: false });
    assert.equal(decodeUpgrade('{"kind":"major","bin_dir":"/x"}'), undefined);
  });

  it('makes the proxies hold new primary connections while hold_writes is set, keeping open ones on the leader', () => {
    const view: ClusterView = {
      initialize: RECORD.old_sysid,
      config: { ttl: 30, loop_wait: 10, retry_timeout: 10, maximum_lag_on_failover: 1_048_576 },
      configRevision: '1',
      leader: { name: 'node1', modRevision: '5', createRevision: '5' },
      members: [
        {
          name: 'node1',
          conn_url: 'postgres://127.0.0.1:5432/postgres',
          api_url: 'http://127.0.0.1:8008/patroni',
          state: 'running',
          role: 'master',
        },
      ],
      failover: undefined,
      failoverRevision: undefined,
      sync: undefined,
      history: [],
      optime: undefined,
      revision: '9',
    };
    const input = {
      view,
      confirmedAtMs: 0,
      nowMs: 10,
      confirmedPrimary: 'node1@5',
      wallIso: '2026-12-07T00:00:00.000Z',
      failoverSeenAtMs: undefined,
    };
    const options = { dcsTimeoutMs: 10_000, replicaMaxLag: { kind: 'bytes', bytes: 1 } as const, replicaFallback: 'off' as const };
    assert.equal(routePrimary(input, options).kind, 'route');
    const held = routePrimary({ ...input, view: { ...view, writesHeld: 'the major upgrade holds writes' } }, options);
    assert.deepEqual(held, { kind: 'hold', reason: 'the major upgrade holds writes', keep: 'node1' });
  });
});
