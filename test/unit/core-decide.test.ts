// The HA decision core, rule by rule: an Observation goes in, actions and Patroni-style reasons come out.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decide } from '../../src/core/decide.js';
import { lockDeadlineMs } from '../../src/core/lease.js';
import { freshMemory, kinds, member, observe, pgState, primaryPg, TIMING, view } from '../sim/builders.js';

const NOW = 100_000;

describe('bootstrap', () => {
  it('races for initialize, the lock and initdb on an empty cluster', () => {
    const decision = decide(
      observe({
        pg: pgState({ dataDir: 'missing', isRunning: false }),
        dcs: { kind: 'ok', view: view({ initialize: undefined, members: [] }) },
      }),
      freshMemory(),
    );
    assert.deepEqual(kinds(decision.actions), ['initializeCluster', 'acquireLeader', 'bootstrap']);
    assert.equal(decision.reason, 'trying to bootstrap a new cluster');
  });

  it('never races for initialize when its bootstrap method is refused, and says why', () => {
    const empty = observe({
      pg: pgState({ dataDir: 'missing', isRunning: false }),
      dcs: { kind: 'ok', view: view({ initialize: undefined, members: [] }) },
    });
    const decision = decide(
      { ...empty, self: { ...empty.self, bootstrapRefusal: 'bootstrap.method pgbackrest is not supported yet' } },
      freshMemory(),
    );
    assert.deepEqual(decision.actions, []);
    assert.equal(decision.reason, 'not bootstrapping a new cluster: bootstrap.method pgbackrest is not supported yet');
  });

  it('waits instead of racing when another member is bootstrapping', () => {
    const decision = decide(
      observe({
        name: 'node2',
        pg: pgState({ dataDir: 'empty', isRunning: false }),
        dcs: { kind: 'ok', view: view({ initialize: '', members: [] }) },
      }),
      freshMemory(),
    );
    assert.deepEqual(decision.actions, []);
    assert.equal(decision.reason, 'waiting for leader to bootstrap');
  });

  it('clones from the leader, or from a running clonefrom member', () => {
    const obs = observe({
      name: 'node3',
      pg: pgState({ dataDir: 'missing', isRunning: false }),
      dcs: { kind: 'ok', view: view({ leaderName: 'node1' }) },
    });
    assert.deepEqual(decide(obs, freshMemory()).actions, [{ kind: 'basebackup', from: 'node1' }]);
    const withClone = observe({
      ...obs,
      dcs: { kind: 'ok', view: view({ leaderName: 'node1', members: [member('node1'), member('node2', { tags: { clonefrom: true } })] }) },
    });
    assert.deepEqual(decide(withClone, freshMemory()).actions, [{ kind: 'basebackup', from: 'node2' }]);
  });

  it('never bootstraps a nofailover member', () => {
    const decision = decide(
      observe({
        self: { name: 'node1', tags: { nofailover: true }, canBootstrap: true },
        pg: pgState({ dataDir: 'missing', isRunning: false }),
        dcs: { kind: 'ok', view: view({ initialize: undefined, members: [] }) },
      }),
      freshMemory(),
    );
    assert.deepEqual(decision.actions, []);
  });

  it('publishes the system identifier after initdb, as the leader', () => {
    const decision = decide(
      observe({
        pg: primaryPg(),
        lock: { lastRenewSentAtMs: NOW - 1000 },
        dcs: { kind: 'ok', view: view({ leaderName: 'node1', initialize: '', config: undefined }) },
      }),
      freshMemory(),
    );
    assert.deepEqual(kinds(decision.actions).slice(0, 3), ['renewLeader', 'publishInitialize', 'writeBootstrapConfig']);
  });

  it('aborts a failed bootstrap exactly once', () => {
    const obs = observe({
      pg: pgState({ dataDir: 'empty', isRunning: false }),
      task: { kind: 'done', name: 'bootstrap', isOk: false, error: 'initdb failed', endedAtMs: NOW - 10 },
    });
    const first = decide(obs, freshMemory());
    assert.deepEqual(kinds(first.actions), ['abortBootstrap']);
    const second = decide(obs, first.memory);
    assert.notDeepEqual(kinds(second.actions), ['abortBootstrap']);
  });

  it('waits longer after each failure in a row (never a hot loop), up to five minutes', () => {
    const pauses = [1, 2, 3, 4, 10].map((failuresInRow) => {
      const obs = observe({
        pg: pgState({ dataDir: 'empty', isRunning: false }),
        task: { kind: 'done', name: 'bootstrap', isOk: false, error: 'initdb failed', endedAtMs: NOW - 10, failuresInRow },
      });
      return (decide(obs, freshMemory()).memory.retryNotBeforeMs ?? 0) - NOW;
    });
    assert.deepEqual(pauses, [10_000, 20_000, 40_000, 80_000, 300_000]);
    const failedAbort = decide(
      observe({
        pg: pgState({ dataDir: 'empty', isRunning: false }),
        task: { kind: 'done', name: 'abort-bootstrap', isOk: false, error: 'EBUSY', endedAtMs: NOW - 10 },
      }),
      freshMemory(),
    );
    assert.deepEqual(kinds(failedAbort.actions), [], 'a failed abort is not a failed bootstrap: no immediate abort again');
    assert.equal(failedAbort.memory.retryNotBeforeMs, NOW + 10_000);
  });
});

