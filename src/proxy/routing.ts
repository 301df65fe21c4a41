// Where the proxy sends a new connection, as a pure function of the cluster view and time. It fails closed: without a
// fresh, confirmed leader there is no primary route at all, only a reason to hold the client.
import { isDue } from '../core/failover-intent.js';
import { timingFromDynamicConfig } from '../core/timing-rules.js';
import type { ClusterView, MemberRecord } from '../core/types.js';
import type { ReplicaMaxLag } from '../config/proxy-config.js';
import type { ObservedPosition } from './member-positions.js';

export interface Backend {
  readonly member: string;
  readonly host: string;
  readonly port: number;
  /** Run-time settings the proxy adds to the session's startup packet (a read-only fallback to the primary). */
  readonly sessionSettings?: Readonly<Record<string, string>>;
}

/** proxy.replica_fallback: what the replica port does when no replica qualifies. */
export type ReplicaFallback = 'read-only' | 'read-write' | 'off';

/** What a read session falling back to the primary runs with in `read-only` mode: every transaction read-only by default. */
export const READ_ONLY_SESSION: Readonly<Record<string, string>> = { default_transaction_read_only: 'on' };

export interface RoutingInput {
  readonly view: ClusterView | undefined;
  /** Monotonic ms when the DCS last answered a linearizable read (the view is true as of then). */
  readonly confirmedAtMs: number | undefined;
  readonly nowMs: number;
  /** The leader identity (see leaderIdentity) whose own REST API answered 200 on /primary. */
  readonly confirmedPrimary: string | undefined;
  /** Wall clock, only to tell whether a scheduled switchover is due. */
  readonly wallIso: string;
  /** Monotonic ms when the current `failover` key (by revision) was first seen. */
  readonly failoverSeenAtMs: number | undefined;
  /** Members' own answers about their WAL position (proxy.monitor), by name; absent without a monitor. */
  readonly positions?: ReadonlyMap<string, ObservedPosition>;
}

export interface RoutingOptions {
  /** Fail closed when the view is older than this (capped at the cluster's ttl). */
  readonly dcsTimeoutMs: number;
  readonly replicaMaxLag: ReplicaMaxLag;
  readonly replicaFallback: ReplicaFallback;
}

/** A member's own answer counts while it is this fresh; older, routing goes by what its agent published. */
export const POSITION_FRESH_MS = 1000;

export type PrimaryRoute =
  | { readonly kind: 'route'; readonly backend: Backend; readonly leader: string }
  | {
      readonly kind: 'hold';
      readonly reason: string;
      /** A lock holder to ask whether it is writable yet. */
      readonly probe?: { readonly leader: string; readonly member: MemberRecord };
      /** The member whose open connections may stay: it still holds the lock (a planned switchover has not started). */
      readonly keep?: string;
    };

export type ReplicaRoute =
  | { readonly kind: 'route'; readonly backends: readonly Backend[]; readonly isFallback: boolean }
  | { readonly kind: 'hold'; readonly reason: string };

/**
 * A lock holder is identified by name and the key's create revision: renewals and in-place rewrites keep it, a lock
 * lost and taken again (even by the same member) must be confirmed writable again.
 */
export function leaderIdentity(view: ClusterView | undefined): string | undefined {
  const leader = view?.leader;
  return leader === undefined ? undefined : `${leader.name}@${leader.createRevision ?? leader.modRevision}`;
}

// Routing runs per transaction in the split listener: what depends only on an immutable record of the view (a
// member's conn_url, the config's ttl) is derived once per record object, not parsed again on every call.
const backends = new WeakMap<MemberRecord, Backend | null>();
const ttls = new WeakMap<object, number>();
const DEFAULT_TTL_MS = timingFromDynamicConfig(undefined).ttlMs;

/** The host and port of a member's conn_url (postgres://host:port/db). */
export function backendOf(member: MemberRecord): Backend | undefined {
  let backend = backends.get(member);
  if (backend === undefined) {
    backend = parseBackend(member) ?? null;
    backends.set(member, backend);
  }
  return backend ?? undefined;
}

