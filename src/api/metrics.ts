// GET /metrics: Patroni's Prometheus metric names (so existing alerts keep working), computed from the agent snapshot.
import { Gauge, Registry } from 'prom-client';
import type { AgentSnapshot } from '../agent/snapshot.js';
import { syncSettingsOf } from '../core/sync-plan.js';

interface MetricSpec {
  readonly name: string;
  readonly help: string;
  readonly value: (snapshot: AgentSnapshot, nowEpochS: number) => number;
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
  { name: 'patroni_standby_leader', help: 'Value is 1 if this node is the standby leader, 0 otherwise', value: () => 0 },
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
  { name: 'patroni_failsafe_mode_is_active', help: 'Value is 1 if failsafe mode is active, 0 if inactive', value: () => 0 },
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
];

export class MetricsExporter {
  readonly #registry = new Registry();
  #snapshot: AgentSnapshot | undefined;

  constructor() {
    const current = (): AgentSnapshot | undefined => this.#snapshot;
    for (const spec of SPECS) {
      new Gauge({
        name: spec.name,
        help: spec.help,
        labelNames: ['scope', 'name'],
        registers: [this.#registry],
        collect() {
          const snapshot = current();
          if (snapshot !== undefined) this.set({ scope: snapshot.scope, name: snapshot.name }, spec.value(snapshot, Date.now() / 1000));
        },
      });
    }
    // Per slot, so an alert can name the slot that holds WAL back (an abandoned CDC consumer fills pg_wal).
    const slotGauge = (
      name: string,
      help: string,
      value: (slot: NonNullable<AgentSnapshot['pg']['slots']>[number]) => number | undefined,
    ): void => {
      new Gauge({
        name,
        help,
        labelNames: ['scope', 'name', 'slot_name', 'slot_type'],
        registers: [this.#registry],
        collect() {
          this.reset();
          const snapshot = current();
          for (const slot of snapshot?.pg.slots ?? []) {
            const number = value(slot);
            if (snapshot !== undefined && number !== undefined)
              this.set({ scope: snapshot.scope, name: snapshot.name, slot_name: slot.name, slot_type: slot.type }, number);
          }
        },
      });
    };
    slotGauge(
      'pgwarden_replication_slot_retained_wal_bytes',
      'WAL bytes a replication slot keeps from being removed (current or replayed position minus restart_lsn)',
      (slot) => slot.retainedBytes,
    );
    slotGauge('pgwarden_replication_slot_active', 'Value is 1 if a consumer is connected to the slot', (slot) => (slot.isActive ? 1 : 0));
    slotGauge(
      'pgwarden_replication_slot_wal_lost',
      'Value is 1 if max_slot_wal_keep_size removed WAL the slot needed (wal_status lost)',
      (slot) => (slot.walStatus === 'lost' ? 1 : 0),
    );
  }

  get contentType(): string {
    return this.#registry.contentType;
  }

  async render(snapshot: AgentSnapshot): Promise<string> {
    this.#snapshot = snapshot;
    return this.#registry.metrics();
  }
}