describe('the leader with the lock', () => {
  const leaderObs = observe({ pg: primaryPg({ writeLsn: 5000n, slots: [] }), lock: { lastRenewSentAtMs: NOW - 2000 } });

  it('renews, publishes status and slots', () => {
    const decision = decide(leaderObs, freshMemory());
    assert.deepEqual(kinds(decision.actions), ['renewLeader', 'publishStatus', 'manageSlots']);
    assert.deepEqual(decision.actions[2], {
      kind: 'manageSlots',
      plan: {
        steps: [
          { kind: 'create', slot: { name: 'node2', type: 'physical' } },
          { kind: 'create', slot: { name: 'node3', type: 'physical' } },
        ],
        skipped: [],
      },
    });
    assert.equal(decision.reason, 'no action. I am (node1), the leader with the lock');
  });

  it('never sleeps past its own deadline', () => {
    const decision = decide(leaderObs, freshMemory());
    assert.ok(NOW + decision.wakeAfterMs < lockDeadlineMs(NOW - 2000, TIMING.ttlMs));
  });

  it('restarts a crashed primary at once, without failover', () => {
    const decision = decide(
      observe({
        pg: primaryPg({ isRunning: false, crashedAtMs: NOW - 5, controlState: 'in production' }),
        lock: { lastRenewSentAtMs: NOW - 2000 },
      }),
      freshMemory(),
    );
    assert.deepEqual(kinds(decision.actions), ['renewLeader', 'startPrimary']);
    assert.equal(decision.wakeAfterMs, 0);
  });

  it('promotes a replica that holds the lock with enough time left, and records history on the new timeline', () => {
    const obs = observe({
      name: 'node2',
      pg: pgState({ receivedLsn: 7000n, replayedLsn: 6000n }),
      lock: { lastRenewSentAtMs: NOW - 100 },
      dcs: { kind: 'ok', view: view({ leaderName: 'node2' }) },
    });
    const promoted = decide(obs, freshMemory());
    assert.deepEqual(kinds(promoted.actions), ['renewLeader', 'promote']);
    assert.equal(promoted.reason, 'promoted self to leader by acquiring session lock');
    const after = decide(observe({ ...obs, pg: primaryPg({ timeline: 2, writeLsn: 7100n }) }), promoted.memory);
    const history = after.actions.find((action) => action.kind === 'writeHistory');
    assert.deepEqual(history, {
      kind: 'writeHistory',
      entry: [1, 7000, 'no recovery target specified', '2026-11-24T00:00:00.000Z', 'node2'],
    });
    const later = decide(observe({ ...obs, pg: primaryPg({ timeline: 2, writeLsn: 7200n }) }), after.memory);
    assert.equal(
      later.actions.some((action) => action.kind === 'writeHistory'),
      false,
      'history is written once',
    );
  });

  it('keeps only max_timelines_history entries in the history key when that is set', () => {
    const config = { ttl: 30, loop_wait: 10, retry_timeout: 10, maximum_lag_on_failover: 1048576, max_timelines_history: 2 };
    const obs = observe({
      name: 'node2',
      pg: pgState({ receivedLsn: 7000n, replayedLsn: 6000n }),
      lock: { lastRenewSentAtMs: NOW - 100 },
      dcs: { kind: 'ok', view: view({ leaderName: 'node2', config }) },
    });
    const promoted = decide(obs, freshMemory());
    const after = decide(observe({ ...obs, pg: primaryPg({ timeline: 2, writeLsn: 7100n }) }), promoted.memory);
    const history = after.actions.find((action) => action.kind === 'writeHistory');
    assert.equal(history?.kind === 'writeHistory' ? history.keepLast : undefined, 2);
  });

  it('renews before promoting when the lock is close to its deadline', () => {
    const obs = observe({
      name: 'node2',
      pg: pgState(),
      lock: { lastRenewSentAtMs: NOW - 20_000 },
      dcs: { kind: 'ok', view: view({ leaderName: 'node2' }) },
    });
    assert.deepEqual(kinds(decide(obs, freshMemory()).actions), ['renewLeader']);
  });
});

