// A pgwarden proxy instance: the cluster feed, a primary and a replica listener, and the node:http wiring of its
// HTTP endpoint (answers from proxy-http.ts). Route changes close connections to nodes that no longer hold the lock.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { hostname } from 'node:os';
import { replicaFallbackOf, type ProxySection } from '../config/proxy-config.js';
import { describeError, PgwardenError } from '../util/errors.js';
import type { Log } from '../util/log.js';
import { isWaitTimeout, waitUntil } from '../util/wait-until.js';
import type { PositionReader, ProxyRegistry } from '../core/ports.js';
import type { ClusterView, ProxyRecord } from '../core/types.js';
import { proxyRecordOf, RoutePublisher } from './route-publisher.js';
import { ClusterFeed, type ClusterSource, type PrimaryProbe } from './cluster-feed.js';
import { PositionMonitor } from './member-positions.js';
import { Forwarder, type ListenerKind, type ProxiedConnection } from './forwarder.js';
import { BackendProbe } from './backend-probe.js';
import { KernelDataPath } from './kernel-data-path.js';
import { kernelTableName, NO_GENERATION, planKernelRoute, type KernelGeneration, type KernelRoute } from './kernel-rules.js';
import { handleProxyHttp, needsMetrics, type ProxyStatus, type RenderedMetrics } from './proxy-http.js';
import { ProxyMetrics } from './proxy-metrics.js';
import { SplitListener, type SplitSettings } from './split/split-listener.js';
import {
  pickLeastConnections,
  primaryConnectionsToClose,
  routePrimary,
  routeReplicas,
  type Backend,
  type RoutingInput,
  type RoutingOptions,
} from './routing.js';

export interface ProxyServerOptions {
  readonly section: ProxySection;
  /** The cluster name: part of the kernel data path's nftables table name. */
  readonly scope?: string;
  readonly source: ClusterSource;
  readonly probe: PrimaryProbe;
  readonly nowMs: () => number;
  readonly log: Log;
  /** Linearizable re-read period of the cluster feed. */
  readonly refreshMs?: number;
  /** Reads members' WAL positions (built by the composition root when proxy.monitor is set). */
  readonly positionReader?: PositionReader;
  /** Publishes this proxy's routes as `proxies/<name>` in the DCS (the members' dashboards show them). */
  readonly publish?: { readonly registry: ProxyRegistry } | undefined;
  /** Extra handler on the API port, asked first (the dashboard): true when it answered the request. */
  readonly httpExtension?: ((request: IncomingMessage, response: ServerResponse) => boolean) | undefined;
}

export type { ProxyStatus } from './proxy-http.js';

export interface ProxyFlow {
  readonly bufferedBytes: number;
  readonly pausedClients: number;
  readonly bytesFromClients: number;
}

const sameAddress = (a: { host: string; port: number } | undefined, b: { host: string; port: number } | undefined): boolean =>
  a?.host === b?.host && a?.port === b?.port;

