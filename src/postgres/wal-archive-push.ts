// Pushes WAL files from this member's pg_wal into the archive, one file per command, as PostgreSQL's archiver would:
// pgBackRest's archive-push (which compares with what the archive has and never overwrites), or the user's
// archive_command with %p and %f filled in. Which files, and when, is core/wal-archive.ts's decision.
import { readdir, rename } from 'node:fs/promises';
import { join } from 'node:path';
import type { ArchiveMethod, ArchivePushStep } from '../core/wal-archive.js';
import { describeError, isPgwardenError } from '../util/errors.js';
import {
  foreignSystemProblem,
  isAlreadyArchived,
  isArchiveDuplicateMismatch,
  pgbackrestArchivePushArgv,
  type PgBackrestSettings,
} from './pgbackrest.js';

export interface WalPushDeps {
  readonly dataDir: string;
  readonly backup: PgBackrestSettings | undefined;
  /** Runs argv as the postgres OS user (the controller's runner). */
  run(argv: readonly string[], signal: AbortSignal, hint: string): Promise<{ stdout: string; stderr: string }>;
}

/** pg_wal's file names and archive_status's; empty lists when the directory cannot be read. */
export async function listWal(dataDir: string): Promise<{ readonly files: string[]; readonly statuses: string[] }> {
  const [files, statuses] = await Promise.all([
    readdir(join(dataDir, 'pg_wal')).catch(() => []),
    readdir(join(dataDir, 'pg_wal', 'archive_status')).catch(() => []),
  ]);
  return { files, statuses };
}

/** archive_command as PostgreSQL runs it: %p the file's path, %f its name, %% a percent sign. */
export function archiveCommandFor(command: string, path: string, file: string): string {
  const quoted = (text: string): string => `'${text.replace(/'/g, `'\\''`)}'`;
  return command.replace(/%[pf%]/g, (token) => (token === '%%' ? '%' : token === '%p' ? quoted(path) : quoted(file)));
}

/**
 * Pushes `files` (names in pg_wal) in order and says how each went. A file the archive already has with the same
 * content counts as done; another content (pgBackRest 045) is reported and the rest still pushed; any other failure
 * (the repository unreachable, another system's stanza) ends the run: the files after it would fail the same way.
 * A pushed file marked .ready is marked .done, as the archiver does.
 */
export async function pushWalFiles(
  files: readonly string[],
  method: ArchiveMethod,
  deps: WalPushDeps,
  signal: AbortSignal,
): Promise<ArchivePushStep[]> {
  const steps: ArchivePushStep[] = [];
  for (const file of files) {
    if (signal.aborted) {
      steps.push({ file, outcome: 'failed', detail: 'not tried: the time for pushing ran out' });
      continue;
    }
    const path = join(deps.dataDir, 'pg_wal', file);
    const argv =
      method.kind === 'pgbackrest' && deps.backup !== undefined
        ? pgbackrestArchivePushArgv(deps.backup, path)
        : ['sh', '-c', archiveCommandFor(method.kind === 'command' ? method.command : 'false', path, file)];
    try {
      const { stdout, stderr } = await deps.run(argv, signal, 'the archive must be writable by the postgres OS user');
      steps.push({
        file,
        outcome: isAlreadyArchived(`${stderr}\n${stdout}`) ? 'already-archived' : 'pushed',
        detail: method.kind === 'pgbackrest' ? 'pgbackrest archive-push' : 'archive_command',
      });
      await rename(
        join(deps.dataDir, 'pg_wal', 'archive_status', `${file}.ready`),
        join(deps.dataDir, 'pg_wal', 'archive_status', `${file}.done`),
      ).catch(() => undefined);
    } catch (error) {
      const output = isPgwardenError(error) ? String(error.context.stderrTail ?? '') : '';
      const message = describeError(error);
      if (isArchiveDuplicateMismatch(output)) {
        steps.push({ file, outcome: 'different-content', detail: output || message });
        continue;
      }
      const foreign = deps.backup === undefined ? undefined : foreignSystemProblem(output, deps.backup);
      steps.push({ file, outcome: 'failed', detail: foreign ?? (output || message) });
      const rest = files.slice(files.indexOf(file) + 1);
      for (const skipped of rest) steps.push({ file: skipped, outcome: 'failed', detail: `not tried after ${file} failed` });
      break;
    }
  }
  return steps;
}
