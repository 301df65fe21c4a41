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
    '--auth-local=trust',
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

export function pgControldataArgv(binary: string, dataDir: string): string[] {
  return [binary, '-D', dataDir];
}

/** Single-user mode: crash recovery before pg_rewind, and role creation right after initdb. */
export function singleUserArgv(binary: string, dataDir: string): string[] {
  return [binary, '--single', '-D', dataDir, '-c', 'archive_mode=off', '-c', 'listen_addresses=', 'postgres'];
}