function parseBackend(member: MemberRecord): Backend | undefined {
  try {
    const url = new URL(member.conn_url);
    const port = Number(url.port === '' ? 5432 : url.port);
    const host = url.hostname.replace(/^\[|\]$/g, '');
    if (host === '' || !(port > 0 && port < 65536)) return undefined;
    return { member: member.name, host, port };
  } catch {
    return undefined;
  }
}

function staleness(input: RoutingInput, options: RoutingOptions): string | undefined {
  if (input.view === undefined || input.confirmedAtMs === undefined) return 'no cluster view from the DCS yet';
  const config = input.view.config;
  let ttlMs = config === undefined ? DEFAULT_TTL_MS : ttls.get(config);
  if (ttlMs === undefined) {
    ttlMs = timingFromDynamicConfig(config).ttlMs;
    ttls.set(config!, ttlMs);
  }
  const boundMs = Math.min(options.dcsTimeoutMs, ttlMs);
  const ageMs = input.nowMs - input.confirmedAtMs;
  return ageMs > boundMs ? `the DCS has not confirmed the leader for ${Math.round(ageMs)} ms (bound ${Math.round(boundMs)} ms)` : undefined;
}

export function routePrimary(input: RoutingInput, options: RoutingOptions): PrimaryRoute {
  const stale = staleness(input, options);
  if (stale !== undefined) return { kind: 'hold', reason: stale };
  const view = input.view!;
  const leader = view.leader;
  if (leader === undefined) return { kind: 'hold', reason: 'no leader key: a failover or switchover is in progress' };
  const member = view.members.find((candidate) => candidate.name === leader.name);
  if (member === undefined) return { kind: 'hold', reason: `the leader ${leader.name} has no member key` };
  const backend = backendOf(member);
  if (backend === undefined) return { kind: 'hold', reason: `the leader ${leader.name} has an unusable conn_url "${member.conn_url}"` };
  // A major upgrade stops and replaces the primary under the same lock: new clients wait here rather than meet a server
  // shutting down or starting up; open ones stay until the primary's shutdown ends them.
  if (view.writesHeld !== undefined) return { kind: 'hold', reason: view.writesHeld, keep: leader.name };
  const intent = view.failover;
  if (
    intent !== undefined &&
    isDue(intent, input.wallIso) &&
    intent.member !== leader.name &&
    (intent.leader === undefined || intent.leader === leader.name)
  ) {
    // The leader is about to demote: hold new clients now rather than hand them a server that is shutting down. Bounded
    // like Patroni's own wait for a switchover, so an intent nobody acts on cannot block writes for long.
    const windowMs = 2 * Math.max(10, Number(view.config?.loop_wait ?? 10)) * 1000;
    if (input.failoverSeenAtMs !== undefined && input.nowMs - input.failoverSeenAtMs <= windowMs) {
      return {
        kind: 'hold',
        reason: `a ${intent.leader === undefined ? 'failover' : 'switchover'} away from ${leader.name} is in progress`,
        keep: leader.name,
      };
    }
  }
  const identity = leaderIdentity(view)!;
  if (input.confirmedPrimary !== identity)
    return { kind: 'hold', reason: `waiting for ${leader.name} to report a writable primary`, probe: { leader: identity, member } };
  return { kind: 'route', backend, leader: identity };
}

function leaderLsn(view: ClusterView): number | undefined {
  const leaderName = view.leader?.name;
  const published = view.members.find((member) => member.name === leaderName)?.xlog_location;
  if (published === undefined) return view.optime;
  return view.optime === undefined ? published : Math.max(published, view.optime);
}

const describeLag = (lag: ReplicaMaxLag): string => (lag.kind === 'bytes' ? `${lag.bytes} bytes` : `${lag.ms} ms`);

function freshPosition(input: RoutingInput, name: string | undefined): ObservedPosition | undefined {
  const position = name === undefined ? undefined : input.positions?.get(name);
  return position !== undefined && input.nowMs - position.observedAtMs <= POSITION_FRESH_MS ? position : undefined;
}

