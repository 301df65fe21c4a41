// The Dcs port on etcd v3: one lease per agent, leader lock by create-if-absent and compare-value transactions.
import type { BackupLockRecord, BackupLocks, CasResult, Dcs, LeaderLockTimer, ProxyRegistry, UpgradeLedger } from '../../core/ports.js';
import type { AnyUpgradeRecord } from '../../core/major-upgrade.js';
import type { RedirectRecord, ScopeRedirects } from '../../core/logical-upgrade.js';
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
import { ClusterCache } from './cluster-cache.js';
import { PgwardenError } from '../../util/errors.js';
import type { Log } from '../../util/log.js';
import {
  buildClusterView,
  decodeBackupLock,
  decodeUpgrade,
  decodeRedirect,
  encodeRedirect,
  encodeBackupLock,
  encodeUpgrade,
  decodeHeartbeat,
  encodeFailsafe,
  encodeHeartbeat,
  encodeMember,
  encodeProxy,
  encodeStatus,
  type RawKey,
} from '../codec.js';
import { ClusterKeys } from '../keys.js';
import {
  b64,
  describeQuorumLoss,
  EtcdGateway,
  prefixRangeEnd,
  unb64,
  type EtcdAuth,
  type EtcdTls,
  type GatewayHeader,
  type GatewayKv,
} from './gateway.js';

export type { EtcdAuth, EtcdTls, TlsFile } from './gateway.js';

export interface EtcdDcsOptions {
  readonly endpoints: readonly string[];
  /** CA, client certificate and key for https endpoints (etcd3.cacert, etcd3.cert, etcd3.key). */
  readonly tls?: EtcdTls | undefined;
  /** etcd user and password (etcd3.username, etcd3.password). */
  readonly auth?: EtcdAuth | undefined;
  readonly namespace: string;
  readonly scope: string;
  readonly member: string;
  readonly log?: Log;
}

