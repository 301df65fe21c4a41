// Pure argv builders for PostgreSQL's programs.
import { programConninfo, type PgSecurity } from './conninfo.js';

/** Where a libpq program connects: address and user, the user's TLS keys, and the service holding its sslpassword. */
export interface SourceServer {
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly security?: PgSecurity | undefined;
  readonly service?: string | undefined;
}

export function initdbArgv(
  binary: string,
  input: { dataDir: string; superuser: string; pwfile: string; options: readonly (string | Readonly<Record<string, string>>)[] },
): string[] {
  const argv = [
    binary,
    '-D',
    input.dataDir,
    '-U',
    input.superuser,
    `--pwfile=${input.pwfile}`,
    // Never trust, even before pg_hba.conf is rewritten from the config: the superuser has the --pwfile password.
    '--auth-local=scram-sha-256',
    '--auth-host=scram-sha-256',
  ];
  for (const option of input.options) {
    if (typeof option === 'string') argv.push(`--${option}`);
    else for (const [key, value] of Object.entries(option)) argv.push(`--${key}=${value}`);
  }
  return argv;
}

export function pgBasebackupArgv(binary: string, input: SourceServer & { readonly dataDir: string }): string[] {
  // -c fast: don't wait for the next scheduled checkpoint; -X stream: the copy is consistent on its own. The conninfo
  // (-d) carries the TLS keys; the password comes from PGPASSFILE, the sslpassword from the service file.
  return [
    binary,
    '-D',
    input.dataDir,
    '-X',
    'stream',
    '-c',
    'fast',
    '-d',
    programConninfo(input, input.security ?? {}, { service: input.service }),
    '--no-password',
  ];
}

export function pgRewindArgv(binary: string, input: SourceServer & { readonly dataDir: string }): string[] {
  return [
    binary,
    '-D',
    input.dataDir,
    `--source-server=${programConninfo(input, input.security ?? {}, {
      service: input.service,
      pairs: [
        ['dbname', 'postgres'],
        ['connect_timeout', '3'],
      ],
    })}`,
  ];
}

/** What a non-superuser pg_rewind source connection needs to be able to run (PostgreSQL's pg_rewind docs, Patroni). */
const REWIND_FUNCTIONS = [
  'pg_catalog.pg_ls_dir(text, boolean, boolean)',
  'pg_catalog.pg_stat_file(text, boolean)',
  'pg_catalog.pg_read_binary_file(text)',
  'pg_catalog.pg_read_binary_file(text, bigint, bigint, boolean)',
];

/**
 * The statements single-user mode runs right after initdb (one per line: a newline ends a statement there): the
 * replication role, and the rewind role with execute on what pg_rewind reads, as Patroni's post_bootstrap creates it.
 */
export function bootstrapRolesSql(input: {
  readonly replication: { readonly username: string; readonly password?: string | undefined };
  readonly rewind?: { readonly username: string; readonly password?: string | undefined } | undefined;
}): string {
  const identifier = (name: string): string => `"${name.replace(/"/g, '""')}"`;
  const literal = (text: string | undefined): string => `'${(text ?? '').replace(/'/g, "''")}'`;
  const lines = [
    `CREATE ROLE ${identifier(input.replication.username)} WITH REPLICATION LOGIN PASSWORD ${literal(input.replication.password)};`,
  ];
  if (input.rewind !== undefined) {
    const role = identifier(input.rewind.username);
    lines.push(`CREATE ROLE ${role} WITH LOGIN PASSWORD ${literal(input.rewind.password)};`);
    for (const signature of REWIND_FUNCTIONS) lines.push(`GRANT EXECUTE ON FUNCTION ${signature} TO ${role};`);
  }
  return `${lines.join('\n')}\n`;
}

export function pgControldataArgv(binary: string, dataDir: string): string[] {
  return [binary, '-D', dataDir];
}

/** Single-user mode: crash recovery before pg_rewind, and role creation right after initdb. */
export function singleUserArgv(binary: string, dataDir: string): string[] {
  return [binary, '--single', '-D', dataDir, '-c', 'archive_mode=off', '-c', 'listen_addresses=', 'postgres'];
}

/**
 * After a custom bootstrap (a restored copy of another cluster): the configured superuser, replication and rewind roles
 * exist with the configured passwords, whatever the copy held. One statement per line (single-user mode).
 */
export function ensureRolesSql(input: {
  readonly superuser: { readonly username: string; readonly password?: string | undefined };
  readonly replication: { readonly username: string; readonly password?: string | undefined };
  readonly rewind?: { readonly username: string; readonly password?: string | undefined } | undefined;
}): string {
  const identifier = (name: string): string => `"${name.replace(/"/g, '""')}"`;
  const literal = (text: string | undefined): string => `'${(text ?? '').replace(/'/g, "''")}'`;
  const upsert = (role: { readonly username: string; readonly password?: string | undefined }, options: string): string => {
    const password = role.password === undefined ? '' : ` PASSWORD ${literal(role.password)}`;
    return (
      `DO $pgwarden$BEGIN IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = ${literal(role.username)}) ` +
      `THEN ALTER ROLE ${identifier(role.username)} WITH ${options}${password}; ` +
      `ELSE CREATE ROLE ${identifier(role.username)} WITH ${options}${password}; END IF; END$pgwarden$;`
    );
  };
  const lines = [upsert(input.superuser, 'SUPERUSER LOGIN'), upsert(input.replication, 'REPLICATION LOGIN')];
  if (input.rewind !== undefined) {
    lines.push(upsert(input.rewind, 'LOGIN'));
    for (const signature of REWIND_FUNCTIONS) lines.push(`GRANT EXECUTE ON FUNCTION ${signature} TO ${identifier(input.rewind.username)};`);
  }
  return `${lines.join('\n')}\n`;
}
