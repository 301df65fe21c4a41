// Publishes where this proxy routes as `proxies/<name>` in the DCS, so that every member's dashboard shows the proxies:
// on the proxy's own lease (a dead proxy's record expires), rewritten when its routes change and kept alive meanwhile.
import type { ProxyRegistry } from '../core/ports.js';
import type { ProxyRecord } from '../core/types.js';
import { describeError } from '../util/errors.js';
import type { Log } from '../util/log.js';
import type { ProxyStatus } from './proxy-http.js';

/** A route change is published at most this often (a held route's reason may change every re-evaluation). */
const MIN_INTERVAL_MS = 1000;
const DCS_CALL_MS = 2000;

/** Pure: the record of proxy `name` for its current routes. */
export function proxyRecordOf(
  name: string,
  status: Pick<ProxyStatus, 'primary' | 'replicas'>,
  listen: { readonly primary: string; readonly replica?: string | undefined; readonly apiUrl?: string | undefined },
): ProxyRecord {
  return {
    name,
    ...(listen.apiUrl !== undefined ? { api_url: listen.apiUrl } : {}),
    primary_listen: listen.primary,
    ...(listen.replica !== undefined ? { replica_listen: listen.replica } : {}),
    ...(status.primary.kind === 'route' ? { primary: status.primary.backend.member } : { held: status.primary.reason }),
    replicas: status.replicas.kind === 'route' ? status.replicas.backends.map((backend) => backend.member) : [],
  };
}

export interface RoutePublisherOptions {
  readonly registry: ProxyRegistry;
  /** The record to publish now. */
  readonly record: () => ProxyRecord;
  /** The lease TTL (the cluster's ttl); the record is re-sent every third of it. */
  readonly ttlMs: () => number;
  readonly nowMs: () => number;
  readonly log: Log;
}

export class RoutePublisher {
  readonly #options: RoutePublisherOptions;
  #lastText = '';
  #lastPrimary: string | undefined;
  #lastAtMs = Number.NEGATIVE_INFINITY;
  #inFlight: Promise<void> | undefined;
  #timer: NodeJS.Timeout | undefined;
  #isStopped = false;
  #lastError: string | undefined;

  constructor(options: RoutePublisherOptions) {
    this.#options = options;
  }

  start(): void {
    this.update();
    this.#timer = setInterval(() => this.update(), MIN_INTERVAL_MS);
    this.#timer.unref();
  }

  /** Publishes when the routes changed (at once for a new primary) or a third of the TTL passed; one call at a time. */
  update(): void {
    if (this.#isStopped || this.#inFlight !== undefined) return;
    const record = this.#options.record();
    const text = JSON.stringify(record);
    const ageMs = this.#options.nowMs() - this.#lastAtMs;
    const ttlMs = this.#options.ttlMs();
    const isDue = ageMs >= ttlMs / 3 || record.primary !== this.#lastPrimary || (text !== this.#lastText && ageMs >= MIN_INTERVAL_MS);
    if (!isDue) return;
    this.#inFlight = this.#options.registry
      .publishProxy(record, ttlMs, AbortSignal.timeout(DCS_CALL_MS))
      .then(() => {
        this.#lastText = text;
        this.#lastPrimary = record.primary;
        this.#lastAtMs = this.#options.nowMs();
        this.#lastError = undefined;
      })
      .catch((error: unknown) => {
        const message = describeError(error);
        // Said once per distinct failure: the DCS being away is already logged by the cluster feed.
        if (message !== this.#lastError)
          this.#options.log.warn({ error: message, proxy: record.name }, 'could not publish the proxy record');
        this.#lastError = message;
      })
      .finally(() => {
        this.#inFlight = undefined;
      });
  }

  /** Stops publishing and deletes the record (a clean stop; otherwise it expires with the lease). */
  async stop(): Promise<void> {
    this.#isStopped = true;
    clearInterval(this.#timer);
    await this.#inFlight;
    await this.#options.registry
      .withdrawProxy(this.#options.record().name, AbortSignal.timeout(DCS_CALL_MS))
      .catch((error: unknown) => this.#options.log.warn({ error: describeError(error) }, 'could not delete the proxy record'));
  }
}
