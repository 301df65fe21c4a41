// The `proxy:` section and what a proxy needs from the rest of pgwarden.yml (scope, namespace, etcd, REST API TLS).
// A proxy host may carry only these keys; an agent's full config file works too (the other sections are ignored).
import { restClientSettings } from './rest-client-settings.js';
import type { RestClientSettings } from '../util/rest-client.js';
import { statSync } from 'node:fs';
import { parseDocument } from 'yaml';
import { z } from 'zod';
import { parseByteSize } from '../util/byte-size.js';
import { parsePatroniInt } from '../util/patroni-int.js';
import { isIpv4Literal } from '../util/ip.js';
import { PgwardenError } from '../util/errors.js';
import {
  checkEtcdSettings,
  etcdHosts,
  etcdSettings,
  readConfigText,
  secretFileModeWarning,
  securityKeyProblems,
  type EtcdSettings,
} from './load.js';
import { credentials, etcdSection, hostPortSchema } from './schema.js';

/** proxy.replica_max_lag: how far behind the primary a replica may be, in bytes of WAL or in time. */
export type ReplicaMaxLag = { readonly kind: 'bytes'; readonly bytes: number } | { readonly kind: 'time'; readonly ms: number };

const DURATION = /^\s*\d+(?:\.\d+)?\s*(?:ms|s|min|h)\s*$/;

/** A number or a size (`1MB`) is bytes; a duration (`500ms`, `10s`, `1min`) is the age of the last replayed transaction. */
const replicaMaxLag = z.union([z.number().int().min(0), z.string()]).transform((value, context): ReplicaMaxLag => {
  if (typeof value === 'number') return { kind: 'bytes', bytes: value };
  const ms = DURATION.test(value) ? parsePatroniInt(value.trim(), 'ms') : undefined;
  if (ms !== undefined) return { kind: 'time', ms };
  const bytes = parseByteSize(value);
  if (bytes === undefined) {
    context.addIssue({ code: 'custom', message: `expected bytes (a number or a size like 10MB) or a duration like 10s, got "${value}"` });
    return z.NEVER;
  }
  return { kind: 'bytes', bytes };
});

/**
 * proxy.monitor: the role the proxy reads each member's WAL position with (a few times a second, one session per
 * member). pg_monitor is enough: `CREATE ROLE pgwarden_proxy LOGIN PASSWORD '…' IN ROLE pg_monitor`.
 */
const monitorSchema = z
  .object({
    username: z.string().min(1, 'proxy.monitor.username is required: a role with pg_monitor'),
    password: z.string().optional(),
    database: z.string().default('postgres'),
    sslmode: z.enum(['disable', 'allow', 'prefer', 'require', 'verify-ca', 'verify-full']).optional(),
    sslrootcert: z.string().optional(),
    sslcert: z.string().optional(),
    sslkey: z.string().optional(),
    sslpassword: z.string().optional(),
    /** Seconds between two reads of every member's position. */
    interval: z.number().min(0.05).max(10).default(0.2),
  })
  .strict();

export type ProxyMonitor = z.output<typeof monitorSchema>;

const seconds = (minimum: number) => z.number().min(minimum);

/** host:port to listen on; port 0 picks a free port (tests, or when the port is published elsewhere). */
const listenAddress = hostPortSchema(0, '127.0.0.1:5000');

/**
 * proxy.split: the split listener's pooling and client authentication (PgBouncer's names where they exist).
 * Transaction pooling (lent per transaction, reads routed) or session pooling (one primary connection per client).
 */
