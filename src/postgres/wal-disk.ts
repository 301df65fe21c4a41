// The file system that holds pg_wal, as df reports it: statfs of <data_dir>/pg_wal (a symlink to another mount is
// followed), one system call and no SQL, so a scrape costs nothing more and it works while PostgreSQL is down.
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

/** How old a WAL disk reading a probe may reuse: only metrics and alerts read it, and they scrape every 15 s or so. */
export const WAL_DISK_MAX_AGE_MS = 5000;

/** Reads the WAL disk at most every WAL_DISK_MAX_AGE_MS; probes in between (one a second in a fast profile) reuse it. */
export class WalDiskReader {
  readonly #dataDir: string;
  #last: { readonly atMs: number; readonly state: WalDiskState | undefined } | undefined;

  constructor(dataDir: string) {
    this.#dataDir = dataDir;
  }

  async read(nowMs: number): Promise<WalDiskState | undefined> {
    const last = this.#last;
    if (last !== undefined && last.state !== undefined && nowMs - last.atMs < WAL_DISK_MAX_AGE_MS) return last.state;
    const state = await readWalDisk(this.#dataDir);
    this.#last = { atMs: nowMs, state };
    return state;
  }
}
