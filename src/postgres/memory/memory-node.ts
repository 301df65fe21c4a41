// The in-memory PostgreSQL model: one node's state (data dir, role, timeline, WAL position, history, slots) and the
// rules that relate nodes (who streams from whom, what a probe of a node shows). No time, no I/O.
import { slotNameForMember } from '../../core/slot-names.js';
import { guaranteeOf } from '../../core/sync-standby-names.js';
import type { LocalPg, PgRole, ReplicationRow } from '../../core/types.js';
import type { GucValue } from '../conf-render.js';

export interface MemorySlot {
  readonly name: string;
  readonly type: 'physical' | 'logical';
  readonly database?: string | undefined;
  readonly plugin?: string | undefined;
  restartLsn: bigint;
  confirmedFlushLsn: bigint | undefined;
}

/** Everything the data dir and the running postmaster of one node hold. Mutable: the cluster owns it. */
export interface NodeState {
  readonly name: string;
  dataDir: LocalPg['dataDir'];
  isRunning: boolean;
  /** Running: what pg_is_in_recovery says. Stopped: what pg_control says (kept from the last run or copy). */
  role: PgRole | undefined;
  timeline: number;
  /** Primary: flush position; replica: received = replayed position (the model does not tell them apart). */
  lsn: bigint;
  /** The member primary_conninfo points at, or undefined. */
  upstream: string | undefined;
  /** timeline -> LSN at which this node's history left it (its promotions and those it inherited): its history files. */
  forks: Map<number, bigint>;
  /** synchronous_standby_names as set by ALTER SYSTEM (persisted in postgresql.auto.conf, copied by clones). */
  ssn: string;
  sysid: string | undefined;
  /** Whether the last stop was clean (pg_control 'shut down'), as opposed to a crash or an immediate stop. */
  isCleanShutdown: boolean;
  slots: Map<string, MemorySlot>;
  /** The rendered configuration, and what the running postmaster started with (for pending_restart). */
  parameters: Readonly<Record<string, GucValue>>;
  runningParameters: Readonly<Record<string, GucValue>>;
  startedAtWall: string | undefined;
  /** Bumped by every start and stop: an operation started before a restart must not land on the new postmaster. */
  runId: number;
  /** Sessions open to this run of the postmaster (upstream watches): they end with it. */
  readonly sessionsEnded: Set<() => void>;
  /** Frozen by the fence (SIGSTOP): running, but it answers nothing and acknowledges no commit until thawed or killed. */
  isFrozen: boolean;
}

/** A start or stop: whatever the old postmaster was doing no longer lands, and every session to it ends. */
export function endRun(node: NodeState): void {
  node.runId++;
  const ended = [...node.sessionsEnded];
  node.sessionsEnded.clear();
  for (const end of ended) end();
}

/** The first position of a fresh cluster: initdb writes a little WAL. */
export const INITDB_LSN = 100n;

/** GUCs PostgreSQL applies only at start (context 'postmaster'): changed in the config, they leave pending_restart. */
export const RESTART_ONLY_GUCS: ReadonlySet<string> = new Set([
  'shared_buffers',
  'max_connections',
  'max_wal_senders',
  'max_replication_slots',
  'max_worker_processes',
  'max_prepared_transactions',
  'max_locks_per_transaction',
  'wal_level',
  'wal_log_hints',
  'hot_standby',
  'track_commit_timestamp',
  'shared_preload_libraries',
  'listen_addresses',
  'port',
  'archive_mode',
]);

export function newNodeState(name: string, parameters: Readonly<Record<string, GucValue>>): NodeState {
  return {
    name,
    dataDir: 'missing',
    isRunning: false,
    role: undefined,
    timeline: 1,
    lsn: 0n,
    upstream: undefined,
    forks: new Map(),
    ssn: '',
    sysid: undefined,
    isCleanShutdown: true,
    slots: new Map(),
    parameters,
    runningParameters: parameters,
    startedAtWall: undefined,
    runId: 0,
    sessionsEnded: new Set(),
    isFrozen: false,
  };
}

