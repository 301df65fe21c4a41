// Chaos schedules pinned by a golden list: a seed and a kind set must replay exactly the faults they drew when the
// list was recorded, so any change to the generator, the PRNG or its use, or the order of the kinds fails here
// (and with it every seed quoted in a bug report). Also pins which kinds each network allows by default.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { checkFaultKinds, FAULT_TABLE, faultKindsFor } from '../../src/chaos/faults.js';
import {
  ALL_FAULT_KINDS,
  EXTRA_FAULT_KINDS,
  FAULT_KINDS,
  faultSchedule,
  NETWORK_FAULT_KINDS,
  PROCESS_FAULT_KINDS,
  type FaultKind,
} from '../../src/chaos/schedule.js';

/** "kind pick settleS" per fault, recorded from the generator once (do not regenerate to make a change pass). */
const GOLDEN: readonly {
  readonly name: string;
  readonly seed: number;
  readonly kinds: readonly FaultKind[];
  readonly faults: readonly string[];
}[] = [
  {
    name: 'seed 11, process kinds (the short integration run)',
    seed: 11,
    kinds: PROCESS_FAULT_KINDS,
    faults: ['stop-primary 529 2', 'kill-replica-both 850 2', 'kill-primary-agent 530 2', 'stop-primary 480 3'],
  },
  {
    name: 'seed 105, network kinds and quorum loss (the netns integration run)',
    seed: 105,
    kinds: [...NETWORK_FAULT_KINDS, 'etcd-quorum-loss'],
    faults: [
      'partition-primary 310 3',
      'latency-primary 614 1',
      'etcd-quorum-loss 915 2',
      'partition-primary-oneway 894 2',
      'partition-etcd-minority 321 3',
    ],
  },
  {
    name: 'seed 7, relay kinds (the relay integration run)',
    seed: 7,
    kinds: ['partition-primary', 'partition-primary-oneway'],
    faults: ['partition-primary 61 3', 'partition-primary-oneway 521 2'],
  },
  {
    name: 'seed 100, process kinds (found a replica stuck on a self-promoted timeline)',
    seed: 100,
    kinds: PROCESS_FAULT_KINDS,
    faults: [
      'kill-primary-postmaster 314 2',
      'switchover-replica-kill 552 3',
      'kill-primary-agent 520 1',
      'stop-primary 631 1',
      'kill-primary-agent 245 2',
      'switchover-replica-kill 53 2',
      'kill-primary-postmaster 210 3',
      'stop-primary 866 1',
    ],
  },
  {
    name: 'seed 200, process kinds (found a replica stuck after a failed pg_rewind)',
    seed: 200,
    kinds: PROCESS_FAULT_KINDS,
    faults: [
      'kill-primary-both 609 2',
      'kill-replica-both 796 2',
      'switchover-replica-kill 278 3',
      'kill-primary-both 868 3',
      'switchover-replica-kill 263 3',
      'switchover-replica-kill 708 2',
      'switchover-replica-kill 197 2',
      'kill-primary-both 998 2',
    ],
  },
  {
    name: 'seed 1, every kind',
    seed: 1,
    kinds: FAULT_KINDS,
    faults: [
      'partition-primary 2 2',
      'full-disk-primary 968 1',
      'etcd-quorum-loss 720 2',
      'full-disk-primary 455 2',
      'kill-primary-postmaster 403 1',
      'kill-primary-both 489 1',
      'kill-etcd-member 767 1',
      'kill-primary-both 42 2',
      'etcd-quorum-loss 798 1',
      'kill-primary-both 658 2',
      'partition-primary-oneway 192 3',
      'kill-etcd-member 770 3',
    ],
  },
  {
    name: 'the largest seed, every kind (the PRNG state wraps at 2^32)',
    seed: 4294967295,
    kinds: FAULT_KINDS,
    faults: [
      'latency-primary 189 3',
      'full-disk-primary 845 2',
      'partition-primary 475 1',
      'full-disk-primary 871 1',
      'kill-replica-both 738 2',
      'partition-primary-oneway 915 1',
    ],
  },
  {
    name: 'seed 13, the blackhole and the etcd leader kills (the integration run of the extra kinds)',
    seed: 13,
    kinds: ['blackhole-primary', 'kill-etcd-leader'],
    faults: ['kill-etcd-leader 360 1', 'blackhole-primary 36 1'],
  },
  {
    name: 'seed 3, the default kinds of a loopback run',
    seed: 3,
    kinds: faultKindsFor('loopback'),
    faults: [
      'kill-etcd-member 38 2',
      'kill-primary-agent 763 2',
      'stop-primary 161 1',
      'kill-replica-both 194 1',
      'kill-etcd-member 476 3',
      'etcd-quorum-loss 323 3',
      'kill-primary-both 672 2',
      'switchover-replica-kill 539 1',
      'etcd-quorum-loss 310 3',
      'switchover-replica-kill 420 3',
    ],
  },
  {
    name: 'seed 3, the default kinds of a relay run',
    seed: 3,
    kinds: faultKindsFor('relay'),
    faults: [
      'etcd-quorum-loss 38 2',
      'kill-primary-agent 763 2',
      'kill-replica-both 161 1',
      'kill-etcd-member 194 1',
      'etcd-quorum-loss 476 3',
      'partition-primary 323 3',
      'kill-primary-both 672 2',
      'partition-primary 539 1',
      'partition-primary 310 3',
      'etcd-quorum-loss 420 3',
    ],
  },
  {
    name: 'seed 3, the default kinds of a netns run',
    seed: 3,
    kinds: faultKindsFor('netns'),
    faults: [
      'partition-primary-oneway 38 2',
      'kill-primary-agent 763 2',
      'switchover-replica-kill 161 1',
      'etcd-quorum-loss 194 1',
      'partition-primary-oneway 476 3',
      'latency-primary 323 3',
      'stop-primary 672 2',
      'partition-etcd-minority 539 1',
      'latency-primary 310 3',
      'partition-etcd-minority 420 3',
    ],
  },
];

