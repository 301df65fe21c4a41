// The network step of a local cluster: where each etcd member and node lives (loopback, or its own network namespace)
// and how each node reaches etcd (directly, or through fault relays of this process), and taking all of it down.
import { FaultRelay } from './fault-relay.js';
import { NetnsLab } from './netns.js';

export type NetworkMode = 'loopback' | 'netns' | 'relay';

export interface ClusterNetwork {
  readonly mode: NetworkMode;
  /** The namespace lab in netns mode. */
  readonly lab: NetnsLab | undefined;
  /** relay mode: each node's relays to the etcd members, by node name (filled by connectNodes). */
  readonly relays: Map<string, FaultRelay[]>;
  /** The network pg_hba must let in besides loopback (the lab's subnet). */
  readonly hbaNetwork: string | undefined;
  /** Where a member (etcd1..., node1...) listens. */
  host(name: string): string;
  /** The argv prefix that runs a command where the member lives (empty on loopback). */
  wrap(name: string): readonly string[];
  /** The etcd host:port list each node's config gets: the endpoints, or in relay mode its own relays to them. */
  connectNodes(nodes: readonly string[], etcdEndpoints: readonly string[]): Promise<Map<string, string[]>>;
  /** Closes relays and deletes the namespaces; processes inside must be stopped first. Idempotent. */
  close(): Promise<void>;
}

const stripScheme = (endpoint: string): string => endpoint.replace(/^https?:\/\//, '');

/** Sets the network up for these members; on failure nothing is left behind. */
export async function openNetwork(mode: NetworkMode, members: readonly string[]): Promise<ClusterNetwork> {
  let lab: NetnsLab | undefined;
  if (mode === 'netns') {
    lab = await NetnsLab.create();
    try {
      for (const name of members) await lab.addHost(name);
    } catch (error) {
      await lab.destroy();
      throw error;
    }
  }
  const relays = new Map<string, FaultRelay[]>();
  const withLab = lab;
  return {
    mode,
    lab,
    relays,
    hbaNetwork: lab?.subnet,
    host: (name) => withLab?.host(name).ip ?? '127.0.0.1',
    wrap: (name) => withLab?.wrap(name) ?? [],
    async connectNodes(nodes, etcdEndpoints) {
      const hosts = new Map<string, string[]>();
      for (const node of nodes) {
        if (mode !== 'relay') {
          hosts.set(node, etcdEndpoints.map(stripScheme));
          continue;
        }
        // One relay per etcd member and node, so a fault can cut one node off while the others keep talking.
        const list = await Promise.all(
          etcdEndpoints.map(async (endpoint) => {
            const url = new URL(endpoint);
            return FaultRelay.start({ host: url.hostname, port: Number(url.port) });
          }),
        );
        relays.set(node, list);
        hosts.set(
          node,
          list.map((relay) => `127.0.0.1:${relay.port}`),
        );
      }
      return hosts;
    },
    async close() {
      await withLab?.destroy();
      for (const list of relays.values()) for (const relay of list) await relay.close();
      relays.clear();
    },
  };
}