/** An empty (or absent) data dir: nothing of the old cluster survives. */
export function wipe(node: NodeState, dataDir: 'missing' | 'empty'): void {
  node.dataDir = dataDir;
  node.isRunning = false;
  node.role = undefined;
  node.timeline = 1;
  node.lsn = 0n;
  node.upstream = undefined;
  node.forks = new Map();
  node.ssn = '';
  node.sysid = undefined;
  node.isCleanShutdown = true;
  node.slots = new Map();
  endRun(node);
}

/**
 * The node `node` streams from right now, or undefined. A replica streams from the running primary its
 * primary_conninfo names (no cascading) when it is on the same timeline and not ahead, or on an older timeline the
 * primary's history left at or after the replica's position (recovery_target_timeline = latest follows it).
 */
export function streamingSourceOf(node: NodeState, find: (name: string) => NodeState | undefined): NodeState | undefined {
  if (!node.isRunning || node.role !== 'replica' || node.upstream === undefined) return undefined;
  const source = find(node.upstream);
  if (source === undefined || source === node || !source.isRunning || source.role !== 'primary') return undefined;
  if (node.sysid !== source.sysid) return undefined;
  if (node.timeline === source.timeline) return node.lsn <= source.lsn ? source : undefined;
  const fork = source.forks.get(node.timeline);
  return node.timeline < source.timeline && fork !== undefined && node.lsn <= fork ? source : undefined;
}

/** A standby catches up with a random lag below 40 bytes on its source's timeline, or jumps onto the source's new one. */
export function catchUp(node: NodeState, source: NodeState, random: () => number): void {
  const lag = BigInt(Math.floor(random() * 40));
  const isSameTimeline = node.timeline === source.timeline;
  node.lsn = isSameTimeline && source.lsn - lag > node.lsn ? source.lsn - lag : isSameTimeline ? node.lsn : source.lsn;
  node.timeline = source.timeline;
  node.forks = new Map(source.forks);
  // The standby's physical slot on its source (primary_slot_name) follows what it has flushed.
  const slot = source.slots.get(slotNameForMember(node.name));
  if (slot !== undefined && slot.type === 'physical') slot.restartLsn = node.lsn;
}

/** pg_basebackup and pg_rewind: the node's data becomes a copy of the source's (history, position, auto.conf). */
export function copyFrom(node: NodeState, source: NodeState): void {
  node.timeline = source.timeline;
  node.lsn = source.lsn;
  node.forks = new Map(source.forks);
  node.ssn = source.ssn;
  node.sysid = source.sysid;
}

/** The history file a node has for `timeline`: the forks before it, or undefined when the node never reached it. */
export function historyOf(node: NodeState, timeline: number): string | undefined {
  if (node.dataDir !== 'initialized' || node.timeline < timeline) return undefined;
  return [...node.forks.entries()]
    .filter(([from]) => from < timeline)
    .sort(([a], [b]) => a - b)
    .map(([from, lsn]) => `${from}\t${lsn}`)
    .join('\n');
}

/** PostgreSQL's choice for a promotion: one above the highest timeline this node has a history file for. */
export function nextTimelineOf(node: NodeState): number {
  return Math.max(node.timeline, ...node.forks.keys()) + 1;
}

export function controlStateOf(node: NodeState): string | undefined {
  if (node.dataDir !== 'initialized' || node.isRunning || node.role === undefined) return undefined;
  if (node.role === 'primary') return node.isCleanShutdown ? 'shut down' : 'in production';
  return node.isCleanShutdown ? 'shut down in recovery' : 'in archive recovery';
}

export function walLevelOf(parameters: Readonly<Record<string, GucValue>>): string {
  return String(parameters.wal_level ?? 'replica');
}

