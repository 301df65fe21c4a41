// Prometheus metrics of one proxy instance (served on proxy.api_listen at /metrics).
import { Counter, Gauge, Registry } from 'prom-client';
import type { ForwarderEvents, ListenerKind, ProxiedConnection } from './forwarder.js';
import type { KernelCounters } from './kernel-rules.js';
import type { ObservedPosition } from './member-positions.js';
import type { PrimaryRoute, ReplicaRoute } from './routing.js';

/** Where the proxy routes new connections now (its status()), evaluated per scrape from the cluster view in memory. */
export interface ProxyRoutes {
  readonly primary: PrimaryRoute;
  readonly replicas: ReplicaRoute;
}

/** What the split listener reports (proxy.split_listen). */
export interface SplitStats {
  readonly clients: number;
  readonly serverIdle: number;
  readonly serverBusy: number;
  readonly waiting: number;
  /** Transactions lent a server connection, by where they went. */
  readonly transactions: { readonly primary: number; readonly replica: number };
  /** Read-only transactions sent to the primary because no replica had replayed the session's floor. */
  readonly readsBelowFloor: number;
}

export class ProxyMetrics implements ForwarderEvents {
  readonly registry = new Registry();
  readonly #accepted = new Counter({
    name: 'pgwarden_proxy_connections_accepted_total',
    help: 'Client connections accepted',
    labelNames: ['listener'],
    registers: [this.registry],
  });
  readonly #active = new Gauge({
    name: 'pgwarden_proxy_connections',
    help: 'Client connections currently forwarded to a backend',
    labelNames: ['listener'],
    registers: [this.registry],
  });
  readonly #held = new Gauge({
    name: 'pgwarden_proxy_held_connections',
    help: 'Client connections waiting for a backend (switchover, failover, startup)',
    labelNames: ['listener'],
    registers: [this.registry],
  });
  readonly #heldTotal = new Counter({
    name: 'pgwarden_proxy_held_total',
    help: 'Client connections that had to wait for a backend',
    labelNames: ['listener'],
    registers: [this.registry],
  });
  readonly #refused = new Counter({
    name: 'pgwarden_proxy_refused_total',
    help: 'Client connections closed without a backend',
    labelNames: ['listener', 'reason'],
    registers: [this.registry],
  });
  readonly #reroutes = new Counter({
    name: 'pgwarden_proxy_reroutes_total',
    help: 'Changes of the primary route (new lock holder, or no route)',
    registers: [this.registry],
  });
  readonly #closedByReroute = new Counter({
    name: 'pgwarden_proxy_closed_by_reroute_total',
    help: 'Connections closed because their backend no longer holds the leader lock',
    labelNames: ['listener'],
    registers: [this.registry],
  });
  readonly #primaryRoutable = new Gauge({
    name: 'pgwarden_proxy_primary_routable',
    help: '1 when new primary connections are forwarded at once, 0 while they are held',
    registers: [this.registry],
  });
  readonly #replicaLagBytes = new Gauge({
    name: 'pgwarden_proxy_replica_lag_bytes',
    help: "Bytes of WAL a replica has yet to replay, from its own and the primary's answers (proxy.monitor)",
    labelNames: ['member'],
    registers: [this.registry],
  });
  readonly #replicaReplayAge = new Gauge({
    name: 'pgwarden_proxy_replica_replay_age_seconds',
    help: 'Age of the last transaction a replica replayed, by its own clock (proxy.monitor)',
    labelNames: ['member'],
    registers: [this.registry],
  });
  readonly #replicaStreaming = new Gauge({
    name: 'pgwarden_proxy_replica_streaming',
    help: "1 when a replica's WAL receiver streams, 0 when it does not (proxy.monitor)",
    labelNames: ['member'],
    registers: [this.registry],
  });
  readonly #closedBytes = { fromClient: 0, toClient: 0 };
  #split: (() => SplitStats | undefined) | undefined;

  /** The split listener's numbers, read at each scrape. */
  splitSource(source: () => SplitStats | undefined): void {
    this.#split = source;
  }

  #splitMetrics(): void {
    const stats = () => this.#split?.();
    new Gauge({
      name: 'pgwarden_proxy_split_clients',
      help: 'Clients logged in to the split listener',
      registers: [this.registry],
      collect() {
        const value = stats();
        if (value !== undefined) this.set(value.clients);
      },
    });
    new Gauge({
      name: 'pgwarden_proxy_split_server_connections',
      help: 'Pooled server connections of the split listener, idle or lent to a client',
      labelNames: ['state'],
      registers: [this.registry],
      collect() {
        const value = stats();
        if (value === undefined) return;
        this.set({ state: 'idle' }, value.serverIdle);
        this.set({ state: 'busy' }, value.serverBusy);
      },
    });
    new Gauge({
      name: 'pgwarden_proxy_split_waiting_clients',
      help: 'Transactions waiting for a pooled server connection (pool_size reached)',
      registers: [this.registry],
      collect() {
        const value = stats();
        if (value !== undefined) this.set(value.waiting);
      },
    });
    new Counter({
      name: 'pgwarden_proxy_split_transactions_total',
      help: 'Transactions the split listener routed, by target (primary or replica)',
      labelNames: ['target'],
      registers: [this.registry],
      collect() {
        const value = stats();
        if (value === undefined) return;
        this.reset();
        this.inc({ target: 'primary' }, value.transactions.primary);
        this.inc({ target: 'replica' }, value.transactions.replica);
      },
    });
    new Counter({
      name: 'pgwarden_proxy_split_reads_below_floor_total',
      help: "Read-only transactions sent to the primary because no replica had replayed the session's last commit",
      registers: [this.registry],
      collect() {
        const value = stats();
        if (value === undefined) return;
        this.reset();
        this.inc(value.readsBelowFloor);
      },
    });
  }

  constructor(
    liveConnections: () => Iterable<ProxiedConnection>,
    dcsAgeSeconds: () => number | undefined,
    kernelCounters: () => Promise<KernelCounters | undefined> = async () => undefined,
    routes?: () => ProxyRoutes,
  ) {
    // Present from the start for both listeners: a hold queue of 0 is a value, not a missing series.
    for (const listener of ['primary', 'replica'] as const) {
      this.#held.set({ listener }, 0);
      this.#active.set({ listener }, 0);
    }
    this.#splitMetrics();
    // Kernel-routed connections never reach the proxy's sockets: their counts come from the nftables rule counters.
    let kernelRead: Promise<KernelCounters | undefined> | undefined;
    const readKernel = (): Promise<KernelCounters | undefined> => {
      kernelRead ??= kernelCounters()
        .catch(() => undefined)
        .finally(() => setTimeout(() => (kernelRead = undefined), 0));
      return kernelRead;
    };
    const kernelMetrics: readonly [string, string, keyof KernelCounters][] = [
      [
        'pgwarden_proxy_kernel_connections_total',
        'Primary connections routed by the kernel data path (nftables DNAT) straight to the lock holder',
        'routed',
      ],
      [
        'pgwarden_proxy_kernel_refusals_hidden_total',
        'Kernel-routed connects refused by a crashed lock holder and hidden from the client, which retried through the proxy',
        'refusalsHidden',
      ],
      [
        'pgwarden_proxy_kernel_resets_total',
        'Packets of kernel-routed connections reset because their backend no longer holds the lock',
        'resets',
      ],
    ];
    for (const [name, help, key] of kernelMetrics) {
      new Counter({
        name,
        help,
        registers: [this.registry],
        async collect() {
          const counters = await readKernel();
          this.reset();
          if (counters !== undefined) this.inc(counters[key]);
        },
      });
    }
    new Gauge({
      name: 'pgwarden_proxy_buffered_bytes',
      help: 'Bytes waiting in the proxy for a slow peer (bounded by backpressure)',
      registers: [this.registry],
      collect() {
        let total = 0;
        for (const connection of liveConnections()) total += connection.bufferedBytes;
        this.set(total);
      },
    });
    const closedBytes = this.#closedBytes;
    new Counter({
      name: 'pgwarden_proxy_bytes_total',
      help: 'Bytes forwarded, by direction',
      labelNames: ['direction'],
      registers: [this.registry],
      collect() {
        let fromClient = closedBytes.fromClient;
        let toClient = closedBytes.toClient;
        for (const connection of liveConnections()) {
          const bytes = connection.bytes;
          fromClient += bytes.fromClient;
          toClient += bytes.toClient;
        }
        this.reset();
        this.inc({ direction: 'client_to_server' }, fromClient);
        this.inc({ direction: 'server_to_client' }, toClient);
      },
    });
    if (routes !== undefined) {
      new Gauge({
        name: 'pgwarden_proxy_primary_route',
        help: 'Value is 1 for the member new primary connections go to (the confirmed lock holder); no sample while they are held',
        labelNames: ['member'],
        registers: [this.registry],
        collect() {
          const primary = routes().primary;
          this.reset();
          if (primary.kind === 'route') this.set({ member: primary.backend.member }, 1);
        },
      });
      new Gauge({
        name: 'pgwarden_proxy_replica_route',
        help: 'Value is 1 for each member new replica connections may go to (fallback: the primary, read-only)',
        labelNames: ['member', 'fallback'],
        registers: [this.registry],
        collect() {
          const replicas = routes().replicas;
          this.reset();
          if (replicas.kind === 'route')
            for (const backend of replicas.backends) this.set({ member: backend.member, fallback: replicas.isFallback ? '1' : '0' }, 1);
        },
      });
      new Gauge({
        name: 'pgwarden_proxy_replica_routes',
        help: 'Members new replica connections may go to now (0 while they are held)',
        registers: [this.registry],
        collect() {
          const replicas = routes().replicas;
          this.set(replicas.kind === 'route' ? replicas.backends.length : 0);
        },
      });
    }
    new Gauge({
      name: 'pgwarden_proxy_dcs_view_age_seconds',
      help: 'Age of the last cluster view confirmed by the DCS',
      registers: [this.registry],
      collect() {
        const age = dcsAgeSeconds();
        if (age === undefined) this.reset();
        else this.set(age);
      },
    });
  }

  accepted(kind: ListenerKind): void {
    this.#accepted.inc({ listener: kind });
  }

  held(kind: ListenerKind, isHeld: boolean): void {
    this.#held.inc({ listener: kind }, isHeld ? 1 : -1);
    if (isHeld) this.#heldTotal.inc({ listener: kind });
  }

  refused(kind: ListenerKind, reason: string): void {
    this.#refused.inc({ listener: kind, reason });
  }

  forwarded(kind: ListenerKind, delta: 1 | -1, bytes?: { fromClient: number; toClient: number }): void {
    this.#active.inc({ listener: kind }, delta);
    if (bytes !== undefined) {
      this.#closedBytes.fromClient += bytes.fromClient;
      this.#closedBytes.toClient += bytes.toClient;
    }
  }

  rerouted(closed: number, kind: ListenerKind): void {
    this.#reroutes.inc();
    if (closed > 0) this.#closedByReroute.inc({ listener: kind }, closed);
  }

  closedByReroute(closed: number, kind: ListenerKind): void {
    if (closed > 0) this.#closedByReroute.inc({ listener: kind }, closed);
  }

  primaryRoutable(isRoutable: boolean): void {
    this.#primaryRoutable.set(isRoutable ? 1 : 0);
  }

  /** The last round of members' own positions (members that did not answer are left out). */
  replicaPositions(positions: ReadonlyMap<string, ObservedPosition>): void {
    this.#replicaLagBytes.reset();
    this.#replicaReplayAge.reset();
    this.#replicaStreaming.reset();
    const primary = [...positions.values()].find((position) => !position.isInRecovery && position.lsn !== undefined);
    for (const [member, position] of positions) {
      if (!position.isInRecovery) continue;
      if (primary?.lsn !== undefined && position.lsn !== undefined)
        this.#replicaLagBytes.set({ member }, Math.max(0, primary.lsn - position.lsn));
      if (position.replayAgeMs !== undefined) this.#replicaReplayAge.set({ member }, position.replayAgeMs / 1000);
      if (position.isStreaming !== undefined) this.#replicaStreaming.set({ member }, position.isStreaming ? 1 : 0);
    }
  }
}