describe('primary safety', () => {
  it('demotes immediately when another member holds the lock', () => {
    const decision = decide(
      observe({ pg: primaryPg(), lock: { lastRenewSentAtMs: NOW - 1000 }, dcs: { kind: 'ok', view: view({ leaderName: 'node2' }) } }),
      freshMemory(),
    );
    assert.deepEqual(decision.actions, [{ kind: 'demote', mode: 'immediate-nolock' }]);
  });

  it('demotes when the lock deadline passed', () => {
    const decision = decide(observe({ pg: primaryPg(), lock: { lastRenewSentAtMs: NOW - TIMING.ttlMs } }), freshMemory());
    assert.deepEqual(decision.actions, [{ kind: 'demote', mode: 'immediate-nolock' }]);
    assert.equal(decision.reason, 'demoted self because failed to update leader lock in DCS');
  });

  it('keeps the primary while the DCS is briefly unreachable, demotes after retry_timeout', () => {
    const lastRenew = NOW - 1000;
    const brief = decide(
      observe({
        pg: primaryPg(),
        lock: { lastRenewSentAtMs: lastRenew },
        dcs: { kind: 'unreachable', sinceMs: NOW - 2000, lastView: undefined },
      }),
      freshMemory(),
    );
    assert.equal(
      brief.actions.some((action) => action.kind === 'demote'),
      false,
    );
    const long = decide(
      observe({
        pg: primaryPg(),
        lock: { lastRenewSentAtMs: lastRenew },
        dcs: { kind: 'unreachable', sinceMs: NOW - TIMING.retryTimeoutMs, lastView: undefined },
      }),
      freshMemory(),
    );
    assert.deepEqual(long.actions, [{ kind: 'demote', mode: 'offline' }]);
    assert.equal(long.reason, 'demoting self because DCS is not accessible and I was a leader');
  });

  it('re-takes a vanished key for a running primary instead of running without it', () => {
    const decision = decide(
      observe({ pg: primaryPg(), lock: { lastRenewSentAtMs: NOW - 1000 }, dcs: { kind: 'ok', view: view({}) } }),
      freshMemory(),
    );
    assert.deepEqual(kinds(decision.actions), ['acquireLeader']);
  });

  it('a lock-less member starting or promoting as leader is stopped', () => {
    const decision = decide(
      observe({
        pg: pgState({ isRunning: false }),
        task: { kind: 'running', name: 'promote', startedAtMs: NOW - 10 },
        lock: { lastRenewSentAtMs: NOW - TIMING.ttlMs },
      }),
      freshMemory(),
    );
    assert.deepEqual(decision.actions, [{ kind: 'demote', mode: 'immediate-nolock' }]);
  });
});

