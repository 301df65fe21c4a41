// pgBackRest as a test runs it by hand: as the postgres OS user, with a member's config file and pgpass, the way the
// agent runs it, so that files it writes in the repository belong to the same user.
import { execFile, execFileSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { backupRepositoryOf, type LocalCluster } from '../../src/local/local-cluster.js';

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

/** The WAL files (segments, .history, .partial) a local cluster's repository archive holds for `stanza`, by name. */
export function archivedWalNames(cluster: LocalCluster, stanza: string): Set<string> {
  const root = join(backupRepositoryOf(cluster.dir), 'archive', stanza);
  const names = new Set<string>();
  const walk = (dir: string): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      if (entry.isDirectory()) walk(join(dir, entry.name));
      else {
        // compression suffixes and pgBackRest's checksum are cut
        const match = /^([0-9A-F]{24}(?:\.partial)?)-[0-9a-f]{40}/.exec(entry.name) ?? /^([0-9A-F]{8}\.history)/.exec(entry.name);
        if (match !== null) names.add(match[1]!);
      }
    }
  };
  if (existsSync(root)) walk(root);
  return names;
}