/** 'h1:2379,h2:2379' or a list, with or without scheme -> ['http://h1:2379', ...]. */
export function parseEtcdHosts(value: string | readonly string[], protocol = 'http'): string[] {
  const items = typeof value === 'string' ? value.split(',') : [...value];
  return items
    .map((item) => item.trim())
    .filter((item) => item !== '')
    .map((item) => (/^[a-z]+:\/\//.test(item) ? item : `${protocol}://${item}`));
}

type Compare =
  | { readonly key: string; readonly target: 'CREATE'; readonly result: 'EQUAL'; readonly create_revision: string }
  | { readonly key: string; readonly target: 'MOD'; readonly result: 'EQUAL'; readonly mod_revision: string }
  | { readonly key: string; readonly target: 'VALUE'; readonly result: 'EQUAL'; readonly value: string }
  | { readonly key: string; readonly target: 'LEASE'; readonly result: 'EQUAL'; readonly lease: string };

type Operation =
  | { readonly request_put: { readonly key: string; readonly value: string; readonly lease?: string } }
  | { readonly request_delete_range: { readonly key: string } };

export class EtcdDcs implements Dcs, BackupLocks, LeaderLockTimer, ProxyRegistry, UpgradeLedger, ScopeRedirects {
  /** The exact value of the backup lock this member wrote: it deletes the lock only while it still holds that. */
  #backupLockValue: string | undefined;
  readonly #keys: ClusterKeys;
  readonly #gateway: EtcdGateway;
  readonly #member: string;
  #leaseId: string | undefined;
  /** The TTL our current lease was granted with: a call asking for another TTL gets a new lease. */
  #leaseTtlSeconds: number | undefined;
  /** Last value/lease we wrote per key, so that unchanged values are not rewritten every cycle. */
  readonly #written = new Map<string, string>();
  readonly #closed = new AbortController();
  /** When the last keepalive of the current lease was sent and answered (performance.now()). */
  #lastKeepAliveSentAtMs: number | undefined;
  readonly #cache: ClusterCache;

  constructor(options: EtcdDcsOptions) {
    this.#keys = new ClusterKeys(options.namespace, options.scope);
    this.#gateway = new EtcdGateway(options.endpoints, options.member, this.#closed.signal, { tls: options.tls, auth: options.auth });
    this.#member = options.member;
    this.#cache = new ClusterCache(this.#keys, unb64);
  }

  get keys(): ClusterKeys {
    return this.#keys;
  }

  /**
   * "etcd has no quorum ..." when a member that answers knows no raft leader; undefined otherwise. For a caller whose
   * request failed with PGW_DCS_UNAVAILABLE (a read that timed out on a quorum-less member looks like a slow etcd).
   */
  async quorumLoss(timeoutMs = 1500): Promise<string | undefined> {
    return describeQuorumLoss(await this.#gateway.endpointStatuses(timeoutMs));
  }

  async loadCluster(signal: AbortSignal): Promise<ClusterView> {
    const ttlMs = this.#leaseTtlSeconds === undefined ? undefined : this.#leaseTtlSeconds * 1000;
    // Without a lease of ours there is no keepalive to vouch for the watch's endpoint (the CLI, the proxy): read.
    if (ttlMs !== undefined) {
      const cached = this.#cache.view({
        nowMs: performance.now(),
        maxReadAgeMs: ttlMs,
        hasEndpointAnswered: (url) => this.#gateway.hasAnsweredWithin(url, ttlMs / 2),
      });
      if (cached !== undefined) return cached;
    }
    const response = await this.#gateway.call<{ header?: GatewayHeader; kvs?: GatewayKv[] }>(
      '/v3/kv/range',
      { key: b64(this.#keys.prefix), range_end: prefixRangeEnd(this.#keys.prefix) },
      signal,
      this.#keys.prefix,
    );
    const raw: RawKey[] = (response.kvs ?? []).map((kv) => ({
      key: unb64(kv.key),
      value: unb64(kv.value),
      modRevision: kv.mod_revision ?? '0',
      createRevision: kv.create_revision ?? '0',
      lease: kv.lease ?? '0',
    }));
    const revision = response.header?.revision ?? '0';
    this.#cache.reset(raw, revision, performance.now());
    return buildClusterView(this.#keys, raw, revision);
  }

  async #txn(compare: readonly Compare[], success: readonly Operation[], signal: AbortSignal, key: string): Promise<boolean> {
    // The heartbeat is not in the cache; any other write must show in this member's next view.
    const call = (): Promise<{ succeeded?: boolean }> => this.#gateway.call('/v3/kv/txn', { compare, success, failure: [] }, signal, key);
    const response = success.length > 0 && key !== this.#keys.heartbeat ? await this.#writing(call) : await call();
    // The gateway omits false fields: a failed transaction has no `succeeded`.
    return response.succeeded === true;
  }

  async #put(key: string, value: string, signal: AbortSignal, lease?: string): Promise<void> {
    await this.#writing(() =>
      this.#gateway.call('/v3/kv/put', { key: b64(key), value: b64(value), ...(lease !== undefined ? { lease } : {}) }, signal, key),
    );
  }

  /**
   * A write of ours must be in this member's next view: the cache is set aside before the request (a view now comes
   * from etcd) and again once it is answered (a read that ran meanwhile may predate the write).
   */
  async #writing<T>(write: () => Promise<T>): Promise<T> {
    this.#cache.invalidate();
    try {
      return await write();
    } finally {
      this.#cache.invalidate();
    }
  }

  async #grantLease(ttlSeconds: number, signal: AbortSignal): Promise<string> {
    const sentAtMs = performance.now();
    const response = await this.#gateway.call<{ ID?: string; TTL?: string; error?: string }>(
      '/v3/lease/grant',
      { TTL: String(ttlSeconds), ID: '0' },
      signal,
    );
    if (response.ID === undefined)
      throw new PgwardenError('PGW_DCS_UNAVAILABLE', `etcd did not grant a lease: ${response.error ?? 'no ID'}`, {
        isRetryable: true,
        context: { member: this.#member },
      });
    this.#leaseId = response.ID;
    this.#leaseTtlSeconds = ttlSeconds;
    this.#lastKeepAliveSentAtMs = sentAtMs;
    this.#written.clear();
    return response.ID;
  }

  /**
   * Keeps our lease alive; a lease that expired (TTL 0 in the answer) or was granted with another TTL is replaced by a
   * new one (keys move to it on their next write), so the lease always has the TTL the caller judges the lock by.
   * With `maxAgeMs`, a keepalive of the current lease sent less than that long ago and answered is enough (the leader
   * renews its lease and then touches its member key in the same cycle: one keepalive, not two, as Patroni refreshes
   * once per loop).
   */
  async #keepAlive(ttlMs: number, signal: AbortSignal, maxAgeMs = 0): Promise<string> {
    const ttlSeconds = Math.max(1, Math.round(ttlMs / 1000));
    const leaseId = this.#leaseId;
    if (leaseId === undefined || this.#leaseTtlSeconds !== ttlSeconds) return this.#grantLease(ttlSeconds, signal);
    const sentAtMs = performance.now();
    const last = this.#lastKeepAliveSentAtMs;
    if (last !== undefined && sentAtMs - last < maxAgeMs) return leaseId;
    const response = await this.#gateway.call<{ result?: { TTL?: string } }>('/v3/lease/keepalive', { ID: leaseId }, signal);
    if (Number(response.result?.TTL ?? '0') <= 0) return this.#grantLease(ttlSeconds, signal);
    if (this.#leaseId === leaseId) this.#lastKeepAliveSentAtMs = sentAtMs;
    return leaseId;
  }

  async acquireLeader(ttlMs: number, signal: AbortSignal): Promise<CasResult> {
    const lease = await this.#keepAlive(ttlMs, signal);
    const key = this.#keys.leader;
    return this.#txn(
      [{ key: b64(key), target: 'CREATE', result: 'EQUAL', create_revision: '0' }],
      [{ request_put: { key: b64(key), value: b64(this.#member), lease } }],
      signal,
      key,
    );
  }

  async acquireBackupLock(record: BackupLockRecord, ttlMs: number, signal: AbortSignal): Promise<CasResult> {
    const lease = await this.#keepAlive(ttlMs, signal);
    const key = this.#keys.backup;
    const value = encodeBackupLock(record);
    const isAcquired = await this.#txn(
      [{ key: b64(key), target: 'CREATE', result: 'EQUAL', create_revision: '0' }],
      [{ request_put: { key: b64(key), value: b64(value), lease } }],
      signal,
      key,
    );
    if (isAcquired) this.#backupLockValue = value;
    return isAcquired;
  }

  async releaseBackupLock(signal: AbortSignal): Promise<CasResult> {
    const value = this.#backupLockValue;
    if (value === undefined) return false;
    const key = this.#keys.backup;
    const isReleased = await this.#txn(
      [{ key: b64(key), target: 'VALUE', result: 'EQUAL', value: b64(value) }],
      [{ request_delete_range: { key: b64(key) } }],
      signal,
      key,
    );
    this.#backupLockValue = undefined;
    return isReleased;
  }

  async readBackupLock(signal: AbortSignal): Promise<BackupLockRecord | undefined> {
    const key = this.#keys.backup;
    const response = await this.#gateway.call<{ kvs?: GatewayKv[] }>('/v3/kv/range', { key: b64(key) }, signal, key);
    const kv = response.kvs?.[0];
    return kv === undefined ? undefined : decodeBackupLock(unb64(kv.value));
  }

  async readUpgrade(signal: AbortSignal): Promise<{ record: AnyUpgradeRecord; revision: string } | undefined> {
    const key = this.#keys.upgrade;
    const response = await this.#gateway.call<{ kvs?: GatewayKv[] }>('/v3/kv/range', { key: b64(key) }, signal, key);
    const kv = response.kvs?.[0];
    if (kv === undefined) return undefined;
    const record = decodeUpgrade(unb64(kv.value));
    if (record === undefined)
      throw new PgwardenError('PGW_DCS_BAD_VALUE', `${key} holds a value that is not an upgrade record`, {
        context: { key, hint: `delete it with pgwarden upgrade --abort (or etcdctl del ${key}) if no upgrade is running` },
      });
    return { record, revision: kv.mod_revision ?? '0' };
  }

  writeUpgrade(record: AnyUpgradeRecord, expectedRevision: string, signal: AbortSignal): Promise<CasResult> {
    return this.#casWrite(this.#keys.upgrade, encodeUpgrade(record), expectedRevision, signal);
  }

  async deleteUpgrade(signal: AbortSignal): Promise<void> {
    await this.#writing(() => this.#gateway.call('/v3/kv/deleterange', { key: b64(this.#keys.upgrade) }, signal, this.#keys.upgrade));
  }

  async readRedirect(signal: AbortSignal): Promise<RedirectRecord | undefined> {
    const key = this.#keys.redirect;
    const response = await this.#gateway.call<{ kvs?: GatewayKv[] }>('/v3/kv/range', { key: b64(key) }, signal, key);
    const kv = response.kvs?.[0];
    if (kv === undefined) return undefined;
    const record = decodeRedirect(unb64(kv.value));
    if (record === undefined)
      throw new PgwardenError('PGW_DCS_BAD_VALUE', `${key} holds a value that is not a redirect record`, {
        context: { key, hint: `delete it (etcdctl del ${key}) unless a logical upgrade is running` },
      });
    return record;
  }

  async writeRedirect(record: RedirectRecord, signal: AbortSignal): Promise<void> {
    await this.#put(this.#keys.redirect, encodeRedirect(record), signal);
  }

  async deleteRedirect(signal: AbortSignal): Promise<void> {
    await this.#writing(() => this.#gateway.call('/v3/kv/deleterange', { key: b64(this.#keys.redirect) }, signal, this.#keys.redirect));
  }

  async renewLeader(ttlMs: number, signal: AbortSignal): Promise<CasResult> {
    const lease = await this.#keepAlive(ttlMs, signal);
    const key = this.#keys.leader;
    const ours: Compare = { key: b64(key), target: 'VALUE', result: 'EQUAL', value: b64(this.#member) };
    // Usual case: the key holds our name on our current lease; the keepalive above was the renewal, and this
    // compare-value transaction (no write, so no watch event for everyone) proves the key is still ours.
    if (await this.#txn([ours, { key: b64(key), target: 'LEASE', result: 'EQUAL', lease }], [], signal, key)) return true;
    // The key is ours but on an older lease (TTL change, re-granted lease): move it, still only if it is ours.
    return this.#txn([ours], [{ request_put: { key: b64(key), value: b64(this.#member), lease } }], signal, key);
  }

  releaseLeader(signal: AbortSignal): Promise<CasResult> {
    const key = this.#keys.leader;
    return this.#txn(
      [{ key: b64(key), target: 'VALUE', result: 'EQUAL', value: b64(this.#member) }],
      [{ request_delete_range: { key: b64(key) } }],
      signal,
      key,
    );
  }

  deleteLeaderIfUnchanged(modRevision: string, signal: AbortSignal): Promise<CasResult> {
    const key = this.#keys.leader;
    return this.#txn(
      [{ key: b64(key), target: 'MOD', result: 'EQUAL', mod_revision: modRevision }],
      [{ request_delete_range: { key: b64(key) } }],
      signal,
      key,
    );
  }

  async beatHeartbeat(fenceMs: number, signal: AbortSignal): Promise<CasResult> {
    const lease = this.#leaseId;
    if (lease === undefined) return false;
    const leader = b64(this.#keys.leader);
    const key = this.#keys.heartbeat;
    try {
      return await this.#txn(
        [
          { key: leader, target: 'VALUE', result: 'EQUAL', value: b64(this.#member) },
          { key: leader, target: 'LEASE', result: 'EQUAL', lease },
        ],
        [{ request_put: { key: b64(key), value: b64(encodeHeartbeat(this.#member, fenceMs)), lease } }],
        signal,
        key,
      );
    } catch (error) {
      // A beat that got no answer in time may have met a stalled or cut-off etcd member: the next one tries another,
      // so that one unhealthy etcd member cannot silence a healthy leader.
      this.#gateway.rotate();
      throw error;
    }
  }

  async readHeartbeat(signal: AbortSignal): Promise<HeartbeatRecord | undefined> {
    const key = this.#keys.heartbeat;
    const response = await this.#gateway
      .call<{ kvs?: GatewayKv[] }>('/v3/kv/range', { key: b64(key) }, signal, key)
      .catch((error: unknown) => {
        // As for a beat: the next read asks another etcd member.
        this.#gateway.rotate();
        throw error;
      });
    const kv = response.kvs?.[0];
    return kv === undefined ? undefined : decodeHeartbeat(unb64(kv.value), kv.mod_revision ?? '0');
  }

  async watchHeartbeat(
    fromRevision: string,
    onBeat: (beat: HeartbeatRecord | undefined, revision: string) => void,
    signal: AbortSignal,
  ): Promise<void> {
    const start = (BigInt(fromRevision) + 1n).toString();
    await this.#gateway.watchStream([{ key: this.#keys.heartbeat }], start, signal, (batch) => {
      for (const event of batch.events) {
        const revision = event.kv?.mod_revision ?? batch.revision ?? fromRevision;
        onBeat(event.type === 'DELETE' ? undefined : decodeHeartbeat(unb64(event.kv?.value), revision), revision);
      }
      return false;
    });
  }

  deleteSilentLeader(leader: LeaderRecord, heartbeatRevision: string, signal: AbortSignal): Promise<CasResult> {
    const leaderKey = b64(this.#keys.leader);
    const heartbeatKey = b64(this.#keys.heartbeat);
    const sameLeader: Compare =
      leader.createRevision !== undefined
        ? { key: leaderKey, target: 'CREATE', result: 'EQUAL', create_revision: leader.createRevision }
        : { key: leaderKey, target: 'MOD', result: 'EQUAL', mod_revision: leader.modRevision };
    return this.#txn(
      [
        sameLeader,
        { key: leaderKey, target: 'VALUE', result: 'EQUAL', value: b64(leader.name) },
        { key: heartbeatKey, target: 'MOD', result: 'EQUAL', mod_revision: heartbeatRevision },
      ],
      [{ request_delete_range: { key: leaderKey } }, { request_delete_range: { key: heartbeatKey } }],
      signal,
      this.#keys.leader,
    );
  }

  async touchMember(record: MemberRecord, ttlMs: number, signal: AbortSignal): Promise<void> {
    const lease = await this.#keepAlive(ttlMs, signal, Math.min(1000, ttlMs / 10));
    const key = this.#keys.member(this.#member);
    const value = encodeMember(record);
    const fingerprint = `${lease}\u0000${value}`;
    if (this.#written.get(key) === fingerprint) return;
    await this.#put(key, value, signal, lease);
    this.#written.set(key, fingerprint);
  }

  async leaderLockTimeLeft(signal: AbortSignal): Promise<number | undefined> {
    const key = this.#keys.leader;
    const response = await this.#gateway.call<{ kvs?: GatewayKv[] }>('/v3/kv/range', { key: b64(key) }, signal, key);
    const lease = response.kvs?.[0]?.lease;
    if (lease === undefined || lease === '0') return undefined;
    // TTL -1: the lease expired (its keys are going): nothing left.
    const answer = await this.#gateway.call<{ TTL?: string }>('/v3/lease/timetolive', { ID: lease }, signal, key);
    return Math.max(0, Number(answer.TTL ?? '-1')) * 1000;
  }

  async publishProxy(record: ProxyRecord, ttlMs: number, signal: AbortSignal): Promise<void> {
    const lease = await this.#keepAlive(ttlMs, signal, Math.min(1000, ttlMs / 10));
    const key = this.#keys.proxy(record.name);
    const value = encodeProxy(record);
    const fingerprint = `${lease}\u0000${value}`;
    if (this.#written.get(key) === fingerprint) return;
    await this.#put(key, value, signal, lease);
    this.#written.set(key, fingerprint);
  }

  async withdrawProxy(name: string, signal: AbortSignal): Promise<void> {
    const key = this.#keys.proxy(name);
    await this.#writing(() => this.#gateway.call('/v3/kv/deleterange', { key: b64(key) }, signal, key));
    this.#written.delete(key);
  }

  initialize(value: string, signal: AbortSignal): Promise<CasResult> {
    const key = this.#keys.initialize;
    return this.#txn(
      [{ key: b64(key), target: 'CREATE', result: 'EQUAL', create_revision: '0' }],
      [{ request_put: { key: b64(key), value: b64(value) } }],
      signal,
      key,
    );
  }

  setInitialize(sysid: string, signal: AbortSignal): Promise<void> {
    return this.#put(this.#keys.initialize, sysid, signal);
  }

  async cancelInitialize(signal: AbortSignal): Promise<void> {
    await this.#writing(() => this.#gateway.call('/v3/kv/deleterange', { key: b64(this.#keys.initialize) }, signal, this.#keys.initialize));
  }

  #casWrite(key: string, value: string | undefined, expectedRevision: string | undefined, signal: AbortSignal): Promise<CasResult> {
    const operation: Operation =
      value === undefined ? { request_delete_range: { key: b64(key) } } : { request_put: { key: b64(key), value: b64(value) } };
    const compare: Compare[] =
      expectedRevision === undefined ? [] : [{ key: b64(key), target: 'MOD', result: 'EQUAL', mod_revision: expectedRevision }];
    return this.#txn(compare, [operation], signal, key);
  }

  setConfig(config: DynamicConfig, expectedRevision: string | undefined, signal: AbortSignal): Promise<CasResult> {
    return this.#casWrite(this.#keys.config, JSON.stringify(config), expectedRevision, signal);
  }

  setFailover(intent: FailoverIntent | undefined, expectedRevision: string | undefined, signal: AbortSignal): Promise<CasResult> {
    return this.#casWrite(this.#keys.failover, intent === undefined ? undefined : JSON.stringify(intent), expectedRevision, signal);
  }

  setSync(state: SyncState | undefined, expectedRevision: string | undefined, signal: AbortSignal): Promise<CasResult> {
    return this.#casWrite(this.#keys.sync, state === undefined ? undefined : JSON.stringify(state), expectedRevision, signal);
  }

  async setHistory(history: readonly HistoryEntry[], signal: AbortSignal): Promise<void> {
    await this.#put(this.#keys.history, JSON.stringify(history), signal);
  }

  async setStatus(optime: number, slots: Readonly<Record<string, number>> | undefined, signal: AbortSignal): Promise<void> {
    const key = this.#keys.status;
    const value = encodeStatus(optime, slots);
    if (this.#written.get(key) === value) return;
    await this.#put(key, value, signal);
    this.#written.set(key, value);
  }

  /** Permanent (no lease), as in Patroni: replicas must still read the topology after the leader's lease expired. */
  async setFailsafe(topology: FailsafeTopology, signal: AbortSignal): Promise<void> {
    await this.#put(this.#keys.failsafe, encodeFailsafe(topology), signal);
  }

  async watch(fromRevision: string, signal: AbortSignal): Promise<void> {
    const start = (BigInt(fromRevision) + 1n).toString();
    const keys = this.#keys;
    // Every key but the heartbeat, which changes several times a second and has its own watch: two ranges on one stream.
    const ranges = [
      { key: keys.prefix, rangeEnd: b64(keys.heartbeat) },
      { key: `${keys.heartbeat}\0`, rangeEnd: prefixRangeEnd(keys.prefix) },
    ];
    const watchId = this.#cache.watchOpened(BigInt(start));
    try {
      await this.#gateway.watchStream(
        ranges,
        start,
        signal,
        (batch) => {
          this.#cache.apply(watchId, batch.events);
          // A compacted start revision means changes were missed: wake the loop so that it reads everything.
          return batch.isCancelled || batch.events.some((event) => keys.isControlKey(unb64(event.kv?.key)));
        },
        (endpointUrl) => this.#cache.watchCreated(watchId, endpointUrl),
      );
    } finally {
      this.#cache.watchEnded(watchId);
    }
  }

  /** `pgwarden remove`: deletes every key of this cluster (patronictl remove does the same). */
  async removeCluster(signal: AbortSignal): Promise<void> {
    await this.#writing(() =>
      this.#gateway.call(
        '/v3/kv/deleterange',
        { key: b64(this.#keys.prefix), range_end: prefixRangeEnd(this.#keys.prefix) },
        signal,
        this.#keys.prefix,
      ),
    );
  }

  close(): Promise<void> {
    this.#closed.abort(
      new PgwardenError('PGW_DCS_CLOSED', 'DCS client closed', {
        context: { member: this.#member, key: this.#keys.prefix, hint: 'the client was closed: open a new one to talk to etcd again' },
      }),
    );
    this.#gateway.close();
    return Promise.resolve();
  }
}
