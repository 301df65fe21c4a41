// The file system that holds pg_wal, as df reports it: statfs of <data_dir>/pg_wal (a symlink to another mount is
// followed), one system call per probe and no SQL, so a scrape costs nothing more and it works while PostgreSQL is down.
import { statfs } from 'node:fs/promises';
import { join } from 'node:path';
import type { WalDiskState } from '../core/types.js';

/** The fields of fs.StatsFs this needs (numbers: block counts and the block size). */
export interface StatfsFigures {
  readonly bsize: number;
  readonly blocks: number;
  readonly bfree: number;
  readonly bavail: number;
}

export function walDiskFromStatfs(figures: StatfsFigures): WalDiskState {
  return {
    sizeBytes: figures.blocks * figures.bsize,
    availableBytes: figures.bavail * figures.bsize,
    usedBytes: (figures.blocks - figures.bfree) * figures.bsize,
  };
}

/** undefined when pg_wal cannot be read (no data dir yet, a clone in progress). */
export async function readWalDisk(dataDir: string): Promise<WalDiskState | undefined> {
  try {
    return walDiskFromStatfs(await statfs(join(dataDir, 'pg_wal')));
  } catch {
    return undefined;
  }
}
