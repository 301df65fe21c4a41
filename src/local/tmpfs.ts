// A tmpfs per local node (root only), so a chaos fault can fill one node's disk without touching the machine's.
import { readFile } from 'node:fs/promises';
import { describeError, PgwardenError } from '../util/errors.js';
import { runCommand } from '../util/run-command.js';

export async function mountTmpfs(dir: string, sizeMb: number): Promise<void> {
  try {
    await runCommand('mount', ['-t', 'tmpfs', '-o', `size=${sizeMb}m,mode=0700`, 'tmpfs', dir]);
  } catch (error) {
    throw new PgwardenError('PGW_LOCAL_PROCESS', `could not mount a ${sizeMb} MB tmpfs on ${dir}: ${describeError(error)}`, {
      context: { path: dir, command: ['mount', '-t', 'tmpfs'], hint: 'mounting needs root; drop nodeTmpfsMb otherwise' },
      cause: error,
    });
  }
}

export async function isMountPoint(dir: string): Promise<boolean> {
  const mounts = await readFile('/proc/self/mounts', 'utf8').catch(() => '');
  return mounts.split('\n').some((line) => line.split(' ')[1] === dir);
}

/** Lazy, so a process still holding a file there cannot keep the cluster's stop from finishing. */
export async function unmountTmpfs(dir: string): Promise<void> {
  if (await isMountPoint(dir)) await runCommand('umount', ['-l', dir]).catch(() => undefined);
}
