// What the fence does at the deadline: freeze, then kill, every process of a postmaster that runs as a primary.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parsePostmasterPid } from '../postgres/postmaster-pid.js';
import { isAlive } from '../util/process-alive.js';
import { processTree } from '../util/process-tree.js';

export type FenceOutcome =
  | { readonly kind: 'not-running' }
  | { readonly kind: 'replica'; readonly pid: number }
  | { readonly kind: 'stopped'; readonly pid: number; readonly processes: number };

const signal = (pid: number, name: NodeJS.Signals): void => {
  try {
    process.kill(pid, name);
  } catch {
    // gone already
  }
};

/**
 * A standby (standby.signal present) acknowledges no write and is left alone. A primary is frozen first (SIGSTOP of
 * the postmaster, so it forks nothing more, then of every backend: no commit is acknowledged from this instant), then
 * killed. PostgreSQL recovers from that like from a crash; pg_rewind or a re-clone brings it back as a replica.
 */
export async function stopPrimaryPostgres(dataDir: string): Promise<FenceOutcome> {
  let text: string;
  try {
    text = readFileSync(join(dataDir, 'postmaster.pid'), 'utf8');
  } catch {
    return { kind: 'not-running' };
  }
  const pidFile = parsePostmasterPid(text);
  if (pidFile === undefined || pidFile.isStandaloneBackend || !isAlive(pidFile.pid)) return { kind: 'not-running' };
  if (existsSync(join(dataDir, 'standby.signal'))) return { kind: 'replica', pid: pidFile.pid };
  signal(pidFile.pid, 'SIGSTOP');
  const tree = await processTree(pidFile.pid);
  for (const pid of tree) signal(pid, 'SIGSTOP');
  for (const pid of tree) signal(pid, 'SIGKILL');
  return { kind: 'stopped', pid: pidFile.pid, processes: tree.length };
}
