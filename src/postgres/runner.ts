// Runs PostgreSQL's programs as the postgres OS user, with a deadline, and turns failures into errors that say what to do.
import { spawn } from 'node:child_process';
import { PgwardenError } from '../util/errors.js';

export interface RunAs {
  readonly uid: number;
  readonly gid: number;
}

export interface RunOptions {
  readonly member: string;
  readonly argv: readonly string[];
  readonly signal: AbortSignal;
  readonly runAs: RunAs | undefined;
  readonly env?: Readonly<Record<string, string>>;
  readonly stdin?: string;
  readonly dataDir?: string;
  readonly hint?: string;
  /** Working directory (pg_upgrade writes there); '/' by default. */
  readonly cwd?: string;
}

export interface RunResult {
  readonly stdout: string;
  readonly stderr: string;
}

const TAIL_LINES = 15;

function tail(text: string): string {
  return text.trim().split('\n').slice(-TAIL_LINES).join('\n');
}

/** libpq's words for a server nothing answers at (pg_basebackup, pg_rewind): the source is down or out of reach. */
const UNREACHABLE_STDERR = /Connection refused|timeout expired|No route to host|Network is unreachable|could not translate host name/;
/** The source is up but not accepting connections yet (or any more): expected while a leader starts, retried. */
const NOT_READY_STDERR = /the database system is (starting up|not yet accepting connections|shutting down|in recovery mode)/;

/** Hints for the failures users actually meet; the raw stderr tail is always included too. */
function hintFor(stderr: string, fallback: string | undefined): string | undefined {
  if (/cannot be run as root/.test(stderr)) return 'run PostgreSQL as the postgres OS user';
  if (/wal_log_hints/.test(stderr)) return 'pg_rewind needs wal_log_hints=on or data checksums; the node must be re-cloned';
  if (/exists but is not empty/.test(stderr)) return 'the data directory is not empty: remove it or let pgwarden reinitialize the member';
  if (/password authentication failed/.test(stderr)) return 'check postgresql.authentication and pg_hba';
  if (/certificate|SSL|channel binding|sslmode|GSSAPI|no encryption/.test(stderr))
    return 'check the TLS keys of the user in postgresql.authentication (sslmode, sslrootcert, sslcert, sslkey) against the server certificate, and pg_hba (hostssl)';
  if (/Permission denied/.test(stderr)) return 'the postgres OS user needs access to the data directory and its parents';
  if (UNREACHABLE_STDERR.test(stderr)) return 'the source server does not answer: is it running, and reachable from this host?';
  if (NOT_READY_STDERR.test(stderr)) return 'the source server is not accepting connections yet (starting up): retried';
  return fallback;
}

export function runCommand(options: RunOptions): Promise<RunResult> {
  const [command, ...args] = options.argv;
  if (command === undefined) throw new PgwardenError('PGW_INTERNAL', 'empty argv');
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: {
        ...process.env,
        ...(options.runAs !== undefined ? { HOME: '/var/lib/postgresql', USER: 'postgres' } : {}),
        ...options.env,
        LC_ALL: 'C.UTF-8',
      },
      ...(options.runAs !== undefined ? { uid: options.runAs.uid, gid: options.runAs.gid } : {}),
      cwd: options.cwd ?? '/',
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
      if (stderr.length > 64_000) stderr = stderr.slice(-32_000);
    });
    child.stdin.on('error', () => undefined);
    child.stdin.end(options.stdin ?? '');
    let killTimer: NodeJS.Timeout | undefined;
    const onAbort = (): void => {
      child.kill('SIGTERM');
      killTimer = setTimeout(() => child.kill('SIGKILL'), 3000);
    };
    options.signal.addEventListener('abort', onAbort, { once: true });
    const fail = (exitCode: number | null, reason: string): void => {
      const stderrTail = tail(stderr || stdout);
      const hint = hintFor(stderr, options.hint);
      reject(
        new PgwardenError(
          options.signal.aborted
            ? 'PGW_PG_TIMEOUT'
            : UNREACHABLE_STDERR.test(stderr) || NOT_READY_STDERR.test(stderr)
              ? 'PGW_PG_UNREACHABLE'
              : 'PGW_PG_COMMAND_FAILED',
          `[${options.member}] ${options.argv.join(' ')} ${reason}${options.dataDir !== undefined ? ` (data dir ${options.dataDir})` : ''}${stderrTail !== '' ? `: ${stderrTail}` : ''}${hint !== undefined ? ` — hint: ${hint}` : ''}`,
          {
            context: {
              member: options.member,
              command: options.argv,
              exitCode,
              stderrTail,
              ...(options.dataDir !== undefined ? { path: options.dataDir } : {}),
              ...(hint !== undefined ? { hint } : {}),
            },
          },
        ),
      );
    };
    child.once('error', (error) => {
      options.signal.removeEventListener('abort', onAbort);
      fail(null, `could not start: ${error.message}`);
    });
    child.once('close', (code, signal) => {
      options.signal.removeEventListener('abort', onAbort);
      if (killTimer !== undefined) clearTimeout(killTimer);
      if (code === 0) resolve({ stdout, stderr });
      else fail(code, options.signal.aborted ? 'timed out and was stopped' : `exited with ${code ?? signal ?? 'unknown'}`);
    });
  });
}
