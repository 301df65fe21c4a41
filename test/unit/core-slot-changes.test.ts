// planSlotChanges as a table: slots seen on the node, wanted specs, ignore rules and positions in; steps and skips out.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { describeSlotFailures, failedSlotSteps, planSlotChanges, type SlotPlan, type SlotPlanInput } from '../../src/core/slot-changes.js';
import type { SlotSpec, SlotState } from '../../src/core/slot-plan.js';

const physical = (name: string): SlotSpec => ({ name, type: 'physical' });
const logical = (name: string, database = 'app', plugin = 'pgoutput'): SlotSpec => ({ name, type: 'logical', database, plugin });

const seen = (spec: SlotSpec, extra: Partial<SlotState> = {}): SlotState => ({
  ...spec,
  isActive: false,
  restartLsn: 100n,
  confirmedFlushLsn: spec.type === 'logical' ? 200n : undefined,
  retainedBytes: 0,
  walStatus: 'reserved',
  ...extra,
});

const PRIMARY: SlotPlanInput = { observed: [], wanted: [], ignore: [], advanceTo: {}, role: 'primary', replayedLsn: undefined };
const REPLICA: SlotPlanInput = { ...PRIMARY, role: 'replica', replayedLsn: 1000n };

interface Case {
  readonly name: string;
  readonly input: SlotPlanInput;
  readonly plan: SlotPlan;
}

