// Renders the patroni.yml-shaped config of one local-cluster node (pure: paths and ports in, YAML text out).
import { stringify } from 'yaml';
import type { DynamicConfig } from '../core/types.js';
import type { EtcdClientSecurity } from './etcd-cluster.js';

export interface LocalTiming {
  readonly ttl: number;
  readonly loop_wait: number;
  readonly retry_timeout: number;
  readonly maximum_lag_on_failover?: number;
}

/** Patroni's defaults for the timing part of the dynamic config: what a local cluster runs with unless told otherwise. */
export const DEFAULT_DYNAMIC_CONFIG: DynamicConfig = { ttl: 30, loop_wait: 10, retry_timeout: 10, maximum_lag_on_failover: 1048576 };

export interface LocalNodeSpec {
  readonly scope: string;
  readonly namespace: string;
  readonly name: string;
  readonly apiPort: number;
  readonly pgPort: number;
  /** The node's address (default 127.0.0.1); in a network-namespace lab, its own. */
  readonly host?: string;
  /** Extra network allowed by pg_hba, e.g. the lab's subnet. */
  readonly hbaNetwork?: string;
  readonly nodeDir: string;
  readonly etcdHosts: readonly string[];
  /** etcd3.protocol, cacert, cert, key, username, password (absent: plain http, no authentication). */
  readonly etcdSecurity?: EtcdClientSecurity;
  readonly timing: LocalTiming;
  readonly superuserPassword: string;
  readonly replicationPassword: string;
  readonly binDir: string;
  readonly tags?: Readonly<Record<string, unknown>>;
  readonly extraParameters?: Readonly<Record<string, string | number | boolean>>;
  readonly bootstrapParameters?: Readonly<Record<string, string | number | boolean>>;
  /** Other bootstrap.dcs keys, e.g. { standby_cluster: { host, port } }. */
  readonly bootstrapDcs?: Readonly<Record<string, unknown>>;
  readonly callbacks?: Readonly<Record<string, string>>;
  /** postgresql.recovery_conf, e.g. { restore_command: 'cp /archive/%f %p' }. */
  readonly recoveryConf?: Readonly<Record<string, string | number | boolean>>;
  /** Extra restapi keys (certfile, keyfile, cafile, verify_client, authentication...), e.g. for a TLS REST API. */
  readonly restapi?: Readonly<Record<string, unknown>>;
  /** A ctl section (certfile, keyfile, cacert, insecure, authentication), for the CLI run with this node's config. */
  readonly ctl?: Readonly<Record<string, unknown>>;
  /** PostgreSQL over TLS (LocalClusterOptions.postgresTls): this node's certificate files. */
  readonly postgresTls?: NodeTlsFiles;
  /** The `backup:` section (pgBackRest), e.g. { repository: '<cluster dir>/pgbackrest-repo' }. */
  readonly backup?: Readonly<Record<string, unknown>>;
  /** Extra `bootstrap` keys, e.g. { method: 'restore', restore: { command: ... } } (a custom bootstrap). */
  readonly bootstrapExtra?: Readonly<Record<string, unknown>>;
  /** Extra `postgresql` keys, e.g. create_replica_methods and each method's section. */
  readonly postgresqlExtra?: Readonly<Record<string, unknown>>;
}

interface FilePair {
  readonly certFile: string;
  readonly keyFile: string;
}

export interface NodeTlsFiles {
  readonly caFile: string;
  readonly server: FilePair;
  readonly superuser: FilePair;
  readonly replication: FilePair;
  readonly rewind: FilePair;
}

/** The rewind user of a TLS cluster: pg_rewind connects as it, with its own certificate (the user's CN). */
export const LOCAL_REWIND_USER = 'rewind_user';

/** The server side: ssl on with this node's certificate, and the CA that signed the clients' certificates. */
function tlsParameters(tls: NodeTlsFiles): Record<string, string> {
  return { ssl: 'on', ssl_cert_file: tls.server.certFile, ssl_key_file: tls.server.keyFile, ssl_ca_file: tls.caFile };
}

/** The client side of a user: verify the server's chain and host name, and present the user's own certificate. */
function tlsAuthentication(tls: NodeTlsFiles, user: FilePair): Record<string, string> {
  return { sslmode: 'verify-full', sslrootcert: tls.caFile, sslcert: user.certFile, sslkey: user.keyFile };
}

