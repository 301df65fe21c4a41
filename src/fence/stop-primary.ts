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

export type FreezeOutcome =
  | { readonly kind: 'not-running' }
  | { readonly kind: 'replica'; readonly pid: number }
  | { readonly kind: 'frozen'; readonly pid: number; readonly pids: readonly number[] };

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
  const frozen = await freezePrimaryPostgres(dataDir);
  if (frozen.kind !== 'frozen') return frozen;
  for (const pid of frozen.pids) signal(pid, 'SIGKILL');
  return { kind: 'stopped', pid: frozen.pid, processes: frozen.pids.length };
}

/** The running primary's postmaster, or why there is nothing to fence. */
function primaryPostmaster(
  dataDir: string,
): { readonly kind: 'primary'; readonly pid: number } | Exclude<FreezeOutcome, { kind: 'frozen' }> {
  let text: string;
  try {
    text = readFileSync(join(dataDir, 'postmaster.pid'), 'utf8');
  } catch {
    return { kind: 'not-running' };
  }
  const pidFile = parsePostmasterPid(text);
  if (pidFile === undefined || pidFile.isStandaloneBackend || !isAlive(pidFile.pid)) return { kind: 'not-running' };
  if (existsSync(join(dataDir, 'standby.signal'))) return { kind: 'replica', pid: pidFile.pid };
  return { kind: 'primary', pid: pidFile.pid };
}

/**
 * SIGSTOP of the postmaster first (it forks nothing more), then of every process of its tree: from this instant no
 * commit is acknowledged. Returns the processes stopped, for a thaw or a kill.
 */
export async function freezePrimaryPostgres(dataDir: string): Promise<FreezeOutcome> {
  const postmaster = primaryPostmaster(dataDir);
  if (postmaster.kind !== 'primary') return postmaster;
  signal(postmaster.pid, 'SIGSTOP');
  const tree = await processTree(postmaster.pid);
  for (const pid of tree) signal(pid, 'SIGSTOP');
  return { kind: 'frozen', pid: postmaster.pid, pids: tree.includes(postmaster.pid) ? tree : [postmaster.pid, ...tree] };
}

/** SIGCONT for what a freeze stopped, children first so that the postmaster finds them running. */
export function thawPostgres(pids: readonly number[]): void {
  for (const pid of [...pids].reverse()) signal(pid, 'SIGCONT');
}

/** SIGKILL for what a freeze stopped (a killed stopped process dies without running again). */
export function killFrozenPostgres(pids: readonly number[]): void {
  for (const pid of pids) signal(pid, 'SIGKILL');
}
