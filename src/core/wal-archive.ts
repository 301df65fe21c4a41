// WAL archiving across a failover, the pure rules. With archive_mode=on a standby marks the segments it streams as
// archived (.done) without archiving them, so segments the old primary never archived (its archiver slow or failing)
// are missing from the archive after it crashes, and the chain from older backups to the new timeline has a gap. Two
// steps close it, both only when the member archives (pgBackRest's archive-push from the backup: section, or the
// user's archive_command):
// 1. After a promotion, the new primary pushes the earlier timelines' complete segments still in its pg_wal. The
//    archive compares and never overwrites: a segment already there with the same content is fine, another content is
//    a split-brain signal to report, not to fix. It runs beside the HA loop, after the promotion, never before it.
// 2. Before pg_rewind, an old primary pushes the segments marked .ready in its pg_wal: pg_rewind replaces its pg_wal
//    and the WAL its archiver had not got to would be gone.
// PostgreSQL archives the new timeline's .history file itself (it is .ready after the promotion).
import type { DecisionContext } from './context.js';
import type { Action, ArchiveMethod, Decision, GucValue } from './types.js';

export type { ArchiveMethod, WalArchiveObservation } from './types.js';

/**
 * The method for the effective parameters: none without archive_mode on/always and a non-empty archive_command;
 * pgBackRest when the archive_command is the one the backup: section sets, else the user's command.
 */
export function archiveMethodOf(
  parameters: Readonly<Record<string, GucValue>>,
  pgbackrestArchiveCommand: string | undefined,
): ArchiveMethod | undefined {
  const mode = String(parameters.archive_mode ?? 'off').toLowerCase();
  if (!['on', 'always', 'true', '1', 'yes'].includes(mode)) return undefined;
  const command = parameters.archive_command;
  if (typeof command !== 'string' || command.trim() === '') return undefined;
  if (pgbackrestArchiveCommand !== undefined && command === pgbackrestArchiveCommand) return { kind: 'pgbackrest' };
  return { kind: 'command', command };
}

/** The PostgreSQL task actions (agent/execute.ts): a catch-up push is never added to a cycle that starts one. */
const TASK_ACTIONS: ReadonlySet<Action['kind']> = new Set([
  'bootstrap',
  'basebackup',
  'promote',
  'demote',
  'startPrimary',
  'startReplica',
  'rewind',
  'reinitialize',
  'restart',
  'abortBootstrap',
  'copyLogicalSlots',
]);

/**
 * The decision with the archiving steps: a running primary holding the lock on a timeline after 1, whose earlier
 * timelines it has not pushed yet (and not backing off after a failure), gets `archivePreviousTimelines` appended;
 * every `rewind` says whether to push the .ready WAL first.
 */
export function withArchiveSteps(context: DecisionContext, chosen: Decision): Decision {
  const archive = context.obs.walArchive;
  const method = archive?.method;
  if (archive === undefined || method === undefined) return chosen;
  const actions = chosen.actions.map((action) => (action.kind === 'rewind' ? { ...action, archiveReadyFirst: method } : action));
  const timeline = context.obs.pg.timeline;
  const isDue =
    context.holdsLock &&
    context.isRunningPrimary &&
    timeline !== undefined &&
    timeline > 1 &&
    (archive.caughtUpTimeline === undefined || archive.caughtUpTimeline < timeline) &&
    !archive.isRunning &&
    (archive.retryNotBeforeMs === undefined || context.obs.nowMs >= archive.retryNotBeforeMs) &&
    context.obs.task.kind !== 'running' &&
    !actions.some((action) => TASK_ACTIONS.has(action.kind));
  if (isDue) actions.push({ kind: 'archivePreviousTimelines', timeline, method });
  return actions.length === chosen.actions.length && !actions.some((action, index) => action !== chosen.actions[index])
    ? chosen
    : { ...chosen, actions };
}

const SEGMENT = /^([0-9A-F]{8})([0-9A-F]{16})$/;

/** A WAL segment file name's timeline, or undefined for anything else (.partial, .history, backup labels, temp files). */
export function segmentTimeline(name: string): number | undefined {
  const match = SEGMENT.exec(name);
  return match === null ? undefined : parseInt(match[1]!, 16);
}

/** The complete segments of timelines before `timeline` among pg_wal's file names, oldest first. */
export function previousTimelineSegments(fileNames: readonly string[], timeline: number): string[] {
  return fileNames
    .filter((name) => {
      const segmentTl = segmentTimeline(name);
      return segmentTl !== undefined && segmentTl < timeline;
    })
    .sort((a, b) => a.slice(8).localeCompare(b.slice(8)) || a.localeCompare(b));
}

/**
 * The files pg_wal/archive_status marks .ready (segments, .partial and .history files), oldest segment first and the
 * history files before them, as PostgreSQL's archiver orders them.
 */
export function readyWalFiles(statusNames: readonly string[]): string[] {
  const ready = statusNames.filter((name) => name.endsWith('.ready')).map((name) => name.slice(0, -'.ready'.length));
  const isHistory = (name: string): boolean => name.endsWith('.history');
  return [...ready.filter(isHistory).sort(), ...ready.filter((name) => !isHistory(name)).sort()];
}

/** How one push went: pushed (or already there, same content), different content (045), or another failure. */
export type ArchivePushOutcome = 'pushed' | 'already-archived' | 'different-content' | 'failed';

export interface ArchivePushStep {
  readonly file: string;
  readonly outcome: ArchivePushOutcome;
  readonly detail: string;
}

/** The retry pause after a failed catch-up: doubles per failure in a row, 30 s to 10 min (never a hot loop). */
export function archiveRetryDelayMs(failuresInRow: number): number {
  return Math.min(600_000, 30_000 * 2 ** Math.max(0, failuresInRow - 1));
}

/**
 * Failed catch-up runs for one timeline before giving up on it (the seven pauses between them add up to about 35 min,
 * plus the runs themselves): a user's archive_command that refuses a file it already has (as
 * PostgreSQL's docs advise) would otherwise fail the catch-up for ever, and a new full backup is the way out then.
 */
export const MAX_CATCH_UP_FAILURES = 8;

/** What follows a failed catch-up run: retry after a pause, or give the timeline up (it counts as caught up). */
export type CatchUpFailureVerdict =
  | { readonly kind: 'retry'; readonly failuresInRow: number; readonly retryNotBeforeMs: number }
  | { readonly kind: 'give-up'; readonly failuresInRow: number };

/** The verdict after a run failed at `nowMs`, with `failuresBefore` failed runs in a row before it. */
export function catchUpFailureVerdict(failuresBefore: number, nowMs: number): CatchUpFailureVerdict {
  const failuresInRow = Math.max(0, failuresBefore) + 1;
  if (failuresInRow >= MAX_CATCH_UP_FAILURES) return { kind: 'give-up', failuresInRow };
  return { kind: 'retry', failuresInRow, retryNotBeforeMs: nowMs + archiveRetryDelayMs(failuresInRow) };
}