const CASES: readonly Case[] = [
  {
    name: 'a replica recreates a member slot that kept xmin from when it was primary; a primary keeps it',
    input: { ...REPLICA, wanted: [physical('node3')], observed: [seen(physical('node3'), { xmin: '7412' })], advanceTo: { node3: 500 } },
    plan: {
      steps: [
        { kind: 'drop', slot: physical('node3'), reason: 'xmin' },
        { kind: 'create', slot: physical('node3') },
      ],
      skipped: [],
    },
  },
  {
    name: 'a primary leaves the xmin of a member slot to the standby that streams through it',
    input: { ...PRIMARY, wanted: [physical('node3')], observed: [seen(physical('node3'), { xmin: '7412' })] },
    plan: { steps: [], skipped: [] },
  },
  {
    name: 'a primary creates the missing physical and logical slots',
    input: { ...PRIMARY, wanted: [physical('node2'), logical('cdc')] },
    plan: {
      steps: [
        { kind: 'create', slot: physical('node2') },
        { kind: 'create', slot: logical('cdc') },
      ],
      skipped: [],
    },
  },
  {
    name: 'a replica creates physical slots but leaves logical ones to copyLogicalSlots',
    input: { ...REPLICA, wanted: [physical('node1'), logical('cdc')] },
    plan: {
      steps: [{ kind: 'create', slot: physical('node1') }],
      skipped: [{ slot: 'cdc', step: 'create', reason: 'logical-on-replica' }],
    },
  },
  {
    name: 'slots present with their definition need nothing',
    input: { ...PRIMARY, observed: [seen(physical('node2')), seen(logical('cdc'))], wanted: [physical('node2'), logical('cdc')] },
    plan: { steps: [], skipped: [] },
  },
  {
    name: 'an unknown inactive slot is dropped',
    input: { ...PRIMARY, observed: [seen(physical('old'))] },
    plan: { steps: [{ kind: 'drop', slot: physical('old'), reason: 'unknown' }], skipped: [] },
  },
  {
    name: 'an unknown slot an ignore rule matches stays',
    input: { ...PRIMARY, observed: [seen(logical('debezium'))], ignore: [{ type: 'logical', database: 'app' }] },
    plan: { steps: [], skipped: [{ slot: 'debezium', step: 'drop', reason: 'ignored' }] },
  },
  {
    name: 'an ignore rule must match every field it names',
    input: { ...PRIMARY, observed: [seen(logical('debezium', 'other'))], ignore: [{ type: 'logical', database: 'app' }] },
    plan: { steps: [{ kind: 'drop', slot: logical('debezium', 'other'), reason: 'unknown' }], skipped: [] },
  },
  {
    name: 'an unknown active slot stays (its consumer is connected)',
    input: { ...PRIMARY, observed: [seen(physical('walg'), { isActive: true })] },
    plan: { steps: [], skipped: [{ slot: 'walg', step: 'drop', reason: 'active' }] },
  },
  {
    name: 'a redefined inactive slot is dropped, then created with the new definition',
    input: { ...PRIMARY, observed: [seen(logical('cdc', 'app', 'test_decoding'))], wanted: [logical('cdc')] },
    plan: {
      steps: [
        { kind: 'drop', slot: logical('cdc', 'app', 'test_decoding'), reason: 'redefined' },
        { kind: 'create', slot: logical('cdc') },
      ],
      skipped: [],
    },
  },
  {
    name: 'a redefined slot in use keeps its name: the wanted one cannot be created',
    input: { ...PRIMARY, observed: [seen(physical('cdc'), { isActive: true })], wanted: [logical('cdc')] },
    plan: {
      steps: [],
      skipped: [
        { slot: 'cdc', step: 'drop', reason: 'active' },
        { slot: 'cdc', step: 'create', reason: 'name-taken' },
      ],
    },
  },
  {
    name: 'a primary never advances (its slots move with their consumers)',
    input: { ...PRIMARY, observed: [seen(physical('node2'))], wanted: [physical('node2')], advanceTo: { node2: 900 } },
    plan: { steps: [], skipped: [] },
  },
  {
    name: 'a replica advances physical copies by restart_lsn and logical ones by confirmed_flush',
    input: {
      ...REPLICA,
      observed: [seen(physical('node1')), seen(logical('cdc'))],
      wanted: [physical('node1'), logical('cdc')],
      advanceTo: { node1: 500, cdc: 150 },
    },
    plan: { steps: [{ kind: 'advance', slot: physical('node1'), lsn: 500n }], skipped: [] },
  },
  {
    name: 'a replica caps an advance at its replay position',
    input: { ...REPLICA, observed: [seen(logical('cdc'))], wanted: [logical('cdc')], advanceTo: { cdc: 5000 } },
    plan: { steps: [{ kind: 'advance', slot: logical('cdc'), lsn: 1000n }], skipped: [] },
  },
  {
    name: 'a copy already at the capped position is left alone',
    input: { ...REPLICA, replayedLsn: 200n, observed: [seen(logical('cdc'))], wanted: [logical('cdc')], advanceTo: { cdc: 5000 } },
    plan: { steps: [], skipped: [] },
  },
  {
    name: 'an active copy is not advanced',
    input: { ...REPLICA, observed: [seen(physical('node3'), { isActive: true })], wanted: [physical('node3')], advanceTo: { node3: 900 } },
    plan: { steps: [], skipped: [{ slot: 'node3', step: 'advance', reason: 'active' }] },
  },
  {
    name: 'a replica without a replay position does not advance',
    input: {
      ...REPLICA,
      replayedLsn: undefined,
      observed: [seen(physical('node3'))],
      wanted: [physical('node3')],
      advanceTo: { node3: 900 },
    },
    plan: { steps: [], skipped: [{ slot: 'node3', step: 'advance', reason: 'no-replay-position' }] },
  },
  {
    name: 'slots without a target, and targets without a wanted slot, are not advanced',
    input: {
      ...REPLICA,
      observed: [seen(physical('node3')), seen(physical('other'), { isActive: true })],
      wanted: [physical('node3')],
      advanceTo: { other: 900 },
    },
    plan: { steps: [], skipped: [{ slot: 'other', step: 'drop', reason: 'active' }] },
  },
  {
    name: 'a freshly created copy is not advanced in the same cycle (it reserves WAL from the replay position)',
    input: { ...REPLICA, wanted: [physical('node3')], advanceTo: { node3: 900 } },
    plan: { steps: [{ kind: 'create', slot: physical('node3') }], skipped: [] },
  },
  {
    name: 'an ignored copy under another definition is still advanced, by its own type',
    input: {
      ...REPLICA,
      observed: [seen(logical('cdc', 'app', 'test_decoding'))],
      wanted: [logical('cdc')],
      ignore: [{ name: 'cdc' }],
      advanceTo: { cdc: 700 },
    },
    plan: {
      steps: [{ kind: 'advance', slot: logical('cdc', 'app', 'test_decoding'), lsn: 700n }],
      skipped: [
        { slot: 'cdc', step: 'drop', reason: 'ignored' },
        { slot: 'cdc', step: 'create', reason: 'name-taken' },
      ],
    },
  },
  {
    name: 'drops come before creates, creates before advances',
    input: {
      ...REPLICA,
      observed: [seen(physical('node1')), seen(physical('gone'))],
      wanted: [physical('node1'), physical('node3')],
      advanceTo: { node1: 400 },
    },
    plan: {
      steps: [
        { kind: 'drop', slot: physical('gone'), reason: 'unknown' },
        { kind: 'create', slot: physical('node3') },
        { kind: 'advance', slot: physical('node1'), lsn: 400n },
      ],
      skipped: [],
    },
  },
];

describe('planSlotChanges', () => {
  for (const entry of CASES) {
    it(entry.name, () => {
      assert.deepEqual(planSlotChanges(entry.input), entry.plan);
    });
  }
});

describe('slot step results', () => {
  it('reports every step failed when the adapter could not run any, with a hint per kind', () => {
    const steps = planSlotChanges({
      ...REPLICA,
      observed: [seen(physical('gone')), seen(physical('node1'))],
      wanted: [physical('node1'), logical('cdc')],
      role: 'primary',
    }).steps;
    const results = failedSlotSteps(steps, 'PostgreSQL is not running');
    assert.deepEqual(
      results.map((result) => result.status),
      ['failed', 'failed'],
    );
    assert.deepEqual(
      describeSlotFailures(results).map((failure) => failure.message),
      [
        'could not drop replication slot gone (a consumer may have connected since the probe)',
        'could not create replication slot cdc (logical slots need wal_level=logical, the database and the output plugin)',
      ],
    );
    assert.deepEqual(describeSlotFailures([{ step: steps[0]!, status: 'ok' }]), []);
  });
});