const splitSchema = z
  .object({
    /** PgBouncer auth_file format: `"user" "SCRAM-SHA-256$..."` (pg_authid.rolpassword) or `"user" "plain password"`. */
    auth_file: z.string().min(1, 'proxy.split.auth_file is required: a PgBouncer-style userlist'),
    /**
     * transaction: a server connection is lent per transaction and reads are routed to replicas. session: a client
     * holds one primary connection from login to logout (PgBouncer's session mode; no read routing).
     */
    pool_mode: z
      .enum(['transaction', 'session'], {
        error: 'expected transaction (lent per transaction, reads on replicas) or session (one primary connection per client)',
      })
      .default('transaction'),
    /** Server connections per (server, database, user). */
    pool_size: z.number().int().min(1).default(20),
    max_client_conn: z.number().int().min(1).default(100),
    /** Seconds a transaction waits for a server connection (a full pool, or no primary during a failover). */
    query_wait_timeout: z.number().min(0.1).default(120),
    /** Seconds a read after a write waits for a replica to replay the session's floor before it goes to the primary. */
    causal_wait: z.number().min(0).max(10).default(0.05),
    /**
     * TLS towards clients, with PgBouncer's names: disable; allow and prefer (TLS when the client asks for it);
     * require (a client that does not ask is refused). Default: prefer with a certificate, else disable.
     */
    client_tls_sslmode: z.enum(['disable', 'allow', 'prefer', 'require']).optional(),
    /** PEM certificate (chain) and key the split listener presents. */
    client_tls_cert_file: z.string().min(1).optional(),
    client_tls_key_file: z.string().min(1).optional(),
    /**
     * PgBouncer's auth_user and auth_query: a user missing from auth_file is looked up with auth_query ($1: the user
     * name) on the primary, in the client's database, logged in as auth_user (a plain password line in auth_file).
     */
    auth_user: z.string().min(1).optional(),
    auth_query: z.string().includes('$1', { message: 'proxy.split.auth_query must use $1 for the user name' }).optional(),
  })
  .strict();

/** The split listener's effective client TLS mode. */
export function clientTlsMode(split: Pick<SplitSection, 'client_tls_sslmode' | 'client_tls_cert_file'>): 'disable' | 'allow' | 'require' {
  const mode = split.client_tls_sslmode ?? (split.client_tls_cert_file !== undefined ? 'prefer' : 'disable');
  return mode === 'prefer' ? 'allow' : mode;
}

export type SplitSection = z.output<typeof splitSchema>;

export const proxySectionSchema = z.object({
  /** This proxy's name in the DCS (`proxies/<name>`, shown on every member's dashboard); default: host:primary port. */
  name: z
    .string()
    .regex(/^[A-Za-z0-9._:@-]{1,128}$/, 'proxy.name: letters, digits and . _ : @ - only (it is part of a DCS key), e.g. proxy-a')
    .optional(),
  primary_listen: listenAddress,
  replica_listen: listenAddress.optional(),
  /** The read/write split listener (off by default): one PostgreSQL endpoint, pooled, routed per transaction. */
  split_listen: listenAddress.optional(),
  split: splitSchema.optional(),
  /** /metrics and /health of the proxy itself. */
  api_listen: listenAddress.optional(),
  /** How long a new primary connection waits for a writable primary before it is closed. */
  hold_timeout: seconds(0).default(30),
  /** Fail closed when the DCS has not confirmed the leader for this long (capped at the cluster's ttl). */
  dcs_timeout: seconds(0.5).default(10),
  connect_timeout: seconds(0.05).default(2),
  replica_max_lag: replicaMaxLag.prefault(1024 * 1024),
  /** Fresh positions for the replica route; without it, routing reads what the agents publish each loop_wait. */
  monitor: monitorSchema.optional(),
  /**
   * With no replica within replica_max_lag, reads go to the primary: `read-only` (default) sessions that start with
   * default_transaction_read_only=on, `read-write` plain sessions, `off` none (clients are held, then refused).
   */
  replica_fallback: z.enum(['read-only', 'read-write', 'off']).optional(),
  /** Older spelling: false = replica_fallback: off, true = read-only (replica_fallback wins when both are set). */
  replica_fallback_to_primary: z.boolean().optional(),
  /** Clients that have not finished within this many seconds after SIGTERM are disconnected. */
  shutdown_grace: seconds(0).default(5),
  /**
   * userspace: the proxy relays every byte. kernel: once a confirmed lock holder is routable, nftables DNATs new
   * primary connections straight to it (Linux, nftables, root or CAP_NET_ADMIN); the proxy still decides, holds
   * and fails closed, and the kernel routes expire unless the proxy renews them every kernel_lease seconds.
   */
  data_path: z.enum(['userspace', 'kernel']).default('userspace'),
  kernel_lease: seconds(0.3).default(2),
});

