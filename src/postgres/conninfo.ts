// libpq connection settings of the postgresql.authentication users (Patroni's _AUTH_ALLOWED_PARAMETERS): conninfo
// strings for primary_conninfo, pg_basebackup and pg_rewind, the libpq service file that carries sslpassword off
// the command line, and the environment for psql. Pure.

/** The TLS and GSS keys of a user that go into a conninfo as they are, in this order (sslpassword is separate). */
export const SECURITY_KEYS = [
  'sslmode',
  'sslcert',
  'sslkey',
  'sslrootcert',
  'sslcrl',
  'sslcrldir',
  'gssencmode',
  'channel_binding',
] as const;

export type SecurityKey = (typeof SECURITY_KEYS)[number];

/** A user's TLS/GSS settings as written in postgresql.authentication.<user> (libpq's keyword names). */
export type PgSecurity = { readonly [key in SecurityKey]?: string | undefined } & { readonly sslpassword?: string | undefined };

/** A postgresql.authentication user: name, password (only ever written to the pgpass file) and TLS settings. */
export interface PgAuth extends PgSecurity {
  readonly username: string;
  readonly password?: string | undefined;
}

/** libpq's own default: try TLS, fall back to plain (what primary_conninfo always said before these keys were read). */
export const DEFAULT_SSLMODE = 'prefer';

/** libpq keyword/value quoting: bare when safe, else single quotes with ' and \ backslash-escaped. */
export function quoteConninfoValue(value: string): string {
  return /^[A-Za-z0-9_.\-/]+$/.test(value) ? value : `'${value.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

export function renderConninfo(pairs: readonly (readonly [string, string])[]): string {
  return pairs.map(([key, value]) => `${key}=${quoteConninfoValue(value)}`).join(' ');
}

/** The user's TLS/GSS keys that are set, sslmode always (libpq's default when unset); never sslpassword. */
export function securityPairs(security: PgSecurity): [string, string][] {
  const pairs: [string, string][] = [];
  for (const key of SECURITY_KEYS) {
    const value = key === 'sslmode' ? (security.sslmode ?? DEFAULT_SSLMODE) : security[key];
    if (value !== undefined) pairs.push([key, value]);
  }
  return pairs;
}

/** The service name whose section of the service file holds `role`'s sslpassword. */
export function serviceNameFor(role: 'replication' | 'superuser' | 'rewind'): string {
  return `pgwarden_${role}`;
}

/**
 * A libpq service file (PGSERVICEFILE) with one section per user that has an sslpassword, so pg_basebackup and
 * pg_rewind get it without it appearing in their argv (ps, error messages). libpq reads a value to the end of its
 * line, unquoted: a password with a line break cannot be written and is refused.
 */
export function renderServiceFile(entries: readonly { readonly service: string; readonly sslpassword: string | undefined }[]): string {
  const sections: string[] = [];
  for (const entry of entries) {
    if (entry.sslpassword === undefined) continue;
    if (/[\r\n]/.test(entry.sslpassword)) throw new Error(`the sslpassword of ${entry.service} contains a line break`);
    sections.push(`[${entry.service}]\nsslpassword=${entry.sslpassword}\n`);
  }
  return sections.join('\n');
}

export interface ConninfoTarget {
  readonly host: string;
  readonly port: number;
  readonly user: string;
}

/**
 * The conninfo of a libpq program run by the agent (pg_basebackup -d, pg_rewind --source-server): address, user,
 * the service holding the sslpassword when there is one, then the TLS keys. The password comes from PGPASSFILE.
 */
export function programConninfo(
  target: ConninfoTarget,
  security: PgSecurity,
  extra: { readonly service?: string | undefined; readonly pairs?: readonly (readonly [string, string])[] } = {},
): string {
  return renderConninfo([
    ['host', target.host],
    ['port', String(target.port)],
    ['user', target.user],
    ...(security.sslpassword !== undefined && extra.service !== undefined ? [['service', extra.service] as const] : []),
    ...(extra.pairs ?? []),
    ...securityPairs(security),
  ]);
}

/** libpq's environment variables for the TLS/GSS keys (psql run by `pgwarden query`); sslpassword has none. */
const ENVIRONMENT_NAMES: Readonly<Record<SecurityKey, string>> = {
  sslmode: 'PGSSLMODE',
  sslcert: 'PGSSLCERT',
  sslkey: 'PGSSLKEY',
  sslrootcert: 'PGSSLROOTCERT',
  sslcrl: 'PGSSLCRL',
  sslcrldir: 'PGSSLCRLDIR',
  gssencmode: 'PGGSSENCMODE',
  channel_binding: 'PGCHANNELBINDING',
};

export function securityEnvironment(security: PgSecurity): Record<string, string> {
  const environment: Record<string, string> = {};
  for (const key of SECURITY_KEYS) {
    const value = security[key];
    if (value !== undefined) environment[ENVIRONMENT_NAMES[key]] = value;
  }
  return environment;
}
