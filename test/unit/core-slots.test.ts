// Replication slots in the pure core: the `slots`/`ignore_slots` config, which slots each member keeps, and how a
// replica keeps copies of the leader's slots (advanced, or copied when logical).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decide } from '../../src/core/decide.js';
import {
  isIgnored,
  permanentSlots,
  publishedSlotPositions,
  validateSlotConfig,
  wantedSlots,
  type SlotState,
} from '../../src/core/slot-plan.js';
import type { DynamicConfig } from '../../src/core/types.js';
import { freshMemory, member, observe, pgState, view } from '../sim/builders.js';

const BASE: DynamicConfig = { ttl: 30, loop_wait: 10, retry_timeout: 10, maximum_lag_on_failover: 1048576 };
const WITH_SLOTS: DynamicConfig = {
  ...BASE,
  slots: { cdc: { type: 'logical', database: 'app', plugin: 'pgoutput' }, archiver: { type: 'physical' }, legacy: 0, node1: null },
};

const slot = (name: string, type: 'physical' | 'logical', extra: Partial<SlotState> = {}): SlotState => ({
  name,
  type,
  isActive: false,
  restartLsn: 100n,
  confirmedFlushLsn: type === 'logical' ? 200n : undefined,
  retainedBytes: 0,
  walStatus: 'reserved',
  ...extra,
});

describe('slot configuration', () => {
  it('accepts Patroni forms and names the bad entry otherwise', () => {
    assert.equal(validateSlotConfig(WITH_SLOTS as Record<string, unknown>), undefined);
    assert.match(validateSlotConfig({ slots: { 'Bad-Name': 0 } }) ?? '', /slots\.Bad-Name/);
    assert.match(
      validateSlotConfig({ slots: { cdc: { type: 'logical', plugin: 'pgoutput' } } }) ?? '',
      /slots\.cdc: a logical slot needs database/,
    );
    assert.match(validateSlotConfig({ slots: { x: { type: 'stream' } } }) ?? '', /must be physical or logical/);
    assert.match(validateSlotConfig({ ignore_slots: [{ name: 'x', colour: 'red' }] }) ?? '', /ignore_slots\[0\]\.colour/);
    assert.match(validateSlotConfig({ ignore_slots: 'x' }) ?? '', /ignore_slots must be a list/);
  });

  it('reads permanent slots and matches ignore rules field by field', () => {
    assert.deepEqual(
      permanentSlots(WITH_SLOTS).map((spec) => `${spec.name}:${spec.type}`),
      ['archiver:physical', 'cdc:logical', 'legacy:physical', 'node1:physical'],
    );
    assert.equal(
      isIgnored({ name: 'debezium', type: 'logical', database: 'app', plugin: 'pgoutput' }, [{ type: 'logical', database: 'app' }]),
      true,
    );
    assert.equal(
      isIgnored({ name: 'debezium', type: 'logical', database: 'other', plugin: 'pgoutput' }, [{ type: 'logical', database: 'app' }]),
      false,
    );
  });

  it("gives every failover-capable member the other members' slots plus the permanent ones, and nofailover members none", () => {
    const cluster = view({ leaderName: 'node1', config: WITH_SLOTS });
    assert.deepEqual(
      wantedSlots(cluster, 'node1', {}, true, true).map((spec) => spec.name),
      ['archiver', 'cdc', 'legacy', 'node2', 'node3'],
    );
    assert.deepEqual(
      wantedSlots(cluster, 'node2', {}, false, true).map((spec) => spec.name),
      ['archiver', 'cdc', 'legacy', 'node1', 'node3'],
    );
    assert.deepEqual(wantedSlots(cluster, 'node3', { nofailover: true }, false, true), []);
  });

  it('publishes confirmed_flush for logical and restart_lsn for physical slots', () => {
    assert.deepEqual(publishedSlotPositions([slot('node2', 'physical'), slot('cdc', 'logical')]), { node2: 100, cdc: 200 });
  });
});

