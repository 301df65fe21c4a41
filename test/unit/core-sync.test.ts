// Synchronous replication in the pure core: the synchronous_standby_names grammar, the key-safety rule, and the
// order in which the leader changes PostgreSQL's set and the DCS `sync` key.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decide } from '../../src/core/decide.js';
import {
  guaranteeOf,
  isKeySafeFor,
  renderSynchronousStandbyNames,
  safeKeyFor,
  STRICT_SYNC_PLACEHOLDER,
} from '../../src/core/sync-standby-names.js';
import { syncSettingsOf } from '../../src/core/sync-plan.js';
import type { HaMemory, Observation, PeerStatus, ReplicationRow, SyncSettings, SyncState } from '../../src/core/types.js';
import { freshMemory, kinds, member, observe, pgState, primaryPg, view } from '../sim/builders.js';

const NOW = 100_000;
const PRIORITY: SyncSettings = { mode: 'priority', isStrict: false, nodeCount: 1 };

const streaming = (name: string): ReplicationRow => ({
  usename: 'replicator',
  application_name: name,
  client_addr: '127.0.0.1',
  state: 'streaming',
  sync_state: 'async',
  sync_priority: 0,
});

function leaderObs(options: {
  ssn: string;
  key?: SyncState | undefined;
  standbys?: Record<string, bigint>;
  sync?: SyncSettings;
  writeLsn?: bigint;
  members?: Observation['dcs'];
}): Observation {
  const standbys = options.standbys ?? {};
  const dcs = options.members ?? {
    kind: 'ok',
    view: view({ leaderName: 'node1', sync: options.key, syncRevision: options.key === undefined ? undefined : '77' }),
  };
  return observe({
    pg: primaryPg({
      writeLsn: options.writeLsn ?? 10_000n,
      synchronousStandbyNames: options.ssn,
      replication: Object.keys(standbys).map(streaming),
      standbyFlushLsn: standbys,
    }),
    lock: { lastRenewSentAtMs: NOW - 1000 },
    dcs,
    sync: options.sync ?? PRIORITY,
    useSlots: false,
  });
}

const syncActions = (obs: Observation, memory: HaMemory = freshMemory()) =>
  decide(obs, memory).actions.filter((action) => action.kind === 'writeSync' || action.kind === 'setSynchronousStandbyNames');

