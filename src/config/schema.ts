// The patroni.yml schema pgwarden accepts (zod): Patroni's key names, defaults, and the address/host shapes parsed.
import { z } from 'zod';
import { validateStandbyCluster } from '../core/standby-cluster.js';
import { backupSection } from './backup.js';
import { TIMING_DEFAULTS, TIMING_MINIMUMS } from '../core/timing-rules.js';

/** host:port; `minPort: 0` also accepts port 0 (listen on any free port). */
export const hostPortSchema = (minPort = 1, example = '127.0.0.1:8008') =>
  z.string().transform((value, context) => {
    const match = /^(.*):(\d{1,5})$/.exec(value.trim());
    const port = Number(match?.[2]);
    if (match === null || match[1] === '' || !(port >= minPort && port < 65536)) {
      context.addIssue({ code: 'custom', message: `expected host:port, got "${value}"; write it like ${example}` });
      return z.NEVER;
    }
    return { host: match[1]!.replace(/^\[|\]$/g, ''), port };
  });

export const hostPort = hostPortSchema();

const gucValue = z.union([z.string(), z.number(), z.boolean()]);
export const credentials = z.object({
  username: z.string().min(1),
  password: z.union([z.string(), z.number()]).transform(String).optional(),
});

/**
 * A postgresql.authentication user: Patroni's _AUTH_ALLOWED_PARAMETERS, libpq's keyword names. Enumerated values are
 * checked here (libpq would refuse others at connect time); paths are checked when used.
 */
export const pgCredentials = credentials.extend({
  sslmode: z.enum(['disable', 'allow', 'prefer', 'require', 'verify-ca', 'verify-full']).optional(),
  sslcert: z.string().optional(),
  sslkey: z.string().optional(),
  sslpassword: z.union([z.string(), z.number()]).transform(String).optional(),
  sslrootcert: z.string().optional(),
  sslcrl: z.string().optional(),
  sslcrldir: z.string().optional(),
  gssencmode: z.enum(['disable', 'prefer', 'require']).optional(),
  channel_binding: z.enum(['disable', 'prefer', 'require']).optional(),
  // libpq 17's; PostgreSQL 15's libpq refuses the keyword, so it is accepted and never written (warned: patroni-keys.ts).
  sslnegotiation: z.string().optional(),
});

const dcsPostgresql = z
  .object({
    use_pg_rewind: z.boolean().optional(),
    use_slots: z.boolean().optional(),
    parameters: z.record(z.string(), gucValue).optional(),
    pg_hba: z.array(z.string()).optional(),
  })
  .loose();

const bootstrapDcs = z
  .object({
    // Values below the minimums are raised, with a warning, before validation (config/load.ts), as at runtime.
    ttl: z.number().min(TIMING_MINIMUMS.ttl).default(TIMING_DEFAULTS.ttl),
    loop_wait: z.number().min(TIMING_MINIMUMS.loop_wait).default(TIMING_DEFAULTS.loop_wait),
    retry_timeout: z.number().min(TIMING_MINIMUMS.retry_timeout).default(TIMING_DEFAULTS.retry_timeout),
    maximum_lag_on_failover: z.number().int().min(0).default(TIMING_DEFAULTS.maximum_lag_on_failover),
    // The silent-leader detector (core/timing-rules.ts checks how they relate to each other and to ttl).
    heartbeat_interval: z.number().optional(),
    fence_window: z.number().optional(),
    silence_margin: z.number().optional(),
    primary_start_timeout: z.number().min(0).optional(),
    master_start_timeout: z.number().min(0).optional(),
    synchronous_mode: z.union([z.boolean(), z.string()]).optional(),
    synchronous_mode_strict: z.boolean().optional(),
    synchronous_node_count: z.number().int().min(1).optional(),
    check_timeline: z.boolean().optional(),
    failsafe_mode: z.boolean().optional(),
    maximum_lag_on_syncnode: z.number().optional(),
    max_timelines_history: z.number().optional(),
    slots: z.record(z.string(), z.unknown()).optional(),
    ignore_slots: z.array(z.unknown()).optional(),
    postgresql: dcsPostgresql.optional(),
    standby_cluster: z
      .unknown()
      .optional()
      .superRefine((value, context) => {
        const invalid = validateStandbyCluster(value);
        if (invalid !== undefined) context.addIssue({ code: 'custom', message: invalid });
      }),
  })
  .loose();

const initdbOption = z.union([z.string(), z.record(z.string(), z.union([z.string(), z.number()]).transform(String))]);

