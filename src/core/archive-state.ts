// Whether WAL archiving is failing now, from pg_stat_archiver: shared by the failure log, /metrics and `list`.
import type { ArchiverState } from './types.js';

/** The last attempt failed: the last failure is newer than the last success (archive_mode on). */
export function isArchiveFailing(archiver: ArchiverState | undefined): boolean {
  if (archiver === undefined || archiver.mode === 'off' || archiver.lastFailedEpochS === undefined) return false;
  return archiver.lastArchivedEpochS === undefined || archiver.lastFailedEpochS > archiver.lastArchivedEpochS;
}
