// Process supervision by PID: spawn detached with output to a log file, signal, wait for exit, escalate to SIGKILL.
import { spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { PgwardenError } from '../util/errors.js';
import { isAlive } from '../util/process-alive.js';
import { isWaitTimeout, waitUntil } from '../util/wait-until.js';

export { isAlive };
export { processTree } from '../util/process-tree.js';

export interface SpawnOptions {
  readonly command: string;
  readonly args: readonly string[];
  readonly logFile: string;
  readonly cwd?: string;
  readonly env?: NodeJS.ProcessEnv;
  readonly uid?: number;
  readonly gid?: number;
}

export interface ManagedProcess {
  readonly pid: number;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Detached (own process group) so a Ctrl-C to the parent's terminal reaches only the parent, which then stops children in order. */
export function spawnManaged(options: SpawnOptions): ManagedProcess {
  const fd = openSync(options.logFile, 'a');
  try {
    const child = spawn(options.command, [...options.args], {
      cwd: options.cwd,
      env: options.env ?? process.env,
      stdio: ['ignore', fd, fd],
      detached: true,
      ...(options.uid !== undefined ? { uid: options.uid } : {}),
      ...(options.gid !== undefined ? { gid: options.gid } : {}),
    });
    if (child.pid === undefined)
      throw new PgwardenError('PGW_LOCAL_PROCESS', `could not start ${options.command}: no pid; see ${options.logFile}`, {
        context: { command: [options.command, ...options.args], path: options.logFile, hint: 'is the program installed and on PATH?' },
      });
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
      child.once('exit', (code, signal) => resolve({ code, signal }));
      child.once('error', () => resolve({ code: null, signal: null }));
    });
    child.unref();
    return { pid: child.pid, exited };
  } finally {
    closeSync(fd);
  }
}

export function killPid(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // already gone
  }
}

/** Signals each PID, skipping those already gone. */
export function signalAll(pids: Iterable<number>, signal: NodeJS.Signals): void {
  for (const pid of pids) killPid(pid, signal);
}

/** True once the process is gone, false if it still runs after timeoutMs. */
export async function waitForExit(pid: number, timeoutMs: number): Promise<boolean> {
  try {
    return await waitUntil(() => !isAlive(pid), { timeoutMs, intervalMs: 50, describe: `process ${pid} to exit` });
  } catch (error) {
    if (isWaitTimeout(error)) return false;
    throw error;
  }
}

/** Sends `signal`, waits up to graceMs, then SIGKILLs and waits for the exit. */
export async function stopPid(pid: number, options: { readonly signal?: NodeJS.Signals; readonly graceMs: number }): Promise<void> {
  if (!isAlive(pid)) return;
  killPid(pid, options.signal ?? 'SIGTERM');
  if (await waitForExit(pid, options.graceMs)) return;
  killPid(pid, 'SIGKILL');
  await waitForExit(pid, 5000);
}
