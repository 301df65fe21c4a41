// Process supervision by PID: spawn detached with output to a log file, signal, wait for exit, escalate to SIGKILL.
import { spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { isAlive } from '../util/process-alive.js';

export { isAlive };

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
    if (child.pid === undefined) throw new Error(`could not start ${options.command}: no pid (see ${options.logFile})`);
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

export async function waitForExit(pid: number, timeoutMs: number): Promise<boolean> {
  const deadlineAt = Date.now() + timeoutMs;
  while (Date.now() < deadlineAt) {
    if (!isAlive(pid)) return true;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return !isAlive(pid);
}

/** Sends `signal`, waits up to graceMs, then SIGKILLs and waits for the exit. */
export async function stopPid(pid: number, options: { readonly signal?: NodeJS.Signals; readonly graceMs: number }): Promise<void> {
  if (!isAlive(pid)) return;
  killPid(pid, options.signal ?? 'SIGTERM');
  if (await waitForExit(pid, options.graceMs)) return;
  killPid(pid, 'SIGKILL');
  await waitForExit(pid, 5000);
}
