// The probe's pure half: a probe row (or pg_controldata while down) becomes the LocalPg core reasons about.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { localPgFromRow, replicaTimelineOf, stoppedLocalPg, walStatusFromRow, type ProbeRow } from '../../src/postgres/probe.js';
import { runCommand } from '../../src/postgres/runner.js';
import { addressOf } from '../../src/postgres/sql-session.js';
import { isPgwardenError } from '../../src/util/errors.js';

const PRIMARY_ROW: ProbeRow = {
  in_recovery: false,
  write_lsn: '0/3000148',
  received_lsn: null,
  replayed_lsn: null,
  replayed_ts: null,
  replay_paused: false,
  server_version: 150010,
  start_time: '2026-11-22 17:54:15.702182+00:00',
  sysid: '7711055670619385940',
  checkpoint_tli: 1,
  current_tli: 2,
  receiver_status: null,
  received_tli: null,
  pending_restart: true,
  synchronous_standby_names: 'ANY 1 ("node2")',
  wal_level: 'logical',
  slots: [
    {
      name: 'cdc',
      type: 'logical',
      database: 'app',
      plugin: 'pgoutput',
      active: true,
      restart_lsn: '0/3000000',
      confirmed_flush_lsn: '0/3000100',
      wal_status: 'reserved',
      retained: 328,
    },
    {
      name: 'node2',
      type: 'physical',
      database: null,
      plugin: null,
      active: false,
      restart_lsn: null,
      confirmed_flush_lsn: null,
      wal_status: null,
      retained: null,
    },
  ],
  replication: [
    {
      usename: 'replicator',
      application_name: 'node2',
      client_addr: '127.0.0.1',
      state: 'streaming',
      sync_state: 'quorum',
      sync_priority: 1,
      flush_lsn: '0/3000148',
    },
    {
      usename: 'replicator',
      application_name: 'node3',
      client_addr: '127.0.0.1',
      state: 'startup',
      sync_state: 'async',
      sync_priority: 0,
      flush_lsn: null,
    },
  ],
};

const REPLICA_ROW: ProbeRow = {
  ...PRIMARY_ROW,
  in_recovery: true,
  write_lsn: null,
  received_lsn: '0/3000200',
  replayed_lsn: '0/3000180',
  replayed_ts: '2026-11-22 17:55:00+00',
  current_tli: null,
  receiver_status: 'streaming',
  received_tli: 3,
  pending_restart: false,
  slots: [],
  replication: [],
};

const CONTEXT = { dataDir: 'initialized' as const, upstream: 'node1', crashedAtMs: 1234 };

