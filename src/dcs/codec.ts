// Decodes the raw keys of one cluster prefix into a ClusterView; lenient, because other tools write these keys too.
import type {
  ClusterView,
  DynamicConfig,
  FailoverIntent,
  FailsafeTopology,
  HeartbeatRecord,
  HistoryEntry,
  MemberRecord,
  ProxyRecord,
  SyncState,
} from '../core/types.js';
import type { BackupLockRecord } from '../core/ports.js';
import type { AnyUpgradeRecord, MajorUpgradeRecord } from '../core/major-upgrade.js';
import type { RedirectRecord } from '../core/logical-upgrade.js';
import type { ClusterKeys } from './keys.js';

export interface RawKey {
  readonly key: string;
  readonly value: string;
  readonly modRevision: string;
  readonly createRevision: string;
  readonly lease: string;
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

const isObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);

export function decodeMember(name: string, text: string): MemberRecord | undefined {
  const value = parseJson(text);
  if (!isObject(value)) return undefined;
  const field = (raw: unknown, fallback: string): string => (typeof raw === 'string' ? raw : fallback);
  return {
    ...(value as Partial<MemberRecord>),
    name,
    conn_url: field(value.conn_url, ''),
    api_url: field(value.api_url, ''),
    state: field(value.state, 'unknown'),
    role: field(value.role, 'unknown'),
  };
}

/** A proxy record; a value that is not an object (hand-written) is skipped. Only known fields of the right type are kept. */
export function decodeProxy(name: string, text: string): ProxyRecord | undefined {
  const value = parseJson(text);
  if (!isObject(value)) return undefined;
  const text_ = (raw: unknown): string | undefined => (typeof raw === 'string' ? raw : undefined);
  const replicas = Array.isArray(value.replicas) ? value.replicas.filter((item): item is string => typeof item === 'string') : undefined;
  const record: ProxyRecord = {
    name,
    api_url: text_(value.api_url),
    primary_listen: text_(value.primary_listen),
    replica_listen: text_(value.replica_listen),
    primary: text_(value.primary),
    held: text_(value.held),
    replicas,
  };
  return Object.fromEntries(Object.entries(record).filter(([, field]) => field !== undefined)) as unknown as ProxyRecord;
}

/** Compact JSON without the name (it is in the key). */
export function encodeProxy(record: ProxyRecord): string {
  const { name: _name, ...rest } = record;
  return JSON.stringify(rest);
}

/** Compact JSON without the name (it is in the key), as Patroni writes it. */
export function encodeMember(record: MemberRecord): string {
  const { name: _name, ...rest } = record;
  return JSON.stringify(rest);
}

export function decodeConfig(text: string): DynamicConfig | undefined {
  const value = parseJson(text);
  return isObject(value) ? (value as DynamicConfig) : undefined;
}

export function decodeFailover(text: string): FailoverIntent | undefined {
  const value = parseJson(text);
  if (isObject(value)) {
    const intent: { leader?: string; member?: string; scheduled_at?: string } = {};
    if (typeof value.leader === 'string') intent.leader = value.leader;
    if (typeof value.member === 'string') intent.member = value.member;
    if (typeof value.scheduled_at === 'string') intent.scheduled_at = value.scheduled_at;
    return Object.keys(intent).length === 0 ? undefined : intent;
  }
  // Legacy text form `leader:candidate`.
  const [leader, member] = text.split(':');
  if (leader === undefined || text.trim() === '') return undefined;
  return { ...(leader !== '' ? { leader } : {}), ...(member !== undefined && member !== '' ? { member } : {}) };
}

export function decodeSync(text: string): SyncState | undefined {
  const value = parseJson(text);
  if (!isObject(value)) return undefined;
  return {
    leader: typeof value.leader === 'string' ? value.leader : null,
    sync_standby: typeof value.sync_standby === 'string' ? value.sync_standby : null,
    ...(typeof value.quorum === 'number' ? { quorum: value.quorum } : {}),
  };
}

export function decodeHistory(text: string): HistoryEntry[] {
  const value = parseJson(text);
  if (!Array.isArray(value)) return [];
  return value.filter(
    (entry): entry is HistoryEntry => Array.isArray(entry) && typeof entry[0] === 'number' && typeof entry[1] === 'number',
  );
}

export function decodeOptime(text: string): number | undefined {
  const value = parseJson(text);
  if (isObject(value) && typeof value.optime === 'number') return value.optime;
  return undefined;
}

