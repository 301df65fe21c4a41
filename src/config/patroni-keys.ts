// Every Patroni 3.0.2 configuration key (and the later ones and pgwarden's own that the schema reads), with what
// pgwarden does with it. The one source of: the refusals and warnings the config loader gives for keys it does not
// honour, the known names behind "unknown key ... did you mean", and the table in docs/patroni-keys.md (a unit test
// renders it and compares). Patroni's key list is from its 3.0.2 docs and validator; the wording here is ours.
import { STANDBY_REPLICA_METHODS } from '../core/replica-methods.js';

/**
 * honoured: does what Patroni does. different: read and acted on, another way (the note says how). refused: the config
 * is invalid while the key is set (it would change safety or security, or it cannot work), the note says what to do.
 * warned: accepted, not acted on, a warning at start names it with the note.
 */
export type KeyStatus = 'honoured' | 'different' | 'refused' | 'warned';

export interface PatroniKey {
  /**
   * Dotted path. `{a,b}` in a segment lists several keys sharing a row; `*` is any name (free-form: parameters, your
   * own tags); a `<placeholder>` segment names a section the user names (a custom method), shown in the table only.
   */
  readonly path: string;
  readonly status: KeyStatus;
  /** What it does here, or how it differs, or why it is refused or warned and what to do. */
  readonly note: string;
  /** Where the key comes from when it is not a Patroni 3.0.2 key. */
  readonly origin?: 'later Patroni' | 'pgwarden';
  /**
   * refused / warned only: whether this value (and this whole config) is refused or warned about; without it any value
   * but null is. A value it passes (e.g. create_replica_methods: [basebackup]) is honoured as written.
   */
  readonly applies?: (value: unknown, config: Readonly<Record<string, unknown>>) => boolean;
  /** refused only: the problem for this value, when the note alone would not say what is wrong with it. */
  readonly problem?: (path: string, value: unknown) => string | undefined;
  /** A required key: what to give, for "<path> is required: <this>". */
  readonly required?: string;
}

const USERS = '{superuser,replication,rewind}';
const LIBPQ_TLS = '{sslmode,sslcert,sslkey,sslpassword,sslrootcert,sslcrl,sslcrldir,gssencmode,channel_binding}';
const ETCD = '{etcd3,etcd}';
const NOT_ETCD = 'replace the section with an etcd3 section (hosts: your etcd endpoints)';

function valueAt(config: Readonly<Record<string, unknown>>, path: string): unknown {
  let node: unknown = config;
  for (const part of path.split('.')) {
    if (typeof node !== 'object' || node === null || Array.isArray(node)) return undefined;
    node = (node as Record<string, unknown>)[part];
  }
  return node;
}

/** basebackup options pgwarden passes anyway (it always runs pg_basebackup with a fast checkpoint, streaming WAL). */
function isOnlyBuiltInBasebackupOptions(value: unknown): boolean {
  if (!Array.isArray(value)) return false;
  return value.every((option: unknown) => {
    if (typeof option === 'string') return option === 'checkpoint=fast' || option === 'wal-method=stream';
    if (typeof option !== 'object' || option === null) return false;
    return Object.entries(option).every(
      ([name, setting]) => (name === 'checkpoint' && setting === 'fast') || (name === 'wal-method' && setting === 'stream'),
    );
  });
}

