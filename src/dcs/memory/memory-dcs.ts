// An in-memory DCS with etcd's semantics (revisions, leases on an injected clock, CAS, watch) for tests and simulations.
import type { BackupLockRecord, BackupLocks, CasResult, Clock, Dcs, LeaderLockTimer, ProxyRegistry } from '../../core/ports.js';
import type {
  ClusterView,
  DynamicConfig,
  FailoverIntent,
  HeartbeatRecord,
  FailsafeTopology,
  HistoryEntry,
  LeaderRecord,
  MemberRecord,
  ProxyRecord,
  SyncState,
} from '../../core/types.js';
import { PgwardenError } from '../../util/errors.js';
import {
  buildClusterView,
  decodeBackupLock,
  encodeBackupLock,
  decodeHeartbeat,
  encodeFailsafe,
  encodeHeartbeat,
  encodeMember,
  encodeProxy,
  encodeStatus,
  type RawKey,
} from '../codec.js';
import { ClusterKeys } from '../keys.js';

interface StoredKey {
  value: string;
  createRevision: number;
  modRevision: number;
  lease: number;
}

/** Shared state of one simulated etcd: every member's MemoryDcs talks to the same store. */
export class MemoryDcsStore {
  readonly clock: Clock;
  readonly #keys = new Map<string, StoredKey>();
  readonly #leases = new Map<number, { ttlMs: number; expiresAtMs: number }>();
  #revision = 1;
  #nextLease = 1;
  #watchers: { fromRevision: number; prefix: string; isRelevant: (key: string) => boolean; resolve: () => void }[] = [];

  constructor(clock: Clock) {
    this.clock = clock;
  }

  get revision(): number {
    return this.#revision;
  }

  /** Expires leases whose time has come (etcd does this on its own timer; here any operation or sweep() does it). */
  sweep(): void {
    const now = this.clock.nowMs();
    for (const [id, lease] of this.#leases) {
      if (lease.expiresAtMs > now) continue;
      this.#leases.delete(id);
      for (const [key, stored] of this.#keys) if (stored.lease === id) this.#delete(key);
    }
  }

  grant(ttlMs: number): number {
    this.sweep();
    const id = this.#nextLease++;
    this.#leases.set(id, { ttlMs, expiresAtMs: this.clock.nowMs() + ttlMs });
    return id;
  }

  /** false when the lease already expired. */
  keepAlive(id: number): boolean {
    this.sweep();
    const lease = this.#leases.get(id);
    if (lease === undefined) return false;
    lease.expiresAtMs = this.clock.nowMs() + lease.ttlMs;
    return true;
  }

  /** Milliseconds until lease `id` expires (etcd's TimeToLive, here exact); undefined for an unknown or expired lease. */
  timeToLive(id: number): number | undefined {
    this.sweep();
    const lease = this.#leases.get(id);
    return lease === undefined ? undefined : Math.max(0, lease.expiresAtMs - this.clock.nowMs());
  }

  get(key: string): StoredKey | undefined {
    this.sweep();
    return this.#keys.get(key);
  }

  range(prefix: string): RawKey[] {
    this.sweep();
    return [...this.#keys.entries()]
      .filter(([key]) => key.startsWith(prefix))
      .map(([key, stored]) => ({
        key,
        value: stored.value,
        modRevision: String(stored.modRevision),
        createRevision: String(stored.createRevision),
        lease: String(stored.lease),
      }));
  }

  put(key: string, value: string, lease = 0): void {
    if (lease !== 0 && !this.#leases.has(lease))
      throw new PgwardenError('PGW_DCS_LEASE_NOT_FOUND', `lease ${lease} not found`, {
        context: { key, lease, hint: 'the lease expired or was never granted: grant a new lease and write the key again' },
      });
    this.#revision++;
    const existing = this.#keys.get(key);
    this.#keys.set(key, { value, createRevision: existing?.createRevision ?? this.#revision, modRevision: this.#revision, lease });
    this.#notify(key);
  }

  delete(key: string): boolean {
    this.sweep();
    return this.#delete(key);
  }

  #delete(key: string): boolean {
    if (!this.#keys.has(key)) return false;
    this.#revision++;
    this.#keys.delete(key);
    this.#notify(key);
    return true;
  }

  #notify(key: string): void {
    const ready = this.#watchers.filter(
      (watcher) => key.startsWith(watcher.prefix) && this.#revision > watcher.fromRevision && watcher.isRelevant(key),
    );
    this.#watchers = this.#watchers.filter((watcher) => !ready.includes(watcher));
    for (const watcher of ready) watcher.resolve();
  }

  /** Resolves at the next change under `prefix` after `fromRevision` that `isRelevant` accepts (etcd's watch filter). */
  watch(prefix: string, fromRevision: number, signal: AbortSignal, isRelevant: (key: string) => boolean = () => true): Promise<void> {
    return new Promise((resolve, reject) => {
      const onAbort = (): void => {
        this.#watchers = this.#watchers.filter((watcher) => watcher !== entry);
        reject(
          signal.reason instanceof Error
            ? signal.reason
            : new PgwardenError('PGW_DCS_WATCH_ABORTED', 'watch aborted', { context: { key: prefix, reason: signal.reason } }),
        );
      };
      // A watch that fired leaves no listener behind on a signal that outlives it (a heartbeat watch re-arms per beat).
      const entry = {
        fromRevision,
        prefix,
        isRelevant,
        resolve: () => {
          signal.removeEventListener('abort', onAbort);
          resolve();
        },
      };
      this.#watchers.push(entry);
      signal.addEventListener('abort', onAbort, { once: true });
    });
  }
}

export class MemoryDcs implements Dcs, BackupLocks, LeaderLockTimer, ProxyRegistry {
  #backupLockValue: string | undefined;
  readonly #store: MemoryDcsStore;
  readonly #keys: ClusterKeys;
  readonly #member: string;
  #lease: number | undefined;
  #leaseTtlMs: number | undefined;
  #isReachable = true;

