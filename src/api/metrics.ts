// GET /metrics: Patroni's Prometheus metric names (so existing alerts keep working), computed from the agent snapshot.
// Rendered by hand in the text exposition format (gauges only, byte-for-byte what prom-client printed): the agent does
// not load prom-client (~10 MB RSS) for two dozen gauges, and a scrape allocates one string.
import type { AgentSnapshot } from '../agent/snapshot.js';
import { isArchiveFailing } from '../core/archive-state.js';
import { syncSettingsOf } from '../core/sync-plan.js';

interface MetricSpec {
  readonly name: string;
  readonly help: string;
  /** undefined: not known now (PostgreSQL down, no pg_wal yet): the sample is left out rather than faked. */
  readonly value: (snapshot: AgentSnapshot, nowEpochS: number) => number | undefined;
}

/** Patroni encodes its version as zero-padded pairs: 3.0.2 -> 30002. */
function versionNumber(version: string): number {
  return Number(
    version
      .split('.')
      .map((part) => part.padStart(2, '0'))
      .join(''),
  );
}

function startEpochS(text: string | undefined): number {
  if (text === undefined) return 0;
  const at = Date.parse(text.replace(' ', 'T'));
  return Number.isFinite(at) ? at / 1000 : 0;
}

const SPECS: readonly MetricSpec[] = [
  { name: 'patroni_version', help: 'Patroni-compatible version of the agent', value: (s) => versionNumber(s.version) },
  {
    name: 'patroni_postgres_running',
    help: 'Value is 1 if PostgreSQL is running, 0 otherwise',
    value: (s) => (s.state === 'running' ? 1 : 0),
  },
  {
    name: 'patroni_postmaster_start_time',
    help: 'Epoch seconds since PostgreSQL started',
    value: (s) => startEpochS(s.pg.postmasterStartTime),
  },
  {
    name: 'patroni_primary',
    help: 'Value is 1 if this node is the leader, 0 otherwise',
    value: (s) => (s.isLeaderWithLock && s.pg.isRunning && s.pg.role === 'primary' ? 1 : 0),
  },
  {
    name: 'patroni_xlog_location',
    help: 'Current location of the PostgreSQL transaction log, 0 for replicas',
    value: (s) => (s.pg.role === 'primary' ? Number(s.pg.writeLsn ?? 0n) : 0),
  },
  {
    name: 'patroni_standby_leader',
    help: 'Value is 1 if this node is the standby leader, 0 otherwise',
    value: (s) => (s.isStandbyLeader ? 1 : 0),
  },
  {
    name: 'patroni_replica',
    help: 'Value is 1 if this node is a replica, 0 otherwise',
    value: (s) => (s.pg.isRunning && s.pg.role === 'replica' ? 1 : 0),
  },
  {
    name: 'patroni_sync_standby',
    help: 'Value is 1 if this node is a sync standby, 0 otherwise',
    value: (s) =>
      syncSettingsOf(s.view?.config).mode !== 'quorum' && (s.view?.sync?.sync_standby ?? '').split(',').includes(s.name) ? 1 : 0,
  },
  {
    name: 'patroni_quorum_standby',
    help: 'Value is 1 if this node is a quorum standby, 0 otherwise',
    value: (s) =>
      syncSettingsOf(s.view?.config).mode === 'quorum' && (s.view?.sync?.sync_standby ?? '').split(',').includes(s.name) ? 1 : 0,
  },
  {
    name: 'patroni_xlog_received_location',
    help: 'Current location of the received transaction log, 0 for the primary',
    value: (s) => Number(s.pg.receivedLsn ?? 0n),
  },
  {
    name: 'patroni_xlog_replayed_location',
    help: 'Current location of the replayed transaction log, 0 for the primary',
    value: (s) => Number(s.pg.replayedLsn ?? 0n),
  },
  {
    name: 'patroni_xlog_replayed_timestamp',
    help: 'Epoch seconds of the last replayed transaction',
    value: (s) => startEpochS(s.pg.replayedTimestamp ?? undefined),
  },
  { name: 'patroni_xlog_paused', help: 'Value is 1 if WAL replay is paused, 0 otherwise', value: (s) => (s.pg.isReplayPaused ? 1 : 0) },
  {
    name: 'patroni_postgres_streaming',
    help: 'Value is 1 if the replica streams from its upstream',
    value: (s) => (s.pg.isStreaming ? 1 : 0),
  },
  {
    name: 'patroni_postgres_server_version',
    help: 'Version of PostgreSQL (if running), 0 otherwise',
    value: (s) => s.pg.serverVersion ?? 0,
  },
  {
    name: 'patroni_cluster_unlocked',
    help: 'Value is 1 if the cluster is unlocked, 0 if locked',
    value: (s) => (s.view?.leader === undefined || !s.isDcsReachable ? 1 : 0),
  },
  {
    name: 'patroni_failsafe_mode_is_active',
    help: 'Value is 1 if failsafe mode is active, 0 if inactive',
    value: (s) => (s.isFailsafeActive === true ? 1 : 0),
  },
  {
    name: 'patroni_postgres_timeline',
    help: 'PostgreSQL timeline of this node (if running), 0 otherwise',
    value: (s) => s.pg.timeline ?? 0,
  },
  {
    name: 'patroni_dcs_last_seen',
    help: 'Epoch timestamp when the DCS was last contacted successfully',
    value: (s) => s.dcsLastSeenEpochS ?? 0,
  },
  {
    name: 'patroni_pending_restart',
    help: 'Value is 1 if the node needs a restart, 0 otherwise',
    value: (s) => (s.pg.isPendingRestart ? 1 : 0),
  },
  { name: 'patroni_is_paused', help: 'Value is 1 if auto failover is disabled, 0 otherwise', value: (s) => (s.isPaused ? 1 : 0) },
  {
    name: 'pgwarden_lock_held',
    help: 'Value is 1 while this agent holds the leader lock within its own deadline',
    value: (s) => (s.isLeaderWithLock ? 1 : 0),
  },
  { name: 'pgwarden_dcs_reachable', help: 'Value is 1 if the last DCS read succeeded', value: (s) => (s.isDcsReachable ? 1 : 0) },
  {
    name: 'pgwarden_ttl_seconds',
    help: 'The leader lock TTL in force (ttl), for alerts on patroni_dcs_last_seen',
    value: (s) => s.ttlMs / 1000,
  },
  {
    name: 'pgwarden_wal_filesystem_size_bytes',
    help: 'Size of the file system holding pg_wal (statfs)',
    value: (s) => s.pg.walDisk?.sizeBytes,
  },
  {
    name: 'pgwarden_wal_filesystem_available_bytes',
    help: 'Bytes still available to PostgreSQL on the file system holding pg_wal (statfs bavail)',
    value: (s) => s.pg.walDisk?.availableBytes,
  },
  {
    name: 'pgwarden_wal_filesystem_used_ratio',
    help: 'Used share of the file system holding pg_wal, as df Use% computes it (used / (used + available))',
    value: (s) => walDiskUsedRatio(s.pg.walDisk),
  },
  {
    name: 'pgwarden_archive_enabled',
    help: 'Value is 1 if archive_mode is on or always (PostgreSQL running), 0 if off',
    value: (s) => (s.pg.archiver === undefined ? undefined : s.pg.archiver.mode === 'off' ? 0 : 1),
  },
  {
    name: 'pgwarden_archive_archived_count',
    help: 'WAL files archived successfully (pg_stat_archiver.archived_count)',
    value: (s) => s.pg.archiver?.archivedCount,
  },
  {
    name: 'pgwarden_archive_failed_count',
    help: 'Failed attempts to archive a WAL file (pg_stat_archiver.failed_count)',
    value: (s) => s.pg.archiver?.failedCount,
  },
  {
    name: 'pgwarden_archive_last_archived_time_seconds',
    help: 'Epoch seconds of the last WAL file archived (pg_stat_archiver.last_archived_time), 0 if none',
    value: (s) => (s.pg.archiver === undefined ? undefined : (s.pg.archiver.lastArchivedEpochS ?? 0)),
  },
  {
    name: 'pgwarden_archive_last_failed_time_seconds',
    help: 'Epoch seconds of the last failed archive attempt (pg_stat_archiver.last_failed_time), 0 if none',
    value: (s) => (s.pg.archiver === undefined ? undefined : (s.pg.archiver.lastFailedEpochS ?? 0)),
  },
  {
    name: 'pgwarden_backup_last_completed_time_seconds',
    help: 'Epoch seconds at which the newest backup in the repository finished (pgbackrest info, leader with backup: only), 0 if none',
    value: (s) => (s.pg.lastBackup === undefined ? undefined : (s.pg.lastBackup.stopEpochS ?? 0)),
  },
  // Ages too, not only times: a dashboard or `curl | grep` reads them without PromQL (alerts use the times).
  {
    name: 'pgwarden_backup_last_completed_age_seconds',
    help: 'Seconds since the newest backup in the repository finished (leader with backup: only; absent while there is none)',
    value: (s, now) => (s.pg.lastBackup?.stopEpochS === undefined ? undefined : Math.max(0, now - s.pg.lastBackup.stopEpochS)),
  },
  {
    name: 'pgwarden_backup_count',
    help: 'Backups in the repository for the stanza (pgbackrest info, leader with backup: only)',
    value: (s) => (s.pg.lastBackup === undefined ? undefined : (s.pg.lastBackup.backupCount ?? 0)),
  },
  {
    name: 'pgwarden_backup_first_recoverable_time_seconds',
    help: 'Epoch seconds of the earliest point a restore can reach: the end of the oldest backup in the repository (leader with backup: only)',
    value: (s) => s.pg.lastBackup?.recoverableFromEpochS,
  },
  {
    name: 'pgwarden_archive_last_archived_age_seconds',
    help: 'Seconds since the last WAL file was archived (pg_stat_archiver.last_archived_time; absent when none was)',
    value: (s, now) => (s.pg.archiver?.lastArchivedEpochS === undefined ? undefined : Math.max(0, now - s.pg.archiver.lastArchivedEpochS)),
  },
  {
    name: 'pgwarden_archive_failing',
    help: 'Value is 1 if the last archive attempt failed (last_failed_time after last_archived_time), 0 otherwise',
    value: (s) => (s.pg.archiver === undefined ? undefined : isArchiveFailing(s.pg.archiver) ? 1 : 0),
  },
  {
    name: 'pgwarden_backup_repository_foreign_system',
    help: "Value is 1 if the pgBackRest repository's stanza holds another database system than this cluster (backup: only)",
    value: (s) => (s.pg.backupRepository === undefined ? undefined : s.pg.backupRepository.isForeignSystem ? 1 : 0),
  },
  {
    name: 'pgwarden_archive_different_content_files',
    help: 'WAL files the archive already held with a different content when this agent pushed them (pgBackRest 045, a split-brain signal)',
    value: (s) => s.pg.backupRepository?.differentContentFiles,
  },
];

