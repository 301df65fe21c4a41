// GET /metrics: Patroni's Prometheus metric names (so existing alerts keep working), computed from the agent snapshot.
// Rendered by hand in the text exposition format (gauges only, byte-for-byte what prom-client printed): the agent does
// not load prom-client (~10 MB RSS) for two dozen gauges, and a scrape allocates one string.
import type { AgentSnapshot, FenceStatus } from '../agent/snapshot.js';
import { isArchiveFailing } from '../core/archive-state.js';
import { RULES } from '../core/decide.js';
import type { SilencePhase } from '../core/silent-leader.js';
import { syncNames, syncSettingsOf } from '../core/sync-plan.js';

type MetricType = 'gauge' | 'counter';

interface MetricSpec {
  readonly name: string;
  readonly help: string;
  /** gauge unless given (Patroni declares its WAL positions and timeline as counters). */
  readonly type?: MetricType;
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

const PG_TIMESTAMP = /^(\d{4}-\d\d-\d\d)[ T](\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d(?::?\d\d)?)?$/;

/**
 * Epoch seconds (microseconds kept, as Patroni prints them) of a PostgreSQL timestamptz as text:
 * '2026-11-22 17:54:15.702182+00' (timestamptz::text, the probe's replay timestamp) or '...+00:00'; 0 when absent.
 */
export function pgTimestampEpochS(text: string | null | undefined): number {
  const match = text == null ? null : PG_TIMESTAMP.exec(text.trim());
  if (match === null) return 0;
  const [, date, time, fraction, zone] = match;
  const offset =
    zone === undefined || zone === 'Z'
      ? 'Z'
      : zone.length === 3
        ? `${zone}:00`
        : zone.includes(':')
          ? zone
          : `${zone.slice(0, 3)}:${zone.slice(3)}`;
  const wholeMs = Date.parse(`${date!}T${time!}${offset}`);
  return Number.isFinite(wholeMs) ? wholeMs / 1000 + Number(`0${fraction ?? ''}`) : 0;
}

/** PostgreSQL answers as a primary (Patroni's role master/primary: pg_is_in_recovery() is false). */
const isRunningPrimary = (s: AgentSnapshot): boolean => s.pg.isRunning && s.pg.role === 'primary';
/** PostgreSQL answers in recovery: a replica or a standby leader (Patroni's xlog block for both). */
const isInRecovery = (s: AgentSnapshot): boolean => s.pg.isRunning && s.pg.role === 'replica';

/**
 * Patroni's cluster_unlocked: its DCS cache holds no leader, or it holds no cluster at all (etcd not read for a ttl).
 * A single failed read does not make a locked cluster look unlocked.
 */
function isClusterUnlocked(s: AgentSnapshot, nowEpochS: number): boolean {
  if (s.view?.leader === undefined || s.dcsLastSeenEpochS === undefined) return true;
  return !s.isDcsReachable && nowEpochS - s.dcsLastSeenEpochS > s.ttlMs / 1000;
}

function isSyncMember(s: AgentSnapshot): boolean {
  return syncNames(s.view?.sync).includes(s.name);
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
    value: (s) => (s.pg.isRunning ? pgTimestampEpochS(s.pg.postmasterStartTime) : 0),
  },
  // As Patroni: PostgreSQL runs as a primary (not in recovery), lock or not, so two primaries show as two
  // (pgwarden_lock_held says which one holds the lock). A primary without the lock is demoted within a cycle.
  {
    name: 'patroni_master',
    help: 'Value is 1 if this node is the leader, 0 otherwise (PostgreSQL runs as a primary)',
    value: (s) => (isRunningPrimary(s) ? 1 : 0),
  },
  {
    name: 'patroni_primary',
    help: 'Value is 1 if this node is the leader, 0 otherwise (PostgreSQL runs as a primary)',
    value: (s) => (isRunningPrimary(s) ? 1 : 0),
  },
  {
    name: 'patroni_xlog_location',
    help: 'Current location of the PostgreSQL transaction log, 0 if this node is not the leader',
    type: 'counter',
    value: (s) => (isRunningPrimary(s) ? Number(s.pg.writeLsn ?? 0n) : 0),
  },
  {
    name: 'patroni_standby_leader',
    help: 'Value is 1 if this node is the standby leader, 0 otherwise',
    value: (s) => (s.isStandbyLeader ? 1 : 0),
  },
  {
    name: 'patroni_replica',
    help: 'Value is 1 if this node is a replica, 0 otherwise',
    value: (s) => (isInRecovery(s) && !s.isStandbyLeader ? 1 : 0),
  },
  {
    name: 'patroni_sync_standby',
    help: 'Value is 1 if this node is a sync standby, 0 otherwise',
    value: (s) => (isInRecovery(s) && !s.isStandbyLeader && syncSettingsOf(s.view?.config).mode === 'priority' && isSyncMember(s) ? 1 : 0),
  },
  {
    name: 'patroni_quorum_standby',
    help: 'Value is 1 if this node is a quorum standby, 0 otherwise',
    value: (s) => (isInRecovery(s) && !s.isStandbyLeader && syncSettingsOf(s.view?.config).mode === 'quorum' && isSyncMember(s) ? 1 : 0),
  },
  {
    name: 'patroni_xlog_received_location',
    help: 'Current location of the received transaction log (the replayed one before any was received), 0 if this node is not a replica',
    type: 'counter',
    value: (s) => (isInRecovery(s) ? Number(s.pg.receivedLsn ?? s.pg.replayedLsn ?? 0n) : 0),
  },
  {
    name: 'patroni_xlog_replayed_location',
    help: 'Current location of the replayed transaction log, 0 if this node is not a replica',
    type: 'counter',
    value: (s) => (isInRecovery(s) ? Number(s.pg.replayedLsn ?? 0n) : 0),
  },
  {
    name: 'patroni_xlog_replayed_timestamp',
    help: 'Epoch seconds of the last replayed transaction (pg_last_xact_replay_timestamp), 0 if none or not a replica',
    value: (s) => (isInRecovery(s) ? pgTimestampEpochS(s.pg.replayedTimestamp) : 0),
  },
  {
    name: 'patroni_xlog_paused',
    help: 'Value is 1 if WAL replay is paused, 0 otherwise',
    value: (s) => (isInRecovery(s) && s.pg.isReplayPaused ? 1 : 0),
  },
  {
    name: 'patroni_postgres_streaming',
    help: 'Value is 1 if the replica streams from its upstream',
    value: (s) => (s.pg.isStreaming ? 1 : 0),
  },
  {
    name: 'patroni_postgres_server_version',
    help: 'Version of PostgreSQL (if running), 0 otherwise',
    value: (s) => (s.pg.isRunning ? (s.pg.serverVersion ?? 0) : 0),
  },
  {
    name: 'patroni_cluster_unlocked',
    help: 'Value is 1 if the cluster is unlocked, 0 if locked',
    value: (s, now) => (isClusterUnlocked(s, now) ? 1 : 0),
  },
  {
    name: 'patroni_failsafe_mode_is_active',
    help: 'Value is 1 if failsafe mode is active, 0 if inactive',
    value: (s) => (s.isFailsafeActive === true ? 1 : 0),
  },
  {
    name: 'patroni_postgres_timeline',
    help: 'PostgreSQL timeline of this node (if running), 0 otherwise',
    type: 'counter',
    value: (s) => (s.pg.isRunning ? (s.pg.timeline ?? 0) : 0),
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

interface Sample {
  /** Labels after scope and name. */
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

/** A metric with its own labels: one sample per slot, rule, action, phase. */
interface FamilySpec {
  readonly name: string;
  readonly help: string;
  readonly type?: MetricType;
  readonly samples: (snapshot: AgentSnapshot, nowEpochS: number) => readonly Sample[];
}

function slotFamily(name: string, help: string, value: (slot: Slot) => number | undefined): FamilySpec {
  return {
    name,
    help,
    samples: (s) =>
      (s.pg.slots ?? []).flatMap((slot) => {
        const sampled = value(slot);
        return sampled === undefined ? [] : [{ labels: { slot_name: slot.name, slot_type: slot.type }, value: sampled }];
      }),
  };
}

/** Every rule of decide.ts, plus 'none' (no rule decided): all present from the start, so a rate() has a zero to start from. */
const RULE_NAMES: readonly string[] = [...RULES.map(([name]) => name), 'none'];

function ruleSamples(counts: ReadonlyMap<string, number>): Sample[] {
  const names = [...RULE_NAMES, ...[...counts.keys()].filter((name) => !RULE_NAMES.includes(name))];
  return names.map((rule) => ({ labels: { rule }, value: counts.get(rule) ?? 0 }));
}

const SILENCE_PHASES: readonly SilencePhase[] = ['beating', 'confirming', 'silent'];

/** Present only while armed (the lock deadline it holds is ahead); undefined otherwise. */
function armedFence(s: AgentSnapshot): FenceStatus | undefined {
  const fence = s.guards?.fence;
  return fence?.killInMs !== undefined && fence.killInMs > 0 ? fence : undefined;
}

const FAMILIES: readonly FamilySpec[] = [
  /** Per slot, so an alert can name the slot that holds WAL back (an abandoned CDC consumer fills pg_wal). */
  slotFamily(
    'pgwarden_replication_slot_retained_wal_bytes',
    'WAL bytes a replication slot keeps from being removed (current or replayed position minus restart_lsn)',
    (slot) => slot.retainedBytes,
  ),
  slotFamily('pgwarden_replication_slot_active', 'Value is 1 if a consumer is connected to the slot', (slot) => (slot.isActive ? 1 : 0)),
  slotFamily(
    'pgwarden_replication_slot_wal_lost',
    'Value is 1 if max_slot_wal_keep_size removed WAL the slot needed (wal_status lost)',
    (slot) => (slot.walStatus === 'lost' ? 1 : 0),
  ),
  {
    name: 'pgwarden_ha_decisions_total',
    help: 'HA cycles decided by each rule of the decision core (none: no rule decided) since the agent started',
    type: 'counter',
    samples: (s) => (s.decisionCounts === undefined ? [] : ruleSamples(s.decisionCounts.byRule())),
  },
  {
    name: 'pgwarden_ha_actions_total',
    help: 'Actions the HA cycles took, by kind (promote, demote, acquireLeader, rewind, ...), since the agent started',
    type: 'counter',
    samples: (s) => [...(s.decisionCounts?.byAction() ?? [])].map(([action, value]) => ({ labels: { action }, value })),
  },
  {
    name: 'pgwarden_leader_silence_phase',
    help: "Replica's silent-leader detector on the leader's newest heartbeat: 1 for the phase it is in (beating, confirming, silent)",
    samples: (s) => {
      const phase = s.guards?.silence.phase;
      return phase === undefined ? [] : SILENCE_PHASES.map((each) => ({ labels: { phase: each }, value: each === phase ? 1 : 0 }));
    },
  },
];

const GUARD_SPECS: readonly MetricSpec[] = [
  {
    name: 'pgwarden_fence_connected',
    help: 'Value is 1 if the fence process is connected to the agent (absent without a fence process)',
    value: (s) => (s.guards?.fence === undefined ? undefined : s.guards.fence.isConnected ? 1 : 0),
  },
  {
    name: 'pgwarden_fence_armed',
    help: 'Value is 1 while the fence holds a lock deadline still ahead: it stops a primary still running then (absent without a fence process)',
    value: (s) => (s.guards?.fence === undefined ? undefined : armedFence(s) === undefined ? 0 : 1),
  },
  {
    name: 'pgwarden_fence_deadline_seconds',
    help: 'Seconds until the fence stops a still-running primary (the lock deadline it was last armed with; while armed)',
    value: (s) => {
      const fence = armedFence(s);
      return fence?.killInMs === undefined ? undefined : fence.killInMs / 1000;
    },
  },
  {
    name: 'pgwarden_fence_freeze_seconds',
    help: 'Seconds until the fence freezes a primary whose heartbeats stopped being acknowledged; negative: frozen since (while armed with a window)',
    value: (s) => {
      const fence = armedFence(s);
      return fence?.freezeInMs === undefined ? undefined : fence.freezeInMs / 1000;
    },
  },
  {
    name: 'pgwarden_silent_leader_detector_enabled',
    help: 'Value is 1 if silent_leader_detector is on in the dynamic configuration',
    value: (s) => (s.guards === undefined ? undefined : s.guards.silence.isEnabled ? 1 : 0),
  },
  {
    name: 'pgwarden_leader_heartbeat_age_seconds',
    help: "Seconds since this replica first saw the leader's newest heartbeat (silent-leader detector on; absent on the leader)",
    value: (s) => (s.guards?.silence.beatAgeMs === undefined ? undefined : s.guards.silence.beatAgeMs / 1000),
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

function header(spec: { readonly name: string; readonly help: string; readonly type?: MetricType }): string {
  return `# HELP ${spec.name} ${escapeHelp(spec.help)}\n# TYPE ${spec.name} ${spec.type ?? 'gauge'}\n`;
}

const ALL_SPECS: readonly MetricSpec[] = [...SPECS, ...GUARD_SPECS];

/** Every metric name GET /metrics can serve (some only in some states): for docs and the tests over rules and dashboards. */
export const METRIC_NAMES: readonly string[] = [...ALL_SPECS, ...FAMILIES].map((spec) => spec.name);

export class MetricsExporter {
  /** HELP/TYPE lines never change: built once. */
  readonly #headers = ALL_SPECS.map(header);
  readonly #familyHeaders = FAMILIES.map(header);

  get contentType(): string {
    return 'text/plain; version=0.0.4; charset=utf-8';
  }

  render(snapshot: AgentSnapshot): Promise<string> {
    const nowEpochS = Date.now() / 1000;
    const labels = `scope="${escapeLabel(snapshot.scope)}",name="${escapeLabel(snapshot.name)}"`;
    const blocks = ALL_SPECS.map((spec, index) => {
      const value = spec.value(snapshot, nowEpochS);
      return value === undefined ? this.#headers[index]! : `${this.#headers[index]!}${spec.name}{${labels}} ${formatValue(value)}\n`;
    });
    FAMILIES.forEach((spec, index) => {
      let block = this.#familyHeaders[index]!;
      for (const sample of spec.samples(snapshot, nowEpochS)) {
        const own = Object.entries(sample.labels)
          .map(([key, value]) => `,${key}="${escapeLabel(value)}"`)
          .join('');
        block += `${spec.name}{${labels}${own}} ${formatValue(sample.value)}\n`;
      }
      blocks.push(block);
    });
    return Promise.resolve(blocks.join('\n'));
  }
}