export function decodeStatusSlots(text: string): Record<string, number> | undefined {
  const value = parseJson(text);
  if (!isObject(value) || !isObject(value.slots)) return undefined;
  return Object.fromEntries(Object.entries(value.slots).filter((entry): entry is [string, number] => typeof entry[1] === 'number'));
}

/** `status` as Patroni writes it: the optime and, when there are any, the slot positions. */
export function encodeStatus(optime: number, slots: Readonly<Record<string, number>> | undefined): string {
  return JSON.stringify(slots === undefined || Object.keys(slots).length === 0 ? { optime } : { optime, slots });
}

/** The heartbeat value: {"leader": name, "fence_ms": window}; undefined for anything else (a reader never trusts a bad beat). */
export function decodeHeartbeat(text: string, modRevision: string): HeartbeatRecord | undefined {
  const value = parseJson(text);
  if (!isObject(value) || typeof value.leader !== 'string' || value.leader === '') return undefined;
  const fenceMs = typeof value.fence_ms === 'number' && Number.isFinite(value.fence_ms) && value.fence_ms > 0 ? value.fence_ms : 0;
  return { leader: value.leader, fenceMs, modRevision };
}

export function encodeHeartbeat(leader: string, fenceMs: number): string {
  return JSON.stringify({ leader, fence_ms: fenceMs });
}

/** `failsafe`: a JSON object of member name -> api_url; anything else (garbage, other types) is no topology, as in Patroni. */
export function decodeFailsafe(text: string): FailsafeTopology | undefined {
  const value = parseJson(text);
  if (!isObject(value)) return undefined;
  return Object.fromEntries(Object.entries(value).filter((entry): entry is [string, string] => typeof entry[1] === 'string'));
}

export function encodeFailsafe(topology: FailsafeTopology): string {
  return JSON.stringify(topology);
}

export function buildClusterView(keys: ClusterKeys, raw: readonly RawKey[], revision: string): ClusterView {
  let initialize: string | undefined;
  let config: DynamicConfig | undefined;
  let configRevision: string | undefined;
  let leader: ClusterView['leader'];
  let failover: FailoverIntent | undefined;
  let failoverRevision: string | undefined;
  let sync: SyncState | undefined;
  let syncRevision: string | undefined;
  let history: HistoryEntry[] = [];
  let optime: number | undefined;
  let statusSlots: Record<string, number> | undefined;
  let heartbeat: HeartbeatRecord | undefined;
  let failsafe: FailsafeTopology | undefined;
  let writesHeld: string | undefined;
  const members: MemberRecord[] = [];
  const proxies: ProxyRecord[] = [];
  for (const item of raw) {
    if (item.key === keys.leader) {
      if (item.value !== '')
        leader = {
          name: item.value,
          modRevision: item.modRevision,
          ...(item.createRevision !== undefined ? { createRevision: item.createRevision } : {}),
        };
    } else if (item.key === keys.config) {
      config = decodeConfig(item.value);
      configRevision = item.modRevision;
    } else if (item.key === keys.initialize) {
      initialize = item.value;
    } else if (item.key === keys.failover) {
      failover = decodeFailover(item.value);
      failoverRevision = item.modRevision;
    } else if (item.key === keys.sync) {
      sync = decodeSync(item.value);
      syncRevision = item.modRevision;
    } else if (item.key === keys.history) {
      history = decodeHistory(item.value);
    } else if (item.key === keys.status) {
      optime = decodeOptime(item.value);
      statusSlots = decodeStatusSlots(item.value);
    } else if (item.key === keys.heartbeat) {
      heartbeat = decodeHeartbeat(item.value, item.modRevision);
    } else if (item.key === keys.failsafe) {
      failsafe = decodeFailsafe(item.value);
    } else if (item.key === keys.upgrade) {
      const upgrade = decodeUpgrade(item.value);
      if (upgrade?.kind === 'major' && upgrade.hold_writes)
        writesHeld = `the major upgrade to PostgreSQL ${upgrade.to} holds writes while ${upgrade.leader} is upgraded`;
    } else if (item.key.startsWith(keys.membersPrefix)) {
      const member = decodeMember(item.key.slice(keys.membersPrefix.length), item.value);
      if (member !== undefined) members.push(member);
    } else if (item.key.startsWith(keys.proxiesPrefix)) {
      const proxy = decodeProxy(item.key.slice(keys.proxiesPrefix.length), item.value);
      if (proxy !== undefined) proxies.push(proxy);
    }
  }
  members.sort((a, b) => a.name.localeCompare(b.name));
  proxies.sort((a, b) => a.name.localeCompare(b.name));
  return {
    initialize,
    config,
    configRevision,
    leader,
    members,
    failover,
    failoverRevision,
    sync,
    syncRevision,
    history,
    optime,
    statusSlots,
    ...(heartbeat !== undefined ? { heartbeat } : {}),
    failsafe,
    ...(proxies.length > 0 ? { proxies } : {}),
    ...(writesHeld !== undefined ? { writesHeld } : {}),
    revision,
  };
}