export class ProxyServer {
  #section: ProxySection;
  readonly #options: ProxyServerOptions;
  readonly #feed: ClusterFeed;
  readonly #metrics: ProxyMetrics;
  readonly #forwarders: Record<ListenerKind, Forwarder | undefined> = { primary: undefined, replica: undefined };
  /** Listeners replaced by a reload: no longer accepting, but their connections still follow route changes. */
  readonly #retired: Forwarder[] = [];
  #http: Server | undefined;
  #lastPrimary: string | undefined = 'unset';
  readonly #waiters = new Set<() => void>();
  #replicaPicks = 0;
  /** The kernel data path of the current primary listener, and of listeners a reload replaced. */
  #kernel: KernelDataPath | undefined;
  readonly #retiredKernels: KernelDataPath[] = [];
  /** Connection mark of the lock holder the kernel routes to; a new holder gets a new mark, cutting older flows. */
  #kernelGeneration: KernelGeneration = NO_GENERATION;
  #isStopping = false;
  /** With proxy.monitor: each member's own WAL position, a few times a second. */
  readonly #positions: PositionMonitor | undefined;
  /** In kernel mode: notices a lock holder whose port refuses, well before its key expires. */
  readonly #probe = new BackendProbe({
    target: () => {
      const route = routePrimary(this.#input(), this.#routingOptions());
      return route.kind === 'route' ? route.backend : undefined;
    },
    onChange: () => this.#onClusterChange(),
    intervalMs: 200,
    timeoutMs: 1000,
  });
  readonly #publisher: RoutePublisher | undefined;
  readonly #viewListeners = new Set<() => void>();
  #lastViewRevision: string | undefined;
  #nextMark = (0x50000000 + Math.floor(Math.random() * 0x0fffffff)) >>> 0;
  /** proxy.split_listen: the pooled read/write split endpoint (started once; a reload does not move it). */
  #split: SplitListener | undefined;
  #splitSettings: { readonly section: ProxySection; readonly settings: SplitSettings } | undefined;
  readonly ports: { primary: number; replica: number | undefined; api: number | undefined; split: number | undefined } = {
    primary: 0,
    replica: undefined,
    api: undefined,
    split: undefined,
  };

  private constructor(options: ProxyServerOptions) {
    this.#options = options;
    this.#section = options.section;
    this.#feed = new ClusterFeed({
      source: options.source,
      probe: options.probe,
      nowMs: options.nowMs,
      log: options.log,
      routing: this.#routingOptions(),
      refreshMs: options.refreshMs ?? 1000,
    });
    this.#metrics = new ProxyMetrics(
      () => this.#allConnections(),
      () => {
        const confirmedAt = this.#feed.input().confirmedAtMs;
        return confirmedAt === undefined ? undefined : (options.nowMs() - confirmedAt) / 1000;
      },
      async () => this.#kernel?.counters(),
      () => this.status(),
    );
    this.#feed.onChange(() => this.#onClusterChange());
    const publish = options.publish;
    this.#publisher =
      publish === undefined
        ? undefined
        : new RoutePublisher({
            registry: publish.registry,
            record: () => this.#record(),
            ttlMs: () => (this.#feed.input().view?.config?.ttl ?? 30) * 1000,
            nowMs: options.nowMs,
            log: options.log,
          });
    const reader = options.positionReader;
    const monitor = options.section.monitor;
    this.#positions =
      reader === undefined || monitor === undefined
        ? undefined
        : new PositionMonitor({
            reader,
            members: () => this.#feed.input().view?.members ?? [],
            intervalMs: monitor.interval * 1000,
            nowMs: options.nowMs,
            log: options.log,
            onRound: () => this.#onPositions(),
          });
  }

  /** What routing decides on: the cluster feed's view, and members' own positions when monitored. */
  #input(): RoutingInput {
    const input = this.#feed.input();
    return this.#positions === undefined ? input : { ...input, positions: this.#positions.positions() };
  }

  /** A new round of positions may let held reads through (a replica caught up again). */
  #onPositions(): void {
    if (this.#positions !== undefined) this.#metrics.replicaPositions(this.#positions.positions());
    for (const wake of [...this.#waiters]) wake();
  }

  static async start(options: ProxyServerOptions): Promise<ProxyServer> {
    const server = new ProxyServer(options);
    try {
      await server.#openListeners();
      if (options.section.data_path === 'kernel') {
        server.#kernel = await server.#openKernel(options.section.primary_listen.host, server.ports.primary);
        server.#probe.start();
      }
    } catch (error) {
      await server.stop(0);
      throw error;
    }
    server.#feed.start();
    server.#positions?.start();
    server.#publisher?.start();
    return server;
  }

  /** The cluster as this proxy's DCS watch last read it. */
  view(): ClusterView | undefined {
    return this.#feed.input().view;
  }

  /** Calls `listener` after each new read of the cluster (a new revision); returns the unsubscribe function. */
  onViewChange(listener: () => void): () => void {
    this.#viewListeners.add(listener);
    return () => this.#viewListeners.delete(listener);
  }

  /** This proxy's name in the DCS: proxy.name, else host:primary port. */
  get name(): string {
    return this.#section.name ?? `${hostname()}:${this.ports.primary}`;
  }

  /** This proxy's record in the DCS: its routes and where it listens. */
  #record(): ProxyRecord {
    const name = this.name;
    const section = this.#section;
    const api = section.api_listen;
    const host = (address: string): string => (address === '0.0.0.0' || address === '::' || address === '' ? hostname() : address);
    const format = (address: string, port: number): string => (address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`);
    return proxyRecordOf(name, this.status(), {
      primary: format(section.primary_listen.host, this.ports.primary),
      ...(section.replica_listen !== undefined && this.ports.replica !== undefined
        ? { replica: format(section.replica_listen.host, this.ports.replica) }
        : {}),
      ...(api !== undefined && this.ports.api !== undefined ? { apiUrl: `http://${format(host(api.host), this.ports.api)}` } : {}),
    });
  }

  #openKernel(host: string, port: number): Promise<KernelDataPath> {
    const listener = { table: kernelTableName(this.#options.scope ?? 'pgwarden', port), host, port };
    return KernelDataPath.open(listener, this.#section.kernel_lease * 1000, this.#options.log, () => this.#kernelRoute());
  }

  #kernelRoute(): KernelRoute {
    const planned = planKernelRoute(routePrimary(this.#input(), this.#routingOptions()), this.#kernelGeneration, this.#nextMark, {
      isStopping: this.#isStopping,
      isUnreachable: (backend) => this.#probe.isUnreachable(backend),
    });
    if (planned.generation.mark === this.#nextMark) this.#nextMark = this.#nextMark >= 0x5fffffff ? 0x50000000 : this.#nextMark + 1;
    this.#kernelGeneration = planned.generation;
    return planned.route;
  }

  #routingOptions(): RoutingOptions {
    return {
      dcsTimeoutMs: this.#section.dcs_timeout * 1000,
      replicaMaxLag: this.#section.replica_max_lag,
      replicaFallback: replicaFallbackOf(this.#section),
    };
  }

  status(): ProxyStatus {
    const input = this.#input();
    return {
      primary: routePrimary(input, this.#routingOptions()),
      replicas: routeReplicas(input, this.#routingOptions()),
      connections: { primary: this.#count('primary'), replica: this.#count('replica') },
    };
  }

  /** Bytes the proxy holds for slow peers, across every connection. */
  bufferedBytes(): number {
    return this.flow().bufferedBytes;
  }

  /**
   * How the data path stands: bytes held for slow peers, clients the proxy stopped reading because their backend
   * (or, through it, the client itself) is not keeping up, which is backpressure reaching the sender, and bytes read.
   */
  flow(): ProxyFlow {
    let bufferedBytes = 0;
    let pausedClients = 0;
    let bytesFromClients = 0;
    for (const connection of this.#allConnections()) {
      bufferedBytes += connection.bufferedBytes;
      // A held client is not read by design (nothing has been read from it yet); one paused after it was read is backpressure.
      if (connection.client.isPaused() && connection.client.bytesRead > 0) pausedClients++;
      bytesFromClients += connection.client.bytesRead;
    }
    return { bufferedBytes, pausedClients, bytesFromClients };
  }

  #count(kind: ListenerKind): number {
    return this.#forwardersOf(kind).reduce((total, forwarder) => total + forwarder.connections.size, 0);
  }

  *#allConnections(): Iterable<ProxiedConnection> {
    for (const forwarder of [this.#forwarders.primary, this.#forwarders.replica, ...this.#retired])
      if (forwarder !== undefined) yield* forwarder.connections;
  }

  #forwardersOf(kind: ListenerKind): Forwarder[] {
    return [this.#forwarders[kind], ...this.#retired].filter((forwarder): forwarder is Forwarder => forwarder?.kind === kind);
  }

  #newForwarder(kind: ListenerKind, address: { host: string; port: number }): Forwarder {
    return new Forwarder({
      kind,
      host: address.host,
      port: address.port,
      chooseBackend: (deadlineMs, signal) => this.#waitForBackend(kind, deadlineMs, signal),
      holdTimeoutMs: () => this.#section.hold_timeout * 1000,
      connectTimeoutMs: () => this.#section.connect_timeout * 1000,
      nowMs: this.#options.nowMs,
      log: this.#options.log,
      events: this.#metrics,
    });
  }

  async #openListeners(): Promise<void> {
    const section = this.#section;
    const primary = this.#newForwarder('primary', section.primary_listen);
    this.#forwarders.primary = primary;
    this.ports.primary = await primary.listen();
    if (section.replica_listen !== undefined) {
      const replica = this.#newForwarder('replica', section.replica_listen);
      this.#forwarders.replica = replica;
      this.ports.replica = await replica.listen();
    }
    if (section.split_listen !== undefined && section.split !== undefined) {
      const split = this.#newSplitListener(section.split_listen);
      this.#split = split;
      this.#metrics.splitSource(() => this.#split?.stats());
      this.ports.split = await split.listen();
    }
    if (section.api_listen !== undefined) this.ports.api = await this.#openHttp(section.api_listen);
  }

  #newSplitListener(address: { host: string; port: number }): SplitListener {
    return new SplitListener({
      host: address.host,
      port: address.port,
      // Read several times per statement: built once per proxy section (a reload replaces the section object).
      settings: () => {
        const section = this.#section;
        if (this.#splitSettings?.section !== section)
          this.#splitSettings = { section, settings: { ...section.split!, connect_timeout: section.connect_timeout } };
        return this.#splitSettings.settings;
      },
      routes: {
        primary: () => {
          const route = routePrimary(this.#input(), this.#routingOptions());
          return route.kind === 'route' ? route.backend : undefined;
        },
        // The replica route's own fallback to the primary is not a replica: the split listener uses its primary pool then.
        replicas: () => {
          const route = routeReplicas(this.#input(), this.#routingOptions());
          return route.kind === 'route' && !route.isFallback ? route.backends : [];
        },
        positions: () => this.#positions?.positions(),
        changed: (deadlineMs, signal) => this.#nextChange(deadlineMs, signal),
      },
      nowMs: this.#options.nowMs,
      log: this.#options.log,
    });
  }

  /** Resolves at the next cluster change or round of positions, at the deadline, or when `signal` aborts. */
  #nextChange(deadlineMs: number, signal: AbortSignal): Promise<void> {
    const remainingMs = deadlineMs - this.#options.nowMs();
    if (remainingMs <= 0 || signal.aborted) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.#waiters.delete(done);
        signal.removeEventListener('abort', done);
        resolve();
      };
      const timer = setTimeout(done, remainingMs);
      this.#waiters.add(done);
      signal.addEventListener('abort', done, { once: true });
    });
  }

  async #openHttp(address: { host: string; port: number }): Promise<number> {
    const http = createServer((incoming, outgoing) => {
      if (this.#options.httpExtension?.(incoming, outgoing) === true) return;
      const request = { method: incoming.method ?? 'GET', path: new URL(incoming.url ?? '/', 'http://localhost').pathname };
      void (needsMetrics(request) ? this.#renderMetrics() : Promise.resolve(undefined)).then((metrics) => {
        const reply = handleProxyHttp(request, { status: this.status(), ...(metrics === undefined ? {} : { metrics }) });
        outgoing.writeHead(reply.status, reply.headers);
        outgoing.end(reply.body);
      });
    });
    this.#http = http;
    await new Promise<void>((resolve, reject) => {
      http.once('error', (error) =>
        reject(
          new PgwardenError('PGW_PROXY_LISTEN', `proxy api_listen cannot bind ${address.host}:${address.port}: ${error.message}`, {
            context: { key: 'proxy.api_listen', hint: 'choose a free port or stop what listens there' },
            cause: error,
          }),
        ),
      );
      http.listen(address.port, address.host, () => resolve());
    });
    const bound = http.address();
    return typeof bound === 'object' && bound !== null ? bound.port : address.port;
  }

  async #renderMetrics(): Promise<RenderedMetrics> {
    try {
      return { contentType: this.#metrics.registry.contentType, text: await this.#metrics.registry.metrics() };
    } catch (error) {
      return { error: describeError(error) };
    }
  }

  #pick(kind: ListenerKind): Backend | undefined {
    const input = this.#input();
    if (kind === 'primary') {
      const route = routePrimary(input, this.#routingOptions());
      return route.kind === 'route' ? route.backend : undefined;
    }
    const route = routeReplicas(input, this.#routingOptions());
    if (route.kind !== 'route') return undefined;
    const counts = new Map<string, number>();
    for (const forwarder of this.#forwardersOf('replica'))
      for (const [member, count] of forwarder.countsByMember()) counts.set(member, (counts.get(member) ?? 0) + count);
    return pickLeastConnections(route.backends, counts, this.#replicaPicks++);
  }

  async #waitForBackend(kind: ListenerKind, deadlineMs: number, signal: AbortSignal): Promise<Backend | undefined> {
    for (;;) {
      const backend = this.#pick(kind);
      if (backend !== undefined) return backend;
      if (deadlineMs - this.#options.nowMs() <= 0 || signal.aborted) return undefined;
      await this.#nextChange(deadlineMs, signal);
    }
  }

  #onClusterChange(): void {
    const revision = this.#feed.input().view?.revision;
    if (revision !== this.#lastViewRevision) {
      this.#lastViewRevision = revision;
      for (const listener of [...this.#viewListeners]) listener();
    }
    this.#publisher?.update();
    for (const kernel of [this.#kernel, ...this.#retiredKernels]) void kernel?.refresh();
    const input = this.#input();
    const options = this.#routingOptions();
    const primary = routePrimary(input, options);
    const identity = primary.kind === 'route' ? primary.leader : undefined;
    this.#metrics.primaryRoutable(primary.kind === 'route');
    const primaryChanged = identity !== this.#lastPrimary;
    if (primaryChanged) {
      // Fail closed: every primary connection not on the confirmed lock holder is cut (RST, nothing more is sent).
      let closed = 0;
      for (const forwarder of this.#forwardersOf('primary')) {
        const members = new Set(
          [...forwarder.connections]
            .map((connection) => connection.backend?.member)
            .filter((member): member is string => member !== undefined),
        );
        const doomed = new Set(primaryConnectionsToClose(primary, members));
        closed += forwarder.closeWhere((connection) => connection.backend !== undefined && doomed.has(connection.backend.member), true);
      }
      if (this.#lastPrimary !== 'unset') this.#metrics.rerouted(closed, 'primary');
      this.#options.log.info(
        primary.kind === 'route' ? { primary: primary.backend.member, closed } : { held: primary.reason, closed },
        primary.kind === 'route' ? 'primary route: forwarding to the lock holder' : 'primary route: holding new connections',
      );
      this.#lastPrimary = identity;
    }
    const view = input.view;
    this.#split?.onRoutesChanged({
      primaryChanged,
      keepPrimary: primary.kind === 'route' ? primary.backend.member : primary.keep,
      knownMembers: view === undefined ? undefined : new Set(view.members.map((member) => member.name)),
    });
    // Reads that fell back to a primary which lost the lock, or went to a member that left the cluster, are cut too.
    if (view !== undefined) {
      const known = new Set(view.members.map((member) => member.name));
      for (const forwarder of this.#forwardersOf('replica')) {
        const closed = forwarder.closeWhere(
          (connection) => connection.backend !== undefined && !known.has(connection.backend.member),
          false,
        );
        this.#metrics.closedByReroute(closed, 'replica');
      }
    }
    for (const wake of [...this.#waiters]) wake();
  }

  /** Applies a re-read proxy section: timeouts at once; changed listen addresses get new listeners (open clients stay). */
  async reload(section: ProxySection): Promise<void> {
    const previous = this.#section;
    this.#section = section;
    const swap = async (
      kind: ListenerKind,
      before: { host: string; port: number } | undefined,
      after: { host: string; port: number } | undefined,
    ): Promise<void> => {
      if (sameAddress(before, after)) return;
      const old = this.#forwarders[kind];
      if (after !== undefined) {
        const next = this.#newForwarder(kind, after);
        const port = await next.listen();
        this.#forwarders[kind] = next;
        if (kind === 'primary') {
          this.ports.primary = port;
          if (this.#kernel !== undefined) {
            await this.#kernel.retire();
            this.#retiredKernels.push(this.#kernel);
            this.#kernel = await this.#openKernel(after.host, port);
          }
        } else this.ports.replica = port;
      } else {
        this.#forwarders[kind] = undefined;
        if (kind === 'replica') this.ports.replica = undefined;
      }
      if (old !== undefined) {
        await old.stopListening();
        this.#retired.push(old);
      }
      this.#options.log.info(
        { listener: kind, listen: after === undefined ? null : `${after.host}:${after.port}` },
        'proxy listener moved',
      );
    };
    try {
      await swap('primary', previous.primary_listen, section.primary_listen);
      await swap('replica', previous.replica_listen, section.replica_listen);
      if (section.data_path === 'kernel' && this.#kernel === undefined) {
        this.#kernel = await this.#openKernel(section.primary_listen.host, this.ports.primary);
        this.#probe.start();
      }
      if (section.data_path === 'userspace' && this.#kernel !== undefined) {
        this.#probe.stop();
        await this.#kernel.close();
        this.#kernel = undefined;
      }
    } catch (error) {
      this.#section = { ...section, primary_listen: previous.primary_listen, replica_listen: previous.replica_listen };
      throw error;
    }
    this.#onClusterChange();
  }

  /** Stops accepting, lets open clients finish for up to `graceMs`, then disconnects the rest. */
  async stop(graceMs = this.#section.shutdown_grace * 1000): Promise<void> {
    const forwarders = [this.#forwarders.primary, this.#forwarders.replica, ...this.#retired].filter(
      (forwarder): forwarder is Forwarder => forwarder !== undefined,
    );
    await Promise.all(forwarders.map((forwarder) => forwarder.stopListening()));
    await this.#split?.stop();
    // Dashboards stop showing this proxy at once, not a TTL later.
    await this.#publisher?.stop();
    // No new kernel-routed connections either; open ones get the same grace as the proxy's own.
    this.#isStopping = true;
    await this.#kernel?.refresh();
    await waitUntil(() => forwarders.every((forwarder) => forwarder.connections.size === 0), {
      timeoutMs: graceMs,
      intervalMs: 50,
      describe: 'open clients to finish',
      clock: { nowMs: this.#options.nowMs, sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)) },
    }).catch((error: unknown) => {
      // Past the grace period the rest are disconnected below.
      if (!isWaitTimeout(error)) throw error;
    });
    for (const forwarder of forwarders) forwarder.closeWhere(() => true, false);
    this.#probe.stop();
    for (const kernel of [this.#kernel, ...this.#retiredKernels]) await kernel?.close();
    this.#kernel = undefined;
    await this.#feed.stop();
    await this.#positions?.stop();
    const http = this.#http;
    if (http !== undefined) {
      http.closeAllConnections();
      await new Promise<void>((resolve) => http.close(() => resolve()));
    }
  }
}
