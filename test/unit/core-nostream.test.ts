// The nostream tag (Patroni 3.0+): a replica fed from the archive is healthy without a WAL receiver, gets no slot on
// the leader and copies no logical slots.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decide } from '../../src/core/decide.js';
import { cascadeSourceOf, wantedSlots } from '../../src/core/slot-plan.js';
import { freshMemory, member, observe, pgState, view } from '../sim/builders.js';

describe('nostream', () => {
  it('a running nostream replica without a WAL receiver takes no action, however long it has not streamed', () => {
    const decision = decide(
      observe({
        name: 'node2',
        self: { name: 'node2', tags: { nostream: true }, canBootstrap: true },
        pg: pgState({ isStreaming: false, timeline: 1, slots: [] }),
        dcs: { kind: 'ok', view: view({ leaderName: 'node1', members: [member('node1', { timeline: 2 }), member('node2')] }) },
      }),
      { ...freshMemory(), notStreamingSinceMs: 0 },
    );
    assert.deepEqual(decision.actions, []);
    assert.match(decision.reason, /from the WAL archive \(nostream\)/);
    // Without the tag the same replica, behind the leader's timeline for long, is rewound.
    const streaming = decide(
      observe({
        name: 'node2',
        pg: pgState({ isStreaming: false, timeline: 1 }),
        dcs: { kind: 'ok', view: view({ leaderName: 'node1', members: [member('node1', { timeline: 2 }), member('node2')] }) },
      }),
      { ...freshMemory(), notStreamingSinceMs: 0 },
    );
    assert.deepEqual(streaming.actions, [{ kind: 'rewind', from: 'node1' }]);
  });

  it('the leader keeps no slot for a nostream member', () => {
    const cluster = view({
      leaderName: 'node1',
      members: [member('node1'), member('node2', { tags: { nostream: true } }), member('node3')],
    });
    assert.deepEqual(
      wantedSlots(cluster, 'node1', {}, true, true).map((slot) => slot.name),
      ['node3'],
    );
  });

  it('feeds a member that replicates from it, and neither it nor that cascade gets logical slot copies', () => {
    const config = {
      ttl: 30,
      loop_wait: 10,
      retry_timeout: 10,
      maximum_lag_on_failover: 1048576,
      slots: { cdc: { type: 'logical', database: 'postgres', plugin: 'pgoutput' } },
    };
    const members = [
      member('node1', { role: 'master' }),
      member('node2', { tags: { nostream: true }, replication_state: 'in archive recovery' }),
      member('node3', { tags: { replicatefrom: 'node2' }, replication_state: 'streaming' }),
    ];
    const cluster = view({ leaderName: 'node1', config, members, statusSlots: { cdc: 2000 } });
    assert.equal(cascadeSourceOf(cluster, 'node3', { replicatefrom: 'node2' }, 'node1'), 'node2');
    const cascade = decide(
      observe({
        name: 'node3',
        self: { name: 'node3', tags: { replicatefrom: 'node2' }, canBootstrap: true },
        pg: pgState({ upstream: 'node2', walLevel: 'logical', slots: [] }),
        dcs: { kind: 'ok', view: cluster },
      }),
      freshMemory(),
    );
    assert.equal(
      cascade.actions.some((action) => action.kind === 'copyLogicalSlots'),
      false,
      'no logical slot copy behind a nostream member',
    );
    // The same member fed by the leader does copy it.
    const direct = decide(
      observe({
        name: 'node3',
        pg: pgState({ upstream: 'node1', walLevel: 'logical', slots: [] }),
        dcs: { kind: 'ok', view: view({ leaderName: 'node1', config, members: [members[0]!, members[2]!], statusSlots: { cdc: 2000 } }) },
      }),
      freshMemory(),
    );
    assert.ok(direct.actions.some((action) => action.kind === 'copyLogicalSlots'));
  });
});
