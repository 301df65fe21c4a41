// nftables rules for the kernel data path of the primary listener, as pure text. The proxy stays the control plane
// (it decides from the DCS, holds clients, fails closed); once a confirmed lock holder is routable the kernel DNATs
// new connections straight to it, so bytes never cross user space. Every routing fact is a set or map element with a
// timeout that the proxy must keep renewing: if the proxy dies or stops deciding, the route and the right of existing
// flows to live expire on their own, and the kernel fails closed too.
import { isIpv4Literal } from '../util/ip.js';
import type { PrimaryRoute } from './routing.js';

export interface KernelListener {
  /** nft table name, unique per proxy listener on the host. */
  readonly table: string;
  /** IPv4 address the primary listener is bound to ('0.0.0.0' = any local address). */
  readonly host: string;
  readonly port: number;
}

/** What the kernel should do now, derived from the primary route. */
export interface KernelRoute {
  /** Where new connections go; undefined = the kernel does not touch new connections (the proxy holds them). */
  readonly target?: { readonly host: string; readonly port: number };
  /** Connection marks whose flows may go on; flows with any other mark of this listener are reset. */
  readonly liveGenerations: readonly number[];
  /** Mark given to new flows along `target`. */
  readonly generation?: number;
}

/** The lock holder the kernel routes to and the connection mark its flows carry. */
export interface KernelGeneration {
  readonly identity: string;
  readonly member: string;
  readonly mark: number;
}

export const NO_GENERATION: KernelGeneration = { identity: '', member: '', mark: 0 };

/**
 * The kernel's share of the primary route. A confirmed IPv4 lock holder: DNAT new clients to it, under a mark of its
 * own (a new holder, or the same member after losing the lock, gets a new mark, which cuts every older flow). While a
 * planned switchover holds new clients, or the proxy is stopping, flows to the current holder go on. Anything else
 * cuts kernel-routed flows and leaves new connections to the proxy's own listener, which holds them (or relays to a
 * backend named by host name).
 */
export function planKernelRoute(
  route: PrimaryRoute,
  current: KernelGeneration,
  nextMark: number,
  options: { readonly isStopping: boolean; readonly isUnreachable: (backend: { host: string; port: number }) => boolean },
): { readonly route: KernelRoute; readonly generation: KernelGeneration } {
  if (options.isStopping) return { route: { liveGenerations: current.mark === 0 ? [] : [current.mark] }, generation: current };
  if (route.kind === 'route' && isIpv4Literal(route.backend.host)) {
    const generation =
      current.identity === route.leader ? current : { identity: route.leader, member: route.backend.member, mark: nextMark };
    // A lock holder whose port refuses (postmaster crashed, restarting): new clients go to the proxy, which retries
    // and holds them; the kernel could only refuse them.
    if (options.isUnreachable(route.backend)) return { route: { liveGenerations: [generation.mark] }, generation };
    return {
      route: {
        target: { host: route.backend.host, port: route.backend.port },
        generation: generation.mark,
        liveGenerations: [generation.mark],
      },
      generation,
    };
  }
  if (route.kind === 'hold' && route.keep !== undefined && route.keep === current.member && current.mark !== 0)
    return { route: { liveGenerations: [current.mark] }, generation: current };
  return { route: { liveGenerations: [] }, generation: current };
}

/** A table name nft accepts (letters, digits, underscores), derived from the scope and the listen port. */
export function kernelTableName(scope: string, port: number): string {
  const cleaned = scope.replace(/[^A-Za-z0-9_]/g, '_').slice(0, 40);
  return `pgwarden_${cleaned}_${port}`;
}

const hex = (mark: number): string => `0x${(mark >>> 0).toString(16).padStart(8, '0')}`;

function destinationMatch(listener: KernelListener): string {
  return listener.host === '0.0.0.0' ? 'fib daddr type local' : `ip daddr ${listener.host}`;
}

function originalMatch(listener: KernelListener): string {
  const address = listener.host === '0.0.0.0' ? '' : `ct original ip daddr ${listener.host} `;
  return `meta l4proto tcp ${address}ct original proto-dst ${listener.port} ct status dnat`;
}

/**
 * The whole table, replacing any left by an earlier proxy on this listener (nft applies a file as one transaction).
 * nat output/prerouting: new flows to the listener get the live mark and are DNATed (only while the map has a route);
 * filter output/input/forward: packets of DNATed flows whose mark is no longer live are answered with a TCP reset,
 * in both directions, so neither the client nor a demoted server sees another byte of them.
 */
