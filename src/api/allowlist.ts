// restapi.allowlist: which client addresses may call unsafe endpoints (Patroni answers 403 "Access is denied" otherwise).
import { lookup } from 'node:dns/promises';
import { BlockList, isIP } from 'node:net';
import { PgwardenError } from '../util/errors.js';

export type ResolveHost = (host: string) => Promise<string[]>;

const resolveWithDns: ResolveHost = async (host) => (await lookup(host, { all: true })).map((entry) => entry.address);

/** `::ffff:10.0.0.1` (an IPv4 client on a dual-stack socket) is matched as `10.0.0.1`. */
export function normalizeClientIp(address: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  return mapped?.[1] ?? address;
}

function addAddress(list: BlockList, address: string): void {
  const family = isIP(address);
  if (family !== 0) list.addAddress(address, family === 6 ? 'ipv6' : 'ipv4');
}

/** A literal entry ("10.0.0.0/8", "::1", "10.1.2.3") or undefined when it is a host name. */
function addLiteral(list: BlockList, entry: string): boolean {
  const slash = entry.indexOf('/');
  if (slash === -1) {
    if (isIP(entry) === 0) return false;
    addAddress(list, entry);
    return true;
  }
  const network = entry.slice(0, slash);
  const prefix = Number(entry.slice(slash + 1));
  const family = isIP(network);
  if (family === 0 || !Number.isInteger(prefix) || prefix < 0 || prefix > (family === 6 ? 128 : 32)) {
    throw new PgwardenError(
      'PGW_CONFIG_INVALID',
      `restapi.allowlist entry "${entry}" is not a valid CIDR network (expected e.g. 10.0.0.0/8 or fd00::/8)`,
      {
        context: {
          key: 'restapi.allowlist',
          entry,
          hint: `write an address with a prefix length of 0-${family === 6 ? 128 : 32} (e.g. 10.0.0.0/8 or fd00::/8), a single address, or a host name`,
        },
      },
    );
  }
  list.addSubnet(network, prefix, family === 6 ? 'ipv6' : 'ipv4');
  return true;
}

export function hostOfUrl(url: string): string | undefined {
  try {
    return new URL(url).hostname.replace(/^\[|\]$/g, '') || undefined;
  } catch {
    return undefined;
  }
}

export interface AllowlistOptions {
  readonly entries: readonly string[];
  /** allowlist_include_members: also admit the hosts of every member's api_url. */
  readonly includeMembers: boolean;
  readonly resolve?: ResolveHost;
  /** How long a resolved host name is trusted before it is looked up again. */
  readonly refreshMs?: number;
  readonly nowMs: () => number;
}

/**
 * Decides whether a client address may use unsafe endpoints. Host names (in the list or in members' api_url) are resolved
 * through DNS and cached; a name that does not resolve admits nobody rather than failing the request.
 */
export class Allowlist {
  readonly #literals = new BlockList();
  readonly #hostNames: string[] = [];
  readonly #resolved = new Map<string, { addresses: string[]; atMs: number }>();
  readonly #options: AllowlistOptions;

  constructor(options: AllowlistOptions) {
    this.#options = options;
    for (const entry of options.entries) {
      const trimmed = entry.trim();
      if (trimmed === '') continue;
      if (!addLiteral(this.#literals, trimmed)) this.#hostNames.push(trimmed);
    }
  }

  /** True when nothing restricts access (no allowlist configured). */
  get isOpen(): boolean {
    return this.#options.entries.length === 0 && !this.#options.includeMembers;
  }

  async allows(clientAddress: string, memberApiUrls: readonly string[]): Promise<boolean> {
    if (this.isOpen) return true;
    const ip = normalizeClientIp(clientAddress);
    const family = isIP(ip);
    if (family === 0) return false;
    const type = family === 6 ? 'ipv6' : 'ipv4';
    if (this.#literals.check(ip, type)) return true;
    const hosts = [...this.#hostNames];
    if (this.#options.includeMembers) {
      for (const url of memberApiUrls) {
        const host = hostOfUrl(url);
        if (host !== undefined) hosts.push(host);
      }
    }
    for (const host of hosts) {
      if (isIP(host) !== 0) {
        if (normalizeClientIp(host) === ip) return true;
        continue;
      }
      if ((await this.#addressesOf(host)).includes(ip)) return true;
    }
    return false;
  }

  async #addressesOf(host: string): Promise<string[]> {
    const now = this.#options.nowMs();
    const cached = this.#resolved.get(host);
    if (cached !== undefined && now - cached.atMs < (this.#options.refreshMs ?? 60_000)) return cached.addresses;
    let addresses: string[];
    try {
      addresses = (await (this.#options.resolve ?? resolveWithDns)(host)).map(normalizeClientIp);
    } catch {
      addresses = [];
    }
    this.#resolved.set(host, { addresses, atMs: now });
    return addresses;
  }
}
