// A second agent under a running member's name refuses to start (Patroni 3.0.4+), and only then.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { assertNoRunningNamesake } from '../../src/agent/duplicate-name.js';
import type { PeerClient } from '../../src/core/ports.js';
import type { MemberRecord, PeerStatus } from '../../src/core/types.js';
import { MemoryDcs, MemoryDcsStore } from '../../src/dcs/memory/memory-dcs.js';
import { isPgwardenError } from '../../src/util/errors.js';
import { FakeClock } from '../kit/fake-clock.js';
import { member } from '../sim/builders.js';

const peers = (isReachable: boolean): PeerClient => ({
  fetchStatus: async (record: MemberRecord): Promise<PeerStatus> => ({
    name: record.name,
    isReachable,
    role: 'replica',
    isRunning: true,
    walPosition: 0n,
    timeline: 1,
    tags: {},
  }),
  probeRefused: async () => ({ isApiRefused: !isReachable, isPgRefused: !isReachable }),
  postFailsafe: async () => false,
});

describe('duplicate member name at start', () => {
  it('refuses while a member key with the name exists and its API answers; starts when it does not answer or is absent', async () => {
    const store = new MemoryDcsStore(new FakeClock());
    const dcs = new MemoryDcs(store, { namespace: '/service', scope: 'batman', member: 'node1' });
    const signal = AbortSignal.timeout(5000);
    assert.equal(await assertNoRunningNamesake('node1', dcs, peers(true), signal), 'checked', 'no member key yet');
    await dcs.touchMember(member('node1'), 30_000, signal);
    await assert.rejects(assertNoRunningNamesake('node1', dcs, peers(true), signal), (error: unknown) => {
      assert.ok(isPgwardenError(error));
      assert.equal(error.code, 'PGW_DUPLICATE_MEMBER');
      assert.match(error.message, /already a node named 'node1' running/);
      return true;
    });
    // A crashed agent's key outlives it until its lease expires: its API no longer answers, so the restart goes on.
    assert.equal(await assertNoRunningNamesake('node1', dcs, peers(false), signal), 'checked');
    dcs.setReachable(false);
    assert.equal(await assertNoRunningNamesake('node1', dcs, peers(true), signal), 'dcs-unreachable');
  });
});
