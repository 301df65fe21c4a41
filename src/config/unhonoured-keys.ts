// Patroni keys pgwarden accepts (so a patroni.yml loads unchanged) but does not act on yet, each with why: loading
// one logs a warning naming it, never a silent no-op.
export const UNHONOURED_KEYS: readonly (readonly [path: string, why: string])[] = [
  ['bootstrap.post_bootstrap', 'no script is run after initdb: pgwarden creates its superuser and replication roles itself'],
  ['bootstrap.post_init', 'no script is run after initdb: pgwarden creates its superuser and replication roles itself'],
  ['postgresql.config_dir', 'configuration files live in data_dir'],
  ['postgresql.use_unix_socket', 'the agent connects to its PostgreSQL through the socket directory it configures itself'],
  ['postgresql.use_unix_socket_repl', 'replication connects over TCP to conn_url'],
  [
    'postgresql.authentication.superuser.sslnegotiation',
    'PostgreSQL 15\u2019s libpq has no sslnegotiation: TLS starts with the SSLRequest',
  ],
  [
    'postgresql.authentication.replication.sslnegotiation',
    'PostgreSQL 15\u2019s libpq has no sslnegotiation: TLS starts with the SSLRequest',
  ],
  ['postgresql.pg_ident', 'pg_ident.conf is left as initdb wrote it'],
  ['postgresql.remove_data_directory_on_rewind_failure', 'a failed rewind is always followed by a re-clone'],
  ['postgresql.remove_data_directory_on_diverged_timelines', 'a diverged replica is always rewound or re-cloned'],
  ['postgresql.pg_ctl_timeout', 'start and stop use the agent\u2019s own budgets'],
  ['restapi.request_queue_size', 'Node.js queues connections itself (its listen backlog)'],
  ['restapi.server_tokens', 'the REST API sends no Server header'],
  ['log.dir', 'the agent logs to stdout (journald, a container runtime or a redirect keeps the file)'],
  ['log.file_size', 'the agent logs to stdout; rotation belongs to journald or logrotate'],
  ['log.file_num', 'the agent logs to stdout; rotation belongs to journald or logrotate'],
  ['log.mode', 'the agent logs to stdout'],
  ['log.traceback_level', 'errors are logged with their message and code, without Python tracebacks'],
  ['log.static_fields', 'JSON lines carry member and scope; other static fields are not added'],
  ['log.loggers', 'there are no per-module loggers to set levels for'],
  ['log.max_queue_size', 'lines are written synchronously, without a queue'],
];

function isPresent(raw: unknown, path: string): boolean {
  let node = raw;
  for (const part of path.split('.')) {
    if (typeof node !== 'object' || node === null || !(part in node)) return false;
    node = (node as Record<string, unknown>)[part];
  }
  return node !== undefined && node !== null;
}

/** One warning per accepted-but-unhonoured key present in the raw config. */
export function unhonouredKeyWarnings(raw: unknown, sourceName: string): string[] {
  return UNHONOURED_KEYS.filter(([path]) => isPresent(raw, path)).map(
    ([path, why]) => `${path} in ${sourceName} is accepted for Patroni compatibility but not honoured: ${why}`,
  );
}