describe('replicas', () => {
  it('follows the leader quietly while streaming', () => {
    const copy = (name: string, restartLsn: bigint) => ({
      name,
      type: 'physical' as const,
      isActive: false,
      restartLsn,
      confirmedFlushLsn: undefined,
      retainedBytes: 0,
      walStatus: 'reserved',
    });
    const decision = decide(observe({ name: 'node2', pg: pgState({ slots: [copy('node1', 500n), copy('node3', 1000n)] }) }), freshMemory());
    // Only slot upkeep: copies for the other members, the leader's advanced to its published position.
    assert.deepEqual(decision.actions, [
      { kind: 'manageSlots', plan: { steps: [{ kind: 'advance', slot: { name: 'node1', type: 'physical' }, lsn: 1000n }], skipped: [] } },
    ]);
    assert.equal(decision.reason, 'no action. I am (node2), a secondary, and following a leader (node1)');
  });

  it('rewinds a replica stuck on a timeline the leader never had (a short-lived promotion elsewhere)', () => {
    const obs = observe({
      name: 'node3',
      pg: pgState({ timeline: 4, isStreaming: false, upstream: 'node1' }),
      dcs: {
        kind: 'ok',
        view: view({ leaderName: 'node1', members: [member('node1', { timeline: 3, role: 'primary' }), member('node2'), member('node3')] }),
      },
    });
    const first = decide(obs, freshMemory());
    assert.deepEqual(first.actions, []);
    const later = decide({ ...obs, nowMs: NOW + 31_000 }, first.memory);
    assert.deepEqual(later.actions, [{ kind: 'rewind', from: 'node1' }]);
  });

  it("re-clones a replica whose history for the leader's timeline number differs (a promotion cut short)", () => {
    const obs = observe({
      name: 'node3',
      pg: pgState({ timeline: 2, isStreaming: false, upstream: 'node1', isHistoryDivergent: true }),
      dcs: {
        kind: 'ok',
        view: view({ leaderName: 'node1', members: [member('node1', { timeline: 2, role: 'primary' }), member('node2'), member('node3')] }),
      },
    });
    const decision = decide(obs, freshMemory());
    assert.deepEqual(decision.actions, [{ kind: 'reinitialize', from: 'node1' }]);
    assert.match(decision.reason, /history differs/);
    assert.deepEqual(decide({ ...obs, pg: { ...obs.pg, isHistoryDivergent: false } }, freshMemory()).actions, []);
  });

  it("re-clones a replica that cannot replay WAL it received on the leader's timeline (found by chaos seed 100, async), never while the leader is unreachable", () => {
    const stuck = pgState({
      timeline: 2,
      isStreaming: false,
      upstream: 'node1',
      isHistoryDivergent: false,
      receivedLsn: 0x405dae0n,
      replayedLsn: 0x404db30n,
    });
    const obs = observe({
      name: 'node3',
      pg: stuck,
      dcs: {
        kind: 'ok',
        view: view({ leaderName: 'node1', members: [member('node1', { timeline: 2, role: 'primary' }), member('node2'), member('node3')] }),
      },
    });
    const since = { ...freshMemory(), notStreamingSinceMs: obs.nowMs - 31_000 };
    assert.deepEqual(decide(obs, since).actions, [{ kind: 'reinitialize', from: 'node1' }]);
    assert.match(decide(obs, since).reason, /cannot replay WAL it received/);
    assert.deepEqual(decide(obs, { ...freshMemory(), notStreamingSinceMs: obs.nowMs - 10_000 }).actions, [], 'not before the limit');
    assert.deepEqual(
      decide({ ...obs, pg: { ...stuck, isHistoryDivergent: undefined } }, since).actions,
      [],
      'not when the leader could not be read',
    );
    assert.deepEqual(
      decide({ ...obs, pg: { ...stuck, replayedLsn: 0x405dae0n } }, since).actions,
      [],
      'not when everything received was replayed (merely disconnected)',
    );
  });

  it('re-clones a stopped replica once pg_rewind failed for this leader instead of starting it to wait forever', () => {
    const memory = { ...freshMemory(), rewindFailedFor: 'node1' };
    const stopped = observe({ name: 'node3', pg: pgState({ isRunning: false, role: 'replica' }) });
    assert.deepEqual(decide(stopped, memory).actions, [{ kind: 'reinitialize', from: 'node1' }]);
    assert.deepEqual(decide(stopped, freshMemory()).actions, [{ kind: 'startReplica', upstream: 'node1' }]);
    const running = observe({ name: 'node3', pg: pgState({ isStreaming: false }) });
    const first = decide(running, memory);
    assert.deepEqual(first.actions, []);
    assert.deepEqual(decide({ ...running, nowMs: NOW + 31_000 }, first.memory).actions, [{ kind: 'reinitialize', from: 'node1' }]);
  });

  it('repoints primary_conninfo at a new leader', () => {
    const decision = decide(observe({ name: 'node3', dcs: { kind: 'ok', view: view({ leaderName: 'node2' }) } }), freshMemory());
    assert.deepEqual(decision.actions, [{ kind: 'followLeader', upstream: 'node2' }]);
  });

  it('rewinds a stopped former primary before it follows; re-clones once rewind failed', () => {
    const obs = observe({
      name: 'node1',
      pg: primaryPg({ isRunning: false, controlState: 'in production' }),
      dcs: { kind: 'ok', view: view({ leaderName: 'node2' }) },
    });
    assert.deepEqual(decide(obs, freshMemory()).actions, [{ kind: 'rewind', from: 'node2' }]);
    const failed = decide(
      observe({ ...obs, task: { kind: 'done', name: 'rewind', isOk: false, error: 'pg_rewind failed', endedAtMs: NOW - 1 } }),
      freshMemory(),
    );
    const retry = decide(observe({ ...obs, nowMs: NOW + TIMING.loopWaitMs + 1 }), failed.memory);
    assert.deepEqual(retry.actions, [{ kind: 'reinitialize', from: 'node2' }]);
  });

  it('starts a stopped replica following the leader', () => {
    const decision = decide(
      observe({ name: 'node3', pg: pgState({ isRunning: false, controlState: 'shut down in recovery' }) }),
      freshMemory(),
    );
    assert.deepEqual(decision.actions, [{ kind: 'startReplica', upstream: 'node1' }]);
  });

  it('removes the lock of a leader whose API and PostgreSQL both refuse connections', () => {
    const v = view({ leaderName: 'node1' });
    const decision = decide(
      observe({
        name: 'node2',
        pg: pgState({ isStreaming: false }),
        dcs: { kind: 'ok', view: v },
        leaderProbe: { leader: v.leader!, isApiRefused: true, isPgRefused: true },
      }),
      freshMemory(),
    );
    assert.deepEqual(decision.actions, [{ kind: 'deleteStaleLeader', leader: v.leader }]);
    const onlyPg = decide(
      observe({
        name: 'node2',
        pg: pgState({ isStreaming: false }),
        dcs: { kind: 'ok', view: v },
        leaderProbe: { leader: v.leader!, isApiRefused: false, isPgRefused: true },
      }),
      freshMemory(),
    );
    assert.deepEqual(onlyPg.actions, [], 'a live agent restarts its postmaster: no failover');
  });
});

