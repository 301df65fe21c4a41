// A failing archive_command, logged once per change with pgBackRest's own words rather than once per attempt:
// PostgreSQL retries the same WAL file every few seconds, and its own log only says "exit code 82".
import { open } from 'node:fs/promises';
import { isArchiveFailing } from '../core/archive-state.js';
import type { ArchiverState } from '../core/types.js';
import type { Log } from '../util/log.js';
import { lastPgBackrestError } from './pgbackrest.js';

/** Enough for the last attempt's lines (pgBackRest's error is a dozen lines at most) without reading a big log. */
const TAIL_BYTES = 64 * 1024;

/** The last `bytes` of a file, '' when it does not exist or cannot be read (the message is then unknown). */
export async function readTail(path: string, bytes = TAIL_BYTES): Promise<string> {
  let handle;
  try {
    handle = await open(path, 'r');
    const { size } = await handle.stat();
    const length = Math.min(size, bytes);
    const buffer = Buffer.alloc(length);
    await handle.read(buffer, 0, length, size - length);
    return buffer.toString('utf8');
  } catch {
    return '';
  } finally {
    await handle?.close();
  }
}

/** Two messages that differ only in the WAL file (the next segment failing the same way) are the same failure. */
const sameFailure = (message: string): string => message.replace(/\b[0-9A-F]{24}\b/g, '<wal>');

export class ArchiveFailureWatch {
  readonly #log: Log;
  /** Where pgBackRest's words are found, in order (PostgreSQL's log, which gets its stderr; its own archive-push log). */
  readonly #logFiles: readonly string[];
  /** The failure last logged (normalized), undefined while archiving works. */
  #reported: string | undefined;
  /** The last attempt read (pg_stat_archiver.last_failed_time) and the message found for it. */
  #readFor: { readonly failedEpochS: number; readonly message: string | undefined } | undefined;

  constructor(log: Log, logFiles: readonly string[]) {
    this.#log = log;
    this.#logFiles = logFiles;
  }

  /** The archiver state with pgBackRest's message while failing; logs when the failure starts, changes or ends. */
  async observe(archiver: ArchiverState | undefined): Promise<ArchiverState | undefined> {
    if (archiver === undefined) return archiver;
    if (!isArchiveFailing(archiver)) {
      if (this.#reported !== undefined)
        this.#log.info(
          { lastArchivedWal: archiver.lastArchivedWal, failedCount: archiver.failedCount },
          `WAL archiving works again: ${archiver.lastArchivedWal ?? 'a WAL file'} was archived`,
        );
      this.#reported = undefined;
      this.#readFor = undefined;
      return archiver;
    }
    const failedEpochS = archiver.lastFailedEpochS!;
    if (this.#readFor?.failedEpochS !== failedEpochS) this.#readFor = { failedEpochS, message: await this.#message() };
    const message = this.#readFor.message;
    const key = sameFailure(message ?? 'unknown');
    if (key !== this.#reported) {
      this.#reported = key;
      this.#log.error(
        { lastFailedWal: archiver.lastFailedWal, failedCount: archiver.failedCount, archiveError: message },
        `WAL archiving fails (${archiver.lastFailedWal ?? 'unknown WAL file'}): ${message ?? 'pgBackRest left no error in its log; see PostgreSQL\u2019s log'}`,
      );
    }
    return message === undefined ? archiver : { ...archiver, failureMessage: message };
  }

  async #message(): Promise<string | undefined> {
    for (const file of this.#logFiles) {
      const message = lastPgBackrestError(await readTail(file));
      if (message !== undefined) return message;
    }
    return undefined;
  }
}
