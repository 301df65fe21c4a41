// The HAProxy configuration `pgwarden haproxy-config` prints, for a LocalCluster on loopback.
import { renderHaproxyConfig } from '../../src/cli/commands/haproxy-config.js';
import type { LocalCluster } from '../../src/local/local-cluster.js';

export const HAPROXY = '/usr/sbin/haproxy';

export function haproxyConfig(cluster: LocalCluster, writePort: number, readPort: number, checkIntervalMs = 300): string {
  const servers = cluster.nodes.map((node) => ({
    name: node.name,
    host: '127.0.0.1',
    pgPort: node.pgPort,
    apiPort: node.apiPort,
    isApiHttps: false,
  }));
  return renderHaproxyConfig(servers, { bind: '127.0.0.1', primaryPort: writePort, replicaPort: readPort, checkIntervalMs, maxconn: 200 });
}