describe('silent leader (heartbeat detector)', () => {
  const silence = { intervalMs: 250, fenceWindowMs: 1000, marginMs: 400, confirmMs: 500 };
  const v = view({ leaderName: 'node1' });
  const beat = { leader: 'node1', fenceMs: 1000, modRevision: '77' };
  /** A replica's decision `silentForMs` after it saw the beat, etcd having answered promptly since `confirmedForMs`. */
  const decideAt = (
    silentForMs: number,
    confirmedForMs: number | undefined,
    overrides: { fenceMs?: number; isPaused?: boolean; beatRevision?: string } = {},
  ) =>
    decide(
      observe({
        name: 'node2',
        timing: { ...TIMING, silence },
        isPaused: overrides.isPaused ?? false,
        dcs: { kind: 'ok', view: v },
        leaderSilence: {
          beat: { ...beat, fenceMs: overrides.fenceMs ?? beat.fenceMs, modRevision: overrides.beatRevision ?? beat.modRevision },
          seenAtMs: NOW - silentForMs,
          confirmedSinceMs: confirmedForMs === undefined ? undefined : NOW - confirmedForMs,
          lastConfirmedAtMs: confirmedForMs === undefined ? undefined : NOW - 50,
        },
      }),
      freshMemory(),
    );

  it('removes the lock once the beat is older than the fence window plus the margin and etcd answered meanwhile', () => {
    const decision = decideAt(1450, 500);
    assert.deepEqual(decision.actions, [{ kind: 'deleteSilentLeader', leader: v.leader, heartbeatRevision: '77' }]);
    assert.match(decision.reason, /leader node1 is silent: no heartbeat for 1450 ms/);
  });

  it('waits while the leader may still be writing, while etcd has not answered long enough, or when it cannot be fenced', () => {
    assert.deepEqual(kinds(decideAt(1350, 500).actions), [], 'inside fence window + margin');
    assert.deepEqual(kinds(decideAt(1450, undefined).actions), [], 'etcd has not answered (an election, a stall)');
    assert.deepEqual(kinds(decideAt(1450, 300).actions), [], 'etcd answered for less than two beat intervals');
    assert.deepEqual(kinds(decideAt(5000, 500, { fenceMs: 0 }).actions), [], 'the leader announced no fence window');
    assert.deepEqual(kinds(decideAt(5000, 500, { isPaused: true }).actions), [], 'maintenance mode');
    assert.deepEqual(kinds(decideAt(5000, 500, { beatRevision: '1' }).actions), [], 'a beat of an earlier term of that leader');
  });
});

