// What GET /backup says about the repository and WAL archiving, and what `pgwarden list` prints from it: the last
// backup and its age, the first point of recoverability, and archive lag and failures. The wire shape is shared by
// the agent (which builds it from its probe) and the CLI (which renders it).
import { isArchiveFailing } from './archive-state.js';
import type { LocalPg } from './types.js';

export interface RepositoryVisibility {
  /** The newest backup; null while the repository holds none. */
  readonly last: {
    readonly label: string | null;
    readonly type: string | null;
    readonly finished: string | null;
    readonly ageS: number | null;
    readonly sizeBytes: number | null;
  } | null;
  readonly count: number;
  /** The end of the oldest backup: no restore can reach an earlier point. */
  readonly recoverableFrom: string | null;
  readonly archiveMinWal: string | null;
}

export interface ArchiveVisibility {
  readonly mode: string;
  readonly lastArchivedWal: string | null;
  readonly lastArchived: string | null;
  readonly lastArchivedAgeS: number | null;
  readonly failedCount: number;
  readonly lastFailedWal: string | null;
  readonly lastFailed: string | null;
  readonly isFailing: boolean;
  /** pgBackRest's own error for the last failed attempt, while failing. */
  readonly failure: string | null;
}

export interface BackupVisibility {
  /** null on a member that does not read the repository (only the leader does), or before its first read. */
  readonly repository: RepositoryVisibility | null;
  /** null while PostgreSQL is not running. */
  readonly archive: ArchiveVisibility | null;
}

const iso = (epochS: number | undefined): string | null => (epochS === undefined ? null : new Date(epochS * 1000).toISOString());
const age = (epochS: number | undefined, nowEpochS: number): number | null =>
  epochS === undefined ? null : Math.max(0, Math.round(nowEpochS - epochS));

export function backupVisibility(pg: LocalPg, nowEpochS: number): BackupVisibility {
  const backup = pg.lastBackup;
  const archiver = pg.archiver;
  return {
    repository:
      backup === undefined
        ? null
        : {
            last:
              backup.stopEpochS === undefined && backup.label === undefined
                ? null
                : {
                    label: backup.label ?? null,
                    type: backup.type ?? null,
                    finished: iso(backup.stopEpochS),
                    ageS: age(backup.stopEpochS, nowEpochS),
                    sizeBytes: backup.sizeBytes ?? null,
                  },
            count: backup.backupCount ?? 0,
            recoverableFrom: iso(backup.recoverableFromEpochS),
            archiveMinWal: backup.archiveMinWal ?? null,
          },
    archive:
      archiver === undefined
        ? null
        : {
            mode: archiver.mode,
            lastArchivedWal: archiver.lastArchivedWal ?? null,
            lastArchived: iso(archiver.lastArchivedEpochS),
            lastArchivedAgeS: age(archiver.lastArchivedEpochS, nowEpochS),
            failedCount: archiver.failedCount,
            lastFailedWal: archiver.lastFailedWal ?? null,
            lastFailed: iso(archiver.lastFailedEpochS),
            isFailing: isArchiveFailing(archiver),
            failure: archiver.failureMessage ?? null,
          },
  };
}

/** 75 -> "1m15s", 7200 -> "2h0m", 90000 -> "1d1h": short enough for a footer line. */
export function formatAge(seconds: number): string {
  if (seconds < 60) return `${seconds}s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m${seconds % 60}s`;
  if (seconds < 86_400) return `${Math.floor(seconds / 3600)}h${Math.floor((seconds % 3600) / 60)}m`;
  return `${Math.floor(seconds / 86_400)}d${Math.floor((seconds % 86_400) / 3600)}h`;
}

const when = (text: string): string => `${text.slice(0, 19).replace('T', ' ')} UTC`;

/**
 * The footer lines under `list`'s table (like its synchronous-mode line), from the leader's GET /backup. Nothing when
 * the leader has no backup: section (Patroni's output stays as it was).
 */
export function renderBackupFooter(visibility: BackupVisibility): string[] {
  const lines: string[] = [];
  const repository = visibility.repository;
  if (repository !== null) {
    const last = repository.last;
    if (last === null) lines.push(' Backups: none in the repository yet');
    else {
      const finished = last.finished === null ? '' : ` finished ${when(last.finished)}`;
      const ago = last.ageS === null ? '' : ` (${formatAge(last.ageS)} ago)`;
      const from = repository.recoverableFrom === null ? '' : `; recoverable from ${when(repository.recoverableFrom)}`;
      lines.push(
        ` Backups: last ${last.type ?? 'backup'} ${last.label ?? ''}${finished}${ago}; ${repository.count} in the repository${from}`.replace(
          /  +/g,
          ' ',
        ),
      );
    }
  }
  const archive = visibility.archive;
  if (archive !== null && archive.mode !== 'off') {
    const last =
      archive.lastArchivedWal === null
        ? 'nothing archived yet'
        : `last ${archive.lastArchivedWal} archived ${archive.lastArchivedAgeS === null ? '' : `${formatAge(archive.lastArchivedAgeS)} ago`}`.trimEnd();
    if (archive.isFailing)
      lines.push(
        ` WAL archive: FAILING on ${archive.lastFailedWal ?? 'a WAL file'} since ${archive.lastFailed === null ? '?' : when(archive.lastFailed)} (${archive.failedCount} failed attempts; ${last}): ${archive.failure ?? 'see PostgreSQL\u2019s log'}`,
      );
    else lines.push(` WAL archive: ${last}; ${archive.failedCount} failed attempts since the statistics reset`);
  }
  return lines;
}
