// Replication slots, decided purely: which slots each member keeps (member slots, permanent `slots:` from the dynamic
// config, minus `ignore_slots`), where replicas advance their copies to, and what the leader publishes in `status`.
import { failoverPriority } from './candidates.js';
import { slotNameForMember } from './slot-names.js';
import type { ClusterView, DynamicConfig, MemberTags } from './types.js';

export interface SlotSpec {
  readonly name: string;
  readonly type: 'physical' | 'logical';
  readonly database?: string | undefined;
  readonly plugin?: string | undefined;
}

/** One `ignore_slots` matcher: every given field must match. */
export interface IgnoreRule {
  readonly name?: string | undefined;
  readonly type?: string | undefined;
  readonly database?: string | undefined;
  readonly plugin?: string | undefined;
}

/** A slot as PostgreSQL reports it. LSNs as bytes. */
export interface SlotState extends SlotSpec {
  readonly isActive: boolean;
  readonly restartLsn: bigint | undefined;
  readonly confirmedFlushLsn: bigint | undefined;
  /** WAL the slot keeps from being removed (current/replay position - restart_lsn). */
  readonly retainedBytes: number | undefined;
  /** pg_replication_slots.wal_status: reserved, extended, unreserved or lost (max_slot_wal_keep_size). */
  readonly walStatus: string | undefined;
  /** A physical slot's xmin (hot_standby_feedback of the standby that used it), as text; undefined when null. */
  readonly xmin?: string | undefined;
}

const SLOT_NAME = /^[a-z0-9_]{1,63}$/;

/**
 * Checks `slots` and `ignore_slots` of a dynamic config; returns a message naming the bad entry, or undefined.
 * Patroni's forms: `name: {type: physical}`, `name: {type: logical, database: db, plugin: p}`, and a bare 0/null
 * for physical.
 */
export function validateSlotConfig(config: Readonly<Record<string, unknown>>): string | undefined {
  const slots = config.slots;
  if (slots !== undefined && slots !== null) {
    if (typeof slots !== 'object' || Array.isArray(slots))
      return 'slots must be a mapping of slot name to {type: physical} or {type: logical, database, plugin}';
    for (const [name, value] of Object.entries(slots)) {
      if (!SLOT_NAME.test(name))
        return `slots.${name}: a slot name may contain only lower-case letters, digits and underscores (at most 63)`;
      if (value === null || value === 0) continue;
      if (typeof value !== 'object' || Array.isArray(value))
        return `slots.${name}: expected {type: physical} or {type: logical, database, plugin}`;
      const entry = value as Record<string, unknown>;
      const type = entry.type ?? 'physical';
      if (type === 'physical') continue;
      if (type !== 'logical') return `slots.${name}.type: must be physical or logical, got ${JSON.stringify(type)}`;
      if (typeof entry.database !== 'string' || entry.database === '') return `slots.${name}: a logical slot needs database`;
      if (typeof entry.plugin !== 'string' || entry.plugin === '')
        return `slots.${name}: a logical slot needs plugin (e.g. pgoutput or test_decoding)`;
    }
  }
  const ignore = config.ignore_slots;
  if (ignore !== undefined && ignore !== null) {
    if (!Array.isArray(ignore)) return 'ignore_slots must be a list of matchers like {name: x, type: logical, database: db, plugin: p}';
    for (const [index, rule] of ignore.entries()) {
      if (typeof rule !== 'object' || rule === null || Array.isArray(rule))
        return `ignore_slots[${index}]: expected a mapping with name, type, database and/or plugin`;
      for (const [key, value] of Object.entries(rule as Record<string, unknown>)) {
        if (!['name', 'type', 'database', 'plugin'].includes(key))
          return `ignore_slots[${index}].${key}: unknown field (name, type, database, plugin)`;
        if (typeof value !== 'string') return `ignore_slots[${index}].${key}: must be a string`;
      }
    }
  }
  return undefined;
}

/** Permanent slots from the dynamic config (entries that do not validate are skipped; PATCH refuses them). */
export function permanentSlots(config: DynamicConfig | undefined): SlotSpec[] {
  const slots = config?.slots;
  if (typeof slots !== 'object' || slots === null || Array.isArray(slots)) return [];
  const specs: SlotSpec[] = [];
  for (const [name, value] of Object.entries(slots as Record<string, unknown>)) {
    if (!SLOT_NAME.test(name)) continue;
    const entry = typeof value === 'object' && value !== null ? (value as Record<string, unknown>) : {};
    if (entry.type === 'logical') {
      if (typeof entry.database === 'string' && typeof entry.plugin === 'string')
        specs.push({ name, type: 'logical', database: entry.database, plugin: entry.plugin });
    } else if (entry.type === undefined || entry.type === 'physical') {
      specs.push({ name, type: 'physical' });
    }
  }
  return specs.sort((a, b) => a.name.localeCompare(b.name));
}

