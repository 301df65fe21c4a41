// The probe's SQL (one round trip while running) and the pure mapping of its row, or of pg_controldata while down,
// into the LocalPg core reasons about; also the cheap WAL-position query between cycles.
import type { WalStatus } from '../core/ports.js';
import { STOPPED_PG } from '../core/local-pg.js';
import type { ArchiverState, LocalPg, ReplicationRow } from '../core/types.js';
import { roleFromControlState, type ControlData } from './controldata.js';
import { parseLsn } from '../core/lsn.js';

export const PROBE_SQL = `SELECT pg_is_in_recovery() AS in_recovery,
  CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_current_wal_flush_lsn()::text END AS write_lsn,
  pg_last_wal_receive_lsn()::text AS received_lsn,
  pg_last_wal_replay_lsn()::text AS replayed_lsn,
  pg_last_xact_replay_timestamp()::text AS replayed_ts,
  (extract(epoch FROM clock_timestamp() - pg_last_xact_replay_timestamp()) * 1000)::float8 AS replay_age_ms,
  CASE WHEN pg_is_in_recovery() THEN pg_is_wal_replay_paused() ELSE false END AS replay_paused,
  current_setting('server_version_num')::int AS server_version,
  to_char(pg_postmaster_start_time() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00:00' AS start_time,
  (SELECT system_identifier::text FROM pg_control_system()) AS sysid,
  (SELECT timeline_id FROM pg_control_checkpoint()) AS checkpoint_tli,
  CASE WHEN pg_is_in_recovery() THEN NULL ELSE ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int END AS current_tli,
  (SELECT status FROM pg_stat_wal_receiver LIMIT 1) AS receiver_status,
  (SELECT received_tli FROM pg_stat_wal_receiver LIMIT 1) AS received_tli,
  (SELECT coalesce(bool_or(pending_restart), false) FROM pg_settings) AS pending_restart,
  current_setting('synchronous_standby_names') AS synchronous_standby_names,
  current_setting('wal_level') AS wal_level,
  current_setting('archive_mode') AS archive_mode,
  (SELECT json_build_object('archived_count', archived_count, 'failed_count', failed_count,
     'last_archived', extract(epoch FROM last_archived_time), 'last_failed', extract(epoch FROM last_failed_time),
     'last_archived_wal', last_archived_wal, 'last_failed_wal', last_failed_wal) FROM pg_stat_archiver) AS archiver,
  (SELECT coalesce(json_agg(json_build_object('name', slot_name, 'type', slot_type, 'database', database, 'plugin', plugin, 'active', active,
     'restart_lsn', restart_lsn::text, 'confirmed_flush_lsn', confirmed_flush_lsn::text, 'wal_status', wal_status,
     'xmin', xmin::text, 'retained', pg_wal_lsn_diff(CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END, restart_lsn)) ORDER BY slot_name), '[]'::json)
     FROM pg_replication_slots WHERE NOT temporary) AS slots,
  (SELECT coalesce(json_agg(json_build_object('usename', usename, 'application_name', application_name, 'client_addr', host(client_addr),
     'state', state, 'sync_state', sync_state, 'sync_priority', sync_priority, 'flush_lsn', flush_lsn::text, 'write_lsn', write_lsn::text, 'replay_lsn', replay_lsn::text) ORDER BY application_name), '[]'::json) FROM pg_stat_replication) AS replication`;

/** pg_settings builds a row for every setting (about 350): read pending_restart only when it may have changed. */
const PENDING_RESTART_SQL = '(SELECT coalesce(bool_or(pending_restart), false) FROM pg_settings) AS pending_restart';

/** The probe without pg_settings (pending_restart NULL): what most cycles run (postgres/controller.ts decides). */
export const PROBE_WITHOUT_SETTINGS_SQL = PROBE_SQL.replace(PENDING_RESTART_SQL, 'NULL::boolean AS pending_restart');