  constructor(store: MemoryDcsStore, options: { readonly namespace: string; readonly scope: string; readonly member: string }) {
    this.#store = store;
    this.#keys = new ClusterKeys(options.namespace, options.scope);
    this.#member = options.member;
  }

  /** Fault injection: an unreachable member's calls fail as a partitioned etcd client's would. */
  setReachable(isReachable: boolean): void {
    this.#isReachable = isReachable;
  }

  #check(signal: AbortSignal, key?: string): void {
    if (signal.aborted || !this.#isReachable) {
      throw new PgwardenError('PGW_DCS_UNAVAILABLE', `memory DCS unreachable for ${this.#member}`, {
        isRetryable: true,
        context: { member: this.#member, ...(key !== undefined ? { key } : {}) },
      });
    }
  }

  /** As the etcd backend: a lease granted with another TTL than asked for is replaced. */
  #keepAlive(ttlMs: number): number {
    if (this.#lease === undefined || this.#leaseTtlMs !== ttlMs || !this.#store.keepAlive(this.#lease)) {
      this.#lease = this.#store.grant(ttlMs);
      this.#leaseTtlMs = ttlMs;
    }
    return this.#lease;
  }

  async loadCluster(signal: AbortSignal): Promise<ClusterView> {
    this.#check(signal);
    return buildClusterView(this.#keys, this.#store.range(this.#keys.prefix), String(this.#store.revision));
  }

  async acquireLeader(ttlMs: number, signal: AbortSignal): Promise<CasResult> {
    this.#check(signal, this.#keys.leader);
    const lease = this.#keepAlive(ttlMs);
    if (this.#store.get(this.#keys.leader) !== undefined) return false;
    this.#store.put(this.#keys.leader, this.#member, lease);
    return true;
  }

  async acquireBackupLock(record: BackupLockRecord, ttlMs: number, signal: AbortSignal): Promise<CasResult> {
    this.#check(signal, this.#keys.backup);
    const lease = this.#keepAlive(ttlMs);
    if (this.#store.get(this.#keys.backup) !== undefined) return false;
    this.#backupLockValue = encodeBackupLock(record);
    this.#store.put(this.#keys.backup, this.#backupLockValue, lease);
    return true;
  }

  async releaseBackupLock(signal: AbortSignal): Promise<CasResult> {
    this.#check(signal, this.#keys.backup);
    const value = this.#backupLockValue;
    this.#backupLockValue = undefined;
    if (value === undefined || this.#store.get(this.#keys.backup)?.value !== value) return false;
    return this.#store.delete(this.#keys.backup);
  }

  async readBackupLock(signal: AbortSignal): Promise<BackupLockRecord | undefined> {
    this.#check(signal, this.#keys.backup);
    const current = this.#store.get(this.#keys.backup);
    return current === undefined ? undefined : decodeBackupLock(current.value);
  }

  async renewLeader(ttlMs: number, signal: AbortSignal): Promise<CasResult> {
    this.#check(signal, this.#keys.leader);
    const lease = this.#keepAlive(ttlMs);
    const current = this.#store.get(this.#keys.leader);
    if (current?.value !== this.#member) return false;
    if (current.lease !== lease) this.#store.put(this.#keys.leader, this.#member, lease);
    return true;
  }

  async releaseLeader(signal: AbortSignal): Promise<CasResult> {
    this.#check(signal, this.#keys.leader);
    if (this.#store.get(this.#keys.leader)?.value !== this.#member) return false;
    return this.#store.delete(this.#keys.leader);
  }

  async deleteLeaderIfUnchanged(modRevision: string, signal: AbortSignal): Promise<CasResult> {
    this.#check(signal, this.#keys.leader);
    if (String(this.#store.get(this.#keys.leader)?.modRevision) !== modRevision) return false;
    return this.#store.delete(this.#keys.leader);
  }

  async beatHeartbeat(fenceMs: number, signal: AbortSignal): Promise<CasResult> {
    this.#check(signal, this.#keys.heartbeat);
    const current = this.#store.get(this.#keys.leader);
    if (this.#lease === undefined || current?.value !== this.#member || current.lease !== this.#lease) return false;
    this.#store.put(this.#keys.heartbeat, encodeHeartbeat(this.#member, fenceMs), this.#lease);
    return true;
  }

  async readHeartbeat(signal: AbortSignal): Promise<HeartbeatRecord | undefined> {
    this.#check(signal, this.#keys.heartbeat);
    const stored = this.#store.get(this.#keys.heartbeat);
    return stored === undefined ? undefined : decodeHeartbeat(stored.value, String(stored.modRevision));
  }

  async watchHeartbeat(
    fromRevision: string,
    onBeat: (beat: HeartbeatRecord | undefined, revision: string) => void,
    signal: AbortSignal,
  ): Promise<void> {
    const key = this.#keys.heartbeat;
    let revision = Number(fromRevision);
    for (;;) {
      this.#check(signal, key);
      await this.#store.watch(key, revision, signal, (changed) => changed === key);
      // As etcd's gateway: only reachable members get events (a partitioned one's stream breaks).
      this.#check(signal, key);
      revision = this.#store.revision;
      const stored = this.#store.get(key);
      onBeat(stored === undefined ? undefined : decodeHeartbeat(stored.value, String(stored.modRevision)), String(revision));
    }
  }

  async deleteSilentLeader(leader: LeaderRecord, heartbeatRevision: string, signal: AbortSignal): Promise<CasResult> {
    this.#check(signal, this.#keys.leader);
    const current = this.#store.get(this.#keys.leader);
    const isSameLeader =
      current !== undefined &&
      current.value === leader.name &&
      (leader.createRevision !== undefined
        ? String(current.createRevision) === leader.createRevision
        : String(current.modRevision) === leader.modRevision);
    if (!isSameLeader || String(this.#store.get(this.#keys.heartbeat)?.modRevision) !== heartbeatRevision) return false;
    this.#store.delete(this.#keys.leader);
    this.#store.delete(this.#keys.heartbeat);
    return true;
  }

  async touchMember(record: MemberRecord, ttlMs: number, signal: AbortSignal): Promise<void> {
    this.#check(signal);
    const lease = this.#keepAlive(ttlMs);
    this.#store.put(this.#keys.member(this.#member), encodeMember(record), lease);
  }

  async leaderLockTimeLeft(signal: AbortSignal): Promise<number | undefined> {
    this.#check(signal, this.#keys.leader);
    const lease = this.#store.get(this.#keys.leader)?.lease ?? 0;
    return lease === 0 ? undefined : this.#store.timeToLive(lease);
  }

  async publishProxy(record: ProxyRecord, ttlMs: number, signal: AbortSignal): Promise<void> {
    const key = this.#keys.proxy(record.name);
    this.#check(signal, key);
    const lease = this.#keepAlive(ttlMs);
    const value = encodeProxy(record);
    const current = this.#store.get(key);
    if (current?.value !== value || current.lease !== lease) this.#store.put(key, value, lease);
  }

  async withdrawProxy(name: string, signal: AbortSignal): Promise<void> {
    const key = this.#keys.proxy(name);
    this.#check(signal, key);
    this.#store.delete(key);
  }

  async initialize(value: string, signal: AbortSignal): Promise<CasResult> {
    this.#check(signal, this.#keys.initialize);
    if (this.#store.get(this.#keys.initialize) !== undefined) return false;
    this.#store.put(this.#keys.initialize, value);
    return true;
  }

  async setInitialize(sysid: string, signal: AbortSignal): Promise<void> {
    this.#check(signal, this.#keys.initialize);
    this.#store.put(this.#keys.initialize, sysid);
  }

  async cancelInitialize(signal: AbortSignal): Promise<void> {
    this.#check(signal, this.#keys.initialize);
    this.#store.delete(this.#keys.initialize);
  }

  #cas(key: string, value: string | undefined, expectedRevision: string | undefined, signal: AbortSignal): CasResult {
    this.#check(signal, key);
    const current = this.#store.get(key);
    if (expectedRevision !== undefined && String(current?.modRevision ?? 0) !== expectedRevision) return false;
    if (value === undefined) this.#store.delete(key);
    else this.#store.put(key, value);
    return true;
  }

  async setConfig(config: DynamicConfig, expectedRevision: string | undefined, signal: AbortSignal): Promise<CasResult> {
    return this.#cas(this.#keys.config, JSON.stringify(config), expectedRevision, signal);
  }

  async setFailover(intent: FailoverIntent | undefined, expectedRevision: string | undefined, signal: AbortSignal): Promise<CasResult> {
    return this.#cas(this.#keys.failover, intent === undefined ? undefined : JSON.stringify(intent), expectedRevision, signal);
  }

  async setSync(state: SyncState | undefined, expectedRevision: string | undefined, signal: AbortSignal): Promise<CasResult> {
    return this.#cas(this.#keys.sync, state === undefined ? undefined : JSON.stringify(state), expectedRevision, signal);
  }

  async setHistory(history: readonly HistoryEntry[], signal: AbortSignal): Promise<void> {
    this.#check(signal, this.#keys.history);
    this.#store.put(this.#keys.history, JSON.stringify(history));
  }

  async setStatus(optime: number, slots: Readonly<Record<string, number>> | undefined, signal: AbortSignal): Promise<void> {
    this.#check(signal, this.#keys.status);
    this.#store.put(this.#keys.status, encodeStatus(optime, slots));
  }

  async setFailsafe(topology: FailsafeTopology, signal: AbortSignal): Promise<void> {
    this.#check(signal, this.#keys.failsafe);
    this.#store.put(this.#keys.failsafe, encodeFailsafe(topology));
  }

  async watch(fromRevision: string, signal: AbortSignal): Promise<void> {
    this.#check(signal);
    const keys = this.#keys;
    await this.#store.watch(keys.prefix, Number(fromRevision), signal, (key) => keys.isControlKey(key));
  }

  async close(): Promise<void> {
    this.#lease = undefined;
  }
}
