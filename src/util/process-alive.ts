// Whether a PID is a live process: kill(0) alone is not enough, a killed child nobody reaped is a zombie.
import { readFileSync } from 'node:fs';

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = text.slice(text.lastIndexOf(')') + 2).split(' ')[0];
    return state !== 'Z' && state !== 'X';
  } catch {
    return true;
  }
}

/**
 * Blocks until the PID is gone or `timeoutMs` passed; whether it is gone. Only for the moment after a SIGKILL, when the
 * kernel needs milliseconds to finish the exit: callers that are synchronous by contract may wait that long.
 */
export function waitForExitSync(pid: number, timeoutMs: number): boolean {
  const sleeper = new Int32Array(new SharedArrayBuffer(4));
  const end = Date.now() + timeoutMs;
  while (isAlive(pid)) {
    if (Date.now() >= end) return false;
    Atomics.wait(sleeper, 0, 0, 2);
  }
  return true;
}
