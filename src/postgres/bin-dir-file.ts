// The bin_dir set at runtime (POST /bin_dir), kept in a file beside the data directory so a restarted agent starts
// PostgreSQL from the same binaries; outside the data directory, so a re-clone or pg_upgrade does not take it away.
import { readFile, rename, writeFile } from 'node:fs/promises';
import type { PersistedBinDir } from '../core/minor-upgrade.js';
import { describeError, PgwardenError } from '../util/errors.js';

export function binDirFilePath(dataDir: string): string {
  return `${dataDir.replace(/\/+$/, '')}.bin_dir`;
}

/** The persisted bin_dir, or undefined when there is none; a file that is not one is an error naming it. */
export async function readPersistedBinDir(dataDir: string): Promise<PersistedBinDir | undefined> {
  const path = binDirFilePath(dataDir);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new PgwardenError('PGW_CONFIG_UNREADABLE', `cannot read ${path}: ${describeError(error)}`, {
      cause: error,
      context: { path, hint: 'fix its permissions, or delete it to use postgresql.bin_dir of the config file' },
    });
  }
  try {
    const parsed = JSON.parse(text) as Partial<Record<keyof PersistedBinDir, unknown>>;
    if (typeof parsed.bin_dir === 'string' && typeof parsed.overrides === 'string')
      return { bin_dir: parsed.bin_dir, overrides: parsed.overrides, set_at: typeof parsed.set_at === 'string' ? parsed.set_at : '' };
  } catch {
    // reported below
  }
  throw new PgwardenError('PGW_CONFIG_INVALID', `${path} does not hold a bin_dir record (JSON with bin_dir and overrides)`, {
    context: { path, hint: 'delete it to use postgresql.bin_dir of the config file' },
  });
}

/** Written to a temporary name and renamed: an agent killed mid-write leaves the old record, never half a new one. */
export async function writePersistedBinDir(dataDir: string, record: PersistedBinDir): Promise<void> {
  const path = binDirFilePath(dataDir);
  await writeFile(`${path}.tmp`, `${JSON.stringify(record)}\n`, { mode: 0o644 });
  await rename(`${path}.tmp`, path);
}