describe('leader race', () => {
  const noLeader = view({});

  it('acquires the lock as the healthiest member', () => {
    const decision = decide(
      observe({
        name: 'node2',
        pg: pgState({ receivedLsn: 2000n, replayedLsn: 2000n }),
        dcs: { kind: 'ok', view: noLeader },
        peers: [{ name: 'node3', isReachable: true, role: 'replica', isRunning: true, walPosition: 1500n, timeline: 1, tags: {} }],
      }),
      freshMemory(),
    );
    assert.deepEqual(kinds(decision.actions), ['acquireLeader']);
    assert.equal(decision.wakeAfterMs, 0);
  });

  it('defers to a peer with more WAL, or equal WAL and higher priority, or the lower name on a tie', () => {
    const base = { name: 'node2', pg: pgState({ receivedLsn: 2000n, replayedLsn: 2000n }), dcs: { kind: 'ok' as const, view: noLeader } };
    const peer = { name: 'node3', isReachable: true, role: 'replica' as const, isRunning: true, timeline: 1, tags: {} };
    assert.deepEqual(decide(observe({ ...base, peers: [{ ...peer, walPosition: 2001n }] }), freshMemory()).actions, []);
    assert.deepEqual(
      decide(observe({ ...base, peers: [{ ...peer, walPosition: 2000n, tags: { failover_priority: 2 } }] }), freshMemory()).actions,
      [],
    );
    assert.deepEqual(
      kinds(decide(observe({ ...base, peers: [{ ...peer, walPosition: 2000n }] }), freshMemory()).actions),
      ['acquireLeader'],
      'node2 < node3',
    );
    assert.deepEqual(
      decide(observe({ ...base, name: 'node3', peers: [{ ...peer, name: 'node2', walPosition: 2000n }] }), freshMemory()).actions,
      [],
    );
  });

  it("says why it defers in Patroni's words: a peer ahead, or with equal WAL and a higher priority", () => {
    const base = { name: 'node2', pg: pgState({ receivedLsn: 2000n, replayedLsn: 2000n }), dcs: { kind: 'ok' as const, view: noLeader } };
    const peer = { name: 'node3', isReachable: true, role: 'replica' as const, isRunning: true, timeline: 1, tags: {} };
    const reason = (peers: (typeof peer & { walPosition: bigint })[], name = 'node2'): string =>
      decide(observe({ ...base, name, peers }), freshMemory()).reason;
    assert.match(reason([{ ...peer, walPosition: 2001n }]), /Wal position of node3 is ahead of my wal position/);
    assert.match(
      reason([{ ...peer, walPosition: 2000n, tags: { failover_priority: 2 } }]),
      /node3 has equally tolerable WAL position and priority 2, while this node has priority 1/,
    );
    assert.match(
      reason([{ ...peer, name: 'node1', walPosition: 2000n }]),
      /node1 has the same WAL position and priority, and the name that goes first/,
    );
  });

  it('ignores unreachable and nofailover peers', () => {
    const peers = [
      { name: 'node1', isReachable: false, role: undefined, isRunning: false, walPosition: undefined, timeline: undefined, tags: {} },
      {
        name: 'node3',
        isReachable: true,
        role: 'replica' as const,
        isRunning: true,
        walPosition: 9999n,
        timeline: 1,
        tags: { nofailover: true },
      },
    ];
    assert.deepEqual(kinds(decide(observe({ name: 'node2', dcs: { kind: 'ok', view: noLeader }, peers }), freshMemory()).actions), [
      'acquireLeader',
    ]);
  });

  it('does not race when lagging beyond maximum_lag_on_failover, or when nofailover', () => {
    const lagging = decide(
      observe({
        name: 'node2',
        pg: pgState({ receivedLsn: 100n, replayedLsn: 100n }),
        dcs: { kind: 'ok', view: view({ optime: 100 + 2 * 1048576 }) },
      }),
      freshMemory(),
    );
    assert.deepEqual(lagging.actions, []);
    assert.match(lagging.reason, /maximum_lag_on_failover/);
    const nofailover = decide(
      observe({
        name: 'node2',
        self: { name: 'node2', tags: { nofailover: true }, canBootstrap: true },
        dcs: { kind: 'ok', view: noLeader },
      }),
      freshMemory(),
    );
    assert.deepEqual(nofailover.actions, []);
  });

  it('does not race while a peer still runs as primary', () => {
    const decision = decide(
      observe({
        name: 'node2',
        dcs: { kind: 'ok', view: noLeader },
        peers: [{ name: 'node1', isReachable: true, role: 'primary', isRunning: true, walPosition: 1n, timeline: 1, tags: {} }],
      }),
      freshMemory(),
    );
    assert.deepEqual(decision.actions, []);
  });
});

