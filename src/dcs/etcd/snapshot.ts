// `pgwarden dcs snapshot`: etcd's own snapshot (Maintenance.Snapshot) written to a new 0600 file, its checksum checked.
import { createHash } from 'node:crypto';
import { closeSync, constants, fsyncSync, openSync, unlinkSync, writeSync } from 'node:fs';
import { PgwardenError } from '../../util/errors.js';
import type { EtcdGateway } from './gateway.js';

export interface EtcdSnapshotResult {
  readonly path: string;
  /** Bytes written: the bolt database plus its 32-byte SHA-256, exactly what etcdctl snapshot save writes. */
  readonly bytes: number;
  readonly endpoint: string;
  /**
   * The store revision the snapshot holds: etcd does not say it in the stream, so it is read from the member before
   * and after; both equal unless something was written meanwhile (then the snapshot is somewhere in between).
   */
  readonly revisionBefore: string | undefined;
  readonly revisionAfter: string | undefined;
}

/** etcd ends the stream with the SHA-256 of everything before it. */
const CHECKSUM_BYTES = 32;

/** Opens `path` for a new snapshot: never overwrites (an old snapshot may be the only one left), owner-only. */
function openNew(path: string): number {
  try {
    return openSync(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? '';
    const why =
      code === 'EEXIST'
        ? `${path} already exists: choose another file name, or move the old snapshot away first (it is never overwritten)`
        : code === 'ENOENT'
          ? `cannot create ${path}: its directory does not exist`
          : code === 'EACCES' || code === 'EPERM' || code === 'EROFS'
            ? `cannot create ${path}: ${code === 'EROFS' ? 'read-only file system' : 'permission denied'}`
            : code === 'EISDIR'
              ? `${path} is a directory: give a file name`
              : `cannot create ${path}: ${(error as Error).message}`;
    throw new PgwardenError('PGW_DCS_SNAPSHOT', why, {
      cause: error,
      context: { path, hint: 'give a new file in a directory this user may write to' },
    });
  }
}

export async function saveEtcdSnapshot(gateway: EtcdGateway, path: string, signal: AbortSignal): Promise<EtcdSnapshotResult> {
  const fd = openNew(path);
  let isDone = false;
  try {
    const hash = createHash('sha256');
    /** The last CHECKSUM_BYTES seen: the checksum once the stream has ended, database bytes until then. */
    let tail = Buffer.alloc(0);
    let bytes = 0;
    // Best effort: an endpoint that is down is reported by the snapshot itself, with every endpoint's failure.
    const revisionBefore = await gateway.revisionAt(gateway.currentEndpoint, signal).catch(() => undefined);
    const endpoint = await gateway.snapshot(signal, (blob) => {
      let offset = 0;
      while (offset < blob.length) offset += writeSync(fd, blob, offset, blob.length - offset);
      bytes += blob.length;
      const joined = Buffer.concat([tail, blob]);
      const cut = Math.max(0, joined.length - CHECKSUM_BYTES);
      hash.update(joined.subarray(0, cut));
      tail = Buffer.from(joined.subarray(cut));
    });
    if (tail.length < CHECKSUM_BYTES || !hash.digest().equals(tail))
      throw new PgwardenError('PGW_DCS_SNAPSHOT', `the snapshot etcd ${endpoint} sent does not match its checksum (${bytes} bytes)`, {
        context: { path, endpoint, hint: 'take the snapshot again; if it keeps failing, check the etcd member (etcdctl endpoint status)' },
      });
    const revisionAfter = await gateway.revisionAt(endpoint, signal).catch(() => undefined);
    fsyncSync(fd);
    isDone = true;
    return { path, bytes, endpoint, revisionBefore, revisionAfter };
  } finally {
    closeSync(fd);
    // A partial snapshot must not be mistaken for a good one.
    if (!isDone) unlinkSync(path);
  }
}