export const PATRONI_KEYS: readonly PatroniKey[] = [
  // Global
  { path: 'name', status: 'honoured', note: 'the member name', required: 'a name unique in the cluster, e.g. name: node1' },
  { path: 'scope', status: 'honoured', note: 'the cluster name', required: 'the cluster name, e.g. scope: batman' },
  { path: 'namespace', status: 'honoured', note: 'the DCS key prefix (default /service)' },

  // log
  { path: 'log', status: 'honoured', note: 'the agent logs to stdout' },
  { path: 'log.level', status: 'honoured', note: 'DEBUG, INFO, WARNING, ERROR, CRITICAL' },
  {
    path: 'log.type',
    status: 'different',
    origin: 'later Patroni',
    note: 'json (the default here: one JSON object per line) or plain (Patroni\u2019s line layout)',
  },
  { path: 'log.{format,dateformat}', status: 'different', note: 'used with log.type: plain only; JSON lines have fixed fields' },
  { path: 'log.traceback_level', status: 'warned', note: 'errors are logged with their message and code, without Python tracebacks' },
  { path: 'log.max_queue_size', status: 'warned', note: 'lines are written synchronously, without a queue' },
  { path: 'log.dir', status: 'warned', note: 'the agent logs to stdout (journald, a container runtime or a redirect keeps the file)' },
  { path: 'log.{file_num,file_size}', status: 'warned', note: 'the agent logs to stdout; rotation belongs to journald or logrotate' },
  { path: 'log.loggers', status: 'warned', note: 'there are no per-module loggers to set levels for' },
  { path: 'log.mode', status: 'warned', origin: 'later Patroni', note: 'the agent logs to stdout' },
  {
    path: 'log.static_fields',
    status: 'warned',
    origin: 'later Patroni',
    note: 'JSON lines carry member and scope; other static fields are not added',
  },
  {
    path: 'log.deduplicate_heartbeat_logs',
    status: 'warned',
    origin: 'later Patroni',
    note: 'every cycle\u2019s sentence is logged at INFO',
  },

  // bootstrap
  { path: 'bootstrap', status: 'honoured', note: 'how the first member creates the cluster' },
  {
    path: 'bootstrap.dcs',
    status: 'honoured',
    note: 'the dynamic configuration written to the DCS when the cluster is created; later changes go through edit-config',
  },
  {
    path: 'bootstrap.dcs.{loop_wait,retry_timeout}',
    status: 'honoured',
    note: 'checked together with ttl: loop_wait + 2 \u00d7 retry_timeout must not exceed ttl',
  },
  {
    path: 'bootstrap.dcs.ttl',
    status: 'different',
    note: 'values below Patroni\u2019s 20 are allowed (fast failover); a ttl too short for loop_wait and retry_timeout is refused, not raised',
  },
  { path: 'bootstrap.dcs.maximum_lag_on_failover', status: 'honoured', note: 'a replica further behind does not race for the lock' },
  { path: 'bootstrap.dcs.maximum_lag_on_syncnode', status: 'honoured', note: 'a lagging synchronous standby is swapped' },
  { path: 'bootstrap.dcs.max_timelines_history', status: 'honoured', note: 'how many entries the history key keeps' },
  {
    path: 'bootstrap.dcs.{primary_start_timeout,master_start_timeout}',
    status: 'honoured',
    note: 'how long a crashed primary holding the lock is restarted in place (the old name is read when the new one is absent)',
  },
  {
    path: 'bootstrap.dcs.{primary_stop_timeout,master_stop_timeout}',
    status: 'warned',
    note: 'a stop is never cut short with SIGKILL: the agent\u2019s own stop budget applies',
  },
  {
    path: 'bootstrap.dcs.{synchronous_mode,synchronous_mode_strict,synchronous_node_count}',
    status: 'honoured',
    note: 'synchronous replication as in Patroni (synchronous_mode: quorum too)',
  },
  {
    path: 'bootstrap.dcs.failsafe_mode',
    status: 'honoured',
    note: 'a primary that loses the DCS keeps running while every member answers POST /failsafe',
  },
  { path: 'bootstrap.dcs.check_timeline', status: 'honoured', note: 'a candidate behind the cluster\u2019s timeline does not race' },
  { path: 'bootstrap.dcs.pause', status: 'honoured', note: 'maintenance mode from the start' },
  { path: 'bootstrap.dcs.slots', status: 'honoured', note: 'permanent physical and logical slots' },
  { path: 'bootstrap.dcs.ignore_slots', status: 'honoured', note: 'slots matching these are left alone' },
  {
    path: 'bootstrap.dcs.member_slots_ttl',
    status: 'warned',
    origin: 'later Patroni',
    note: 'the slot of a member that left is dropped when its member key is gone',
  },
  {
    path: 'bootstrap.dcs.{heartbeat_interval,fence_window,silence_margin}',
    status: 'honoured',
    origin: 'pgwarden',
    note: 'the silent-leader detector\u2019s timing (README, How failover works)',
  },
  { path: 'bootstrap.dcs.postgresql', status: 'honoured', note: 'the cluster-wide PostgreSQL settings' },
  { path: 'bootstrap.dcs.postgresql.use_slots', status: 'honoured', note: 'a slot on the leader for each replica' },
  {
    path: 'bootstrap.dcs.postgresql.use_pg_rewind',
    status: 'different',
    note: 'defaults to true (Patroni: false); when false a diverged member is re-cloned instead of rewound',
  },
  {
    path: 'bootstrap.dcs.postgresql.parameters',
    status: 'honoured',
    note: 'GUCs of every member; a member\u2019s own postgresql.parameters win',
  },
  {
    path: 'bootstrap.dcs.postgresql.pg_hba',
    status: 'refused',
    note: 'pg_hba.conf is written from postgresql.pg_hba (or bootstrap.pg_hba) only; without postgresql.pg_hba these lines would not be the ones in force: copy them into postgresql.pg_hba',
    applies: (value, config) => value !== undefined && value !== null && valueAt(config, 'postgresql.pg_hba') === undefined,
  },
  {
    path: 'bootstrap.dcs.postgresql.recovery_conf',
    status: 'refused',
    note: 'recovery settings are read from each member\u2019s postgresql.recovery_conf only, so a delay or a restore_command here would silently not apply: move them there',
  },
  {
    path: 'bootstrap.dcs.postgresql.create_replica_methods',
    status: 'refused',
    note: 'replica methods are read from each member’s postgresql.create_replica_methods (with its postgresql.<method> sections) only, so a list here would silently not apply: move it there',
  },
  {
    path: 'bootstrap.dcs.standby_cluster',
    status: 'honoured',
    note: 'this cluster replicates from another one (README, Coming from Patroni)',
  },
  {
    path: 'bootstrap.dcs.standby_cluster.{host,port,primary_slot_name,restore_command,archive_cleanup_command,recovery_min_apply_delay}',
    status: 'honoured',
    note: 'the remote primary and how to follow it',
  },
  {
    path: 'bootstrap.dcs.standby_cluster.create_replica_methods',
    status: 'refused',
    note: `the standby leader is cloned with ${STANDBY_REPLICA_METHODS.join(', ')} only: list only that, or remove the key`,
    // Refused by the dynamic configuration check (core/standby-cluster.ts), which PATCH /config and edit-config share.
    applies: () => false,
  },
  {
    path: 'bootstrap.method',
    status: 'honoured',
    note: 'initdb, or a custom method whose command makes the data dir (README, Backups)',
  },
  {
    path: 'bootstrap.<method>',
    status: 'honoured',
    note: 'a custom bootstrap method\u2019s section: command (with --scope --datadir unless no_params), recovery_conf, keep_existing_recovery_conf; read at start: a reload that changes it (or bootstrap.method) is refused, saying to restart the agent',
  },
  { path: 'bootstrap.initdb', status: 'honoured', note: 'initdb options (strings or one-key maps)' },
  {
    path: 'backup',
    status: 'honoured',
    origin: 'pgwarden',
    note: 'pgwarden configures pgBackRest itself: its config file, archive_command, restore_command, the stanza, replicas restored from the repository (README, Backups); read at start: a reload that changes it is refused, saying to restart the agent',
  },
  {
    path: 'backup.{tool,stanza,repository,config_file,retention_full,options}',
    status: 'honoured',
    origin: 'pgwarden',
    note: 'the tool (pgbackrest), stanza (default: the scope), repository path, config file path, full backups kept, extra pgBackRest options',
  },
  {
    path: 'backup.schedule',
    status: 'honoured',
    origin: 'pgwarden',
    note: 'cron (UTC) for full backups, or per type { full, diff, incr }: the leader\u2019s agent starts them on a streaming standby, else on itself, one at a time (README, Backups)',
  },
  {
    path: 'bootstrap.pg_hba',
    status: 'different',
    note: 'written as pg_hba.conf on every member whose postgresql.pg_hba is absent, not only at bootstrap',
  },
  {
    path: 'bootstrap.users',
    status: 'warned',
    note: 'no extra users are created: create them with SQL once the cluster runs',
  },
  {
    path: 'bootstrap.{post_bootstrap,post_init}',
    status: 'warned',
    note: 'no script is run after initdb: pgwarden creates its superuser and replication roles itself',
  },

  // DCS
  { path: 'etcd3', status: 'honoured', note: 'the DCS: etcd\u2019s v3 API' },
  {
    path: 'etcd',
    status: 'different',
    note: 'read like etcd3: pgwarden speaks etcd\u2019s v3 API only; Patroni\u2019s etcd section is the v2 API, whose keys v3 does not see, so never mix such Patroni members into a pgwarden cluster',
  },
  { path: `${ETCD}.{host,hosts,url}`, status: 'honoured', note: 'the etcd endpoints' },
  { path: `${ETCD}.protocol`, status: 'honoured', note: 'http or https for endpoints given without a scheme' },
  { path: `${ETCD}.{username,password}`, status: 'honoured', note: 'etcd authentication' },
  { path: `${ETCD}.{cacert,cert,key}`, status: 'honoured', note: 'etcd TLS: the CA to verify, a client certificate and its key' },
  { path: `${ETCD}.key_password`, status: 'honoured', origin: 'pgwarden', note: 'the passphrase of an encrypted key' },
  {
    path: `${ETCD}.use_proxies`,
    status: 'different',
    note: 'always so: the endpoints are used as given, the etcd member list is not discovered',
  },
  {
    path: `${ETCD}.{proxy,srv,srv_suffix}`,
    status: 'refused',
    note: 'etcd proxies and DNS SRV discovery are not supported, so pgwarden would not reach the etcd you mean: list the endpoints in hosts',
  },
  { path: 'consul', status: 'refused', note: `pgwarden keeps its state in etcd only, not Consul: ${NOT_ETCD}` },
  {
    path: 'consul.{host,url,port,scheme,token,verify,cacert,cert,key,dc,consistency,checks,register_service,service_tags,service_check_interval,service_check_tls_server_name}',
    status: 'refused',
    note: `pgwarden keeps its state in etcd only, not Consul: ${NOT_ETCD}`,
  },
  { path: 'zookeeper', status: 'refused', note: `pgwarden keeps its state in etcd only, not ZooKeeper: ${NOT_ETCD}` },
  {
    path: 'zookeeper.{hosts,use_ssl,cacert,cert,key,key_password,verify,set_acls}',
    status: 'refused',
    note: `pgwarden keeps its state in etcd only, not ZooKeeper: ${NOT_ETCD}`,
  },
  { path: 'exhibitor', status: 'refused', note: `pgwarden keeps its state in etcd only, not Exhibitor: ${NOT_ETCD}` },
  {
    path: 'exhibitor.{hosts,poll_interval,port}',
    status: 'refused',
    note: `pgwarden keeps its state in etcd only, not Exhibitor: ${NOT_ETCD}`,
  },
  { path: 'kubernetes', status: 'refused', note: `pgwarden keeps its state in etcd only, not in Kubernetes objects: ${NOT_ETCD}` },
  {
    path: 'kubernetes.{bypass_api_service,namespace,labels,scope_label,role_label,use_endpoints,pod_ip,ports,cacert,retriable_http_codes}',
    status: 'refused',
    note: `pgwarden keeps its state in etcd only, not in Kubernetes objects: ${NOT_ETCD}`,
  },
  { path: 'raft', status: 'refused', note: `pgwarden keeps its state in etcd only, not in Patroni\u2019s Raft: ${NOT_ETCD}` },
  {
    path: 'raft.{self_addr,bind_addr,partner_addrs,data_dir,password}',
    status: 'refused',
    note: `pgwarden keeps its state in etcd only, not in Patroni\u2019s Raft: ${NOT_ETCD}`,
  },
  { path: 'citus', status: 'refused', note: 'pgwarden does not manage Citus groups: remove the citus section' },
  { path: 'citus.{group,database}', status: 'refused', note: 'pgwarden does not manage Citus groups: remove the citus section' },

  // postgresql
  { path: 'postgresql', status: 'honoured', note: 'this member\u2019s PostgreSQL' },
  {
    path: 'postgresql.listen',
    status: 'honoured',
    note: 'the address and port PostgreSQL listens on',
    required: 'host:port PostgreSQL listens on, e.g. 0.0.0.0:5432',
  },
  {
    path: 'postgresql.connect_address',
    status: 'honoured',
    note: 'published as conn_url',
    required: 'host:port other members and clients reach PostgreSQL at, e.g. 10.0.0.1:5432',
  },
  {
    path: 'postgresql.proxy_address',
    status: 'warned',
    note: 'not published: member keys carry no proxy_url (the pgwarden proxy finds members itself)',
  },
  {
    path: 'postgresql.data_dir',
    status: 'honoured',
    note: 'the data directory',
    required: 'the PostgreSQL data directory, e.g. /var/lib/postgresql/15/main',
  },
  { path: 'postgresql.config_dir', status: 'warned', note: 'configuration files live in data_dir' },
  {
    path: 'postgresql.bin_dir',
    status: 'different',
    note: 'defaults to /usr/lib/postgresql/15/bin (Patroni: the PATH)',
  },
  {
    path: 'postgresql.bin_name.{pg_ctl,initdb,pg_controldata,pg_basebackup,postgres,pg_isready,pg_rewind}',
    status: 'warned',
    origin: 'later Patroni',
    note: 'the programs in bin_dir are run under their usual names',
  },
  { path: 'postgresql.pgpass', status: 'honoured', note: 'the password file written for replication and rewind' },
  { path: 'postgresql.database', status: 'warned', note: 'the agent and conn_url use the postgres database' },
  { path: 'postgresql.authentication', status: 'honoured', note: 'the roles the agent and replicas connect as' },
  {
    path: 'postgresql.authentication.{superuser,replication}',
    status: 'honoured',
    note: 'created at bootstrap',
    required: 'a mapping with username (and password) of this role',
  },
  { path: 'postgresql.authentication.rewind', status: 'honoured', note: 'the role pg_rewind connects as (superuser if absent)' },
  {
    path: `postgresql.authentication.${USERS}.username`,
    status: 'honoured',
    note: 'the role name',
    required: 'the role name, e.g. username: postgres',
  },
  { path: `postgresql.authentication.${USERS}.password`, status: 'honoured', note: 'the role password' },
  { path: `postgresql.authentication.${USERS}.${LIBPQ_TLS}`, status: 'honoured', note: 'libpq TLS and GSS settings of the connection' },
  {
    path: `postgresql.authentication.${USERS}.sslnegotiation`,
    status: 'warned',
    origin: 'later Patroni',
    note: 'PostgreSQL 15\u2019s libpq has no sslnegotiation: TLS starts with the SSLRequest',
  },
  {
    path: 'postgresql.callbacks.{on_start,on_stop,on_restart,on_reload,on_role_change}',
    status: 'honoured',
    note: 'run with action, role (master for a primary, as 3.0.2) and scope',
  },
  {
    path: 'postgresql.create_replica_methods',
    status: 'honoured',
    note: 'tried in order for new members and reinit, basebackup built in; pgbackrest with a backup: section is pgwarden\u2019s own restore (README, Backups); re-read on reload (SIGHUP, POST /reload)',
  },
  {
    path: 'postgresql.<method>',
    status: 'honoured',
    note: 'command (with --scope --datadir --role --connstring unless no_params, and --key=value for other keys), keep_data, no_params; no_leader (no_master): without a leader an empty member runs only those methods instead of waiting',
  },
  {
    path: 'postgresql.basebackup',
    status: 'warned',
    note: 'pg_basebackup always runs with a fast checkpoint, streaming WAL; other options are not passed',
    applies: (value) => value !== undefined && value !== null && !isOnlyBuiltInBasebackupOptions(value),
  },
  {
    path: 'postgresql.parameters',
    status: 'different',
    note: 'GUCs of this member, over the dynamic configuration\u2019s, the cluster-wide ones too (max_connections, wal_level...: Patroni takes those from the DCS only), so keep those in bootstrap.dcs',
  },
  { path: 'postgresql.recovery_conf', status: 'honoured', note: 'recovery GUCs written whenever the member runs as a replica' },
  {
    path: 'postgresql.custom_conf',
    status: 'refused',
    note: 'the file is not included, so its settings (TLS, authentication...) would silently be missing: move them into postgresql.parameters',
  },
  { path: 'postgresql.pg_hba', status: 'honoured', note: 'the lines of pg_hba.conf' },
  { path: 'postgresql.pg_ident', status: 'warned', note: 'pg_ident.conf is left as initdb wrote it' },
  { path: 'postgresql.pg_ctl_timeout', status: 'warned', note: 'start and stop use the agent\u2019s own budgets' },
  {
    path: 'postgresql.use_pg_rewind',
    status: 'warned',
    note: 'read from the dynamic configuration only (bootstrap.dcs.postgresql.use_pg_rewind, default true)',
  },
  {
    path: 'postgresql.{remove_data_directory_on_rewind_failure,remove_data_directory_on_diverged_timelines}',
    status: 'refused',
    note: 'a member that cannot follow the leader after a rewind is always re-cloned, its data directory replaced; false would keep it, which pgwarden cannot: remove the key (true is accepted)',
    applies: (value) => value === false,
  },
  {
    path: 'postgresql.pre_promote',
    status: 'refused',
    note: 'fencing scripts are not run before a promotion: remove the key (pgwarden\u2019s fence process and the watchdog stop a stalled old primary)',
  },
  { path: 'postgresql.before_stop', status: 'warned', origin: 'later Patroni', note: 'no script is run before PostgreSQL stops' },
  {
    path: 'postgresql.use_unix_socket',
    status: 'warned',
    note: 'the agent connects to its PostgreSQL through the socket directory it configures itself',
  },
  { path: 'postgresql.use_unix_socket_repl', status: 'warned', note: 'replication connects over TCP to conn_url' },

  // restapi
  {
    path: 'restapi',
    status: 'honoured',
    note: 'the REST API, Patroni\u2019s endpoints',
    required: 'a mapping with listen and connect_address',
  },
  {
    path: 'restapi.listen',
    status: 'honoured',
    note: 'where the REST API listens',
    required: 'host:port the REST API listens on, e.g. 0.0.0.0:8008',
  },
  {
    path: 'restapi.connect_address',
    status: 'honoured',
    note: 'published as api_url',
    required: 'host:port other members reach this REST API at, e.g. 10.0.0.1:8008',
  },
  {
    path: 'restapi.authentication.{username,password}',
    status: 'honoured',
    note: 'HTTP Basic authentication of the unsafe endpoints',
  },
  {
    path: 'restapi.{certfile,keyfile,keyfile_password,cafile,ciphers,verify_client}',
    status: 'honoured',
    note: 'HTTPS and client certificates',
  },
  {
    path: 'restapi.{allowlist,allowlist_include_members}',
    status: 'honoured',
    note: 'who may call the unsafe endpoints',
  },
  { path: 'restapi.{http_extra_headers,https_extra_headers}', status: 'honoured', note: 'headers added to every response' },
  {
    path: 'restapi.request_queue_size',
    status: 'warned',
    origin: 'later Patroni',
    note: 'Node.js queues connections itself (its listen backlog)',
  },
  { path: 'restapi.server_tokens', status: 'warned', origin: 'later Patroni', note: 'the REST API sends no Server header' },

  // ctl
  {
    path: 'ctl.{insecure,cacert,certfile,keyfile,keyfile_password}',
    status: 'honoured',
    note: 'how pgwarden (the CLI) and the agent reach REST APIs; restapi\u2019s files are the fallback',
  },
  { path: 'ctl.authentication.{username,password}', status: 'honoured', note: 'the CLI\u2019s Basic credentials' },

  // watchdog
  { path: 'watchdog.{mode,device,safety_margin}', status: 'honoured', note: 'a Linux watchdog device, as in Patroni' },

  // tags
  { path: 'tags.{nofailover,clonefrom,noloadbalance,replicatefrom,nosync}', status: 'honoured', note: 'as in Patroni' },
  { path: 'tags.{nostream,failover_priority}', status: 'honoured', origin: 'later Patroni', note: 'as in Patroni' },
  {
    path: 'tags.sync_priority',
    status: 'warned',
    origin: 'later Patroni',
    note: 'kept as a plain tag: synchronous standbys are chosen by nosync and WAL position',
  },
  { path: 'tags.*', status: 'honoured', note: 'your own tags: published, and matched by ?tag_<name>= health checks' },
];