describe('synchronous_standby_names', () => {
  it('reads every form PostgreSQL accepts as a guarantee', () => {
    assert.deepEqual(guaranteeOf(''), { names: [], count: 0, isBlocking: false });
    assert.deepEqual(guaranteeOf('"node2"'), { names: ['node2'], count: 1, isBlocking: false });
    assert.deepEqual(guaranteeOf('Node2, node3'), { names: ['node2', 'node3'], count: 1, isBlocking: false });
    assert.deepEqual(guaranteeOf('2 ("node3","node2")'), { names: ['node2', 'node3'], count: 2, isBlocking: false });
    assert.deepEqual(guaranteeOf('FIRST 1 (a, "B")'), { names: ['B', 'a'], count: 1, isBlocking: false });
    assert.deepEqual(guaranteeOf('ANY 2 ("a","b","c")'), { names: ['a', 'b', 'c'], count: 2, isBlocking: false });
    assert.deepEqual(guaranteeOf('"we""ird"'), { names: ['we"ird'], count: 1, isBlocking: false });
  });

  it('treats the wildcard and anything unreadable as asynchronous, and the placeholder as blocking', () => {
    assert.equal(guaranteeOf('*').count, 0);
    assert.equal(guaranteeOf('2 ("a"').count, 0);
    assert.equal(guaranteeOf(`"${STRICT_SYNC_PLACEHOLDER}"`).isBlocking, true);
    assert.equal(guaranteeOf(`ANY 1 ("${STRICT_SYNC_PLACEHOLDER}")`).isBlocking, true);
  });

  it('renders priority, quorum and strict values that read back to the same set', () => {
    assert.equal(renderSynchronousStandbyNames('priority', ['node3'], 1, false), '"node3"');
    assert.equal(renderSynchronousStandbyNames('priority', ['node3', 'node2'], 2, false), '2 ("node2","node3")');
    assert.equal(renderSynchronousStandbyNames('quorum', ['node3', 'node2'], 1, false), 'ANY 1 ("node2","node3")');
    assert.equal(renderSynchronousStandbyNames('priority', [], 0, false), '');
    assert.equal(renderSynchronousStandbyNames('priority', [], 0, true), `"${STRICT_SYNC_PLACEHOLDER}"`);
    assert.deepEqual(guaranteeOf(renderSynchronousStandbyNames('quorum', ['a', 'b', 'c'], 2, false)), {
      names: ['a', 'b', 'c'],
      count: 2,
      isBlocking: false,
    });
  });

  it('calls a key safe only when any promoter it allows must hold every acknowledged commit', () => {
    const one = guaranteeOf('"node2"');
    assert.equal(isKeySafeFor({ names: ['node2'], quorum: 0 }, one), true);
    assert.equal(isKeySafeFor({ names: ['node3'], quorum: 0 }, one), false, 'node3 may miss commits only node2 acknowledged');
    assert.equal(isKeySafeFor({ names: ['node2', 'node3'], quorum: 0 }, one), false);
    assert.equal(isKeySafeFor({ names: ['node2', 'node3'], quorum: 1 }, one), true, 'node3 must see node2 first');
    assert.equal(isKeySafeFor({ names: [], quorum: 0 }, one), true, 'nobody may promote: nothing can be lost');
    assert.equal(isKeySafeFor({ names: ['node2'], quorum: 0 }, guaranteeOf('')), false, 'async commits are on the primary only');
    const quorum = guaranteeOf('ANY 1 ("node2","node3")');
    assert.equal(isKeySafeFor({ names: ['node2', 'node3'], quorum: 0 }, quorum), false);
    assert.equal(isKeySafeFor({ names: ['node2', 'node3'], quorum: 1 }, quorum), true);
    assert.deepEqual(safeKeyFor([one, guaranteeOf('"node3"')]), { names: ['node2', 'node3'], quorum: 1 });
    assert.deepEqual(safeKeyFor([one, guaranteeOf('')]), { names: [], quorum: 0 });
  });

  it('reads the dynamic config like Patroni', () => {
    assert.deepEqual(
      syncSettingsOf({
        ttl: 30,
        loop_wait: 10,
        retry_timeout: 10,
        maximum_lag_on_failover: 1,
        synchronous_mode: 'on',
        synchronous_mode_strict: true,
        synchronous_node_count: 2,
      }),
      { mode: 'priority', isStrict: true, nodeCount: 2 },
    );
    assert.deepEqual(
      syncSettingsOf({ ttl: 30, loop_wait: 10, retry_timeout: 10, maximum_lag_on_failover: 1, synchronous_mode: 'quorum' }),
      { mode: 'quorum', isStrict: false, nodeCount: 1 },
    );
    assert.equal(
      syncSettingsOf({
        ttl: 30,
        loop_wait: 10,
        retry_timeout: 10,
        maximum_lag_on_failover: 1,
        synchronous_mode: false,
        synchronous_mode_strict: true,
      }).mode,
      'off',
    );
  });
});

