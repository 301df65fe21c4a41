// Blue/green major upgrade by logical replication (`pgwarden upgrade --major --method logical`), the pure part: which
// limits the old and new clusters violate, whether the new cluster has applied everything at cutover, where each
// sequence goes, and the redirect record that moves the proxies from one scope to the other.
//
// Why each limit is a refusal (logical replication, PostgreSQL 15 to 17):
//  - wal_level must be logical on the old primary: otherwise no publication can be decoded.
//  - DDL is not replicated: a schema changed after the copy began would make the apply fail or silently diverge, so
//    the schema fingerprint taken when the copy began must still hold at cutover.
//  - large objects (pg_largeobject) are not replicated at all: refused, not silently dropped.
//  - UPDATE and DELETE on a published table need a replica identity (a primary key, an identity index or FULL): the
//    publisher itself rejects them otherwise, so the application would start failing the moment the copy begins.
//  - unlogged tables are never published: their rows would be missing on the new cluster.
//  - sequences are not replicated: they are set at cutover, after the writes stopped, to the old value plus a margin.
//  - the new cluster must start empty: the initial copy of a table that already has rows would duplicate or collide.
import { formatLsn } from './lsn.js';
import type { DynamicConfig } from './types.js';

/** The publication on every database of the old cluster, and the prefix of the subscriptions and their slots. */
export const UPGRADE_PUBLICATION = 'pgwarden_upgrade';

/** Each database gets its own subscription and slot; slot names are cluster-wide, so they carry the database's oid. */
export function subscriptionName(databaseOid: number): string {
  return `pgwarden_upgrade_${databaseOid}`;
}

/**
 * `<namespace>/<old scope>/redirect`: tells the proxies of the old scope to hold primary clients (`hold`) or to follow
 * the leader of another scope of the same DCS (`switched`).
 */
export interface RedirectRecord {
  readonly scope: string;
  readonly phase: 'hold' | 'switched';
  /** Wall time it was written (for people reading etcd; nobody compares it). */
  readonly since: string;
}

export interface TableFacts {
  readonly schema: string;
  readonly name: string;
  /** pg_class.relpersistence: p permanent, u unlogged. */
  readonly persistence: string;
  /** pg_class.relreplident: d default (the primary key), n nothing, f full, i an index. */
  readonly replicaIdentity: string;
  readonly hasPrimaryKey: boolean;
}

export interface SequenceFacts {
  readonly schema: string;
  readonly name: string;
  /** undefined when nextval was never called. */
  readonly lastValue: bigint | undefined;
  readonly incrementBy: bigint;
  readonly minValue: bigint;
  readonly maxValue: bigint;
}

export interface SourceDatabaseFacts {
  readonly name: string;
  readonly oid: number;
  readonly tables: readonly TableFacts[];
  readonly largeObjects: number;
  readonly fingerprint: string;
}

export interface SourceFacts {
  readonly serverVersionNum: number;
  readonly walLevel: string;
  readonly maxReplicationSlots: number;
  readonly usedReplicationSlots: number;
  readonly databases: readonly SourceDatabaseFacts[];
}

export interface TargetFacts {
  readonly serverVersionNum: number;
  /** Tables that already exist on the new cluster, as `db.schema.table`. */
  readonly existingTables: readonly string[];
}

/** Table sync workers (max_sync_workers_per_subscription, default 2) each hold a temporary slot during the copy. */
const SYNC_SLOTS_PER_SUBSCRIPTION = 2;

const quoted = (table: { schema: string; name: string }): string => `${table.schema}.${table.name}`;

