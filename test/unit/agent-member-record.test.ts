// Member key values and Patroni state strings derived from observations.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { buildMemberRecord, pgStateOf } from '../../src/agent/member-record.js';
import type { LocalPg } from '../../src/core/types.js';

const identity = {
  name: 'node2',
  connUrl: 'postgres://127.0.0.1:25433/postgres',
  apiUrl: 'http://127.0.0.1:28009/patroni',
  version: '3.0.2',
  tags: {},
};

const runningReplica: LocalPg = {
  dataDir: 'initialized',
  isRunning: true,
  role: 'replica',
  sysid: '7711055670619385940',
  timeline: 1,
  writeLsn: undefined,
  receivedLsn: 83886080n,
  replayedLsn: 67108864n,
  isStreaming: true,
  upstream: 'node1',
  crashedAtMs: undefined,
  controlState: undefined,
  serverVersion: 150018,
  postmasterStartTime: undefined,
  replayedTimestamp: null,
  isReplayPaused: false,
  replication: [],
  isPendingRestart: false,
};

describe('member record', () => {
  it('publishes a streaming replica the way Patroni does', () => {
    const record = buildMemberRecord(identity, runningReplica, 'running', false);
    assert.deepEqual(record, {
      name: 'node2',
      conn_url: identity.connUrl,
      api_url: identity.apiUrl,
      state: 'running',
      role: 'replica',
      version: '3.0.2',
      timeline: 1,
      xlog_location: 83886080,
      receive_lsn: 83886080,
      replay_lsn: 67108864,
      replication_state: 'streaming',
    });
  });

  it('publishes a primary with its flush position', () => {
    const record = buildMemberRecord(
      identity,
      { ...runningReplica, role: 'primary', writeLsn: 100n, receivedLsn: undefined, replayedLsn: undefined, isStreaming: false },
      'running',
      true,
    );
    assert.equal(record.role, 'master', 'Patroni 3.0.2 writes master in the member key');
    assert.equal(record.xlog_location, 100);
    assert.equal(record.pause, true);
    assert.equal(record.replication_state, undefined);
  });

  it('calls a stopped former primary demoted and an empty node uninitialized', () => {
    const stopped = { ...runningReplica, isRunning: false, role: 'primary' as const };
    assert.equal(buildMemberRecord(identity, stopped, 'stopped', false).role, 'demoted');
    assert.equal(buildMemberRecord(identity, { ...stopped, dataDir: 'missing' }, 'stopped', false).role, 'uninitialized');
  });

  it('derives state strings from the task and the probe', () => {
    assert.equal(pgStateOf(runningReplica, { kind: 'running', name: 'basebackup', startedAtMs: 0 }), 'creating replica');
    assert.equal(pgStateOf(runningReplica, { kind: 'idle' }), 'running');
    assert.equal(pgStateOf({ ...runningReplica, isRunning: false, crashedAtMs: 5 }, { kind: 'idle' }), 'crashed');
    assert.equal(
      pgStateOf({ ...runningReplica, isRunning: false }, { kind: 'done', name: 'start', isOk: false, endedAtMs: 1 }),
      'start failed',
    );
    assert.equal(pgStateOf(undefined, { kind: 'idle' }), 'unknown');
  });
});
