// PeerClient over HTTP and TCP: a peer's `/patroni` document for the leader race, connect-refused probes, and the
// failsafe leader's POST /failsafe.
import { connect } from 'node:net';
import type { FailsafeRequest, PeerClient } from '../core/ports.js';
import type { DecisionEvent, MemberRecord, PeerStatus } from '../core/types.js';
import { roleFromWire } from '../core/patroni-wire.js';
import { createRestClient, memberEndpointUrl, type RestClient } from '../util/rest-client.js';

interface PatroniStatusDocument {
  readonly state?: unknown;
  readonly role?: unknown;
  readonly timeline?: unknown;
  readonly xlog?: { readonly location?: unknown; readonly received_location?: unknown; readonly replayed_location?: unknown };
  readonly tags?: unknown;
  readonly replication_state?: unknown;
}

function toBigInt(value: unknown): bigint | undefined {
  return typeof value === 'number' && Number.isFinite(value) ? BigInt(Math.trunc(value)) : undefined;
}

/** Parses a peer's status document the way Patroni's race does: WAL position = max(received, replayed) or the primary's location. */
export function peerStatusFromDocument(member: MemberRecord, document: PatroniStatusDocument): PeerStatus {
  const wire = typeof document.role === 'string' ? roleFromWire(document.role) : undefined;
  // A standby leader runs PostgreSQL as a replica (of another cluster's primary).
  const role = wire === 'primary' || wire === 'replica' ? wire : wire === 'standby_leader' ? 'replica' : undefined;
  const location = toBigInt(document.xlog?.location);
  const received = toBigInt(document.xlog?.received_location);
  const replayed = toBigInt(document.xlog?.replayed_location);
  const candidates = [location, received, replayed].filter((value): value is bigint => value !== undefined);
  const walPosition = candidates.length === 0 ? undefined : candidates.reduce((a, b) => (a > b ? a : b));
  const tags = typeof document.tags === 'object' && document.tags !== null ? (document.tags as PeerStatus['tags']) : (member.tags ?? {});
  return {
    name: member.name,
    isReachable: true,
    role,
    isRunning: document.state === 'running',
    walPosition,
    timeline: typeof document.timeline === 'number' ? document.timeline : undefined,
    tags,
    isStreaming: document.replication_state === 'streaming',
  };
}

function hostPortOf(url: string): { host: string; port: number } | undefined {
  try {
    const parsed = new URL(url);
    const port = Number(parsed.port);
    if (!Number.isInteger(port) || port <= 0) return undefined;
    return { host: parsed.hostname.replace(/^\[|\]$/g, ''), port };
  } catch {
    return undefined;
  }
}

/** True only for an active refusal (ECONNREFUSED); timeouts, resets and successes are all "not refused". */
function isConnectRefused(host: string, port: number, signal: AbortSignal): Promise<boolean> {
  return new Promise((resolve) => {
    if (signal.aborted) {
      resolve(false);
      return;
    }
    const socket = connect({ host, port });
    const finish = (isRefused: boolean): void => {
      signal.removeEventListener('abort', onAbort);
      socket.destroy();
      resolve(isRefused);
    };
    const onAbort = (): void => finish(false);
    signal.addEventListener('abort', onAbort, { once: true });
    socket.once('connect', () => finish(false));
    socket.once('error', (error: NodeJS.ErrnoException) => finish(error.code === 'ECONNREFUSED'));
  });
}

/** Where a member's REST API answers `endpoint`: its api_url with the path replaced, as Patroni's get_endpoint_url does. */
export function endpointUrl(apiUrl: string, endpoint: string): string | undefined {
  try {
    return memberEndpointUrl(apiUrl, endpoint);
  } catch {
    return undefined;
  }
}

export class HttpPeerClient implements PeerClient {
  readonly #rest: RestClient;

  /**
   * `rest` is the one REST client, built from this agent's ctl/restapi settings as patronictl's are: the CA that signed
   * the peers' certificates, a client certificate for peers that verify clients, and the credentials POST /failsafe
   * carries (GETs go without them).
   */
  constructor(rest: RestClient = createRestClient({})) {
    this.#rest = rest;
  }

  async postFailsafe(apiUrl: string, request: FailsafeRequest, signal: AbortSignal): Promise<boolean> {
    try {
      const reply = await this.#rest.callMember(apiUrl, '/failsafe', { method: 'POST', body: request, signal });
      return reply.status === 200 && reply.text === 'Accepted';
    } catch {
      return false;
    }
  }

  /** A peer's recent decisions (its GET /events) for the dashboard; rejects when it does not answer 200 with a list. */
  async fetchEvents(apiUrl: string, since: number, limit: number, signal: AbortSignal): Promise<readonly DecisionEvent[]> {
    const reply = await this.#rest.callMember(apiUrl, `/events?since=${since}&limit=${limit}`, { signal });
    if (reply.status !== 200) throw new Error(`GET /events answered ${reply.status}`);
    const events = JSON.parse(reply.text) as unknown;
    if (!Array.isArray(events)) throw new Error('GET /events did not answer a list');
    return events.filter(
      (event): event is DecisionEvent =>
        typeof event === 'object' &&
        event !== null &&
        typeof (event as DecisionEvent).seq === 'number' &&
        typeof (event as DecisionEvent).at === 'string' &&
        typeof (event as DecisionEvent).member === 'string' &&
        typeof (event as DecisionEvent).reason === 'string' &&
        Array.isArray((event as DecisionEvent).actions),
    );
  }

  async fetchStatus(member: MemberRecord, signal: AbortSignal): Promise<PeerStatus> {
    const unreachable: PeerStatus = {
      name: member.name,
      isReachable: false,
      role: undefined,
      isRunning: false,
      walPosition: undefined,
      timeline: undefined,
      tags: member.tags ?? {},
    };
    try {
      const reply = await this.#rest.request(member.api_url, { signal });
      const document = JSON.parse(reply.text) as PatroniStatusDocument;
      return peerStatusFromDocument(member, document);
    } catch {
      return unreachable;
    }
  }

  async probeRefused(member: MemberRecord, signal: AbortSignal): Promise<{ isApiRefused: boolean; isPgRefused: boolean }> {
    const api = hostPortOf(member.api_url);
    const pg = hostPortOf(member.conn_url);
    const [isApiRefused, isPgRefused] = await Promise.all([
      api === undefined ? Promise.resolve(false) : isConnectRefused(api.host, api.port, signal),
      pg === undefined ? Promise.resolve(false) : isConnectRefused(pg.host, pg.port, signal),
    ]);
    return { isApiRefused, isPgRefused };
  }
}