describe('the leader in synchronous mode', () => {
  it('publishes its own sync key first when synchronous mode was just enabled', () => {
    assert.deepEqual(syncActions(leaderObs({ ssn: '', key: undefined, standbys: { node2: 9000n } })), [
      { kind: 'writeSync', state: { leader: 'node1', sync_standby: null } },
    ]);
  });

  it('adds the most advanced standby to PostgreSQL first, and to the key only once it caught up', () => {
    const key = { leader: 'node1', sync_standby: null };
    const first = decide(leaderObs({ ssn: '', key, standbys: { node2: 9000n, node3: 9500n } }), freshMemory());
    assert.deepEqual(
      first.actions.filter((action) => action.kind === 'setSynchronousStandbyNames' || action.kind === 'writeSync'),
      [{ kind: 'setSynchronousStandbyNames', value: '"node3"' }],
    );
    const inEffect = decide(leaderObs({ ssn: '"node3"', key, standbys: { node2: 9000n, node3: 9500n }, writeLsn: 10_000n }), first.memory);
    assert.deepEqual(
      kinds(inEffect.actions).filter((kind) => kind === 'writeSync'),
      [],
      'the LSN of the change is noted first',
    );
    assert.equal(inEffect.memory.syncAppliedAt?.lsn, 10_000n);
    const lagging = decide(leaderObs({ ssn: '"node3"', key, standbys: { node3: 9999n } }), inEffect.memory);
    assert.deepEqual(
      kinds(lagging.actions).filter((kind) => kind === 'writeSync'),
      [],
    );
    assert.match(lagging.reason, /waiting for node3/);
    const caughtUp = decide(leaderObs({ ssn: '"node3"', key, standbys: { node3: 10_000n } }), inEffect.memory);
    assert.deepEqual(caughtUp.actions.at(-1), { kind: 'writeSync', state: { leader: 'node1', sync_standby: 'node3' } });
  });

  it('maximum_lag_on_syncnode: swaps out a sync standby too far behind the others, by the position synchronous_commit waits for', () => {
    const key = { leader: 'node1', sync_standby: 'node2' };
    const base = leaderObs({ ssn: '"node2"', key, standbys: { node2: 9000n, node3: 9900n } });
    // Within the limit (or the limit off): the incumbent stays.
    assert.deepEqual(syncActions({ ...base, maximumLagOnSyncnode: 1000 }), []);
    assert.deepEqual(syncActions({ ...base, maximumLagOnSyncnode: -1 }), []);
    // Beyond it: widened key first, then PostgreSQL waits for the standby that keeps up.
    assert.deepEqual(syncActions({ ...base, maximumLagOnSyncnode: 500 }), [
      { kind: 'writeSync', state: { leader: 'node1', sync_standby: 'node2,node3', quorum: 1 } },
      { kind: 'setSynchronousStandbyNames', value: '"node3"' },
    ]);
    // remote_apply counts replay: a standby whose replay is paused lags although it flushes everything.
    const paused: Observation = {
      ...base,
      maximumLagOnSyncnode: 500,
      synchronousCommit: 'remote_apply',
      pg: { ...base.pg, standbyFlushLsn: { node2: 9900n, node3: 9900n }, standbyReplayLsn: { node2: 5000n, node3: 9900n } },
    };
    assert.deepEqual(kinds(syncActions(paused)), ['writeSync', 'setSynchronousStandbyNames']);
    assert.deepEqual(syncActions({ ...paused, synchronousCommit: 'on' }), [], 'by flush position it keeps up');
  });

  it('replaces a lost sync standby by widening the key before PostgreSQL waits for the new one', () => {
    const actions = syncActions(leaderObs({ ssn: '"node2"', key: { leader: 'node1', sync_standby: 'node2' }, standbys: { node3: 9000n } }));
    assert.deepEqual(actions, [
      { kind: 'writeSync', state: { leader: 'node1', sync_standby: 'node2,node3', quorum: 1 } },
      { kind: 'setSynchronousStandbyNames', value: '"node3"' },
    ]);
  });

  it('goes asynchronous without a standby (not strict) only after emptying the key', () => {
    const actions = syncActions(leaderObs({ ssn: '"node2"', key: { leader: 'node1', sync_standby: 'node2' }, standbys: {} }));
    assert.deepEqual(actions, [
      { kind: 'writeSync', state: { leader: 'node1', sync_standby: null } },
      { kind: 'setSynchronousStandbyNames', value: '' },
    ]);
  });

  it('in strict mode blocks writes instead, and keeps the key so the old sync standby can still take over', () => {
    const strict = { ...PRIORITY, isStrict: true };
    const key = { leader: 'node1', sync_standby: 'node2' };
    const first = decide(leaderObs({ ssn: '"node2"', key, standbys: {}, sync: strict }), freshMemory());
    assert.deepEqual(
      first.actions.filter((action) => action.kind === 'setSynchronousStandbyNames' || action.kind === 'writeSync'),
      [{ kind: 'setSynchronousStandbyNames', value: `"${STRICT_SYNC_PLACEHOLDER}"` }],
    );
    const noted = decide(leaderObs({ ssn: `"${STRICT_SYNC_PLACEHOLDER}"`, key, standbys: {}, sync: strict }), first.memory);
    const later = decide(leaderObs({ ssn: `"${STRICT_SYNC_PLACEHOLDER}"`, key, standbys: {}, sync: strict }), noted.memory);
    assert.deepEqual(
      kinds(later.actions).filter((kind) => kind === 'writeSync'),
      [],
    );
  });

  it('keeps the standby that holds older commits in the key when strict mode unblocks with a different standby', () => {
    const strict = { ...PRIORITY, isStrict: true };
    const actions = syncActions(
      leaderObs({
        ssn: `"${STRICT_SYNC_PLACEHOLDER}"`,
        key: { leader: 'node1', sync_standby: 'node2' },
        standbys: { node3: 5n },
        sync: strict,
      }),
    );
    assert.deepEqual(actions, [
      { kind: 'writeSync', state: { leader: 'node1', sync_standby: 'node2,node3', quorum: 1 } },
      { kind: 'setSynchronousStandbyNames', value: '"node3"' },
    ]);
  });

  it('never picks a nosync member', () => {
    const members = {
      kind: 'ok' as const,
      view: view({
        leaderName: 'node1',
        sync: { leader: 'node1', sync_standby: null },
        syncRevision: '5',
        members: [member('node1'), member('node2', { tags: { nosync: true } }), member('node3')],
      }),
    };
    assert.deepEqual(syncActions(leaderObs({ ssn: '', standbys: { node2: 9999n, node3: 1n }, members })), [
      { kind: 'setSynchronousStandbyNames', value: '"node3"' },
    ]);
  });

  it('keeps two synchronous standbys with synchronous_node_count 2, and uses ANY n in quorum mode', () => {
    const key = { leader: 'node1', sync_standby: null };
    assert.deepEqual(syncActions(leaderObs({ ssn: '', key, standbys: { node2: 1n, node3: 2n }, sync: { ...PRIORITY, nodeCount: 2 } })), [
      { kind: 'setSynchronousStandbyNames', value: '2 ("node2","node3")' },
    ]);
    const quorumKey = { leader: 'node1', sync_standby: null, quorum: 0 };
    const quorum = { mode: 'quorum' as const, isStrict: false, nodeCount: 1 };
    const first = decide(leaderObs({ ssn: '', key: quorumKey, standbys: { node2: 1n, node3: 2n }, sync: quorum }), freshMemory());
    assert.deepEqual(
      first.actions.filter((action) => action.kind === 'setSynchronousStandbyNames'),
      [{ kind: 'setSynchronousStandbyNames', value: 'ANY 1 ("node2","node3")' }],
    );
    const noted = decide(
      leaderObs({ ssn: 'ANY 1 ("node2","node3")', key: quorumKey, standbys: { node2: 1n, node3: 2n }, sync: quorum, writeLsn: 5n }),
      first.memory,
    );
    const tightened = decide(
      leaderObs({ ssn: 'ANY 1 ("node2","node3")', key: quorumKey, standbys: { node2: 5n, node3: 6n }, sync: quorum }),
      noted.memory,
    );
    assert.deepEqual(tightened.actions.at(-1), { kind: 'writeSync', state: { leader: 'node1', sync_standby: 'node2,node3', quorum: 1 } });
  });

  it('deletes the key before restoring the configured value when synchronous mode is turned off', () => {
    const actions = syncActions(
      leaderObs({
        ssn: '"node2"',
        key: { leader: 'node1', sync_standby: 'node2' },
        standbys: { node2: 1n },
        sync: { mode: 'off', isStrict: false, nodeCount: 1 },
      }),
    );
    assert.deepEqual(actions, [
      { kind: 'writeSync', state: undefined },
      { kind: 'setSynchronousStandbyNames', value: '' },
    ]);
  });
});