/** The backup lock's value: JSON {member, type, started}. */
export function encodeBackupLock(record: BackupLockRecord): string {
  return JSON.stringify({ member: record.member, type: record.type, started: record.started });
}

/** The backup lock read back; a value that is not ours (hand-written) still names a holder, so it still counts as held. */
export function decodeBackupLock(value: string): BackupLockRecord {
  try {
    const parsed = JSON.parse(value) as Partial<Record<keyof BackupLockRecord, unknown>>;
    const type = parsed.type === 'diff' || parsed.type === 'incr' ? parsed.type : 'full';
    return {
      member: typeof parsed.member === 'string' ? parsed.member : value,
      type,
      started: typeof parsed.started === 'string' ? parsed.started : '',
    };
  } catch {
    return { member: value, type: 'full', started: '' };
  }
}

/** The upgrade record's value: JSON, as the record. */
export function encodeUpgrade(record: AnyUpgradeRecord): string {
  return JSON.stringify(record);
}

const strings = (value: unknown): string[] =>
  Array.isArray(value) ? value.filter((item): item is string => typeof item === 'string') : [];

function decodeMajorUpgrade(parsed: Partial<Record<keyof MajorUpgradeRecord, unknown>>): MajorUpgradeRecord | undefined {
  const { bin_dir, to, old_bin_dir, leader, old_sysid, started } = parsed;
  if (typeof bin_dir !== 'string' || typeof to !== 'number' || typeof old_bin_dir !== 'string' || typeof leader !== 'string')
    return undefined;
  if (typeof old_sysid !== 'string' || typeof started !== 'string') return undefined;
  const optional = (value: unknown): string | undefined => (typeof value === 'string' ? value : undefined);
  return {
    kind: 'major',
    bin_dir,
    to,
    old_bin_dir,
    leader,
    replicas: strings(parsed.replicas),
    old_sysid,
    new_sysid: optional(parsed.new_sysid),
    checkpoint_lsn: optional(parsed.checkpoint_lsn),
    was_paused: parsed.was_paused === true,
    permanent_slots: strings(parsed.permanent_slots),
    has_backup: parsed.has_backup === true,
    hold_writes: parsed.hold_writes === true,
    started,
    done: strings(parsed.done),
    current: optional(parsed.current),
    rolling_back: parsed.rolling_back === true,
    steps: strings(parsed.steps),
  };
}

/** The upgrade record read back; undefined when the value is not one (hand-written, or from another version). */
export function decodeUpgrade(value: string): AnyUpgradeRecord | undefined {
  try {
    const parsed = JSON.parse(value) as Record<string, unknown>;
    if (parsed.kind === 'major') return decodeMajorUpgrade(parsed);
    if (parsed.kind !== 'minor' || typeof parsed.bin_dir !== 'string' || typeof parsed.version !== 'string') return undefined;
    if (typeof parsed.version_num !== 'number' || typeof parsed.started !== 'string') return undefined;
    return {
      kind: 'minor',
      bin_dir: parsed.bin_dir,
      version: parsed.version,
      version_num: parsed.version_num,
      started: parsed.started,
      steps: strings(parsed.steps),
    };
  } catch {
    return undefined;
  }
}

/** The redirect record's value: JSON, as RedirectRecord. */
export function encodeRedirect(record: RedirectRecord): string {
  return JSON.stringify(record);
}

/** The redirect record read back; undefined when the value is not one (hand-written, or from another version). */
export function decodeRedirect(value: string): RedirectRecord | undefined {
  try {
    const parsed = JSON.parse(value) as Partial<Record<keyof RedirectRecord, unknown>>;
    if (typeof parsed.scope !== 'string' || parsed.scope === '') return undefined;
    if (parsed.phase !== 'hold' && parsed.phase !== 'switched') return undefined;
    return { scope: parsed.scope, phase: parsed.phase, since: typeof parsed.since === 'string' ? parsed.since : '' };
  } catch {
    return undefined;
  }
}