function walDiskUsedRatio(disk: AgentSnapshot['pg']['walDisk']): number | undefined {
  if (disk === undefined) return undefined;
  const usable = disk.usedBytes + disk.availableBytes;
  return usable > 0 ? disk.usedBytes / usable : undefined;
}

type Slot = NonNullable<AgentSnapshot['pg']['slots']>[number];

interface SlotMetricSpec {
  readonly name: string;
  readonly help: string;
  readonly value: (slot: Slot) => number | undefined;
}

/** Per slot, so an alert can name the slot that holds WAL back (an abandoned CDC consumer fills pg_wal). */
const SLOT_SPECS: readonly SlotMetricSpec[] = [
  {
    name: 'pgwarden_replication_slot_retained_wal_bytes',
    help: 'WAL bytes a replication slot keeps from being removed (current or replayed position minus restart_lsn)',
    value: (slot) => slot.retainedBytes,
  },
  {
    name: 'pgwarden_replication_slot_active',
    help: 'Value is 1 if a consumer is connected to the slot',
    value: (slot) => (slot.isActive ? 1 : 0),
  },
  {
    name: 'pgwarden_replication_slot_wal_lost',
    help: 'Value is 1 if max_slot_wal_keep_size removed WAL the slot needed (wal_status lost)',
    value: (slot) => (slot.walStatus === 'lost' ? 1 : 0),
  },
];

