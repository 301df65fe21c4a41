// The one factory of real adapters: bin/ entry points and local/ construct the etcd DCS and the PostgreSQL
// controller only through here, so a new backend (or TLS options for etcd) is wired in one place.
// First: keeps pg from loading undici (see pg-node-runtime.ts).
import './pg-node-runtime.js';
import { readFileSync } from 'node:fs';
import type { EtcdSettings } from '../config/load.js';
import { EtcdDcs, parseEtcdHosts, type EtcdAuth, type EtcdDcsOptions, type EtcdTls, type TlsFile } from '../dcs/etcd/etcd-dcs.js';
import type { ProxyMonitor } from '../config/proxy-config.js';
import type { PositionReader } from '../core/ports.js';
import { PostgresController, resolveRunAs, type PgControllerOptions } from '../postgres/controller.js';
import { PgPositionReader } from '../postgres/position-reader.js';
import { describeError, PgwardenError } from '../util/errors.js';

export { parseEtcdHosts, resolveRunAs };
export { checkDataDirUsable } from '../postgres/data-dir.js';
export type { EtcdDcs, EtcdSettings, PostgresController };

/** Where and how to reach etcd: what EtcdDcsOptions takes besides the cluster's names. */
export interface EtcdConnection {
  readonly endpoints: readonly string[];
  readonly tls?: EtcdTls | undefined;
  readonly auth?: EtcdAuth | undefined;
}

/** A TLS file named by the config, read now: a missing or unreadable one is a config error naming the key and path. */
function readTlsFile(section: string, key: string, path: string): TlsFile {
  try {
    return { path, pem: readFileSync(path) };
  } catch (error) {
    throw new PgwardenError(
      'PGW_CONFIG_UNREADABLE',
      `${section}.${key}: cannot read ${path} (${describeError(error)}); fix the path or remove the key`,
      {
        cause: error,
        context: {
          key: `${section}.${key}`,
          path,
          hint: 'fix the path (the agent runs as its own user: check it may read the file) or remove the key',
        },
      },
    );
  }
}

/**
 * Endpoints, TLS material and credentials from the etcd section of a config. The TLS files are read here, once, at
 * start (a renewed certificate takes a restart, as in Patroni); `key` defaults to `cert` (one PEM with both).
 */
export function etcdConnection(settings: EtcdSettings, section = 'etcd3'): EtcdConnection {
  const endpoints = parseEtcdHosts(settings.hosts, settings.protocol);
  const hasTls = settings.cacert !== undefined || settings.cert !== undefined;
  const tls: EtcdTls | undefined = hasTls
    ? {
        ca: settings.cacert === undefined ? undefined : readTlsFile(section, 'cacert', settings.cacert),
        cert: settings.cert === undefined ? undefined : readTlsFile(section, 'cert', settings.cert),
        key:
          settings.cert === undefined
            ? undefined
            : settings.key === undefined
              ? readTlsFile(section, 'cert', settings.cert)
              : readTlsFile(section, 'key', settings.key),
        keyPassphrase: settings.keyPassword,
      }
    : undefined;
  const auth: EtcdAuth | undefined =
    settings.username === undefined ? undefined : { username: settings.username, password: settings.password ?? '' };
  return { endpoints, ...(tls !== undefined ? { tls } : {}), ...(auth !== undefined ? { auth } : {}) };
}

export function openEtcdDcs(options: EtcdDcsOptions): EtcdDcs {
  return new EtcdDcs(options);
}

export function openPostgresController(options: PgControllerOptions): PostgresController {
  return new PostgresController(options);
}

/** proxy.monitor's role, as the one PostgreSQL session factory takes it. */
export function openPositionReader(monitor: ProxyMonitor): PositionReader {
  const { username, password, database, sslmode, sslrootcert, sslcert, sslkey, sslpassword } = monitor;
  return new PgPositionReader({ username, password, database, security: { sslmode, sslrootcert, sslcert, sslkey, sslpassword } });
}
