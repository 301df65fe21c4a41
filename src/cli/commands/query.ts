// `pgwarden query`: run SQL on a member chosen by role or name, through psql (libpq), printing tab-separated rows.
import { spawn } from 'node:child_process';
import { stringify } from 'yaml';
import { hostPortFromConnUrl } from '../../core/cluster-summary.js';
import type { ClusterView } from '../../core/types.js';
import { PgwardenError } from '../../util/errors.js';

/** psql's unaligned tab-separated output (header row first) as rows of objects, for --format json|yaml. */
export function tsvToObjects(text: string): Record<string, string>[] {
  const [header, ...rows] = text.split('\n').filter((line) => line !== '');
  if (header === undefined) return [];
  const names = header.split('\t');
  return rows.map((row) => Object.fromEntries(row.split('\t').map((value, index) => [names[index] ?? `column${index + 1}`, value])));
}

export interface QueryOptions {
  readonly format?: 'tsv' | 'json' | 'yaml' | undefined;
  readonly command?: string;
  readonly file?: string;
  readonly role?: string;
  readonly member?: string;
  readonly dbname?: string;
  readonly username?: string;
}

export interface DbAccess {
  readonly psql: string;
  readonly username: string;
  readonly password: string | undefined;
  /** libpq's variables for the superuser's TLS keys (PGSSLMODE, PGSSLROOTCERT, ...), used with its password. */
  readonly environment?: Readonly<Record<string, string>> | undefined;
}

export function pickMember(
  view: ClusterView,
  options: { readonly role?: string | undefined; readonly member?: string | undefined },
): { name: string; host: string; port: number } {
  const leader = view.leader?.name;
  const role = options.role ?? 'leader';
  const chosen = view.members.find((member) => {
    if (options.member !== undefined) return member.name === options.member;
    if (role === 'leader' || role === 'primary' || role === 'master') return member.name === leader;
    if (role === 'replica' || role === 'standby') return member.name !== leader && member.state === 'running';
    return member.state === 'running';
  });
  if (chosen === undefined)
    throw new PgwardenError(
      'PGW_CLI_NO_MEMBER',
      options.member !== undefined ? `no member named ${options.member}` : `no running member with role ${role}`,
      {
        context: {
          ...(options.member !== undefined ? { member: options.member, flag: '--member' } : { role, flag: '--role' }),
          hint:
            options.member !== undefined
              ? 'pgwarden list shows the member names'
              : 'pgwarden list shows the roles and states; pick another role or a member with -m <name>',
        },
      },
    );
  return { name: chosen.name, ...hostPortFromConnUrl(chosen.conn_url) };
}

export function queryCommand(view: ClusterView, options: QueryOptions, access: DbAccess, out: (text: string) => void): Promise<void> {
  if ((options.command === undefined) === (options.file === undefined))
    return Promise.reject(
      new PgwardenError('PGW_CLI_USAGE', 'query needs exactly one of -c <SQL> or -f <file>', {
        context: { command: ['pgwarden', 'query'], flag: '-c/-f', hint: 'pass the SQL with -c <SQL>, or a file of SQL with -f <file>' },
      }),
    );
  const target = pickMember(view, options);
  const args = [
    '-X',
    '-A',
    '-F',
    '\t',
    '-P',
    'footer=off',
    '-v',
    'ON_ERROR_STOP=1',
    '-h',
    target.host,
    '-p',
    String(target.port),
    '-U',
    options.username ?? access.username,
    '-d',
    options.dbname ?? 'postgres',
  ];
  args.push(...(options.command !== undefined ? ['-c', options.command] : ['-f', options.file!]));
  return new Promise((resolve, reject) => {
    const child = spawn(access.psql, args, {
      env: {
        ...process.env,
        ...(options.username === undefined ? access.environment : {}),
        ...(access.password !== undefined && options.username === undefined ? { PGPASSWORD: access.password } : {}),
        PGCONNECT_TIMEOUT: '5',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.once('error', (error) =>
      reject(
        new PgwardenError('PGW_PG_COMMAND_FAILED', `could not run ${access.psql}: ${error.message}`, {
          cause: error,
          context: {
            member: target.name,
            path: access.psql,
            hint: 'install the PostgreSQL client (psql), or set postgresql.bin_dir in the config file to where it is',
          },
        }),
      ),
    );
    child.once('close', (code) => {
      if (code === 0) {
        const format = options.format ?? 'tsv';
        out(
          format === 'tsv'
            ? stdout.trimEnd()
            : format === 'json'
              ? JSON.stringify(tsvToObjects(stdout))
              : stringify(tsvToObjects(stdout)).trimEnd(),
        );
        resolve();
      } else {
        const tail = stderr.trim().split('\n').slice(-3).join(' ');
        reject(
          new PgwardenError('PGW_PG_QUERY_FAILED', `query on ${target.name} failed: ${tail}`, {
            context: {
              member: target.name,
              host: target.host,
              port: target.port,
              database: options.dbname ?? 'postgres',
              exitCode: code,
              stderrTail: tail,
              hint: 'psql said why: fix the SQL, or check that the member accepts connections (pg_hba, password)',
            },
          }),
        );
      }
    });
  });
}