export function renderTable(listener: KernelListener): string {
  const t = listener.table;
  const match = `${destinationMatch(listener)} tcp dport ${listener.port}`;
  // The resets we send pass these hooks too (same flow, same stale mark): they must not be caught again.
  const stale = `${originalMatch(listener)} ct mark != @live tcp flags & rst == 0 counter reject with tcp reset`;
  // A backend that refuses a kernel-routed connect (it just crashed) must not fail the client: its RST is dropped, the
  // client retransmits its SYN a second later, and by then the proxy has withdrawn the route and holds it instead.
  const refused = `${originalMatch(listener)} ct direction reply tcp flags & rst == rst ct status & assured == 0 counter drop`;
  return [
    `table ip ${t} {}`,
    `delete table ip ${t}`,
    `table ip ${t} {`,
    '  map route { type inet_service : ipv4_addr . inet_service; flags timeout; }',
    '  map generation { type inet_service : mark; flags timeout; }',
    '  set live { type mark; flags timeout; }',
    `  chain nat_output { type nat hook output priority -100; ${match} ct mark set tcp dport map @generation counter dnat ip to tcp dport map @route; }`,
    `  chain nat_prerouting { type nat hook prerouting priority -100; ${match} ct mark set tcp dport map @generation counter dnat ip to tcp dport map @route; }`,
    // Clients on other hosts reaching a backend on a third: replies must come back through us.
    `  chain nat_postrouting { type nat hook postrouting priority 100; ${originalMatch(listener)} oifname != "lo" masquerade; }`,
    `  chain filter_output { type filter hook output priority 0; ${refused}; ${stale}; }`,
    `  chain filter_input { type filter hook input priority 0; ${refused}; ${stale}; }`,
    `  chain filter_forward { type filter hook forward priority 0; ${refused}; ${stale}; }`,
    '}',
    '',
  ].join('\n');
}

/** One transaction that replaces every routing element, each expiring after `leaseMs` unless renewed. */
export function renderRoute(listener: KernelListener, route: KernelRoute, leaseMs: number): string {
  const t = listener.table;
  const timeout = `timeout ${Math.max(1, Math.round(leaseMs))}ms`;
  const lines = [`flush map ip ${t} route`, `flush map ip ${t} generation`, `flush set ip ${t} live`];
  const live = new Set(route.liveGenerations);
  if (route.target !== undefined && route.generation !== undefined) {
    if (!isIpv4Literal(route.target.host)) throw new Error(`kernel route target ${route.target.host} is not an IPv4 address`);
    live.add(route.generation);
    lines.push(`add element ip ${t} route { ${listener.port} ${timeout} : ${route.target.host} . ${route.target.port} }`);
    lines.push(`add element ip ${t} generation { ${listener.port} ${timeout} : ${hex(route.generation)} }`);
  }
  if (live.size > 0) lines.push(`add element ip ${t} live { ${[...live].map((mark) => `${hex(mark)} ${timeout}`).join(', ')} }`);
  return `${lines.join('\n')}\n`;
}

export interface KernelCounters {
  /** New connections DNATed to a backend (first packets counted by the nat rules). */
  readonly routed: number;
  /** Packets of stale flows answered with a reset. */
  readonly resets: number;
  /** Refusals of a kernel-routed connect hidden from the client (it retried through the proxy). */
  readonly refusalsHidden: number;
}

interface NftJsonRule {
  readonly rule?: { readonly chain?: string; readonly expr?: readonly Record<string, unknown>[] };
}

/** Sums the rule counters of `nft -j list table` output. */
export function parseCounters(json: string): KernelCounters {
  const document = JSON.parse(json) as { nftables?: readonly NftJsonRule[] };
  let routed = 0;
  let resets = 0;
  let refusalsHidden = 0;
  for (const entry of document.nftables ?? []) {
    const chain = entry.rule?.chain ?? '';
    const expressions = entry.rule?.expr ?? [];
    const isDrop = expressions.some((expression) => 'drop' in expression);
    for (const expression of expressions) {
      const counter = expression.counter as { packets?: number } | undefined;
      if (counter === undefined) continue;
      if (chain.startsWith('nat_') && chain !== 'nat_postrouting') routed += counter.packets ?? 0;
      else if (chain.startsWith('filter_') && isDrop) refusalsHidden += counter.packets ?? 0;
      else if (chain.startsWith('filter_')) resets += counter.packets ?? 0;
    }
  }
  return { routed, resets, refusalsHidden };
}