describe('maintenance mode', () => {
  it('only renews the lock, never demotes', () => {
    const decision = decide(observe({ isPaused: true, pg: primaryPg(), lock: { lastRenewSentAtMs: NOW - 1000 } }), freshMemory());
    assert.deepEqual(kinds(decision.actions), ['renewLeader']);
    assert.match(decision.reason, /^PAUSE: /);
    const replica = decide(observe({ isPaused: true, name: 'node2', pg: pgState({ isRunning: false }) }), freshMemory());
    assert.deepEqual(replica.actions, [], 'a stopped replica is not started in maintenance mode');
  });
});

describe('scripted: the leader loses the DCS', () => {
  it('renews until t=25 s, then demotes before its deadline and within retry_timeout once etcd is unreachable', () => {
    let mem = freshMemory();
    let lastRenew: number | undefined = 0;
    let now = 0;
    let demotedAt: number | undefined;
    const etcdDownAt = 25_000;
    let downSince: number | undefined;
    while (now < 120_000 && demotedAt === undefined) {
      const isDown = now >= etcdDownAt;
      if (isDown && downSince === undefined) downSince = now;
      const decision = decide(
        observe({
          nowMs: now,
          pg: primaryPg(),
          lock: { lastRenewSentAtMs: lastRenew },
          dcs: isDown
            ? { kind: 'unreachable', sinceMs: downSince!, lastView: undefined }
            : { kind: 'ok', view: view({ leaderName: 'node1' }) },
        }),
        mem,
      );
      mem = decision.memory;
      if (decision.actions.some((action) => action.kind === 'demote')) demotedAt = now;
      if (!isDown && decision.actions.some((action) => action.kind === 'renewLeader')) lastRenew = now;
      now += Math.max(1, decision.wakeAfterMs);
    }
    assert.ok(demotedAt !== undefined, 'the primary demoted');
    assert.ok(
      demotedAt < lockDeadlineMs(lastRenew, TIMING.ttlMs),
      `demoted at ${demotedAt} before the deadline ${lockDeadlineMs(lastRenew, TIMING.ttlMs)}`,
    );
    assert.ok(demotedAt - downSince! <= TIMING.retryTimeoutMs + 500, 'within retry_timeout of noticing the outage');
  });
});

describe('primary_start_timeout', () => {
  const crashed = (overrides: Parameters<typeof observe>[0] = {}) =>
    observe({
      pg: primaryPg({ isRunning: false, writeLsn: undefined, crashedAtMs: NOW - 100 }),
      lock: { lastRenewSentAtMs: NOW - 1000 },
      ...overrides,
    });

  it('restarts a crashed primary in place by default (300 s)', () => {
    const decision = decide(crashed(), freshMemory());
    assert.deepEqual(kinds(decision.actions), ['renewLeader', 'startPrimary']);
    assert.equal(decision.reason, 'starting primary after failure');
  });

  it('with 0, gives the lock up at once when a replica can take over, and restarts in place when none can', () => {
    const failing = decide(crashed({ primaryStartTimeoutMs: 0 }), freshMemory());
    assert.deepEqual(failing.actions, [{ kind: 'demote', mode: 'immediate' }]);
    assert.match(failing.reason, /Failing over/);
    const alone = view({
      leaderName: 'node1',
      members: [member('node1'), member('node2', { state: 'stopped' }), member('node3', { tags: { nofailover: true } })],
    });
    const restarting = decide(crashed({ primaryStartTimeoutMs: 0, dcs: { kind: 'ok', view: alone } }), freshMemory());
    assert.deepEqual(kinds(restarting.actions), ['renewLeader', 'startPrimary']);
  });

  it('hands over when the start takes longer than the timeout, if anyone can take over', () => {
    const starting = (startedAgoMs: number, members = view({ leaderName: 'node1' })) =>
      decide(
        crashed({
          primaryStartTimeoutMs: 60_000,
          task: { kind: 'running', name: 'start', startedAtMs: NOW - startedAgoMs },
          dcs: { kind: 'ok', view: members },
        }),
        freshMemory(),
      );
    assert.deepEqual(kinds(starting(30_000).actions), ['renewLeader']);
    assert.deepEqual(starting(60_000).actions, [{ kind: 'demote', mode: 'immediate' }]);
    const lagging = view({ leaderName: 'node1', optime: 100_000_000, members: [member('node1'), member('node2'), member('node3')] });
    const waiting = starting(60_000, lagging);
    assert.deepEqual(kinds(waiting.actions), ['renewLeader']);
    assert.equal(waiting.reason, 'primary start has timed out, but continuing to wait because failover is not possible');
  });
});

