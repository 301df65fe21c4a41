// Pure rendering of the files pgwarden owns in a data directory: postgresql.conf, pg_hba.conf, primary_conninfo, pgpass.

import { renderConninfo, securityPairs, type PgSecurity } from './conninfo.js';
import { adaptParametersToVersion } from './parameter-versions.js';

export { quoteConninfoValue } from './conninfo.js';

export type GucValue = string | number | boolean;

/** GUC value quoting: single quotes doubled, everything quoted (PostgreSQL accepts quoted numbers and booleans). */
export function quoteGuc(value: GucValue): string {
  const text = typeof value === 'boolean' ? (value ? 'on' : 'off') : String(value);
  return `'${text.replace(/\\/g, '\\\\').replace(/'/g, "''")}'`;
}

export interface ReplicaSettings {
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly applicationName: string;
  readonly passfile: string;
  readonly slotName: string | undefined;
  /**
   * The replication user's TLS/GSS keys (postgresql.authentication.replication). sslpassword is written too: the
   * walreceiver has no other way to get it, postgresql.conf is 0600, and pg_stat_wal_receiver masks it.
   */
  readonly security?: PgSecurity | undefined;
  /** No primary_conninfo: WAL comes from restore_command only (a standby cluster without host). */
  readonly isArchiveOnly?: boolean | undefined;
  /** Recovery GUCs of the upstream (restore_command, archive_cleanup_command, recovery_min_apply_delay). */
  readonly recovery?: Readonly<Record<string, GucValue>> | undefined;
}

export function renderPrimaryConninfo(settings: ReplicaSettings): string {
  const pairs: [string, string][] = [
    ['host', settings.host],
    ['port', String(settings.port)],
    ['user', settings.user],
    ['application_name', settings.applicationName],
    ['passfile', settings.passfile],
    ...securityPairs(settings.security ?? {}),
    ...(settings.security?.sslpassword !== undefined ? [['sslpassword', settings.security.sslpassword] as [string, string]] : []),
    // A dead primary must be noticed in seconds, not after the kernel's TCP timeouts.
    ['connect_timeout', '2'],
    ['keepalives', '1'],
    ['keepalives_idle', '2'],
    ['keepalives_interval', '1'],
    ['keepalives_count', '3'],
  ];
  return renderConninfo(pairs);
}

export interface ConfInput {
  readonly parameters: Readonly<Record<string, GucValue>>;
  readonly listenHost: string;
  readonly port: number;
  readonly scope: string;
  readonly socketDir: string;
  readonly replica: ReplicaSettings | undefined;
  /** The server's major version (PG_VERSION): pgwarden's own defaults are adapted to it (parameter-versions.ts). */
  readonly serverMajor?: number | undefined;
}

/** GUCs pgwarden always controls, whatever the user set: the HA machinery depends on them. */
export function renderPostgresqlConf(input: ConfInput): string {
  const merged: Record<string, GucValue> = {
    wal_level: 'replica',
    max_wal_senders: 10,
    max_replication_slots: 10,
    wal_keep_size: '128MB',
    hot_standby: 'on',
    // PostgreSQL's default of 5 s between WAL receiver retries would add up to 5 s to every failover.
    wal_retrieve_retry_interval: '1s',
    // A standby that already flushed a waiting commit reports it only at its next status message: PostgreSQL's 10 s
    // default would hold commits that long after the synchronous set changes.
    wal_receiver_status_interval: '1s',
    ...input.parameters,
    listen_addresses: input.listenHost,
    port: input.port,
    cluster_name: input.scope,
    unix_socket_directories: input.socketDir,
    // pg_rewind needs either checksums or hint-bit WAL logging; forcing it keeps rejoin by rewind possible.
    wal_log_hints: 'on',
    hot_standby_feedback: input.parameters.hot_standby_feedback ?? 'on',
  };
  if (input.serverMajor !== undefined) {
    const adapted = adaptParametersToVersion(merged, input.serverMajor).parameters;
    for (const name of Object.keys(merged)) delete merged[name];
    Object.assign(merged, adapted);
  }
  if (input.replica !== undefined) {
    if (input.replica.isArchiveOnly !== true) merged.primary_conninfo = renderPrimaryConninfo(input.replica);
    if (input.replica.slotName !== undefined && input.replica.isArchiveOnly !== true) merged.primary_slot_name = input.replica.slotName;
    Object.assign(merged, input.replica.recovery ?? {});
    merged.recovery_target_timeline = 'latest';
  }
  const lines = [
    '# Written by pgwarden: changes here are overwritten. Use the DCS config or the agent config instead.',
    "include_if_exists 'postgresql.base.conf'",
  ];
  for (const name of Object.keys(merged).sort()) lines.push(`${name} = ${quoteGuc(merged[name]!)}`);
  return `${lines.join('\n')}\n`;
}

export function renderPgHba(lines: readonly string[]): string {
  return `# Written by pgwarden from postgresql.pg_hba\n${lines.join('\n')}\n`;
}

export function renderPgpass(entries: readonly { readonly username: string; readonly password: string | undefined }[]): string {
  const escape = (text: string): string => text.replace(/\\/g, '\\\\').replace(/:/g, '\\:');
  return entries
    .filter((entry) => entry.password !== undefined)
    .map((entry) => `*:*:*:${escape(entry.username)}:${escape(entry.password ?? '')}`)
    .join('\n')
    .concat('\n');
}

/** postgresql.auto.conf without the lines that set any of `names` (`name = value`, any case, as ALTER SYSTEM writes them). */
export function autoConfWithout(text: string, names: readonly string[]): string {
  const dropped = new Set(names.map((name) => name.toLowerCase()));
  return text
    .split('\n')
    .filter((line) => {
      const match = /^\s*([A-Za-z_][A-Za-z0-9_.]*)\s*=/.exec(line);
      return match === null || !dropped.has(match[1]!.toLowerCase());
    })
    .join('\n');
}