export type ProxySection = z.output<typeof proxySectionSchema>;

/** proxy.replica_fallback, or what the older replica_fallback_to_primary flag means. */
export function replicaFallbackOf(
  section: Pick<ProxySection, 'replica_fallback' | 'replica_fallback_to_primary'>,
): 'read-only' | 'read-write' | 'off' {
  return section.replica_fallback ?? (section.replica_fallback_to_primary === false ? 'off' : 'read-only');
}

const proxyFileSchema = z
  .object({
    scope: z.string().min(1, 'scope is required: the cluster name, e.g. scope: batman'),
    namespace: z.string().default('/service'),
    name: z.string().optional(),
    etcd3: etcdSection.optional(),
    etcd: etcdSection.optional(),
    restapi: z
      .object({
        authentication: credentials.optional(),
        cafile: z.string().optional(),
        certfile: z.string().optional(),
        keyfile: z.string().optional(),
        keyfile_password: z.string().optional(),
      })
      .loose()
      .optional(),
    ctl: z
      .object({
        authentication: credentials.optional(),
        insecure: z.boolean().optional(),
        cacert: z.string().optional(),
        certfile: z.string().optional(),
        keyfile: z.string().optional(),
        keyfile_password: z.string().optional(),
      })
      .loose()
      .optional(),
    proxy: proxySectionSchema,
  })
  .loose();

export interface ProxyConfig {
  readonly scope: string;
  readonly namespace: string;
  readonly etcd: EtcdSettings;
  /** What to log at start: TLS files that no https endpoint uses, a config file with passwords others can read. */
  readonly warnings: readonly string[];
  /** How to reach the agents' REST APIs (CA, client certificate), read from ctl/restapi as patronictl does. */
  readonly rest: RestClientSettings;
  readonly proxy: ProxySection;
}