describe('restart on request in maintenance mode', () => {
  const command = { id: 1, kind: 'restart' as const };
  const paused = (pg: ReturnType<typeof pgState>, overrides: Parameters<typeof observe>[0] = {}) =>
    observe({ pg, isPaused: true, command, ...overrides });

  it('starts a stopped replica (nothing else would under pause)', () => {
    const decision = decide(
      paused(pgState({ isRunning: false }), { name: 'node2', dcs: { kind: 'ok', view: view({ leaderName: 'node1' }) } }),
      freshMemory(),
    );
    assert.deepEqual(decision.actions, [{ kind: 'restart', asPrimary: false, upstream: 'node1' }]);
  });

  it('starts a stopped primary only under its own valid lock', () => {
    const stoppedPrimary = primaryPg({ isRunning: false, writeLsn: undefined });
    const own = decide(paused(stoppedPrimary, { lock: { lastRenewSentAtMs: NOW - 1000 } }), freshMemory());
    assert.deepEqual(kinds(own.actions), ['renewLeader', 'restart']);
    const foreign = decide(paused(stoppedPrimary, { dcs: { kind: 'ok', view: view({ leaderName: 'node2' }) } }), freshMemory());
    assert.deepEqual(foreign.actions, []);
    assert.match(foreign.reason, /do not hold the leader lock: refused/);
  });
});

describe('replicatefrom (cascading)', () => {
  const cascadeView = (source: Partial<ReturnType<typeof member>> = {}) =>
    view({
      leaderName: 'node1',
      members: [
        member('node1', { role: 'master' }),
        member('node2', { replication_state: 'streaming', ...source }),
        member('node3', { tags: { replicatefrom: 'node2' } }),
      ],
    });
  const node3 = (overrides: Parameters<typeof observe>[0] = {}) =>
    observe({ name: 'node3', self: { name: 'node3', tags: { replicatefrom: 'node2' }, canBootstrap: true }, ...overrides });

  it('streams from its replicatefrom member while that one streams, and from the leader when it does not', () => {
    const cascading = decide(node3({ pg: pgState({ upstream: 'node1' }), dcs: { kind: 'ok', view: cascadeView() } }), freshMemory());
    assert.deepEqual(cascading.actions, [{ kind: 'followLeader', upstream: 'node2' }]);
    assert.match(cascading.reason, /replicate from member node2/);
    const settled = decide(node3({ pg: pgState({ upstream: 'node2' }), dcs: { kind: 'ok', view: cascadeView() } }), freshMemory());
    assert.ok(!kinds(settled.actions).includes('followLeader'), settled.reason);
    const sourceDown = decide(
      node3({
        pg: pgState({ upstream: 'node2' }),
        dcs: { kind: 'ok', view: cascadeView({ state: 'stopped', replication_state: 'in archive recovery' }) },
      }),
      freshMemory(),
    );
    assert.deepEqual(sourceDown.actions, [{ kind: 'followLeader', upstream: 'node1' }]);
  });

  it('starts a stopped replica towards its cascade source', () => {
    const decision = decide(
      node3({ pg: pgState({ isRunning: false, upstream: undefined }), dcs: { kind: 'ok', view: cascadeView() } }),
      freshMemory(),
    );
    assert.deepEqual(decision.actions, [{ kind: 'startReplica', upstream: 'node2' }]);
  });
});

describe('a primary that cannot start', () => {
  const failedStart = { kind: 'done' as const, name: 'start' as const, isOk: false, error: 'exited during start-up', endedAtMs: NOW - 10 };

  it('is demoted: the lock is released and on_role_change reports demoted (Patroni 4.0.4+)', () => {
    const decision = decide(
      observe({
        pg: primaryPg({ isRunning: false, controlState: 'in production' }),
        lock: { lastRenewSentAtMs: NOW - 1000 },
        task: failedStart,
      }),
      freshMemory(),
    );
    assert.deepEqual(decision.actions, [{ kind: 'demote', mode: 'immediate' }]);
    assert.equal(decision.reason, 'removed leader key after trying and failing to start postgres');
  });

  it('a replica data dir that holds the lock and cannot start only releases it (it was never the primary)', () => {
    const decision = decide(
      observe({ pg: pgState({ isRunning: false }), lock: { lastRenewSentAtMs: NOW - 1000 }, task: failedStart }),
      freshMemory(),
    );
    assert.deepEqual(decision.actions, [{ kind: 'releaseLeader' }]);
  });
});