/** The concrete paths of a key entry: `{a,b}` segments expanded. */
export function expandPath(path: string): string[] {
  let results = [''];
  for (const segment of path.split('.')) {
    const match = /^([^{]*)\{([^}]*)\}(.*)$/.exec(segment);
    const names = match === null ? [segment] : match[2]!.split(',').map((name) => `${match[1]!}${name}${match[3]!}`);
    results = results.flatMap((prefix) => names.map((name) => (prefix === '' ? name : `${prefix}.${name}`)));
  }
  return results;
}

interface ExpandedKey {
  readonly path: string;
  readonly entry: PatroniKey;
}

const EXPANDED: readonly ExpandedKey[] = PATRONI_KEYS.flatMap((entry) => expandPath(entry.path).map((path) => ({ path, entry })));

/** The entry of a concrete path (e.g. 'postgresql.pg_ident'), if the table has one. */
export function patroniKey(path: string): PatroniKey | undefined {
  return EXPANDED.find((key) => key.path === path)?.entry;
}

/**
 * The names the table lists directly under `parent` (e.g. ['restapi'] -> listen, connect_address, ...), and whether
 * names there are free-form (`parent.*`: any name is fine).
 */
export function tableChildren(parent: readonly string[]): { names: string[]; isFreeForm: boolean } {
  const prefix = parent.length === 0 ? '' : `${parent.join('.')}.`;
  const names = new Set<string>();
  let isFreeForm = false;
  for (const { path } of EXPANDED) {
    if (!path.startsWith(prefix)) continue;
    const name = path.slice(prefix.length).split('.')[0]!;
    if (name === '*') isFreeForm = true;
    else if (!name.startsWith('<')) names.add(name);
  }
  return { names: [...names], isFreeForm };
}

