// Hosts for the local cluster in Linux network namespaces: one namespace per etcd member and per PostgreSQL node,
// each with a veth on a private bridge and its own address, so a partition is a real network fault (packets
// dropped by nftables inside the host's namespace, or delayed and lost by tc netem on its interface).
import { randomBytes, randomInt } from 'node:crypto';
import { describeError, PgwardenError } from '../util/errors.js';
import { runCommand } from '../util/run-command.js';

export interface LabHost {
  readonly name: string;
  /** The network namespace (`ip netns exec <ns> ...`). */
  readonly ns: string;
  readonly ip: string;
  /** The host side of its veth, on the bridge. */
  readonly hostVeth: string;
}

/** How a partition cuts a host off: both ways, or only what it sends, or only what it receives. */
export type Direction = 'both' | 'outbound' | 'inbound';

async function ip(args: readonly string[]): Promise<void> {
  try {
    await runCommand('ip', args);
  } catch (error) {
    throw new PgwardenError('PGW_LOCAL_PROCESS', describeError(error));
  }
}

async function inNs(ns: string, command: string, args: readonly string[], input?: string): Promise<void> {
  try {
    await runCommand('ip', ['netns', 'exec', ns, command, ...args], input === undefined ? {} : { input });
  } catch (error) {
    throw new PgwardenError('PGW_LOCAL_PROCESS', `in namespace ${ns}: ${command} ${args.join(' ')} failed: ${describeError(error)}`);
  }
}

/** Whether this machine lets us create namespaces (root, iproute2, a kernel with netns and veth). */
export async function canUseNetns(): Promise<{ readonly ok: boolean; readonly reason: string }> {
  if (process.platform !== 'linux') return { ok: false, reason: 'network namespaces exist only on Linux' };
  if (process.getuid?.() !== 0) return { ok: false, reason: 'creating network namespaces needs root' };
  const probe = `pgwprobe${randomBytes(3).toString('hex')}`;
  try {
    await runCommand('ip', ['netns', 'add', probe], { timeoutMs: 5000 });
    await runCommand('ip', ['netns', 'del', probe], { timeoutMs: 5000 });
    return { ok: true, reason: '' };
  } catch (error) {
    return { ok: false, reason: `ip netns add failed: ${describeError(error)}` };
  }
}

export class NetnsLab {
  readonly bridge: string;
  readonly gateway: string;
  readonly subnet: string;
  readonly hosts = new Map<string, LabHost>();
  readonly #id: string;
  #nextOctet = 10;

  private constructor(id: string, octets: readonly [number, number]) {
    this.#id = id;
    this.bridge = `pgwb${id}`;
    this.gateway = `10.${octets[0]}.${octets[1]}.1`;
    this.subnet = `10.${octets[0]}.${octets[1]}.0/24`;
  }

  /** A bridge with a random /24 of 10.0.0.0/8 (two labs on one machine do not collide) and the gateway address. */
  static async create(): Promise<NetnsLab> {
    const lab = new NetnsLab(randomBytes(3).toString('hex'), [randomInt(100, 250), randomInt(0, 250)]);
    await ip(['link', 'add', lab.bridge, 'type', 'bridge']);
    try {
      await ip(['addr', 'add', `${lab.gateway}/24`, 'dev', lab.bridge]);
      await ip(['link', 'set', lab.bridge, 'up']);
    } catch (error) {
      await lab.destroy();
      throw error;
    }
    return lab;
  }

