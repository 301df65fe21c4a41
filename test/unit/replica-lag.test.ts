// A replica's lag in seconds from its probe: 0 when caught up however old the last commit, else the replay age.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { buildMemberRecord } from '../../src/agent/member-record.js';
import { STOPPED_PG } from '../../src/core/local-pg.js';
import { lagSecondsOf, replicaLagMs } from '../../src/core/replica-lag.js';
import type { LocalPg } from '../../src/core/types.js';

const replica: LocalPg = {
  ...STOPPED_PG,
  dataDir: 'initialized',
  isRunning: true,
  role: 'replica',
  timeline: 1,
  receivedLsn: 5000n,
  replayedLsn: 5000n,
  isStreaming: true,
  replayAgeMs: 3_600_000,
};

describe('replica lag in seconds', () => {
  it('is 0 for a streaming replica that replayed all it received, even when the last commit is an hour old (idle primary)', () => {
    assert.equal(replicaLagMs(replica), 0);
    assert.equal(lagSecondsOf(replica), 0);
  });

  it('is the age of the last replayed commit while replay is behind what was received', () => {
    assert.equal(replicaLagMs({ ...replica, replayedLsn: 4000n, replayAgeMs: 2345 }), 2345);
    assert.equal(lagSecondsOf({ ...replica, replayedLsn: 4000n, replayAgeMs: 2345 }), 2.3);
  });

  it('is the replay age for a replica that does not stream (cut off from its leader: its data ages)', () => {
    assert.equal(replicaLagMs({ ...replica, isStreaming: false, replayAgeMs: 42_000 }), 42_000);
  });

  it('is unknown when nothing was replayed yet, and absent for a primary or a stopped node', () => {
    assert.equal(replicaLagMs({ ...replica, isStreaming: false, replayAgeMs: undefined }), undefined);
    assert.equal(replicaLagMs({ ...replica, role: 'primary' }), undefined);
    assert.equal(replicaLagMs({ ...replica, isRunning: false }), undefined);
    assert.equal(replicaLagMs(undefined), undefined);
  });

  it('never goes negative (a commit stamped by a primary whose clock runs ahead)', () => {
    assert.equal(replicaLagMs({ ...replica, replayedLsn: 1n, replayAgeMs: -250 }), 0);
  });

  it('is published in the member key as lag_seconds (replicas only)', () => {
    const identity = {
      name: 'n2',
      connUrl: 'postgres://127.0.0.1:5432/postgres',
      apiUrl: 'http://127.0.0.1:8008/patroni',
      version: '3.0.2',
      tags: {},
    };
    assert.equal(buildMemberRecord(identity, { ...replica, replayedLsn: 4000n, replayAgeMs: 7000 }, 'running', false).lag_seconds, 7);
    assert.equal(buildMemberRecord(identity, replica, 'running', false).lag_seconds, 0);
    assert.equal(buildMemberRecord(identity, { ...replica, role: 'primary', writeLsn: 1n }, 'running', false).lag_seconds, undefined);
  });
});