export interface KeyFindings {
  /** Refused keys: the config is invalid while one is set. */
  readonly problems: string[];
  readonly warnings: string[];
}

/**
 * What the table says about the keys present in a raw config: one problem per refused key, one warning per warned one.
 * A key inside a section already named (consul.host under consul) is not named again.
 */
export function keyFindings(config: Readonly<Record<string, unknown>>, sourceName: string): KeyFindings {
  const problems: string[] = [];
  const warnings: string[] = [];
  const named: string[] = [];
  for (const { path, entry } of EXPANDED) {
    if (entry.status !== 'refused' && entry.status !== 'warned') continue;
    if (path.includes('*') || path.includes('<')) continue;
    if (named.some((section) => path.startsWith(`${section}.`))) continue;
    const value = valueAt(config, path);
    const isApplying = entry.applies !== undefined ? entry.applies(value, config) : value !== undefined && value !== null;
    if (!isApplying) continue;
    named.push(path);
    if (entry.status === 'refused') problems.push(entry.problem?.(path, value) ?? `${path} is not supported by pgwarden: ${entry.note}`);
    else warnings.push(`${path} in ${sourceName} is accepted for Patroni compatibility but not honoured: ${entry.note}`);
  }
  return { problems, warnings };
}

/** "<path> is required: <what>" for a required key of the table, or undefined. */
export function requiredKeyMessage(path: string): string | undefined {
  const required = patroniKey(path)?.required;
  return required === undefined ? undefined : `${path} is required: ${required}`;
}