describe('probe rows', () => {
  it('maps a primary: current timeline, flush LSN, slots, standbys and their flush positions', () => {
    const pg = localPgFromRow(PRIMARY_ROW, CONTEXT, 0);
    assert.equal(pg.role, 'primary');
    assert.equal(pg.timeline, 2, 'the timeline of the current WAL file, not of the last checkpoint');
    assert.equal(pg.writeLsn, 0x3000148n);
    assert.equal(pg.receivedLsn, undefined);
    assert.equal(pg.upstream, undefined, 'a primary follows nobody');
    assert.equal(pg.crashedAtMs, undefined, 'running again: the crash is over');
    assert.equal(pg.isPendingRestart, true);
    assert.equal(pg.synchronousStandbyNames, 'ANY 1 ("node2")');
    assert.deepEqual(pg.slots, [
      {
        name: 'cdc',
        type: 'logical',
        database: 'app',
        plugin: 'pgoutput',
        isActive: true,
        restartLsn: 0x3000000n,
        confirmedFlushLsn: 0x3000100n,
        retainedBytes: 328,
        walStatus: 'reserved',
      },
      {
        name: 'node2',
        type: 'physical',
        database: undefined,
        plugin: undefined,
        isActive: false,
        restartLsn: undefined,
        confirmedFlushLsn: undefined,
        retainedBytes: undefined,
        walStatus: undefined,
      },
    ]);
    assert.deepEqual(
      pg.replication.map((row) => row.application_name),
      ['node2', 'node3'],
    );
    assert.equal('flush_lsn' in pg.replication[0]!, false);
    assert.deepEqual(pg.standbyFlushLsn, { node2: 0x3000148n });
  });

  it('maps a replica: received/replayed positions, its upstream and the timeline the controller remembers', () => {
    assert.equal(replicaTimelineOf(REPLICA_ROW), 3);
    assert.equal(replicaTimelineOf({ ...REPLICA_ROW, received_tli: null }), 1, 'not streaming: the checkpoint timeline');
    const pg = localPgFromRow(REPLICA_ROW, CONTEXT, 4);
    assert.equal(pg.role, 'replica');
    assert.equal(pg.timeline, 4);
    assert.equal(pg.writeLsn, undefined);
    assert.equal(pg.receivedLsn, 0x3000200n);
    assert.equal(pg.replayedLsn, 0x3000180n);
    assert.equal(pg.isStreaming, true);
    assert.equal(pg.upstream, 'node1');
  });

  it('maps a stopped node from pg_control, and a node without a data dir to nothing but that', () => {
    const control = { state: 'shut down in recovery', sysid: '77', timeline: 2, checkpointLsn: '0/5000060', minRecoveryEndLsn: '0/0' };
    const pg = stoppedLocalPg(CONTEXT, control);
    assert.deepEqual(
      {
        isRunning: pg.isRunning,
        role: pg.role,
        timeline: pg.timeline,
        sysid: pg.sysid,
        controlState: pg.controlState,
        crashedAtMs: pg.crashedAtMs,
      },
      { isRunning: false, role: 'replica', timeline: 2, sysid: '77', controlState: 'shut down in recovery', crashedAtMs: 1234 },
    );
    const missing = stoppedLocalPg({ ...CONTEXT, dataDir: 'missing' }, undefined);
    assert.deepEqual([missing.dataDir, missing.role, missing.sysid, missing.slots], ['missing', undefined, undefined, undefined]);
  });

  it('maps the WAL status row', () => {
    assert.deepEqual(
      walStatusFromRow({ write_lsn: null, received_lsn: '0/10', replayed_lsn: '0/8', status: 'streaming', streaming_standbys: '' }),
      { isStreaming: true, writeLsn: undefined, receivedLsn: 16n, replayedLsn: 8n, streamingStandbys: [] },
    );
    assert.deepEqual(
      walStatusFromRow({ write_lsn: '1/0', received_lsn: null, replayed_lsn: null, status: null, streaming_standbys: 'node2,node3' })
        .streamingStandbys,
      ['node2', 'node3'],
    );
  });
});

describe('upstream addresses and command failures', () => {
  it('reads host and port from a conn_url, 5432 by default', () => {
    assert.deepEqual(addressOf({ name: 'node1', connUrl: 'postgres://10.0.0.5:25432/postgres' }), { host: '10.0.0.5', port: 25432 });
    assert.deepEqual(addressOf({ name: 'node1', connUrl: 'postgres://db1/postgres' }), { host: 'db1', port: 5432 });
  });

  it('says PGW_PG_UNREACHABLE when a tool could not reach its source, PGW_PG_COMMAND_FAILED otherwise', async () => {
    const refused = [
      'sh',
      '-c',
      'echo \'pg_rewind: error: connection to server at "127.0.0.1", port 1 failed: Connection refused\' >&2; exit 1',
    ];
    await assert.rejects(
      runCommand({ member: 'node1', argv: refused, signal: AbortSignal.timeout(5000), runAs: undefined }),
      (error: unknown) => isPgwardenError(error, 'PGW_PG_UNREACHABLE') && /is it running/.test(error.context.hint ?? ''),
    );
    const refusedOther = ['sh', '-c', "echo 'pg_rewind: fatal: source and target clusters are from different systems' >&2; exit 1"];
    await assert.rejects(
      runCommand({ member: 'node1', argv: refusedOther, signal: AbortSignal.timeout(5000), runAs: undefined }),
      (error: unknown) => isPgwardenError(error, 'PGW_PG_COMMAND_FAILED'),
    );
  });
});