/**
 * Whether a replica may serve reads: it streams, and is within the lag bound. Its own fresh answer decides when there is
 * one; otherwise what its agent published (a replica that published another replication state than streaming is out).
 */
function isReplicaCurrent(input: RoutingInput, options: RoutingOptions, member: MemberRecord): boolean {
  const view = input.view!;
  const live = freshPosition(input, member.name);
  const lag = options.replicaMaxLag;
  if (live !== undefined) {
    if (!live.isInRecovery || live.isStreaming === false || live.lsn === undefined) return false;
    if (live.isStreaming === undefined && member.replication_state !== undefined && member.replication_state !== 'streaming') return false;
    const leader = freshPosition(input, view.leader?.name);
    const reference = leader !== undefined && !leader.isInRecovery && leader.lsn !== undefined ? leader.lsn : leaderLsn(view);
    const behindBytes = reference === undefined ? 0 : Math.max(0, reference - live.lsn);
    if (lag.kind === 'bytes') return behindBytes <= lag.bytes;
    // Caught up means no lag, however long ago the last transaction was (an idle primary).
    return behindBytes === 0 || (live.replayAgeMs !== undefined && live.replayAgeMs <= lag.ms);
  }
  if (member.replication_state !== undefined && member.replication_state !== 'streaming') return false;
  // Published positions carry no replay time: a time bound needs the member's own answer.
  if (lag.kind === 'time') return false;
  if (member.xlog_location === undefined) return false;
  const reference = leaderLsn(view);
  return reference === undefined || reference - member.xlog_location <= lag.bytes;
}

/** Streaming replicas within the lag bound, excluding noloadbalance members; the primary when none qualifies (if allowed). */
export function routeReplicas(input: RoutingInput, options: RoutingOptions): ReplicaRoute {
  const stale = staleness(input, options);
  if (stale !== undefined) return { kind: 'hold', reason: stale };
  const view = input.view!;
  const backends: Backend[] = [];
  for (const member of view.members) {
    if (member.name === view.leader?.name || member.role !== 'replica') continue;
    if (member.state !== 'running' && member.state !== 'streaming') continue;
    if (member.tags?.noloadbalance === true) continue;
    if (!isReplicaCurrent(input, options, member)) continue;
    const backend = backendOf(member);
    if (backend !== undefined) backends.push(backend);
  }
  if (backends.length > 0) return { kind: 'route', backends, isFallback: false };
  if (options.replicaFallback === 'off')
    return {
      kind: 'hold',
      reason: `no streaming replica within ${describeLag(options.replicaMaxLag)} of the leader (replica_fallback: off)`,
    };
  const primary = routePrimary(input, options);
  if (primary.kind === 'hold') return { kind: 'hold', reason: `no replica qualifies and the primary is unavailable: ${primary.reason}` };
  const backend = options.replicaFallback === 'read-only' ? { ...primary.backend, sessionSettings: READ_ONLY_SESSION } : primary.backend;
  return { kind: 'route', backends: [backend], isFallback: true };
}

/** Least connections; among equally loaded members the `rotation`-th (by name), so short-lived clients spread out too. */
export function pickLeastConnections(
  backends: readonly Backend[],
  connectionsByMember: ReadonlyMap<string, number>,
  rotation = 0,
): Backend | undefined {
  if (backends.length === 0) return undefined;
  const load = (backend: Backend): number => connectionsByMember.get(backend.member) ?? 0;
  const least = Math.min(...backends.map(load));
  const tied = backends.filter((backend) => load(backend) === least).sort((a, b) => a.member.localeCompare(b.member));
  return tied[rotation % tied.length];
}

/** After a route change, the members whose open primary connections must be cut: every one but the lock holder. */
export function primaryConnectionsToClose(route: PrimaryRoute, openBackends: ReadonlySet<string>): string[] {
  const keep = route.kind === 'route' ? route.backend.member : route.keep;
  return [...openBackends].filter((member) => member !== keep);
}
