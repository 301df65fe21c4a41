// The proxy's HTTP endpoint as a pure handler: (request, state) to status, headers and body for /metrics, /health and
// /status. The server only wires node:http to it, so every answer is testable in process.
import type { ListenerKind } from './forwarder.js';
import type { PrimaryRoute, ReplicaRoute } from './routing.js';

/** Where traffic goes right now and how many clients each listener forwards: what /status shows. */
export interface ProxyStatus {
  readonly primary: PrimaryRoute;
  readonly replicas: ReplicaRoute;
  readonly connections: Readonly<Record<ListenerKind, number>>;
}

export interface ProxyHttpRequest {
  readonly method: string;
  /** The path without the query string. */
  readonly path: string;
}

export interface ProxyHttpResponse {
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: string;
}

/** The Prometheus text, or why rendering it failed. */
export type RenderedMetrics = { readonly contentType: string; readonly text: string } | { readonly error: string };

export interface ProxyHttpState {
  readonly status: ProxyStatus;
  /** Rendered only for requests that need it (see needsMetrics): rendering may run nft in kernel mode. */
  readonly metrics?: RenderedMetrics;
}

const JSON_HEADERS = { 'content-type': 'application/json' };
const TEXT_HEADERS = { 'content-type': 'text/plain' };

/** Whether the answer to this request includes the metrics, so the server renders them first. */
export function needsMetrics(request: ProxyHttpRequest): boolean {
  return request.method === 'GET' && request.path === '/metrics';
}

/** The document /status and /health serve: where primary and replica traffic goes, and the open connections. */
export function proxyStatusDocument(status: ProxyStatus): Record<string, unknown> {
  return {
    primary:
      status.primary.kind === 'route'
        ? { member: status.primary.backend.member, host: status.primary.backend.host, port: status.primary.backend.port }
        : { held: status.primary.reason },
    replicas:
      status.replicas.kind === 'route'
        ? { members: status.replicas.backends.map((backend) => backend.member), is_fallback: status.replicas.isFallback }
        : { held: status.replicas.reason },
    connections: status.connections,
  };
}

export function handleProxyHttp(request: ProxyHttpRequest, state: ProxyHttpState): ProxyHttpResponse {
  if (needsMetrics(request)) {
    const metrics = state.metrics;
    if (metrics === undefined) return { status: 500, headers: TEXT_HEADERS, body: 'metrics were not rendered for this request' };
    if ('error' in metrics) return { status: 500, headers: TEXT_HEADERS, body: metrics.error };
    return { status: 200, headers: { 'content-type': metrics.contentType }, body: metrics.text };
  }
  if (request.method === 'GET' && (request.path === '/health' || request.path === '/status')) {
    // /health: 200 while primary traffic flows, so a VIP or DNS check can prefer proxies that see the cluster.
    const isHeld = request.path === '/health' && state.status.primary.kind !== 'route';
    return { status: isHeld ? 503 : 200, headers: JSON_HEADERS, body: JSON.stringify(proxyStatusDocument(state.status)) };
  }
  return { status: 404, headers: TEXT_HEADERS, body: 'not found: try /metrics, /health, /status or /ui' };
}