/** How many rows, and how many keys (a `{a,b}` row is several), of each status. */
export function keyCounts(): Record<KeyStatus, { rows: number; keys: number }> {
  const counts: Record<KeyStatus, { rows: number; keys: number }> = {
    honoured: { rows: 0, keys: 0 },
    different: { rows: 0, keys: 0 },
    refused: { rows: 0, keys: 0 },
    warned: { rows: 0, keys: 0 },
  };
  for (const entry of PATRONI_KEYS) {
    counts[entry.status].rows++;
    counts[entry.status].keys += expandPath(entry.path).length;
  }
  return counts;
}

/** The counts line of docs/patroni-keys.md. */
export function keyCountsLine(): string {
  const counts = keyCounts();
  const statuses = ['honoured', 'different', 'refused', 'warned'] as const;
  return (
    `${EXPANDED.length} keys in ${PATRONI_KEYS.length} rows: ` +
    statuses.map((status) => `${counts[status].keys} ${status} (${counts[status].rows} rows)`).join(', ') +
    '.'
  );
}

/** The markdown table of docs/patroni-keys.md, as prettier formats it (columns padded to the widest cell). */
export function renderKeysTable(): string {
  const escape = (text: string): string => text.replace(/\|/g, '\\|');
  const rows = PATRONI_KEYS.map((entry) => [
    `\`${entry.path}\``,
    entry.status,
    escape(
      entry.origin === undefined
        ? entry.note
        : `${entry.note} (${entry.origin === 'pgwarden' ? 'pgwarden\u2019s own key' : 'a key of Patroni after 3.0.2'})`,
    ),
  ]);
  const header = ['key', 'status', 'what pgwarden does'];
  const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => row[column]!.length)));
  const line = (cells: readonly string[]): string => `| ${cells.map((cell, column) => cell.padEnd(widths[column]!)).join(' | ')} |`;
  return [line(header), `| ${widths.map((width) => '-'.repeat(width)).join(' | ')} |`, ...rows.map(line)].join('\n');
}

/** docs/patroni-keys.md with its counts line and table rendered afresh (scripts/render-patroni-keys.mjs writes it). */
export function renderKeysDoc(doc: string): string {
  const lines = doc.split('\n');
  const start = lines.findIndex((line) => line.startsWith('| key '));
  if (start < 0) throw new Error('docs/patroni-keys.md has no table starting with "| key "');
  let end = start;
  while (end < lines.length && lines[end]!.startsWith('|')) end++;
  lines.splice(start, end - start, renderKeysTable());
  return lines.join('\n').replace(/^\d+ keys in \d+ rows: .*$/m, keyCountsLine());
}