export function parseProxyConfig(text: string, sourceName: string): ProxyConfig {
  const document = parseDocument(text);
  if (document.errors.length > 0) {
    throw new PgwardenError(
      'PGW_CONFIG_INVALID',
      `${sourceName} is not valid YAML: ${document.errors.map((error) => error.message.split('\n')[0] ?? '').join('; ')}`,
      { context: { path: sourceName } },
    );
  }
  const raw: unknown = document.toJS();
  // ctl and restapi say how to reach the REST APIs: a misspelled key there is an error, as for the agent.
  const securityProblems = securityKeyProblems(raw, ['restapi', 'ctl']);
  if (securityProblems.length > 0)
    throw new PgwardenError('PGW_CONFIG_INVALID', `${sourceName}: ${securityProblems.join('; ')}`, { context: { path: sourceName } });
  const result = proxyFileSchema.safeParse(raw);
  if (!result.success) {
    const problems = result.error.issues.map((issue) => `${issue.path.map(String).join('.') || '(top level)'}: ${issue.message}`);
    const hint = result.error.issues.some((issue) => issue.path[0] === 'proxy' && issue.path.length === 1)
      ? ' (add a proxy: section with at least primary_listen: 127.0.0.1:5000)'
      : '';
    throw new PgwardenError('PGW_CONFIG_INVALID', `${sourceName}: ${problems.join('; ')}${hint}`, { context: { path: sourceName } });
  }
  const parsed = result.data;
  const section = parsed.etcd3 ?? parsed.etcd;
  const hosts = section === undefined ? [] : etcdHosts(section);
  if (hosts.length === 0)
    throw new PgwardenError('PGW_CONFIG_INVALID', `${sourceName}: etcd3: no etcd endpoints; add etcd3.hosts, e.g. hosts: 127.0.0.1:2379`, {
      context: { path: sourceName },
    });
  const etcd = etcdSettings(section!);
  const etcdCheck = checkEtcdSettings(etcd, parsed.etcd3 !== undefined ? 'etcd3' : 'etcd');
  if (etcdCheck.problems.length > 0)
    throw new PgwardenError('PGW_CONFIG_INVALID', `${sourceName}: ${etcdCheck.problems.join('; ')}`, { context: { path: sourceName } });
  const { proxy } = parsed;
  if (
    proxy.replica_listen !== undefined &&
    proxy.replica_listen.port !== 0 &&
    proxy.replica_listen.host === proxy.primary_listen.host &&
    proxy.replica_listen.port === proxy.primary_listen.port
  ) {
    throw new PgwardenError(
      'PGW_CONFIG_INVALID',
      `${sourceName}: proxy.primary_listen and proxy.replica_listen are the same address; give them different ports`,
      { context: { path: sourceName } },
    );
  }
  if (proxy.split_listen !== undefined && proxy.split === undefined) {
    throw new PgwardenError(
      'PGW_CONFIG_INVALID',
      `${sourceName}: proxy.split_listen needs proxy.split.auth_file (the users the split listener authenticates, PgBouncer's auth_file format)`,
      { context: { path: sourceName, key: 'proxy.split' } },
    );
  }
  const split = proxy.split;
  if (
    split !== undefined &&
    (clientTlsMode(split) !== 'disable' || split.client_tls_key_file !== undefined) &&
    (split.client_tls_cert_file === undefined || split.client_tls_key_file === undefined)
  ) {
    throw new PgwardenError(
      'PGW_CONFIG_INVALID',
      `${sourceName}: proxy.split.client_tls_sslmode ${split.client_tls_sslmode ?? 'prefer'} needs both client_tls_cert_file and client_tls_key_file (PEM)`,
      { context: { path: sourceName, key: 'proxy.split.client_tls_cert_file' } },
    );
  }
  if (
    proxy.split_listen !== undefined &&
    proxy.split_listen.port !== 0 &&
    [proxy.primary_listen, proxy.replica_listen].some(
      (other) => other !== undefined && other.host === proxy.split_listen!.host && other.port === proxy.split_listen!.port,
    )
  ) {
    throw new PgwardenError(
      'PGW_CONFIG_INVALID',
      `${sourceName}: proxy.split_listen is the same address as another listener; give it its own port`,
      {
        context: { path: sourceName, key: 'proxy.split_listen' },
      },
    );
  }
  if (proxy.replica_max_lag.kind === 'time' && proxy.monitor === undefined) {
    throw new PgwardenError(
      'PGW_CONFIG_INVALID',
      `${sourceName}: proxy.replica_max_lag is a duration, which needs each replica's replay time: add proxy.monitor (a role with pg_monitor) or give the lag in bytes (e.g. 1MB)`,
      { context: { path: sourceName, key: 'proxy.replica_max_lag' } },
    );
  }
  if (proxy.data_path === 'kernel' && !isIpv4Literal(proxy.primary_listen.host)) {
    throw new PgwardenError(
      'PGW_CONFIG_INVALID',
      `${sourceName}: proxy.data_path: kernel needs an IPv4 address in proxy.primary_listen (e.g. 127.0.0.1:5000 or 0.0.0.0:5000), got "${proxy.primary_listen.host}"`,
      { context: { path: sourceName } },
    );
  }
  return {
    scope: parsed.scope,
    namespace: parsed.namespace,
    etcd,
    warnings: etcdCheck.warnings.map((warning) => `${warning} (${sourceName})`),
    rest: restClientSettings(parsed),
    proxy,
  };
}

export function loadProxyConfig(path: string): ProxyConfig {
  const text = readConfigText(path, "the proxy's YAML");
  const config = parseProxyConfig(text, path);
  let warning: string | undefined;
  try {
    warning = secretFileModeWarning(path, statSync(path).mode, parseDocument(text).toJS());
  } catch {
    warning = undefined;
  }
  return warning === undefined ? config : { ...config, warnings: [...config.warnings, warning] };
}
