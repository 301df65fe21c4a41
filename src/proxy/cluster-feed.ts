// Keeps the proxy's view of the cluster fresh: an etcd watch for immediate leader changes, a periodic linearizable read
// that proves the view is still current, and a /primary probe of each new lock holder. It decides nothing itself.
import type { Dcs } from '../core/ports.js';
import type { ClusterView, MemberRecord } from '../core/types.js';
import { deadline } from '../util/abort.js';
import { describeError } from '../util/errors.js';
import type { Log } from '../util/log.js';
import { routePrimary, type RoutingInput, type RoutingOptions } from './routing.js';

export type ClusterSource = Pick<Dcs, 'loadCluster' | 'watch'>;
/** True when the member's own REST API says it is the writable lock holder (GET /primary answered 200). */
export type PrimaryProbe = (member: MemberRecord, signal: AbortSignal) => Promise<boolean>;

export interface ClusterFeedOptions {
  readonly source: ClusterSource;
  readonly probe: PrimaryProbe;
  readonly nowMs: () => number;
  readonly log: Log;
  readonly routing: RoutingOptions;
  /** Linearizable re-read period: how often the view is proven current without any change. */
  readonly refreshMs?: number;
  readonly probeIntervalMs?: number;
  readonly requestTimeoutMs?: number;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export class ClusterFeed {
  readonly #options: ClusterFeedOptions;
  #view: ClusterView | undefined;
  #confirmedAtMs: number | undefined;
  #confirmedPrimary: string | undefined;
  #probing: string | undefined;
  #failoverSeen: { revision: string; atMs: number } | undefined;
  #reloading: Promise<void> | undefined;
  #isReloadQueued = false;
  #lastLoadError: string | undefined;
  readonly #listeners = new Set<() => void>();
  readonly #stop = new AbortController();
  readonly #timers: NodeJS.Timeout[] = [];
  #watchLoop: Promise<void> | undefined;

  constructor(options: ClusterFeedOptions) {
    this.#options = options;
  }

  input(): RoutingInput {
    return {
      view: this.#view,
      confirmedAtMs: this.#confirmedAtMs,
      nowMs: this.#options.nowMs(),
      confirmedPrimary: this.#confirmedPrimary,
      wallIso: new Date().toISOString(),
      failoverSeenAtMs: this.#failoverSeen?.atMs,
    };
  }

  onChange(listener: () => void): void {
    this.#listeners.add(listener);
  }

  start(): void {
    this.reload();
    this.#timers.push(setInterval(() => this.reload(), this.#options.refreshMs ?? 1000));
    // Staleness is a function of time: re-evaluate routes even when nothing arrives from the DCS.
    this.#timers.push(setInterval(() => this.#emit(), 100));
    this.#watchLoop = this.#watch();
  }

  async stop(): Promise<void> {
    this.#stop.abort();
    for (const timer of this.#timers) clearInterval(timer);
    await this.#watchLoop;
    await this.#reloading;
  }

  /** Re-reads the cluster (coalescing concurrent requests into one follow-up read). */
  reload(): void {
    if (this.#stop.signal.aborted) return;
    if (this.#reloading !== undefined) {
      this.#isReloadQueued = true;
      return;
    }
    this.#reloading = this.#load().finally(() => {
      this.#reloading = undefined;
      if (this.#isReloadQueued) {
        this.#isReloadQueued = false;
        this.reload();
      }
    });
  }

  async #load(): Promise<void> {
    const startedAtMs = this.#options.nowMs();
    try {
      const view = await this.#options.source.loadCluster(deadline(this.#options.requestTimeoutMs ?? 2000, this.#stop.signal));
      this.#view = view;
      const failoverRevision = view.failover === undefined ? undefined : (view.failoverRevision ?? 'unknown');
      if (failoverRevision === undefined) this.#failoverSeen = undefined;
      else if (this.#failoverSeen?.revision !== failoverRevision) this.#failoverSeen = { revision: failoverRevision, atMs: startedAtMs };
      // The read was served some time after it was sent: date it from the send, the conservative end.
      this.#confirmedAtMs = startedAtMs;
      if (this.#lastLoadError !== undefined) this.#options.log.info({}, 'DCS reachable again');
      this.#lastLoadError = undefined;
      this.#emit();
    } catch (error) {
      if (this.#stop.signal.aborted) return;
      const message = describeError(error);
      if (message !== this.#lastLoadError)
        this.#options.log.warn({ error: message }, 'cannot read the cluster from the DCS; routing on the last view until it is too old');
      this.#lastLoadError = message;
    }
  }

  async #watch(): Promise<void> {
    while (!this.#stop.signal.aborted) {
      const revision = this.#view?.revision;
      if (revision === undefined) {
        await sleep(50);
        continue;
      }
      try {
        await this.#options.source.watch(revision, this.#stop.signal);
        this.reload();
        // Let the reload land before watching again from the new revision.
        await this.#reloading;
      } catch {
        if (!this.#stop.signal.aborted) await sleep(200);
      }
    }
  }

  #emit(): void {
    this.#startProbeIfNeeded();
    for (const listener of this.#listeners) listener();
  }

  #startProbeIfNeeded(): void {
    const route = routePrimary(this.input(), this.#options.routing);
    if (route.kind !== 'hold' || route.probe === undefined) return;
    const { leader, member } = route.probe;
    if (this.#probing === leader) return;
    this.#probing = leader;
    void this.#probeUntilConfirmed(leader, member);
  }

  async #probeUntilConfirmed(leader: string, member: MemberRecord): Promise<void> {
    const interval = this.#options.probeIntervalMs ?? 20;
    while (!this.#stop.signal.aborted && this.#probing === leader) {
      const current = routePrimary(this.input(), this.#options.routing);
      if (current.kind === 'route' || current.probe?.leader !== leader) break;
      const isPrimary = await this.#options.probe(member, deadline(1000, this.#stop.signal)).catch(() => false);
      if (isPrimary) {
        this.#confirmedPrimary = leader;
        this.#options.log.info({ leader: member.name }, 'new primary confirmed writable by its REST API');
        break;
      }
      await sleep(interval);
    }
    if (this.#probing === leader) this.#probing = undefined;
    this.#emit();
  }
}