export const WAL_STATUS_SQL = `SELECT CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_current_wal_flush_lsn()::text END AS write_lsn,
  pg_last_wal_receive_lsn()::text AS received_lsn,
  pg_last_wal_replay_lsn()::text AS replayed_lsn,
  (SELECT status FROM pg_stat_wal_receiver LIMIT 1) AS status,
  (SELECT coalesce(string_agg(application_name, ',' ORDER BY application_name), '') FROM pg_stat_replication WHERE state = 'streaming') AS streaming_standbys`;

export interface ProbeSlotRow {
  readonly name: string;
  readonly type: string;
  readonly database: string | null;
  readonly plugin: string | null;
  readonly active: boolean;
  readonly restart_lsn: string | null;
  readonly confirmed_flush_lsn: string | null;
  readonly wal_status: string | null;
  readonly retained: number | null;
  readonly xmin?: string | null;
}

export interface ProbeArchiverRow {
  readonly archived_count: number;
  readonly failed_count: number;
  readonly last_archived: number | null;
  readonly last_failed: number | null;
  readonly last_archived_wal?: string | null;
  readonly last_failed_wal?: string | null;
}

export interface ProbeRow {
  readonly in_recovery: boolean;
  readonly write_lsn: string | null;
  readonly received_lsn: string | null;
  readonly replayed_lsn: string | null;
  readonly replayed_ts: string | null;
  /** Milliseconds since the last replayed transaction committed (PostgreSQL's clock); absent in older fixtures. */
  readonly replay_age_ms?: number | null;
  readonly replay_paused: boolean;
  readonly server_version: number;
  readonly start_time: string;
  readonly sysid: string;
  readonly checkpoint_tli: number;
  readonly current_tli: number | null;
  readonly receiver_status: string | null;
  readonly received_tli: number | null;
  readonly pending_restart: boolean;
  readonly synchronous_standby_names: string;
  readonly wal_level: string;
  /** Absent in rows recorded before the archiver was read (test fixtures). */
  readonly archive_mode?: string;
  readonly archiver?: ProbeArchiverRow | null;
  readonly slots: readonly ProbeSlotRow[];
  readonly replication: readonly (ReplicationRow & {
    readonly flush_lsn: string | null;
    readonly write_lsn?: string | null;
    readonly replay_lsn?: string | null;
  })[];
}

export interface WalStatusRow {
  readonly write_lsn: string | null;
  readonly received_lsn: string | null;
  readonly replayed_lsn: string | null;
  readonly status: string | null;
  readonly streaming_standbys: string;
}

/** What the controller knows beyond the row: the upstream it configured and the highest replica timeline seen. */
export interface ProbeContext {
  readonly dataDir: LocalPg['dataDir'];
  readonly upstream: string | undefined;
  readonly crashedAtMs: number | undefined;
}

const lsnOrUndefined = (text: string | null): bigint | undefined => (text === null ? undefined : parseLsn(text));

/**
 * A replica's timeline as this row shows it: the WAL receiver's while streaming, else the last checkpoint's (which
 * lags a timeline switch until the next restartpoint). Timelines only grow, so callers keep the highest seen.
 */
export function replicaTimelineOf(row: ProbeRow): number {
  return row.received_tli ?? row.checkpoint_tli;
}