describe('fault schedules (golden)', () => {
  for (const golden of GOLDEN) {
    it(`replay exactly: ${golden.name}`, () => {
      const schedule = faultSchedule(golden.seed, golden.faults.length, golden.kinds);
      assert.deepEqual(
        schedule.map((fault) => `${fault.kind} ${fault.pick} ${fault.settleS}`),
        golden.faults,
      );
      assert.deepEqual(
        schedule.map((fault) => fault.index),
        golden.faults.map((_fault, index) => index),
      );
    });
  }

  it('draw the same prefix whatever the count: a longer run starts with the faults of a shorter one', () => {
    const short = faultSchedule(100, 3, PROCESS_FAULT_KINDS);
    assert.deepEqual(faultSchedule(100, 8, PROCESS_FAULT_KINDS).slice(0, 3), short);
  });

  it('refuse a bad fault count or an empty kind set', () => {
    assert.throws(() => faultSchedule(1, 0), /--faults must be a positive integer/);
    assert.throws(() => faultSchedule(1, 1.5), /--faults must be a positive integer/);
    assert.throws(() => faultSchedule(1, 3, []), /no fault kinds/);
  });
});

describe('the fault table', () => {
  it('has a row for every kind, and the kind order the schedules depend on', () => {
    assert.deepEqual(Object.keys(FAULT_TABLE).sort(), [...ALL_FAULT_KINDS].sort());
    // Kinds made only when asked for stay out of the default lists: the schedules of earlier seeds do not change.
    assert.deepEqual(EXTRA_FAULT_KINDS, ['stop-primary-agent', 'blackhole-primary', 'kill-etcd-leader', 'etcd-quorum-loss-failsafe']);
    assert.ok(EXTRA_FAULT_KINDS.every((kind) => !FAULT_KINDS.includes(kind)));
    assert.deepEqual(FAULT_KINDS, [
      'kill-primary-agent',
      'kill-primary-postmaster',
      'kill-primary-both',
      'stop-primary',
      'kill-replica-both',
      'kill-etcd-member',
      'switchover-replica-kill',
      'etcd-quorum-loss',
      'partition-primary',
      'partition-primary-oneway',
      'partition-etcd-minority',
      'latency-primary',
      'full-disk-primary',
    ]);
    assert.deepEqual(PROCESS_FAULT_KINDS, FAULT_KINDS.slice(0, PROCESS_FAULT_KINDS.length));
  });

  it('allows process faults and quorum loss everywhere, primary partitions also through relays, the rest only in namespaces', () => {
    assert.deepEqual(faultKindsFor('loopback'), [...PROCESS_FAULT_KINDS, 'etcd-quorum-loss']);
    assert.deepEqual(faultKindsFor('relay'), [...PROCESS_FAULT_KINDS, 'etcd-quorum-loss', 'partition-primary', 'partition-primary-oneway']);
    assert.deepEqual(faultKindsFor('netns'), FAULT_KINDS);
  });

  it('makes the blackhole only in namespaces, the etcd leader kills anywhere', () => {
    assert.deepEqual(FAULT_TABLE['blackhole-primary'].runsOn, ['netns']);
    assert.doesNotThrow(() => checkFaultKinds(['kill-etcd-leader'], 'loopback'));
    assert.throws(
      () => checkFaultKinds(['blackhole-primary'], 'relay'),
      /blackhole-primary needs every member in its own network namespace/,
    );
  });

  it('says which kinds must, must not and may cause a failover', () => {
    const by = (expectation: string): FaultKind[] => ALL_FAULT_KINDS.filter((kind) => FAULT_TABLE[kind].failover === expectation);
    assert.deepEqual(by('required'), [
      'stop-primary',
      'partition-primary',
      'partition-primary-oneway',
      'stop-primary-agent',
      'blackhole-primary',
    ]);
    assert.deepEqual(by('forbidden'), [
      'kill-replica-both',
      'kill-etcd-member',
      'partition-etcd-minority',
      'latency-primary',
      'kill-etcd-leader',
      'etcd-quorum-loss-failsafe',
    ]);
  });

  it('refuses kinds the network cannot make, saying what they need and what the run can use', () => {
    assert.doesNotThrow(() => checkFaultKinds(['partition-primary'], 'relay'));
    assert.throws(
      () => checkFaultKinds(['kill-primary-agent', 'latency-primary'], 'loopback'),
      (error: Error & { code?: string }) =>
        error.code === 'PGW_CHAOS_USAGE' &&
        /^latency-primary needs every member in its own network namespace \(root\); on this loopback run choose from kill-primary-agent,/.test(
          error.message,
        ),
    );
  });
});
