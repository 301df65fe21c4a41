// A PgBouncer (Debian's package) for the proxy benchmark: transaction pooling in front of one server, its own dir
// owned by postgres (PgBouncer refuses to run as root), a plain-password userlist, an admin console for SHOW POOLS.
import { chown, mkdir, writeFile } from 'node:fs/promises';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { pickFreePorts } from '../src/local/free-port.js';
import { spawnManaged, stopPid } from '../src/local/process.js';
import { PgwardenError } from '../src/util/errors.js';
import { waitUntil } from '../src/util/wait-until.js';
import { execFileSync } from 'node:child_process';

export const PGBOUNCER = '/usr/sbin/pgbouncer';

export interface RunningPgBouncer {
  readonly port: number;
  readonly logFile: string;
  /** Server connections PgBouncer holds now (SHOW POOLS: active, idle, used, tested, login). */
  serverConnections(): Promise<number>;
  stop(): Promise<void>;
}

export async function startPgBouncer(options: {
  readonly dir: string;
  /** Its own directory under dir (several PgBouncers may run). */
  readonly name: string;
  readonly serverPort: number;
  readonly password: string;
  readonly poolSize: number;
  readonly maxClientConn: number;
}): Promise<RunningPgBouncer> {
  const dir = join(options.dir, options.name);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const [port] = (await pickFreePorts(1)) as [number];
  const logFile = join(dir, 'pgbouncer.log');
  await writeFile(join(dir, 'userlist.txt'), `"postgres" "${options.password}"\n`, { mode: 0o600 });
  await writeFile(
    join(dir, 'pgbouncer.ini'),
    [
      '[databases]',
      `postgres = host=127.0.0.1 port=${options.serverPort} dbname=postgres`,
      '[pgbouncer]',
      'listen_addr = 127.0.0.1',
      `listen_port = ${port}`,
      'unix_socket_dir =',
      'auth_type = scram-sha-256',
      `auth_file = ${join(dir, 'userlist.txt')}`,
      'pool_mode = transaction',
      `default_pool_size = ${options.poolSize}`,
      `max_client_conn = ${options.maxClientConn}`,
      'admin_users = postgres',
      'ignore_startup_parameters = extra_float_digits',
      '',
    ].join('\n'),
  );
  let owner: { uid: number; gid: number } | undefined;
  if (userInfo().uid === 0) {
    const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim());
    const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim());
    owner = { uid, gid };
    for (const file of ['', 'userlist.txt', 'pgbouncer.ini']) await chown(join(dir, file), uid, gid);
  }
  await writeFile(logFile, '');
  if (owner !== undefined) await chown(logFile, owner.uid, owner.gid);
  const { pid } = spawnManaged({ command: PGBOUNCER, args: [join(dir, 'pgbouncer.ini')], logFile, ...(owner ?? {}) });
  const admin = async <T>(text: string): Promise<T[]> => {
    const client = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', password: options.password, database: 'pgbouncer' });
    client.on('error', () => undefined);
    await client.connect();
    try {
      return (await client.query({ text, rowMode: 'object' } as pg.QueryConfig)).rows as T[];
    } finally {
      await client.end();
    }
  };
  try {
    await waitUntil(async () => (await admin('SHOW VERSION')).length > 0, {
      timeoutMs: 15_000,
      intervalMs: 100,
      describe: `pgbouncer on port ${port} (see ${logFile})`,
    });
  } catch (error) {
    await stopPid(pid, { signal: 'SIGTERM', graceMs: 3000 });
    throw new PgwardenError('PGW_BENCH_SETUP', `pgbouncer did not start; see ${logFile}`, { context: { path: logFile }, cause: error });
  }
  return {
    port,
    logFile,
    async serverConnections() {
      const pools = await admin<Record<string, string>>('SHOW POOLS');
      return pools
        .filter((pool) => pool.database === 'postgres')
        .reduce(
          (sum, pool) => sum + ['sv_active', 'sv_idle', 'sv_used', 'sv_tested', 'sv_login'].reduce((n, k) => n + Number(pool[k] ?? 0), 0),
          0,
        );
    },
    stop: () => stopPid(pid, { signal: 'SIGTERM', graceMs: 3000 }),
  };
}