/** Every reason the old and new clusters cannot do a logical upgrade now; empty when they can. */
export function logicalUpgradeRefusals(source: SourceFacts, target: TargetFacts): string[] {
  const refusals: string[] = [];
  if (source.walLevel !== 'logical')
    refusals.push(
      `wal_level is ${source.walLevel} on the old primary, logical replication needs logical: pgwarden edit-config -p wal_level=logical, then pgwarden restart`,
    );
  if (Math.floor(target.serverVersionNum / 10000) < Math.floor(source.serverVersionNum / 10000))
    refusals.push(`the new cluster runs PostgreSQL ${target.serverVersionNum}, older than the old one's ${source.serverVersionNum}`);
  const slotsNeeded = source.databases.length * (1 + SYNC_SLOTS_PER_SUBSCRIPTION);
  const slotsFree = source.maxReplicationSlots - source.usedReplicationSlots;
  if (slotsFree < slotsNeeded)
    refusals.push(
      `the old primary has ${slotsFree} free replication slot(s), the copy needs ${slotsNeeded} (one per database and ${SYNC_SLOTS_PER_SUBSCRIPTION} for its table copies): raise max_replication_slots`,
    );
  for (const database of source.databases) {
    if (database.largeObjects > 0)
      refusals.push(`database ${database.name} holds ${database.largeObjects} large object(s): logical replication does not copy them`);
    for (const table of database.tables) {
      if (table.persistence === 'u')
        refusals.push(`${database.name}.${quoted(table)} is unlogged: logical replication does not copy it (ALTER TABLE ... SET LOGGED)`);
      else if (table.replicaIdentity === 'n' || (table.replicaIdentity === 'd' && !table.hasPrimaryKey))
        refusals.push(
          `${database.name}.${quoted(table)} has no primary key nor replica identity: UPDATE and DELETE on it would fail once published (add a primary key, or ALTER TABLE ... REPLICA IDENTITY FULL)`,
        );
    }
  }
  if (target.existingTables.length > 0)
    refusals.push(
      `the new cluster is not empty: it already has ${target.existingTables.slice(0, 5).join(', ')}${target.existingTables.length > 5 ? ', ...' : ''}`,
    );
  return refusals;
}

/** The databases whose schema changed since the copy began (DDL is not replicated). */
export function schemaChanges(
  atStart: ReadonlyMap<string, string>,
  now: readonly Pick<SourceDatabaseFacts, 'name' | 'fingerprint'>[],
): string[] {
  const changed: string[] = [];
  for (const database of now) {
    const before = atStart.get(database.name);
    if (before === undefined) changed.push(`database ${database.name} was created after the copy began`);
    else if (before !== database.fingerprint) changed.push(`the schema of database ${database.name} changed after the copy began (DDL)`);
  }
  for (const name of atStart.keys())
    if (!now.some((database) => database.name === name)) changed.push(`database ${name} was dropped after the copy began`);
  return changed;
}

export interface SubscriptionProgress {
  readonly database: string;
  /** Tables whose initial copy has not finished (pg_subscription_rel state other than r). */
  readonly tablesNotReady: readonly string[];
  /** What the subscriber confirmed as applied and flushed (its slot's confirmed_flush_lsn on the old primary). */
  readonly confirmedLsn: bigint | undefined;
}

/**
 * The write fence's mark on the old primary once every client session ended: its WAL position (what the new cluster
 * must apply) and its next transaction ID. A transaction ID handed out after the mark is a transaction that wrote after
 * the fence (a session that turned default_transaction_read_only off, or autovacuum's ANALYZE).
 */
export interface FenceMark {
  readonly lsn: bigint;
  readonly nextXid: bigint;
}

/**
 * How many times the cutover fences again when transactions wrote after the fence, before it gives up and rolls back:
 * one more round absorbs autovacuum; a client that keeps turning the fence off is refused.
 */
export const FENCE_ROUNDS = 3;

export type ApplyVerdict = { readonly isApplied: true } | { readonly isApplied: false; readonly waitingFor: string };

/**
 * Whether the new cluster has applied every transaction the old primary committed up to `fenceLsn` (its WAL position
 * read after the write fence held): every table copied, and every subscription's confirmed position at or past it.
 * Before the cutover, `toleranceBytes` says how far behind counts as in sync (what is left is applied during the pause).
 */
export function applyVerdict(progress: readonly SubscriptionProgress[], fenceLsn: bigint, toleranceBytes = 0n): ApplyVerdict {
  for (const subscription of progress) {
    if (subscription.tablesNotReady.length > 0)
      return {
        isApplied: false,
        waitingFor: `${subscription.database}: the initial copy of ${subscription.tablesNotReady.length} table(s) (${subscription.tablesNotReady.slice(0, 3).join(', ')})`,
      };
    if (subscription.confirmedLsn === undefined || subscription.confirmedLsn + toleranceBytes < fenceLsn)
      return {
        isApplied: false,
        waitingFor: `${subscription.database}: applied up to ${subscription.confirmedLsn === undefined ? 'nothing yet' : formatLsn(subscription.confirmedLsn)}, the old primary is at ${formatLsn(fenceLsn)}`,
      };
  }
  return { isApplied: true };
}

export interface SequenceTarget {
  readonly schema: string;
  readonly name: string;
  readonly value: bigint;
}

/**
 * Where each sequence of the new cluster is set at cutover: the old last value plus `margin` increments, within the
 * sequence's bounds. The writes are stopped by then, so the margin only covers values handed out by a session that
 * bypassed the fence. Sequences never used stay as the schema copy made them.
 */
