// A Patroni-style HAProxy configuration for a LocalCluster: writes checked with GET /primary, reads with GET /replica.
import type { LocalCluster } from '../../src/local/local-cluster.js';

export const HAPROXY = '/usr/sbin/haproxy';

export function haproxyConfig(cluster: LocalCluster, writePort: number, readPort: number, checkIntervalMs = 300): string {
  const servers = (check: string): string => cluster.nodes.map((node) => `  server ${node.name} 127.0.0.1:${node.pgPort} check port ${node.apiPort}${check}`).join('\n');
  return `global
  maxconn 200
defaults
  mode tcp
  # HAProxy waits min(timeout connect, 1s) before retrying a refused connect; with 2s that pause became the
  # whole switchover write gap (~1.05 s). On a LAN a connect takes well under a millisecond, so 250ms with
  # retries (redispatched to another UP server) both shortens the pause and recovers from a lost SYN sooner.
  timeout connect 250ms
  retries 3
  option redispatch 1
  timeout client 30m
  timeout server 30m
  timeout check 2s
listen primary
  bind 127.0.0.1:${writePort}
  option httpchk GET /primary
  http-check expect status 200
  default-server inter ${checkIntervalMs}ms fall 2 rise 1 on-marked-down shutdown-sessions
${servers('')}
listen replicas
  bind 127.0.0.1:${readPort}
  balance roundrobin
  option httpchk GET /replica
  http-check expect status 200
  default-server inter ${checkIntervalMs}ms fall 2 rise 1 on-marked-down shutdown-sessions
${servers('')}
`;
}
