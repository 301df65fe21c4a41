// Pure argv builders for PostgreSQL's programs.

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

export function pgBasebackupArgv(binary: string, input: { dataDir: string; host: string; port: number; user: string }): string[] {
  // -c fast: don't wait for the next scheduled checkpoint; -X stream: the copy is consistent on its own.
  return [
    binary,
    '-D',
    input.dataDir,
    '-X',
    'stream',
    '-c',
    'fast',
    '-h',
    input.host,
    '-p',
    String(input.port),
    '-U',
    input.user,
    '--no-password',
  ];
}

export function pgRewindArgv(binary: string, input: { dataDir: string; host: string; port: number; user: string }): string[] {
  return [
    binary,
    '-D',
    input.dataDir,
    `--source-server=host=${input.host} port=${input.port} user=${input.user} dbname=postgres connect_timeout=3`,
  ];
}

export function pgControldataArgv(binary: string, dataDir: string): string[] {
  return [binary, '-D', dataDir];
}

/** Single-user mode: crash recovery before pg_rewind, and role creation right after initdb. */
export function singleUserArgv(binary: string, dataDir: string): string[] {
  return [binary, '--single', '-D', dataDir, '-c', 'archive_mode=off', '-c', 'listen_addresses=', 'postgres'];
}