describe('slots in the HA loop', () => {
  const replicaObs = (slots: readonly SlotState[], statusSlots: Record<string, number> | undefined) =>
    observe({
      name: 'node2',
      pg: pgState({ slots, walLevel: 'logical' }),
      dcs: {
        kind: 'ok',
        view: view({ leaderName: 'node1', config: WITH_SLOTS, statusSlots, members: [member('node1'), member('node2'), member('node3')] }),
      },
    });

  it('the leader publishes its slot positions with the optime', () => {
    const obs = observe({
      pg: pgState({ role: 'primary', writeLsn: 5000n, receivedLsn: undefined, replayedLsn: undefined, slots: [slot('cdc', 'logical')] }),
      lock: { lastRenewSentAtMs: 99_000 },
    });
    const status = decide(obs, freshMemory()).actions.find((action) => action.kind === 'publishStatus');
    assert.deepEqual(status, { kind: 'publishStatus', optime: 5000, slots: { cdc: 200 } });
  });

  it('a replica copies a logical slot it lacks once the leader has published it', () => {
    const decision = decide(replicaObs([], { cdc: 300, node3: 250 }), freshMemory());
    assert.deepEqual(decision.actions, [{ kind: 'copyLogicalSlots', from: 'node1', slots: ['cdc'] }]);
    assert.match(decision.reason, /copying logical slots cdc/);
    const replicaLevel = replicaObs([], { cdc: 300 });
    const withoutLogical = decide({ ...replicaLevel, pg: { ...replicaLevel.pg, walLevel: 'replica' } }, freshMemory());
    assert.deepEqual(
      withoutLogical.actions.map((action) => action.kind),
      ['manageSlots'],
      'a copy would stop a replica without wal_level=logical from starting',
    );
  });

  it("a replica advances its copies to the leader's positions (the leader's own slot to the optime)", () => {
    const cdc = slot('cdc', 'logical', { database: 'app', plugin: 'pgoutput' });
    const decision = decide(
      replicaObs([cdc, slot('node1', 'physical'), slot('node3', 'physical')], { cdc: 300, node3: 250 }),
      freshMemory(),
    );
    const manage = decision.actions.find((action) => action.kind === 'manageSlots');
    assert.ok(manage !== undefined && manage.kind === 'manageSlots');
    assert.deepEqual(manage.plan.steps, [
      { kind: 'create', slot: { name: 'archiver', type: 'physical' } },
      { kind: 'create', slot: { name: 'legacy', type: 'physical' } },
      { kind: 'advance', slot: { name: 'cdc', type: 'logical', database: 'app', plugin: 'pgoutput' }, lsn: 300n },
      { kind: 'advance', slot: { name: 'node1', type: 'physical' }, lsn: 1000n },
      { kind: 'advance', slot: { name: 'node3', type: 'physical' }, lsn: 250n },
    ]);
  });

  it('plans nothing before the probe has listed the slots, and no action when nothing is to be done', () => {
    const unlisted = replicaObs([], { cdc: 300 });
    assert.deepEqual(decide({ ...unlisted, pg: { ...unlisted.pg, slots: undefined, walLevel: 'replica' } }, freshMemory()).actions, []);
    const done = [
      slot('archiver', 'physical'),
      slot('cdc', 'logical', { database: 'app', plugin: 'pgoutput', confirmedFlushLsn: 300n }),
      slot('legacy', 'physical'),
      slot('node1', 'physical', { restartLsn: 1000n }),
      slot('node3', 'physical', { restartLsn: 250n }),
    ];
    assert.deepEqual(decide(replicaObs(done, { cdc: 300, node3: 250 }), freshMemory()).actions, []);
  });

  it('leaves slots alone with use_slots off', () => {
    const decision = decide({ ...replicaObs([], { cdc: 300 }), useSlots: false }, freshMemory());
    assert.deepEqual(decision.actions, []);
  });
});

describe('slots with replicatefrom', () => {
  const cascade = view({
    leaderName: 'node1',
    members: [
      member('node1', { role: 'master' }),
      member('node2', { replication_state: 'streaming', tags: { nofailover: true } }),
      member('node3', { tags: { replicatefrom: 'node2' } }),
    ],
  });
  const names = (slots: readonly { name: string }[]): string[] => slots.map((one) => one.name);

  it('a nofailover member keeps the slots of the members replicating from it, and only those', () => {
    assert.deepEqual(names(wantedSlots(cascade, 'node2', { nofailover: true }, false, true)), ['node3']);
  });

  it('the leader keeps no slot for a member fed by another one, and one again once that source stops', () => {
    assert.deepEqual(names(wantedSlots(cascade, 'node1', {}, true, true)), ['node2']);
    const stopped = { ...cascade, members: cascade.members.map((one) => (one.name === 'node2' ? { ...one, state: 'stopped' } : one)) };
    assert.deepEqual(names(wantedSlots(stopped, 'node1', {}, true, true)), ['node2', 'node3']);
  });
});
