// The cluster's keys as the last range read saw them, kept current by the agent's DCS watch, so that an idle cycle
// needs no range read (Patroni's etcd3 client keeps the same kind of cache). No I/O: EtcdDcs feeds it and asks it.
//
// A cached view is served only while all of this holds, else the caller reads etcd again:
// - a watch is open whose events start no later than the revision after the cache's newest (no gap), and etcd has
//   accepted it (created) on an endpoint;
// - that endpoint answered a linearizable call recently: a watch on an etcd member cut off from the quorum stalls
//   silently, while a keepalive or transaction through it fails, so a recent answer bounds how stale the watch can be;
// - this member wrote nothing since the last read (its own write must be visible to its next decision at once);
// - the last full read is younger than a bound (a read now and then repairs any bug in applying events).
// The heartbeat key is not in the watch (it changes several times a second and has a watch of its own): cached views
// leave it out rather than carry an old beat.
import type { ClusterKeys } from '../keys.js';
import type { ClusterView } from '../../core/types.js';
import { buildClusterView, type RawKey } from '../codec.js';
import type { GatewayKv } from './gateway.js';

/** Events between two reads beyond which the next view comes from a read (an idle cluster has a handful). */
const MAX_APPLIED_EVENTS = 1000;

export interface CacheEvent {
  readonly type?: string;
  readonly kv?: GatewayKv;
}

interface OpenWatch {
  readonly id: number;
  /** The first revision the watch delivers. */
  readonly from: bigint;
  /** The endpoint that accepted every range of the watch; undefined until then. */
  endpoint: string | undefined;
}

export interface CacheFreshness {
  readonly nowMs: number;
  /** A full read older than this is not served from the cache. */
  readonly maxReadAgeMs: number;
  /** Whether the watch's endpoint answered a linearizable call recently enough. */
  readonly hasEndpointAnswered: (url: string) => boolean;
}

export class ClusterCache {
  readonly #keys: ClusterKeys;
  readonly #decode: (key: string | undefined) => string;
  #kvs = new Map<string, RawKey>();
  /** Revision of the last full read: an event at or below it is already in #kvs. */
  #readRevision: bigint | undefined;
  #readAtMs = 0;
  /** Newest revision the cache reflects (the read's, or a later event's). */
  #revision = 0n;
  #isDirty = false;
  /**
   * Events applied since the last read, kept so that a read whose answer is older than an event already applied (the
   * watch was faster than the range) does not undo it; bounded, beyond which the next view comes from a read.
   */
  #applied: { readonly revision: bigint; readonly key: string; readonly entry: RawKey | undefined }[] = [];
  #watch: OpenWatch | undefined;
  #nextWatchId = 1;

  constructor(keys: ClusterKeys, decode: (key: string | undefined) => string) {
    this.#keys = keys;
    this.#decode = decode;
  }

  /** A full range read: replaces everything. */
  reset(raw: readonly RawKey[], revision: string, nowMs: number): void {
    const readRevision = BigInt(revision);
    this.#kvs = new Map(raw.map((item) => [item.key, item]));
    this.#readRevision = readRevision;
    this.#applied = this.#applied.filter((change) => change.revision > readRevision);
    for (const change of this.#applied) this.#put(change.key, change.revision, change.entry);
    if (this.#revision < readRevision) this.#revision = readRevision;
    this.#readAtMs = nowMs;
    this.#isDirty = false;
  }

  /** This member changed a key: the next view comes from etcd. */
  invalidate(): void {
    this.#isDirty = true;
  }

  /** A watch starting at `fromRevision` is being opened; returns its id for the calls below. */
  watchOpened(fromRevision: bigint): number {
    const id = this.#nextWatchId++;
    this.#watch = { id, from: fromRevision, endpoint: undefined };
    return id;
  }

  watchCreated(id: number, endpointUrl: string): void {
    if (this.#watch?.id === id) this.#watch.endpoint = endpointUrl;
  }

  watchEnded(id: number): void {
    if (this.#watch?.id === id) this.#watch = undefined;
  }

  /** Applies a watch batch; events older than what the cache holds (replayed or already read) change nothing. */
  apply(id: number, events: readonly CacheEvent[]): void {
    if (this.#watch?.id !== id || this.#readRevision === undefined) return;
    for (const event of events) {
      const kv = event.kv;
      if (kv?.key === undefined || kv.mod_revision === undefined) continue;
      const key = this.#decode(kv.key);
      const revision = BigInt(kv.mod_revision);
      if (revision > this.#revision) this.#revision = revision;
      if (revision <= this.#readRevision) continue;
      const entry: RawKey | undefined =
        event.type === 'DELETE'
          ? undefined
          : {
              key,
              value: this.#decode(kv.value),
              modRevision: kv.mod_revision,
              createRevision: kv.create_revision ?? kv.mod_revision,
              lease: kv.lease ?? '0',
            };
      this.#put(key, revision, entry);
      this.#applied.push({ revision, key, entry });
    }
    if (this.#applied.length > MAX_APPLIED_EVENTS) {
      this.#applied = [];
      this.#isDirty = true;
    }
  }

  /** One change at `revision` (undefined: deleted), unless the cache already holds that key at a later revision. */
  #put(key: string, revision: bigint, entry: RawKey | undefined): void {
    const held = this.#kvs.get(key);
    if (held !== undefined && BigInt(held.modRevision) >= revision) return;
    if (entry === undefined) this.#kvs.delete(key);
    else this.#kvs.set(key, entry);
  }

  /** The view from the cache when it may be trusted (see the top of this file), else undefined. */
  view(freshness: CacheFreshness): ClusterView | undefined {
    const watch = this.#watch;
    if (this.#readRevision === undefined || this.#isDirty || watch?.endpoint === undefined) return undefined;
    if (watch.from > this.#revision + 1n) return undefined;
    if (freshness.nowMs - this.#readAtMs > freshness.maxReadAgeMs) return undefined;
    if (!freshness.hasEndpointAnswered(watch.endpoint)) return undefined;
    const raw = [...this.#kvs.values()].filter((item) => item.key !== this.#keys.heartbeat);
    return buildClusterView(this.#keys, raw, this.#revision.toString());
  }
}