export function ignoreRules(config: DynamicConfig | undefined): IgnoreRule[] {
  const rules = config?.ignore_slots;
  if (!Array.isArray(rules)) return [];
  return rules.filter((rule): rule is IgnoreRule => typeof rule === 'object' && rule !== null && !Array.isArray(rule));
}

export function isIgnored(slot: SlotSpec, rules: readonly IgnoreRule[]): boolean {
  return rules.some(
    (rule) =>
      (rule.name === undefined || rule.name === slot.name) &&
      (rule.type === undefined || rule.type === slot.type) &&
      (rule.database === undefined || rule.database === slot.database) &&
      (rule.plugin === undefined || rule.plugin === slot.plugin),
  );
}

/**
 * The slots this member must have. Everyone that may become primary keeps a physical slot for every other member and
 * the permanent slots, so after a failover the new primary already retains the WAL its replicas and consumers need.
 * A member that can never promote keeps none (as in Patroni).
 */
/**
 * The member `name` streams from instead of the leader: its `replicatefrom` member while that one runs as a streaming
 * replica (and does not replicate from `name` in turn), as Patroni chooses; undefined means the leader.
 */
export function cascadeSourceOf(
  view: ClusterView,
  name: string,
  tags: MemberTags | undefined,
  leader: string | undefined,
): string | undefined {
  const wanted = tags?.replicatefrom;
  if (typeof wanted !== 'string' || wanted === '' || wanted === name || wanted === leader) return undefined;
  const source = view.members.find((member) => member.name === wanted);
  const isFeeding =
    source !== undefined &&
    source.state === 'running' &&
    source.role === 'replica' &&
    // A nostream member replays the archive instead of streaming, and still feeds its cascade (as in Patroni).
    (source.replication_state === 'streaming' || (source.tags?.nostream === true && source.replication_state === 'in archive recovery')) &&
    source.tags?.replicatefrom !== name;
  return isFeeding ? wanted : undefined;
}

export function wantedSlots(view: ClusterView, self: string, selfTags: MemberTags, isLeader: boolean, useSlots: boolean): SlotSpec[] {
  const physicalFor = (name: string): SlotSpec => ({ name: slotNameForMember(name), type: 'physical' });
  // Members that replicate from this node (replicatefrom) stream through its slots whatever its own tags.
  const cascading = useSlots ? view.members.filter((member) => member.name !== self && member.tags?.replicatefrom === self) : [];
  if (!isLeader && failoverPriority(selfTags) === 0) return cascading.map((member) => physicalFor(member.name));
  const ownSlot = slotNameForMember(self);
  // The leader keeps no slot for a member that streams from another member: nothing would advance it, and it would
  // hold WAL on the leader for ever (Patroni leaves those out too). It gets one again as soon as it falls back.
  const isFedElsewhere = (member: ClusterView['members'][number]): boolean =>
    isLeader && cascadeSourceOf(view, member.name, member.tags, view.leader?.name) !== undefined;
  // A nostream member never opens a replication connection: a slot for it would only hold WAL back.
  const members: SlotSpec[] = useSlots
    ? view.members
        .filter((member) => member.name !== self && !isFedElsewhere(member) && member.tags?.nostream !== true)
        .map((member) => physicalFor(member.name))
    : [];
  const memberSlots = new Set(members.map((slot) => slot.name));
  const permanent = permanentSlots(view.config).filter((slot) => slot.name !== ownSlot && !memberSlots.has(slot.name));
  return [...members, ...permanent].sort((a, b) => a.name.localeCompare(b.name));
}

/** What the leader publishes in `status.slots`: the position each of its slots has reached (Patroni's format). */
export function publishedSlotPositions(slots: readonly SlotState[]): Record<string, number> {
  const positions: Record<string, number> = {};
  for (const slot of slots) {
    const lsn = slot.type === 'logical' ? slot.confirmedFlushLsn : slot.restartLsn;
    if (lsn !== undefined) positions[slot.name] = Number(lsn);
  }
  return positions;
}
