// Applies kernel routes with nft and keeps renewing them: the I/O side of kernel-rules.ts. Nothing here decides where
// traffic goes; the proxy server hands over a KernelRoute computed from the primary route.
import { describeError, PgwardenError } from '../util/errors.js';
import type { Log } from '../util/log.js';
import { runCommand } from '../util/run-command.js';
import { parseCounters, renderRoute, renderTable, type KernelCounters, type KernelListener, type KernelRoute } from './kernel-rules.js';

const NFT_TIMEOUT_MS = 5000;

const nft = (args: readonly string[], input?: string): Promise<string> =>
  runCommand('nft', args, { ...(input !== undefined ? { input } : {}), timeoutMs: NFT_TIMEOUT_MS });

export class KernelDataPath {
  readonly #listener: KernelListener;
  readonly #leaseMs: number;
  readonly #log: Log;
  /** Where the route comes from: asked at every renewal, so time-based staleness needs no event. */
  #source: () => KernelRoute;
  #route: KernelRoute = { liveGenerations: [] };
  #applied = '';
  #queue: Promise<void> = Promise.resolve();
  #timer: NodeJS.Timeout | undefined;
  #isClosed = false;
  #failures = 0;

  private constructor(listener: KernelListener, leaseMs: number, log: Log, source: () => KernelRoute) {
    this.#source = source;
    this.#listener = listener;
    this.#leaseMs = leaseMs;
    this.#log = log;
  }

  /** Creates (or replaces) the listener's table; fails with what to do when nft or the privilege is missing. */
  static async open(listener: KernelListener, leaseMs: number, log: Log, source: () => KernelRoute): Promise<KernelDataPath> {
    try {
      await nft(['-f', '-'], renderTable(listener));
    } catch (error) {
      throw new PgwardenError(
        'PGW_PROXY_KERNEL',
        `proxy.data_path: kernel could not set up nftables table ${listener.table} for ${listener.host}:${listener.port}: ${describeError(error)}; install nftables (apt-get install nftables) and run the proxy as root or with CAP_NET_ADMIN, or set proxy.data_path: userspace`,
        {
          context: { hint: 'proxy.data_path: userspace needs no privileges' },
          cause: error,
        },
      );
    }
    const path = new KernelDataPath(listener, leaseMs, log, source);
    // Renewed well within the lease, from the route as it is now (staleness is a matter of time, not of events).
    path.#timer = setInterval(() => void path.refresh(), Math.max(100, Math.floor(leaseMs / 4)));
    path.#timer.unref();
    await path.refresh();
    return path;
  }

  /** Applies the route as the source gives it now (each apply renews the lease); resolves once nft has taken it. */
  refresh(): Promise<void> {
    return this.#apply(this.#source());
  }

  /** A listener a reload replaced: its open flows keep following the route, but no new connection is routed. */
  retire(): Promise<void> {
    const source = this.#source;
    this.#source = () => ({ liveGenerations: source().liveGenerations });
    return this.refresh();
  }

  get listener(): KernelListener {
    return this.#listener;
  }

  #apply(route: KernelRoute): Promise<void> {
    if (this.#isClosed) return Promise.resolve();
    this.#route = route;
    const run = async (): Promise<void> => {
      if (this.#isClosed) return;
      const script = renderRoute(this.#listener, this.#route, this.#leaseMs);
      try {
        await nft(['-f', '-'], script);
        if (this.#failures > 0) this.#log.info({ table: this.#listener.table }, 'kernel route renewed again');
        this.#failures = 0;
        const summary = this.#route.target === undefined ? 'none' : `${this.#route.target.host}:${this.#route.target.port}`;
        if (summary !== this.#applied) {
          this.#log.info(
            { table: this.#listener.table, target: summary, live: this.#route.liveGenerations.length },
            'kernel route applied',
          );
          this.#applied = summary;
        }
      } catch (error) {
        // The elements expire by themselves: a failing renewal fails closed, and the proxy's own listener takes over.
        if (this.#failures++ === 0)
          this.#log.error(
            { table: this.#listener.table, error: describeError(error) },
            'could not renew the kernel route; it expires and clients fall back to the proxy',
          );
      }
    };
    this.#queue = this.#queue.then(run);
    return this.#queue;
  }

  async counters(): Promise<KernelCounters> {
    return parseCounters(await nft(['-j', 'list', 'table', 'ip', this.#listener.table]));
  }

  /**
   * Cuts kernel-routed flows and removes the table. The NAT of an established flow lives in conntrack, not in the
   * table, so the flows are deleted there first; without the conntrack tool the emptied table stays and keeps
   * resetting them (the next proxy on this listener replaces it).
   */
  async close(): Promise<void> {
    if (this.#isClosed) return;
    await this.#apply({ liveGenerations: [] });
    this.#isClosed = true;
    if (this.#timer !== undefined) clearInterval(this.#timer);
    await this.#queue;
    const { host, port, table } = this.#listener;
    const flows = ['-D', '-p', 'tcp', '--orig-port-dst', String(port), ...(host === '0.0.0.0' ? [] : ['--orig-dst', host])];
    const deleted = await runCommand('conntrack', flows, { timeoutMs: NFT_TIMEOUT_MS }).then(
      () => true,
      (error: unknown) => / 0 flow entries have been deleted/.test(describeError(error)),
    );
    if (!deleted) {
      this.#log.warn(
        { table },
        `kept nftables table ${table} (emptied) so that kernel-routed flows stay cut: install conntrack to let the proxy remove it`,
      );
      return;
    }
    try {
      await nft(['delete', 'table', 'ip', table]);
    } catch (error) {
      this.#log.warn({ table, error: describeError(error) }, 'could not delete the kernel route table (its elements expire anyway)');
    }
  }
}