export function sequenceTargets(sequences: readonly SequenceFacts[], margin: bigint): SequenceTarget[] {
  const targets: SequenceTarget[] = [];
  for (const sequence of sequences) {
    if (sequence.lastValue === undefined) continue;
    let value = sequence.lastValue + margin * sequence.incrementBy;
    if (value > sequence.maxValue) value = sequence.maxValue;
    if (value < sequence.minValue) value = sequence.minValue;
    targets.push({ schema: sequence.schema, name: sequence.name, value });
  }
  return targets;
}

/** The redirect record in the old scope (implemented beside Dcs); no lease: it must outlive the CLI that wrote it. */
export interface ScopeRedirects {
  readRedirect(signal: AbortSignal): Promise<RedirectRecord | undefined>;
  writeRedirect(record: RedirectRecord, signal: AbortSignal): Promise<void>;
  deleteRedirect(signal: AbortSignal): Promise<void>;
}

/** Where a PostgreSQL server is (a leader's conn_url host and port). */
export interface PgAddress {
  readonly host: string;
  readonly port: number;
}

/** The SQL and tools side of a logical upgrade (postgres/logical-upgrade.ts): each call does one thing on one server. */
export interface LogicalUpgradeDatabases {
  sourceFacts(at: PgAddress): Promise<SourceFacts>;
  targetFacts(at: PgAddress, databases: readonly string[]): Promise<TargetFacts>;
  /** Creates the roles the new cluster lacks; returns their names. */
  copyRoles(from: PgAddress, to: PgAddress): Promise<readonly string[]>;
  copySchema(from: PgAddress, to: PgAddress, database: string): Promise<void>;
  startPublication(at: PgAddress, database: string, fingerprint: string): Promise<void>;
  /** The fingerprint each database's publication was started with; databases without the publication are absent. */
  publishedFingerprints(at: PgAddress, databases: readonly string[]): Promise<ReadonlyMap<string, string>>;
  subscribe(at: PgAddress, database: string, databaseOid: number, publisher: PgAddress): Promise<void>;
  progress(
    source: PgAddress,
    target: PgAddress,
    databases: readonly { readonly name: string; readonly oid: number }[],
  ): Promise<SubscriptionProgress[]>;
  currentLsn(at: PgAddress): Promise<bigint>;
  /** Whether the old primary holds the slot of every subscription (a failover of the old cluster loses them). */
  hasSlots(at: PgAddress, databaseOids: readonly number[]): Promise<boolean>;
  fence(at: PgAddress): Promise<FenceMark>;
  /** The next transaction ID of the old primary (pg_snapshot_xmax of the current snapshot); takes none itself. */
  nextXid(at: PgAddress): Promise<bigint>;
  unfence(at: PgAddress): Promise<void>;
  sequences(at: PgAddress, database: string): Promise<SequenceFacts[]>;
  setSequences(at: PgAddress, database: string, targets: readonly SequenceTarget[]): Promise<void>;
  dropSubscriptions(at: PgAddress, databases: readonly { readonly name: string; readonly oid: number }[]): Promise<void>;
  dropPublications(at: PgAddress, databases: readonly { readonly name: string; readonly oid: number }[]): Promise<void>;
}

/**
 * The ignore_slots rule that keeps the agents of the old cluster from dropping the copy's slots: the subscription's
 * slot and its table-sync slots (named by PostgreSQL, pg_<oid>_sync_...) are inactive for moments (creation, a
 * reconnect), and an agent drops inactive slots it does not know. It matches every pgoutput slot while it is set.
 */
export const UPGRADE_SLOT_RULE: Readonly<Record<string, string>> = { type: 'logical', plugin: 'pgoutput' };

const isUpgradeRule = (rule: unknown): boolean =>
  typeof rule === 'object' &&
  rule !== null &&
  !Array.isArray(rule) &&
  Object.keys(rule).length === Object.keys(UPGRADE_SLOT_RULE).length &&
  Object.entries(UPGRADE_SLOT_RULE).every(([key, value]) => (rule as Record<string, unknown>)[key] === value);

/** The dynamic config with the rule added (`isOn`) or removed; undefined when it is so already. */
export function withUpgradeSlotRule(config: DynamicConfig, isOn: boolean): DynamicConfig | undefined {
  const rules: readonly unknown[] = Array.isArray(config.ignore_slots) ? (config.ignore_slots as unknown[]) : [];
  const hasRule = rules.some(isUpgradeRule);
  if (hasRule === isOn) return undefined;
  const next = isOn ? [...rules, UPGRADE_SLOT_RULE] : rules.filter((rule) => !isUpgradeRule(rule));
  return { ...config, ignore_slots: next };
}