/** A running node. `replicaTimeline` is the highest replica timeline the controller has seen (see replicaTimelineOf). */
export function localPgFromRow(row: ProbeRow, context: ProbeContext, replicaTimeline: number): LocalPg {
  const isReplica = row.in_recovery;
  return {
    dataDir: context.dataDir,
    isRunning: true,
    role: isReplica ? 'replica' : 'primary',
    sysid: row.sysid,
    timeline: isReplica ? replicaTimeline : (row.current_tli ?? row.checkpoint_tli),
    writeLsn: isReplica ? undefined : lsnOrUndefined(row.write_lsn),
    receivedLsn: isReplica ? lsnOrUndefined(row.received_lsn) : undefined,
    replayedLsn: isReplica ? lsnOrUndefined(row.replayed_lsn) : undefined,
    isStreaming: row.receiver_status === 'streaming',
    upstream: isReplica ? context.upstream : undefined,
    crashedAtMs: undefined,
    controlState: undefined,
    serverVersion: row.server_version,
    postmasterStartTime: row.start_time,
    replayedTimestamp: row.replayed_ts,
    ...(isReplica && typeof row.replay_age_ms === 'number' ? { replayAgeMs: row.replay_age_ms } : {}),
    isReplayPaused: row.replay_paused,
    replication: row.replication.map(({ flush_lsn: _flush, write_lsn: _write, replay_lsn: _replay, ...rest }) => rest),
    isPendingRestart: row.pending_restart,
    synchronousStandbyNames: row.synchronous_standby_names,
    walLevel: row.wal_level,
    slots: row.slots.map((slot) => ({
      name: slot.name,
      type: slot.type === 'logical' ? 'logical' : 'physical',
      database: slot.database ?? undefined,
      plugin: slot.plugin ?? undefined,
      isActive: slot.active,
      restartLsn: lsnOrUndefined(slot.restart_lsn),
      confirmedFlushLsn: lsnOrUndefined(slot.confirmed_flush_lsn),
      retainedBytes: slot.retained === null ? undefined : Math.max(0, Number(slot.retained)),
      walStatus: slot.wal_status ?? undefined,
      ...(slot.xmin !== null && slot.xmin !== undefined ? { xmin: slot.xmin } : {}),
    })),
    standbyFlushLsn: standbyPositions(row.replication, 'flush_lsn'),
    standbyWriteLsn: standbyPositions(row.replication, 'write_lsn'),
    standbyReplayLsn: standbyPositions(row.replication, 'replay_lsn'),
    ...(row.archiver !== undefined && row.archiver !== null && row.archive_mode !== undefined
      ? { archiver: archiverFromRow(row.archive_mode, row.archiver) }
      : {}),
  };
}

const epochOrUndefined = (value: number | string | null): number | undefined => {
  if (value === null) return undefined;
  const epoch = Number(value);
  return Number.isFinite(epoch) ? epoch : undefined;
};

/** pg_stat_archiver's one row (json numbers; extract(epoch) may arrive as a numeric string). */
export function archiverFromRow(mode: string, row: ProbeArchiverRow): ArchiverState {
  return {
    mode,
    archivedCount: Number(row.archived_count),
    failedCount: Number(row.failed_count),
    lastArchivedEpochS: epochOrUndefined(row.last_archived),
    lastFailedEpochS: epochOrUndefined(row.last_failed),
    ...(typeof row.last_archived_wal === 'string' ? { lastArchivedWal: row.last_archived_wal } : {}),
    ...(typeof row.last_failed_wal === 'string' ? { lastFailedWal: row.last_failed_wal } : {}),
  };
}

function standbyPositions(
  rows: ProbeRow['replication'],
  column: 'flush_lsn' | 'write_lsn' | 'replay_lsn',
): Readonly<Record<string, bigint>> {
  return Object.fromEntries(
    rows.flatMap((entry) => {
      const text = entry[column];
      return text === null || text === undefined ? [] : [[entry.application_name, parseLsn(text)] as const];
    }),
  );
}

/** A node that is not running: what its data dir and (when it has one) pg_control say. */
export function stoppedLocalPg(context: ProbeContext, control: ControlData | undefined): LocalPg {
  const down: LocalPg = { ...STOPPED_PG, dataDir: context.dataDir, upstream: context.upstream, crashedAtMs: context.crashedAtMs };
  if (control === undefined) return down;
  return {
    ...down,
    sysid: control.sysid,
    timeline: control.timeline,
    controlState: control.state,
    role: roleFromControlState(control.state),
  };
}

export function walStatusFromRow(row: WalStatusRow): WalStatus {
  return {
    isStreaming: row.status === 'streaming',
    writeLsn: lsnOrUndefined(row.write_lsn),
    receivedLsn: lsnOrUndefined(row.received_lsn),
    replayedLsn: lsnOrUndefined(row.replayed_lsn),
    streamingStandbys: row.streaming_standbys === '' ? [] : row.streaming_standbys.split(','),
  };
}