const escapeHelp = (text: string): string => text.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
const escapeLabel = (text: string): string => text.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');

function formatValue(value: number): string {
  if (Number.isNaN(value)) return 'Nan';
  if (value === Infinity) return '+Inf';
  if (value === -Infinity) return '-Inf';
  return String(value);
}

function header(name: string, help: string): string {
  return `# HELP ${name} ${escapeHelp(help)}\n# TYPE ${name} gauge\n`;
}

export class MetricsExporter {
  /** HELP/TYPE lines never change: built once. */
  readonly #headers = SPECS.map((spec) => header(spec.name, spec.help));
  readonly #slotHeaders = SLOT_SPECS.map((spec) => header(spec.name, spec.help));

  get contentType(): string {
    return 'text/plain; version=0.0.4; charset=utf-8';
  }

  render(snapshot: AgentSnapshot): Promise<string> {
    const nowEpochS = Date.now() / 1000;
    const labels = `scope="${escapeLabel(snapshot.scope)}",name="${escapeLabel(snapshot.name)}"`;
    const blocks = SPECS.map((spec, index) => {
      const value = spec.value(snapshot, nowEpochS);
      return value === undefined ? this.#headers[index]! : `${this.#headers[index]!}${spec.name}{${labels}} ${formatValue(value)}\n`;
    });
    const slots = snapshot.pg.slots ?? [];
    SLOT_SPECS.forEach((spec, index) => {
      let block = this.#slotHeaders[index]!;
      for (const slot of slots) {
        const value = spec.value(slot);
        if (value !== undefined)
          block += `${spec.name}{${labels},slot_name="${escapeLabel(slot.name)}",slot_type="${escapeLabel(slot.type)}"} ${formatValue(value)}\n`;
      }
      blocks.push(block);
    });
    return Promise.resolve(blocks.join('\n'));
  }
}