describe('failover in synchronous mode', () => {
  const noLeader = (sync: SyncState) => ({ kind: 'ok' as const, view: view({ sync, syncRevision: '9' }) });
  const peer = (name: string, walPosition: bigint): PeerStatus => ({
    name,
    isReachable: true,
    role: 'replica',
    isRunning: true,
    walPosition,
    timeline: 1,
    tags: {},
  });
  const replica = (
    name: string,
    sync: SyncState,
    settings: SyncSettings = PRIORITY,
    peers: PeerStatus[] = [peer('node2', 900n), peer('node3', 900n)].filter((entry) => entry.name !== name),
  ) =>
    decide(
      observe({
        name,
        pg: pgState({ receivedLsn: 1000n, replayedLsn: 1000n, isStreaming: false, upstream: undefined }),
        dcs: noLeader(sync),
        sync: settings,
        peers,
      }),
      freshMemory(),
    );

  it('lets only a listed synchronous standby race', () => {
    const sync = { leader: 'node1', sync_standby: 'node2' };
    assert.deepEqual(kinds(replica('node2', sync).actions), ['acquireLeader']);
    const node3 = replica('node3', sync);
    assert.deepEqual(node3.actions, []);
    assert.match(node3.reason, /not a synchronous standby of node1/);
  });

  it('lets nobody but the old leader race when the primary was running asynchronously', () => {
    assert.deepEqual(replica('node2', { leader: 'node1', sync_standby: null }).actions, []);
  });

  it('needs quorum votes from the other listed standbys', () => {
    const sync = { leader: 'node1', sync_standby: 'node2,node3', quorum: 1 };
    const quorum = { mode: 'quorum' as const, isStrict: false, nodeCount: 1 };
    assert.deepEqual(kinds(replica('node2', sync, quorum).actions), ['acquireLeader']);
    const alone = replica('node2', sync, quorum, [{ ...peer('node3', 0n), isReachable: false, walPosition: undefined }]);
    assert.deepEqual(alone.actions, []);
    assert.match(alone.reason, /need 1 other synchronous standbys/);
  });

  it('in quorum mode a listed standby detaches from the old primary first, and streaming peers give no vote', () => {
    const sync = { leader: 'node1', sync_standby: 'node2,node3', quorum: 1 };
    const quorum = { mode: 'quorum' as const, isStrict: false, nodeCount: 1 };
    const streamingObs = observe({
      name: 'node2',
      pg: pgState({ receivedLsn: 1000n, replayedLsn: 1000n, isStreaming: true, upstream: 'node1' }),
      dcs: noLeader(sync),
      sync: quorum,
      peers: [peer('node3', 900n)],
    });
    assert.deepEqual(decide(streamingObs, freshMemory()).actions, [{ kind: 'detachUpstream' }]);
    const detached = { ...streamingObs, pg: pgState({ receivedLsn: 1000n, replayedLsn: 1000n, isStreaming: false, upstream: undefined }) };
    const stillStreamingPeer = decide({ ...detached, peers: [{ ...peer('node3', 900n), isStreaming: true }] }, freshMemory());
    assert.deepEqual(stillStreamingPeer.actions, []);
    assert.match(stillStreamingPeer.reason, /detached from the old primary/);
    assert.deepEqual(kinds(decide({ ...detached, peers: [{ ...peer('node3', 900n), isStreaming: false }] }, freshMemory()).actions), [
      'acquireLeader',
    ]);
  });

  it('a running primary that lost its key may not take it back when the sync key names another leader', () => {
    const obs = observe({
      pg: primaryPg(),
      lock: { lastRenewSentAtMs: NOW - 1000 },
      dcs: noLeader({ leader: 'node2', sync_standby: null }),
      sync: PRIORITY,
    });
    assert.deepEqual(decide(obs, freshMemory()).actions, [{ kind: 'demote', mode: 'immediate-nolock' }]);
    const own = observe({ ...obs, dcs: noLeader({ leader: 'node1', sync_standby: 'node2' }) });
    assert.deepEqual(kinds(decide(own, freshMemory()).actions), ['acquireLeader']);
  });

  it('compares WAL only with members that may hold acknowledged commits', () => {
    const sync = { leader: 'node1', sync_standby: 'node2' };
    assert.deepEqual(
      kinds(replica('node2', sync, PRIORITY, [peer('node3', 5000n)]).actions),
      ['acquireLeader'],
      'node3 is ahead but none of its extra WAL was acknowledged',
    );
  });

  it('publishes the key and the standby set before promoting', () => {
    const obs = observe({
      name: 'node2',
      pg: pgState({ receivedLsn: 7000n, replayedLsn: 7000n }),
      lock: { lastRenewSentAtMs: NOW - 100 },
      dcs: { kind: 'ok', view: view({ leaderName: 'node2', sync: { leader: 'node1', sync_standby: 'node2' }, syncRevision: '8' }) },
      sync: PRIORITY,
    });
    assert.deepEqual(decide(obs, freshMemory()).actions, [
      { kind: 'renewLeader' },
      { kind: 'writeSync', state: { leader: 'node2', sync_standby: null } },
      { kind: 'setSynchronousStandbyNames', value: '' },
      { kind: 'promote' },
    ]);
    const strict = decide({ ...obs, sync: { ...PRIORITY, isStrict: true } }, freshMemory());
    assert.deepEqual(strict.actions.slice(1, 3), [
      { kind: 'writeSync', state: { leader: 'node2', sync_standby: 'node1' } },
      { kind: 'setSynchronousStandbyNames', value: `"${STRICT_SYNC_PLACEHOLDER}"` },
    ]);
  });

  it('switches over only to a synchronous standby', () => {
    const obs = leaderObs({ ssn: '"node2"', key: { leader: 'node1', sync_standby: 'node2' }, standbys: { node2: 1n, node3: 1n } });
    const withIntent = (intent: { leader: string; member?: string }): Observation => ({
      ...obs,
      dcs: { kind: 'ok', view: { ...(obs.dcs.kind === 'ok' ? obs.dcs.view : view()), failover: intent } },
    });
    assert.deepEqual(kinds(decide(withIntent({ leader: 'node1', member: 'node3' }), freshMemory()).actions), [
      'renewLeader',
      'clearFailover',
    ]);
    assert.deepEqual(kinds(decide(withIntent({ leader: 'node1', member: 'node2' }), freshMemory()).actions), ['demote']);
  });
});
