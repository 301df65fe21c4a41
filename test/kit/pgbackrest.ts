// pgBackRest as a test runs it by hand: as the postgres OS user, with a member's config file and pgpass, the way the
// agent runs it, so that files it writes in the repository belong to the same user.
import { execFile, execFileSync } from 'node:child_process';
import { join } from 'node:path';
import type { LocalCluster } from '../../src/local/local-cluster.js';

/** The postgres OS user's uid and gid. */
export const postgresIds = (): { uid: number; gid: number } => ({
  uid: Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim()),
  gid: Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim()),
});

/** Runs `pgbackrest --stanza=<stanza> <args>` for a member; resolves its stdout, rejects with its output on failure. */
export function runPgbackrest(
  cluster: LocalCluster,
  member: string,
  stanza: string,
  args: readonly string[],
  timeoutMs = 180_000,
): Promise<string> {
  const nodeDir = cluster.node(member).nodeDir;
  const ids = process.getuid?.() === 0 ? postgresIds() : {};
  return new Promise((resolve, reject) => {
    execFile(
      'pgbackrest',
      [`--config=${join(nodeDir, `pgbackrest-${member}.conf`)}`, `--stanza=${stanza}`, ...args],
      { ...ids, timeout: timeoutMs, cwd: '/', env: { ...process.env, PGPASSFILE: join(nodeDir, 'pgpass') } },
      (error, stdout, stderr) =>
        error === null ? resolve(stdout) : reject(new Error(`pgbackrest ${args.join(' ')}: ${stderr || stdout || error.message}`)),
    );
  });
}