/**
 * pg_hba: nothing is trusted. The Unix socket asks for the password too (the agent's own session has it), behind a
 * socket directory only postgres enters; over TCP only TLS with a client certificate whose CN is the user
 * (clientcert=verify-full) and the password; without TLS, plain TCP with the password.
 */
function hbaLines(networks: readonly string[], isTls: boolean): string[] {
  if (!isTls)
    return networks.flatMap((network) => [`host replication replicator ${network} scram-sha-256`, `host all all ${network} scram-sha-256`]);
  return networks.flatMap((network) => [
    `hostssl replication replicator ${network} scram-sha-256 clientcert=verify-full`,
    `hostssl all all ${network} scram-sha-256 clientcert=verify-full`,
  ]);
}

/** The PostgreSQL parameters a local cluster bootstraps with (the Patroni cluster of the benchmarks uses them too). */
export const LOCAL_BOOTSTRAP_PARAMETERS: Readonly<Record<string, string | number>> = {
  wal_level: 'replica',
  hot_standby: 'on',
  wal_log_hints: 'on',
  max_wal_senders: 10,
  max_replication_slots: 10,
  max_connections: 100,
};

export function renderNodeConfig(spec: LocalNodeSpec): string {
  const host = spec.host ?? '127.0.0.1';
  const networks = ['127.0.0.1/32', ...(spec.hbaNetwork === undefined ? [] : [spec.hbaNetwork])];
  const tls = spec.postgresTls;
  const config = {
    scope: spec.scope,
    namespace: spec.namespace,
    name: spec.name,
    log: { level: 'INFO' },
    restapi: { listen: `${host}:${spec.apiPort}`, connect_address: `${host}:${spec.apiPort}`, ...spec.restapi },
    ...(spec.ctl !== undefined ? { ctl: spec.ctl } : {}),
    etcd3: { hosts: spec.etcdHosts.join(','), ...spec.etcdSecurity },
    bootstrap: {
      dcs: {
        ttl: spec.timing.ttl,
        loop_wait: spec.timing.loop_wait,
        retry_timeout: spec.timing.retry_timeout,
        maximum_lag_on_failover: spec.timing.maximum_lag_on_failover ?? DEFAULT_DYNAMIC_CONFIG.maximum_lag_on_failover,
        postgresql: {
          use_pg_rewind: true,
          use_slots: true,
          parameters: { ...LOCAL_BOOTSTRAP_PARAMETERS, ...spec.bootstrapParameters },
        },
        ...spec.bootstrapDcs,
      },
      initdb: [{ encoding: 'UTF8' }, { locale: 'C.UTF-8' }, 'data-checksums'],
      ...spec.bootstrapExtra,
    },
    postgresql: {
      listen: `${host}:${spec.pgPort}`,
      connect_address: `${host}:${spec.pgPort}`,
      data_dir: `${spec.nodeDir}/data`,
      bin_dir: spec.binDir,
      pgpass: `${spec.nodeDir}/pgpass`,
      authentication: {
        superuser: {
          username: 'postgres',
          password: spec.superuserPassword,
          ...(tls === undefined ? {} : tlsAuthentication(tls, tls.superuser)),
        },
        replication: {
          username: 'replicator',
          password: spec.replicationPassword,
          ...(tls === undefined ? {} : tlsAuthentication(tls, tls.replication)),
        },
        // Only with TLS, so the default cluster stays as it was. It shares the replication password.
        ...(tls === undefined
          ? {}
          : { rewind: { username: LOCAL_REWIND_USER, password: spec.replicationPassword, ...tlsAuthentication(tls, tls.rewind) } }),
      },
      parameters: {
        unix_socket_directories: spec.nodeDir,
        shared_buffers: '32MB',
        ...(tls === undefined ? {} : tlsParameters(tls)),
        ...spec.extraParameters,
      },
      ...(spec.callbacks !== undefined ? { callbacks: spec.callbacks } : {}),
      ...(spec.recoveryConf !== undefined ? { recovery_conf: spec.recoveryConf } : {}),
      pg_hba: ['local all all scram-sha-256', ...hbaLines(networks, tls !== undefined)],
      ...spec.postgresqlExtra,
    },
    ...(spec.backup !== undefined ? { backup: spec.backup } : {}),
    tags: { nofailover: false, noloadbalance: false, clonefrom: false, nosync: false, ...spec.tags },
  };
  return stringify(config);
}
