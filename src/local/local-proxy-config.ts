// Renders the config of a `pgwarden proxy` started with a local cluster (pure: scope, etcd and ports in, YAML out).
import type { EtcdClientSecurity } from './etcd-cluster.js';

export interface LocalProxySpec {
  readonly scope: string;
  readonly namespace: string;
  /** proxy.name: its name on the dashboards (proxies/<name> in the DCS). */
  readonly name?: string;
  readonly etcdEndpoints: readonly string[];
  /** etcd3.protocol, cacert, cert, key, username, password (absent: plain http, no authentication). */
  readonly etcdSecurity?: EtcdClientSecurity;
  readonly primaryPort: number;
  readonly replicaPort: number;
  readonly apiPort: number;
  /** Extra `proxy:` settings (seconds, bytes), e.g. { hold_timeout: 5 }. */
  readonly settings: Readonly<Record<string, string | number | boolean>>;
  /** proxy.monitor: the role the proxy reads replication positions with (absent: published positions only). */
  readonly monitor?: Readonly<Record<string, string>>;
  /** proxy.split_listen on this port, with proxy.split (auth_file and settings). */
  readonly split?: {
    readonly port: number;
    readonly authFile: string;
    readonly settings: Readonly<Record<string, string | number | boolean>>;
  };
}

export function renderLocalProxyConfig(spec: LocalProxySpec): string {
  const extra = Object.entries(spec.settings).map(([key, value]) => `  ${key}: ${JSON.stringify(value)}`);
  return [
    `scope: ${spec.scope}`,
    `namespace: ${spec.namespace}`,
    'etcd3:',
    `  hosts: ${spec.etcdEndpoints.map((endpoint) => endpoint.replace(/^https?:\/\//, '')).join(',')}`,
    ...Object.entries(spec.etcdSecurity ?? {}).map(([key, value]) => `  ${key}: ${JSON.stringify(value)}`),
    'proxy:',
    ...(spec.name !== undefined ? [`  name: ${spec.name}`] : []),
    `  primary_listen: 127.0.0.1:${spec.primaryPort}`,
    `  replica_listen: 127.0.0.1:${spec.replicaPort}`,
    `  api_listen: 127.0.0.1:${spec.apiPort}`,
    ...extra,
    ...(spec.split === undefined
      ? []
      : [
          `  split_listen: 127.0.0.1:${spec.split.port}`,
          '  split:',
          `    auth_file: ${JSON.stringify(spec.split.authFile)}`,
          ...Object.entries(spec.split.settings).map(([key, value]) => `    ${key}: ${JSON.stringify(value)}`),
        ]),
    ...(spec.monitor === undefined
      ? []
      : ['  monitor:', ...Object.entries(spec.monitor).map(([key, value]) => `    ${key}: ${JSON.stringify(value)}`)]),
    '',
  ].join('\n');
}