export const etcdSection = z.object({
  host: z.string().optional(),
  hosts: z.union([z.string(), z.array(z.string())]).optional(),
  url: z.string().optional(),
  protocol: z.enum(['http', 'https']).optional(),
  username: z.string().optional(),
  password: z.string().optional(),
  cacert: z.string().optional(),
  cert: z.string().optional(),
  key: z.string().optional(),
  key_password: z.string().optional(),
});

export const configSchema = z.object({
  scope: z.string().min(1, 'scope is required: the cluster name, e.g. scope: batman'),
  namespace: z.string().default('/service'),
  name: z.string().min(1, 'name is required: a unique member name, e.g. name: node1'),
  log: z
    .object({
      level: z.string().default('INFO'),
      type: z.enum(['json', 'plain']).optional(),
      format: z.string().optional(),
      dateformat: z.string().optional(),
      dir: z.string().optional(),
    })
    .loose()
    .default({ level: 'INFO' }),
  restapi: z.object({
    listen: hostPort,
    connect_address: hostPort,
    authentication: credentials.optional(),
    certfile: z.string().optional(),
    keyfile: z.string().optional(),
    keyfile_password: z.string().optional(),
    cafile: z.string().optional(),
    verify_client: z.enum(['none', 'optional', 'required']).optional(),
    ciphers: z.string().optional(),
    http_extra_headers: z.record(z.string(), z.string()).optional(),
    https_extra_headers: z.record(z.string(), z.string()).optional(),
    allowlist: z.array(z.string()).optional(),
    allowlist_include_members: z.boolean().optional(),
    request_queue_size: z.number().int().min(0).optional(),
    server_tokens: z.string().optional(),
  }),
  etcd3: etcdSection.optional(),
  etcd: etcdSection.optional(),
  bootstrap: z
    .object({
      dcs: bootstrapDcs.default(bootstrapDcs.parse({})),
      method: z.string().optional(),
      initdb: z.array(initdbOption).default([]),
      pg_hba: z.array(z.string()).optional(),
      users: z.unknown().optional(),
      post_bootstrap: z.string().optional(),
      post_init: z.string().optional(),
    })
    .default({ dcs: bootstrapDcs.parse({}), initdb: [] }),
  postgresql: z.object({
    listen: hostPort,
    connect_address: hostPort,
    data_dir: z.string().min(1),
    bin_dir: z.string().default('/usr/lib/postgresql/15/bin'),
    config_dir: z.string().optional(),
    pgpass: z.string().optional(),
    use_unix_socket: z.boolean().optional(),
    use_unix_socket_repl: z.boolean().optional(),
    authentication: z.object({ superuser: pgCredentials, replication: pgCredentials, rewind: pgCredentials.optional() }),
    parameters: z.record(z.string(), gucValue).default({}),
    // Recovery GUCs of a replica (restore_command, recovery_min_apply_delay, ...), as Patroni's recovery_conf.
    recovery_conf: z.record(z.string(), gucValue).optional(),
    pg_hba: z.array(z.string()).optional(),
    pg_ident: z.array(z.string()).optional(),
    basebackup: z.array(z.union([z.string(), z.record(z.string(), z.unknown())])).optional(),
    callbacks: z.record(z.string(), z.string()).optional(),
    use_pg_rewind: z.boolean().optional(),
    remove_data_directory_on_rewind_failure: z.boolean().optional(),
    remove_data_directory_on_diverged_timelines: z.boolean().optional(),
    pg_ctl_timeout: z.number().optional(),
    create_replica_methods: z.array(z.string()).optional(),
  }),
  // pgwarden's own: pgBackRest configured by pgwarden (config/backup.ts).
  backup: backupSection.optional(),
  watchdog: z
    .object({
      mode: z.union([z.enum(['off', 'automatic', 'required']), z.boolean()]).optional(),
      device: z.string().optional(),
      safety_margin: z.number().optional(),
    })
    .optional(),
  tags: z
    .object({
      nofailover: z.boolean().optional(),
      failover_priority: z.number().int().min(0).optional(),
      noloadbalance: z.boolean().optional(),
      clonefrom: z.boolean().optional(),
      nosync: z.boolean().optional(),
      replicatefrom: z.string().optional(),
      nostream: z.boolean().optional(),
    })
    .loose()
    .default({}),
  ctl: z
    .object({
      authentication: credentials.optional(),
      insecure: z.boolean().optional(),
      cacert: z.string().optional(),
      certfile: z.string().optional(),
      keyfile: z.string().optional(),
      keyfile_password: z.string().optional(),
    })
    .optional(),
});

export type RawPgwardenConfig = z.output<typeof configSchema>;