function isPendingRestart(node: NodeState): boolean {
  const names = new Set([...Object.keys(node.parameters), ...Object.keys(node.runningParameters)]);
  return [...names].some((name) => RESTART_ONLY_GUCS.has(name) && String(node.parameters[name]) !== String(node.runningParameters[name]));
}

function syncStateOf(ssn: string, standby: string): Pick<ReplicationRow, 'sync_state' | 'sync_priority'> {
  const guarantee = guaranteeOf(ssn);
  if (guarantee.count === 0 || !guarantee.names.includes(standby)) return { sync_state: 'async', sync_priority: 0 };
  return /^\s*ANY\s/i.test(ssn) ? { sync_state: 'quorum', sync_priority: 1 } : { sync_state: 'sync', sync_priority: 1 };
}

/** "2026-11-24T00:00:00.000Z" as pg_postmaster_start_time() is rendered by the probe. */
function postgresTimestamp(wallIso: string): string {
  return `${wallIso.replace('T', ' ').replace(/\.(\d{3})Z$/, '.$1000')}+00:00`;
}

/** What PgController.probe returns for `node`. */
export function localPgOf(
  node: NodeState,
  context: { readonly crashedAtMs: number | undefined; readonly standbys: readonly NodeState[]; readonly isStreaming: boolean },
): LocalPg {
  const isInitialized = node.dataDir === 'initialized';
  const isRunning = node.isRunning;
  const isPrimary = isRunning && node.role === 'primary';
  const isReplica = isRunning && node.role === 'replica';
  const activeSlots = new Set(context.standbys.map((standby) => slotNameForMember(standby.name)));
  const position = isRunning ? node.lsn : undefined;
  return {
    dataDir: node.dataDir,
    isRunning,
    role: isInitialized ? node.role : undefined,
    sysid: isInitialized ? node.sysid : undefined,
    timeline: isInitialized ? node.timeline : undefined,
    writeLsn: isPrimary ? node.lsn : undefined,
    receivedLsn: isReplica ? node.lsn : undefined,
    replayedLsn: isReplica ? node.lsn : undefined,
    isStreaming: context.isStreaming,
    upstream: isPrimary ? undefined : node.upstream,
    crashedAtMs: context.crashedAtMs,
    controlState: controlStateOf(node),
    serverVersion: isRunning ? 150000 : undefined,
    postmasterStartTime: isRunning && node.startedAtWall !== undefined ? postgresTimestamp(node.startedAtWall) : undefined,
    replayedTimestamp: isRunning ? null : undefined,
    isReplayPaused: false,
    replication: context.standbys.map((standby) => ({
      usename: 'replicator',
      application_name: standby.name,
      client_addr: null,
      state: 'streaming',
      ...syncStateOf(node.ssn, standby.name),
    })),
    isPendingRestart: isRunning && isPendingRestart(node),
    synchronousStandbyNames: isRunning ? node.ssn : undefined,
    walLevel: isRunning ? walLevelOf(node.runningParameters) : undefined,
    slots: isRunning
      ? [...node.slots.values()]
          .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
          .map((slot) => ({
            name: slot.name,
            type: slot.type,
            database: slot.database,
            plugin: slot.plugin,
            isActive: slot.type === 'physical' && activeSlots.has(slot.name),
            restartLsn: slot.restartLsn,
            confirmedFlushLsn: slot.confirmedFlushLsn,
            retainedBytes: position === undefined ? undefined : Math.max(0, Number(position - slot.restartLsn)),
            walStatus: 'reserved',
          }))
      : undefined,
    standbyFlushLsn: isRunning ? Object.fromEntries(context.standbys.map((standby) => [standby.name, standby.lsn])) : undefined,
    standbyWriteLsn: isRunning ? Object.fromEntries(context.standbys.map((standby) => [standby.name, standby.lsn])) : undefined,
    standbyReplayLsn: isRunning ? Object.fromEntries(context.standbys.map((standby) => [standby.name, standby.lsn])) : undefined,
  };
}