  /** A namespace with one interface (eth0) on the bridge, loopback up, and a route to the bridge's gateway. */
  async addHost(name: string): Promise<LabHost> {
    const index = this.#nextOctet++;
    const host: LabHost = {
      name,
      ns: `pgw${this.#id}${name}`,
      ip: `${this.gateway.replace(/\.1$/, '')}.${index}`,
      hostVeth: `pgwv${this.#id}${index}`,
    };
    this.hosts.set(name, host);
    await ip(['netns', 'add', host.ns]);
    await ip(['link', 'add', host.hostVeth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', host.ns]);
    await ip(['link', 'set', host.hostVeth, 'master', this.bridge]);
    await ip(['link', 'set', host.hostVeth, 'up']);
    await ip(['-n', host.ns, 'addr', 'add', `${host.ip}/24`, 'dev', 'eth0']);
    await ip(['-n', host.ns, 'link', 'set', 'eth0', 'up']);
    await ip(['-n', host.ns, 'link', 'set', 'lo', 'up']);
    await ip(['-n', host.ns, 'route', 'add', 'default', 'via', this.gateway]);
    return host;
  }

  host(name: string): LabHost {
    const host = this.hosts.get(name);
    if (host === undefined) throw new PgwardenError('PGW_LOCAL_PROCESS', `no lab host named ${name}`);
    return host;
  }

  /** argv prefix that runs a command inside the host's namespace (ip execs it: the PID is the command's). */
  wrap(name: string): string[] {
    return ['ip', 'netns', 'exec', this.host(name).ns];
  }

  /**
   * Drops traffic between `name` and the given addresses inside its namespace (all of it when `peers` is empty is not
   * meant: pass the addresses). Replaces any earlier partition of that host.
   */
  async partition(name: string, peers: readonly string[], direction: Direction = 'both'): Promise<void> {
    const host = this.host(name);
    const set = peers.length === 0 ? '' : `elements = { ${peers.join(', ')} }`;
    const rules = [
      'table inet pgwchaos {}',
      'delete table inet pgwchaos',
      'table inet pgwchaos {',
      `  set cut { type ipv4_addr; ${set} }`,
      `  chain input { type filter hook input priority -10; ${direction === 'outbound' ? '' : 'ip saddr @cut drop;'} }`,
      `  chain output { type filter hook output priority -10; ${direction === 'inbound' ? '' : 'ip daddr @cut drop;'} }`,
      '}',
      '',
    ].join('\n');
    await inNs(host.ns, 'nft', ['-f', '-'], rules);
  }

  /**
   * Every packet in or out of the host's interface dropped, whoever the peer (etcd, the other members, the bridge's
   * gateway and so every process of the root namespace: proxies, clients): a host that lost power, as its peers see
   * it. Nothing answers, not even with a RST or a FIN; its own processes still reach each other over loopback.
   * Replaces any earlier partition of that host; heal removes it.
   */
  async blackhole(name: string): Promise<void> {
    const host = this.host(name);
    const rules = [
      'table inet pgwchaos {}',
      'delete table inet pgwchaos',
      'table inet pgwchaos {',
      '  chain input { type filter hook input priority -10; iifname "eth0" drop; }',
      '  chain output { type filter hook output priority -10; oifname "eth0" drop; }',
      '}',
      '',
    ].join('\n');
    await inNs(host.ns, 'nft', ['-f', '-'], rules);
  }

  /**
   * Added latency and loss on everything the host sends, with tc netem. Kernels built without sch_netem (this
   * project's CI VMs among them) cannot delay packets at all; there the loss is applied with nftables' random
   * numbers and the latency is left out. Returns what was applied, for the report.
   */
  async degrade(name: string, delayMs: number, lossPercent: number): Promise<string> {
    const host = this.host(name);
    const args = ['qdisc', 'replace', 'dev', 'eth0', 'root', 'netem', 'delay', `${delayMs}ms`];
    if (lossPercent > 0) args.push('loss', `${lossPercent}%`);
    try {
      await inNs(host.ns, 'tc', args);
      return `+${delayMs} ms, ${lossPercent}% loss (tc netem)`;
    } catch (error) {
      if (!/qdisc kind is unknown/.test(describeError(error))) throw error;
    }
    const rules = [
      'table inet pgwloss {}',
      'delete table inet pgwloss',
      'table inet pgwloss {',
      `  chain output { type filter hook output priority -5; numgen random mod 100 < ${Math.round(lossPercent)} drop; }`,
      '}',
      '',
    ].join('\n');
    await inNs(host.ns, 'nft', ['-f', '-'], rules);
    return `${lossPercent}% loss (nftables; no latency: this kernel has no sch_netem)`;
  }

  /** Removes partitions and netem from one host. */
  async heal(name: string): Promise<void> {
    const host = this.host(name);
    await inNs(
      host.ns,
      'nft',
      ['-f', '-'],
      'table inet pgwchaos {}\ndelete table inet pgwchaos\ntable inet pgwloss {}\ndelete table inet pgwloss\n',
    );
    await inNs(host.ns, 'tc', ['qdisc', 'del', 'dev', 'eth0', 'root']).catch(() => undefined);
  }

  async healAll(): Promise<void> {
    for (const name of this.hosts.keys()) await this.heal(name);
  }

  /** Deletes the namespaces (and with them their veths) and the bridge. Processes inside must be stopped first. */
  async destroy(): Promise<void> {
    for (const host of this.hosts.values()) await ip(['netns', 'del', host.ns]).catch(() => undefined);
    await ip(['link', 'del', this.bridge]).catch(() => undefined);
  }
}
