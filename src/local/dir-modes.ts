// Who may enter a local cluster's directories on a shared host: the user running it, and the postgres OS user where
// PostgreSQL must reach its node directory (socket, data dir); nobody else lists, reads or writes anything in them.
import { chmod, chown } from 'node:fs/promises';
import { resolveRunAs } from '../bin/adapters.js';

/**
 * The cluster directory: rwx for its owner; when running as root, group postgres with traverse only (0710), so
 * PostgreSQL reaches its node directory without seeing the names of the state file, keys and configs beside it.
 * Without root, PostgreSQL runs as the owner: 0700.
 */
export async function protectClusterDir(dir: string): Promise<void> {
  const postgres = resolveRunAs();
  if (postgres === undefined) {
    await chmod(dir, 0o700);
    return;
  }
  await chown(dir, process.getuid?.() ?? 0, postgres.gid);
  await chmod(dir, 0o710);
}

/**
 * A node directory (PostgreSQL's socket directory and the parent of its data dir): 0700, owned by postgres when
 * running as root (as the agent's own chown of the data dir's parent leaves it), so only postgres and root use the socket.
 */
export async function protectNodeDir(nodeDir: string): Promise<void> {
  const postgres = resolveRunAs();
  if (postgres !== undefined) await chown(nodeDir, postgres.uid, postgres.gid);
  await chmod(nodeDir, 0o700);
}

/** A directory only this process's user enters (etcd data, proxies, certificates only root reads). */
export async function protectPrivateDir(dir: string): Promise<void> {
  await chmod(dir, 0o700);
}
