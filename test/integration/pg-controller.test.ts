// The real PostgresController passes the PgController conformance suite on PostgreSQL 15: three nodes on 127.0.0.1,
// free ports, a fresh temp dir, every postmaster stopped at the end.
import { readdirSync, readFileSync } from 'node:fs';
import { chmod, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import type { Upstream } from '../../src/core/ports.js';
import { pickFreePorts } from '../../src/local/free-port.js';
import { runPgControllerConformance } from '../../src/postgres/conformance.js';
import { PostgresController, resolveRunAs } from '../../src/postgres/controller.js';
import { postmasterPidFrom } from '../../src/postgres/postmaster-pid.js';
import { isFrozen } from '../../src/postgres/postmaster.js';
import { isAlive } from '../../src/util/process-alive.js';
import type { Log } from '../../src/util/log.js';

const BIN_DIR = '/usr/lib/postgresql/15/bin';
const SUPERUSER = { username: 'postgres', password: 'conformance-su' };
const PARAMETERS = { wal_level: 'logical', max_connections: 20, shared_buffers: '16MB', max_wal_size: '64MB', min_wal_size: '32MB' };
const NAMES = ['pgc0', 'pgc1', 'pgc2'];

/** Keeps the last lines the controllers logged; PGW_CONFORMANCE_LOGS=1 prints them at the end (to debug a failure). */
function recordingLog(member: string, lines: string[]): Log {
  const record = (level: string) => (fields: Record<string, unknown>, message: string) => {
    lines.push(`${level} [${member}] ${message} ${JSON.stringify(fields)}`);
    if (lines.length > 400) lines.splice(0, lines.length - 400);
  };
  return { debug: () => undefined, info: record('info'), warn: record('warn'), error: record('error') };
}

/** Live PIDs whose parent is `pid` (a postmaster's backends, walsenders, checkpointer...). */
function childrenOf(pid: number): number[] {
  const children: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const parent = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (parent === pid) children.push(Number(entry));
    } catch {
      // exited while we looked
    }
  }
  return children;
}

runPgControllerConformance(
  'PostgreSQL 15',
  async () => {
    const base = await mkdtemp(join(tmpdir(), 'pgw-pgc-'));
    // The postgres OS user must traverse into the node dirs.
    await chmod(base, 0o755);
    const ports = await pickFreePorts(NAMES.length);
    const runAs = resolveRunAs();
    const logLines: string[] = [];
    const dirOf = (index: number): string => join(base, NAMES[index]!);
    const portOf = (index: number): number => ports[index]!;
    const nodes = NAMES.map(
      (member, index) =>
        new PostgresController({
          member,
          scope: 'conformance',
          dataDir: join(dirOf(index), 'data'),
          binDir: BIN_DIR,
          listenHost: '127.0.0.1',
          port: portOf(index),
          socketDir: dirOf(index),
          superuser: SUPERUSER,
          replication: { username: 'replicator', password: 'conformance-repl' },
          parameters: PARAMETERS,
          pgHba: [
            'local all all scram-sha-256',
            'host replication replicator 127.0.0.1/32 scram-sha-256',
            'host all all 127.0.0.1/32 scram-sha-256',
          ],
          initdbOptions: [{ encoding: 'UTF8' }, { locale: 'C.UTF-8' }],
          pgpassPath: join(dirOf(index), 'pgpass'),
          runAs,
          log: recordingLog(member, logLines),
          logFile: join(dirOf(index), 'postgresql.log'),
        }),
    );
    const postmasterOf = async (index: number): Promise<number | undefined> => {
      const text = await readFile(join(dirOf(index), 'data', 'postmaster.pid'), 'utf8').catch(() => undefined);
      const pid = text === undefined ? undefined : postmasterPidFrom(text);
      return pid !== undefined && isAlive(pid) ? pid : undefined;
    };
    return {
      nodes,
      upstreamOf: (index): Upstream => ({ name: NAMES[index]!, connUrl: `postgres://127.0.0.1:${portOf(index)}/postgres` }),
      unreachable: (): Upstream => ({ name: 'nowhere', connUrl: 'postgres://127.0.0.1:1/postgres' }),
      crash: async (index) => {
        const pid = await postmasterOf(index);
        if (pid === undefined) throw new Error(`${NAMES[index]!} has no running postmaster to crash`);
        const children = childrenOf(pid);
        process.kill(pid, 'SIGKILL');
        // Its children notice the postmaster's death and exit; until they have, shared memory blocks a restart.
        const deadline = Date.now() + 20_000;
        while ([pid, ...children].some(isAlive)) {
          if (Date.now() > deadline) throw new Error(`the processes of ${NAMES[index]!}'s killed postmaster did not exit`);
          await sleep(20);
        }
      },
      freeze: async (index) => {
        const pid = await postmasterOf(index);
        if (pid === undefined) throw new Error(`${NAMES[index]!} has no running postmaster to freeze`);
        process.kill(pid, 'SIGSTOP');
        // The kernel stops the process when it next runs: on a busy machine that is a few milliseconds later. The
        // fence's freeze is done once the postmaster shows as stopped, and so is this one.
        const deadline = Date.now() + 2000;
        while (!isFrozen(pid)) {
          if (Date.now() > deadline) throw new Error(`${NAMES[index]!}'s postmaster ${pid} did not stop after SIGSTOP`);
          await sleep(5);
        }
      },
      thaw: async (index) => {
        const pid = await postmasterOf(index);
        if (pid !== undefined) process.kill(pid, 'SIGCONT');
      },
      write: async (index) => {
        const client = new pg.Client({
          host: '127.0.0.1',
          port: portOf(index),
          user: SUPERUSER.username,
          password: SUPERUSER.password,
          database: 'postgres',
        });
        await client.connect();
        try {
          await client.query('CREATE TABLE IF NOT EXISTS conformance_writes (n int)');
          await client.query('INSERT INTO conformance_writes SELECT generate_series(1, 100)');
        } finally {
          await client.end();
        }
      },
      pass: (ms) => sleep(ms),
      parameters: PARAMETERS,
      logicalPlugin: 'test_decoding',
      cleanup: async () => {
        for (const node of nodes) {
          await node.stop('immediate', AbortSignal.timeout(30_000)).catch(() => undefined);
          await node.close();
        }
        if (process.env.PGW_CONFORMANCE_LOGS === '1') console.error(logLines.join('\n'));
        await rm(base, { recursive: true, force: true });
      },
    };
  },
  { waitBudgetMs: 30_000, timeoutMs: 300_000 },
);
