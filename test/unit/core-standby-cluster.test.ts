// Standby cluster rules (Patroni's standby_cluster): the standby leader follows the remote primary and never promotes,
// a new standby cluster clones the remote instead of running initdb, and removing the section promotes.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decide } from '../../src/core/decide.js';
import { REMOTE_PRIMARY, standbyClusterFingerprint, standbyClusterOf, validateStandbyCluster } from '../../src/core/standby-cluster.js';
import type { ClusterView } from '../../src/core/types.js';
import { freshMemory, kinds, observe, pgState, primaryPg, view } from '../sim/builders.js';

const NOW = 100_000;
const STANDBY_CONFIG = {
  ttl: 30,
  loop_wait: 10,
  retry_timeout: 10,
  maximum_lag_on_failover: 1048576,
  standby_cluster: { host: '10.0.0.5', port: 5432, primary_slot_name: 'dr_site' },
};
const standbyView = (overrides: Partial<ClusterView> & { leaderName?: string } = {}): ClusterView =>
  view({ config: STANDBY_CONFIG, ...overrides });

describe('standby cluster', () => {
  it('accepts Patroni sections and refuses bad ones with the key named', () => {
    assert.equal(validateStandbyCluster({ host: 'a', port: 5432, primary_slot_name: 's', restore_command: 'cp %f %p' }), undefined);
    assert.equal(validateStandbyCluster(null), undefined);
    assert.match(validateStandbyCluster({ host: 'a', prot: 1 }) ?? '', /standby_cluster\.prot/);
    assert.match(validateStandbyCluster({ port: 'x' }) ?? '', /standby_cluster\.port/);
    assert.match(validateStandbyCluster({ host: 'a', primary_slot_name: 'Bad-Name' }) ?? '', /primary_slot_name/);
    assert.match(validateStandbyCluster('host=a') ?? '', /mapping/);
    // As in Patroni, a section without host, port or restore_command is not a standby cluster.
    assert.equal(standbyClusterOf({ ...STANDBY_CONFIG, standby_cluster: { primary_slot_name: 'x' } }), undefined);
    assert.deepEqual(standbyClusterOf(STANDBY_CONFIG)?.primarySlotName, 'dr_site');
  });

  it('the standby leader renews the lock and follows the remote primary; it never promotes', () => {
    const following = decide(
      observe({ dcs: { kind: 'ok', view: standbyView({ leaderName: 'node1' }) }, lock: { lastRenewSentAtMs: NOW - 1000 }, pg: pgState() }),
      freshMemory(),
    );
    assert.deepEqual(kinds(following.actions).slice(0, 2), ['renewLeader', 'followLeader']);
    assert.deepEqual(following.actions[1], { kind: 'followLeader', upstream: REMOTE_PRIMARY });
    assert.equal(kinds(following.actions).includes('promote'), false);

    const followedNow = { ...freshMemory(), followedStandbyCluster: standbyClusterFingerprint(standbyClusterOf(STANDBY_CONFIG)) };
    assert.equal(following.memory.followedStandbyCluster, followedNow.followedStandbyCluster);
    const steady = decide(
      observe({
        dcs: { kind: 'ok', view: standbyView({ leaderName: 'node1' }) },
        lock: { lastRenewSentAtMs: NOW - 1000 },
        pg: pgState({ upstream: REMOTE_PRIMARY }),
      }),
      followedNow,
    );
    assert.equal(steady.reason, 'no action. I am (node1), the standby leader with the lock');
    assert.equal(kinds(steady.actions)[0], 'renewLeader');
    assert.equal(kinds(steady.actions).includes('promote'), false);
    assert.ok(kinds(steady.actions).includes('publishStatus'));

    // A changed section (here: archive recovery only) is followed again, without a restart.
    const archiveOnly = { ...STANDBY_CONFIG, standby_cluster: { restore_command: 'cp /archive/%f %p' } };
    const changed = decide(
      observe({
        dcs: { kind: 'ok', view: standbyView({ leaderName: 'node1', config: archiveOnly }) },
        lock: { lastRenewSentAtMs: NOW - 1000 },
        pg: pgState({ upstream: REMOTE_PRIMARY }),
      }),
      followedNow,
    );
    assert.deepEqual(changed.actions[1], { kind: 'followLeader', upstream: REMOTE_PRIMARY });
    assert.match(changed.reason, /standby_cluster changed/);
  });

  it('a stopped standby leader starts as a replica of the remote primary', () => {
    const decision = decide(
      observe({
        dcs: { kind: 'ok', view: standbyView({ leaderName: 'node1' }) },
        lock: { lastRenewSentAtMs: NOW - 1000 },
        pg: pgState({ isRunning: false, isStreaming: false, upstream: undefined }),
      }),
      freshMemory(),
    );
    assert.deepEqual(decision.actions, [{ kind: 'renewLeader' }, { kind: 'startReplica', upstream: REMOTE_PRIMARY }]);
  });

  it('a primary of a cluster turned into a standby cluster restarts as its standby leader', () => {
    const decision = decide(
      observe({
        dcs: { kind: 'ok', view: standbyView({ leaderName: 'node1' }) },
        lock: { lastRenewSentAtMs: NOW - 1000 },
        pg: primaryPg(),
      }),
      freshMemory(),
    );
    assert.deepEqual(decision.actions, [{ kind: 'renewLeader' }, { kind: 'restart', asPrimary: false, upstream: REMOTE_PRIMARY }]);
  });

  it('removing the section promotes the standby leader', () => {
    const decision = decide(
      observe({
        dcs: { kind: 'ok', view: view({ leaderName: 'node1' }) },
        lock: { lastRenewSentAtMs: NOW - 1000 },
        pg: pgState({ upstream: REMOTE_PRIMARY }),
      }),
      freshMemory(),
    );
    assert.ok(kinds(decision.actions).includes('promote'));
  });

  it('the other members cascade from the standby leader', () => {
    const decision = decide(
      observe({
        name: 'node2',
        dcs: { kind: 'ok', view: standbyView({ leaderName: 'node1' }) },
        pg: pgState({ upstream: REMOTE_PRIMARY }),
      }),
      freshMemory(),
    );
    assert.deepEqual(decision.actions, [{ kind: 'followLeader', upstream: 'node1' }]);
  });

  it('a new standby cluster clones the remote primary instead of running initdb, from the local bootstrap config', () => {
    const empty = pgState({ dataDir: 'empty', isRunning: false, role: undefined, sysid: undefined, upstream: undefined });
    const decision = decide(
      observe({
        self: { name: 'node1', tags: {}, canBootstrap: true, isStandbyClusterAtBootstrap: true },
        dcs: { kind: 'ok', view: view({ initialize: undefined, config: undefined, members: [] }) },
        pg: empty,
      }),
      freshMemory(),
    );
    assert.deepEqual(decision.actions, [
      { kind: 'initializeCluster' },
      { kind: 'acquireLeader' },
      { kind: 'basebackup', from: REMOTE_PRIMARY },
    ]);
    const plain = decide(
      observe({ dcs: { kind: 'ok', view: view({ initialize: undefined, config: undefined, members: [] }) }, pg: empty }),
      freshMemory(),
    );
    assert.deepEqual(kinds(plain.actions), ['initializeCluster', 'acquireLeader', 'bootstrap']);
  });

  it('the standby leader of a new standby cluster publishes the clone system identifier and the bootstrap config', () => {
    const decision = decide(
      observe({
        dcs: { kind: 'ok', view: view({ leaderName: 'node1', initialize: '', config: undefined }) },
        self: { name: 'node1', tags: {}, canBootstrap: true, isStandbyClusterAtBootstrap: true },
        lock: { lastRenewSentAtMs: NOW - 1000 },
        pg: pgState({ upstream: REMOTE_PRIMARY }),
      }),
      freshMemory(),
    );
    assert.deepEqual(kinds(decision.actions).slice(0, 3), ['renewLeader', 'publishInitialize', 'writeBootstrapConfig']);
  });

  it('a switchover hands the standby leadership over gracefully', () => {
    const decision = decide(
      observe({
        dcs: { kind: 'ok', view: standbyView({ leaderName: 'node1', failover: { leader: 'node1', member: 'node2' } }) },
        lock: { lastRenewSentAtMs: NOW - 1000 },
        pg: pgState({ upstream: REMOTE_PRIMARY }),
      }),
      freshMemory(),
    );
    assert.deepEqual(decision.actions, [{ kind: 'demote', mode: 'graceful' }]);
  });
});
