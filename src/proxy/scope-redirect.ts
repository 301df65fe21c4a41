// The proxy's cluster source during and after a logical major upgrade: it reads the proxy's own scope and its
// `redirect` key, and hands the feed the view to route by. No redirect: the scope as it is. `hold`: the scope without
// its leader, so the proxy holds new primary clients and cuts the open ones (fail closed, as in a switchover).
// `switched`: the other scope's view, so the proxy follows that cluster's leader (confirmed writable first, as always).
import type { RedirectRecord } from '../core/logical-upgrade.js';
import type { ClusterView } from '../core/types.js';
import type { Log } from '../util/log.js';
import type { ClusterSource } from './cluster-feed.js';

export interface RedirectableSource extends ClusterSource {
  readRedirect(signal: AbortSignal): Promise<RedirectRecord | undefined>;
}

/** Pure: the view to route by, from the home scope's view, its redirect record and (when switched) the other scope's. */
export function redirectedView(home: ClusterView, redirect: RedirectRecord | undefined, other: ClusterView | undefined): ClusterView {
  if (redirect === undefined) return home;
  if (redirect.phase === 'hold') return { ...home, leader: undefined };
  // Missing the other scope's read is not a reason to route to the old cluster, which may be fenced already: hold.
  if (other === undefined) return { ...home, leader: undefined };
  // Both reads are revisions of one etcd: watching from the older one misses no change of either scope.
  const revision = BigInt(home.revision) < BigInt(other.revision) ? home.revision : other.revision;
  return { ...other, revision };
}

export class ScopeRedirectSource implements ClusterSource {
  readonly #home: RedirectableSource;
  readonly #open: (scope: string) => ClusterSource;
  readonly #log: Log;
  readonly #others = new Map<string, ClusterSource>();
  /** The scope the last read was redirected to (watched beside the home scope). */
  #followed: string | undefined;
  #isHolding = false;

  constructor(home: RedirectableSource, open: (scope: string) => ClusterSource, log: Log) {
    this.#home = home;
    this.#open = open;
    this.#log = log;
  }

  async loadCluster(signal: AbortSignal): Promise<ClusterView> {
    const [home, redirect] = await Promise.all([this.#home.loadCluster(signal), this.#home.readRedirect(signal)]);
    const followed = redirect?.phase === 'switched' ? redirect.scope : undefined;
    if (followed !== this.#followed || (redirect?.phase === 'hold') !== this.#isHolding) {
      this.#log.info(
        { redirect: redirect ?? null },
        redirect === undefined
          ? 'no redirect: following this scope'
          : redirect.phase === 'hold'
            ? `redirect: holding primary clients (a cutover to scope ${redirect.scope} is under way)`
            : `redirect: following the leader of scope ${redirect.scope}`,
      );
      this.#isHolding = redirect?.phase === 'hold';
    }
    this.#followed = followed;
    const other = followed === undefined ? undefined : await this.#source(followed).loadCluster(signal);
    return redirectedView(home, redirect, other);
  }

  async watch(fromRevision: string, signal: AbortSignal): Promise<void> {
    const followed = this.#followed;
    if (followed === undefined) return this.#home.watch(fromRevision, signal);
    // The redirect key lives in the home scope, the leader in the other: the first change in either wakes the feed.
    const both = new AbortController();
    const onAbort = (): void => both.abort();
    signal.addEventListener('abort', onAbort, { once: true });
    try {
      await Promise.race([this.#home.watch(fromRevision, both.signal), this.#source(followed).watch(fromRevision, both.signal)]);
    } finally {
      signal.removeEventListener('abort', onAbort);
      both.abort();
    }
  }

  #source(scope: string): ClusterSource {
    let source = this.#others.get(scope);
    if (source === undefined) {
      source = this.#open(scope);
      this.#others.set(scope, source);
    }
    return source;
  }
}
