// The nostream tag (Patroni 3.0+): a replica fed from the archive is healthy without a WAL receiver, gets no slot on
// the leader and copies no logical slots.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decide } from '../../src/core/decide.js';
import { wantedSlots } from '../../src/core/slot-plan.js';
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
});
