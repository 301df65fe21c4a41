// Point-in-time recovery targets (pgwarden restore): the flags checked and turned into one target, and pgBackRest's
// restore options for it. Pure; a bad target is a sentence for the user, never an exception from deep inside.

import type { HistoryEntry } from './types.js';

/** recovery_target_timeline: a timeline id, the backup's own (current), or the newest in the archive (latest). */
export type TargetTimeline = number | 'current' | 'latest';

/** Where recovery stops: pgBackRest's --type with its --target (none for immediate), and the timeline to follow. */
export type RestoreTarget = (
  | /** recovery_target_time, normalized to `YYYY-MM-DD HH:MM:SS[.ffffff]+00` (UTC), the form pgBackRest parses to pick the backup. */
    { readonly type: 'time'; readonly target: string }
  | { readonly type: 'lsn'; readonly target: string }
  | { readonly type: 'name'; readonly target: string }
  /** The end of the backup (its consistency point): no WAL after it. */
  | { readonly type: 'immediate' }
) & { readonly timeline?: TargetTimeline | undefined };

export interface RestoreTargetFlags {
  readonly targetTime?: string | undefined;
  readonly targetLsn?: string | undefined;
  readonly targetName?: string | undefined;
  readonly immediate?: boolean | undefined;
}

const TIME_PATTERN = /^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,6}))?\s*(Z|[+-]\d{2}(?::?\d{2})?)$/i;
const LSN_PATTERN = /^[0-9A-F]{1,8}\/[0-9A-F]{1,8}$/i;
/** A restore point name is at most 63 bytes (pg_create_restore_point's MAXFNAMELEN - 1). */
const MAX_NAME_BYTES = 63;

/**
 * A timestamp with a zone (ISO 8601 or PostgreSQL's `YYYY-MM-DD HH:MM:SS[.ffffff]+TZ`) as UTC in the form above, or
 * why not. A time without a zone is refused: the server's TimeZone would decide what it means, not the operator.
 */
export function normalizeTargetTime(text: string): string | { readonly problem: string } {
  const match = TIME_PATTERN.exec(text.trim());
  if (match === null)
    return {
      problem: `--target-time "${text}" is not a timestamp with a time zone; give e.g. 2026-12-07T10:15:30.250Z or "2026-12-07 10:15:30+01"`,
    };
  const [, year, month, day, hour, minute, second, fraction, zoneText] = match;
  const zone = zoneText!.toUpperCase() === 'Z' ? '+00:00' : zoneText!.replace(/^([+-]\d{2})(\d{2})$/, '$1:$2');
  const fullZone = /^[+-]\d{2}$/.test(zone) ? `${zone}:00` : zone;
  const epochMs = Date.parse(`${year!}-${month!}-${day!}T${hour!}:${minute!}:${second!}${fullZone}`);
  const isRealDate =
    Number.isFinite(epochMs) &&
    Number(month) >= 1 &&
    Number(month) <= 12 &&
    Number(day) >= 1 &&
    // Date.parse rolls 2026-02-30 over to March; a date that does not exist is a typo.
    new Date(Date.UTC(Number(year), Number(month) - 1, Number(day))).getUTCDate() === Number(day) &&
    Number(hour) <= 23 &&
    Number(minute) <= 59 &&
    Number(second) <= 59;
  if (!isRealDate) return { problem: `--target-time "${text}" is not a real date and time` };
  const utc = new Date(epochMs).toISOString().slice(0, 19).replace('T', ' ');
  return `${utc}${fraction !== undefined ? `.${fraction}` : ''}+00`;
}

/** Exactly one of --target-time, --target-lsn, --target-name, --immediate, checked; or why the flags are wrong. */
export function restoreTargetOf(flags: RestoreTargetFlags): RestoreTarget | { readonly problem: string } {
  const given = [
    flags.targetTime !== undefined ? '--target-time' : undefined,
    flags.targetLsn !== undefined ? '--target-lsn' : undefined,
    flags.targetName !== undefined ? '--target-name' : undefined,
    flags.immediate === true ? '--immediate' : undefined,
  ].filter((flag) => flag !== undefined);
  if (given.length !== 1)
    return {
      problem:
        given.length === 0
          ? 'say where recovery stops: one of --target-time, --target-lsn, --target-name or --immediate'
          : `give one recovery target, not ${given.join(' and ')}`,
    };
  if (flags.targetTime !== undefined) {
    const time = normalizeTargetTime(flags.targetTime);
    return typeof time === 'string' ? { type: 'time', target: time } : time;
  }
  if (flags.targetLsn !== undefined) {
    const lsn = flags.targetLsn.trim();
    if (!LSN_PATTERN.test(lsn))
      return { problem: `--target-lsn "${flags.targetLsn}" is not an LSN; give it as pg_current_wal_lsn() prints it, e.g. 0/3000060` };
    return { type: 'lsn', target: lsn.toUpperCase() };
  }
  if (flags.targetName !== undefined) {
    const name = flags.targetName;
    // The name goes into postgresql.auto.conf as a quoted string: no quotes, backslashes or control characters.
    if (name === '' || /['\\\p{Cc}]/u.test(name) || new TextEncoder().encode(name).length > MAX_NAME_BYTES)
      return {
        problem: `--target-name "${name}" is not a restore point name (1-${MAX_NAME_BYTES} bytes, no quotes, backslashes or control characters)`,
      };
    return { type: 'name', target: name };
  }
  return { type: 'immediate' };
}

/**
 * pgBackRest's restore options for the target: recovery stops there and the server is promoted at once (a new
 * timeline), following the newest timeline of the archive up to the target, as PostgreSQL's default does.
 */
export function pgbackrestTargetOptions(target: RestoreTarget): string[] {
  const type = `--type=${target.type}`;
  const timeline = `--target-timeline=${String(target.timeline ?? (target.type === 'immediate' ? 'current' : 'latest'))}`;
  return target.type === 'immediate'
    ? [type, '--target-action=promote', timeline]
    : [type, `--target=${target.target}`, '--target-action=promote', timeline];
}

/** `0/3000060` as a number of bytes (exact below 2^53, which WAL positions stay under for ages). */
function lsnBytes(text: string): number {
  const [high, low] = text.split('/');
  return Number.parseInt(high!, 16) * 2 ** 32 + Number.parseInt(low!, 16);
}

/**
 * The timeline that holds the target, from the cluster's `history` key (one entry per promotion: the timeline that
 * ended, where and when). Recovery must follow that timeline, not the newest: PostgreSQL names the new timeline's
 * parent after the timeline it followed, so a stop on an older timeline while following a newer one writes a history
 * file whose switch points lie in the wrong order, and a replica cloned later replays the abandoned WAL. The first
 * timeline that ended after the target holds it (its history file leads there through the older ones, also when the
 * key keeps only the newest entries); none: the newest. The entry's time is when the promotion was recorded, a moment
 * after the switch, so a time target within that moment of a failover counts as before it. A restore point name says
 * nothing of where it is: latest. Immediate stops on the backup's own timeline: current.
 */
export function targetTimelineOf(target: RestoreTarget, history: readonly HistoryEntry[]): TargetTimeline {
  if (target.type === 'immediate') return 'current';
  if (target.type === 'name') return 'latest';
  const ordered = [...history].sort((a, b) => a[0] - b[0]);
  if (target.type === 'lsn') {
    const position = lsnBytes(target.target);
    return ordered.find((entry) => position < entry[1])?.[0] ?? 'latest';
  }
  const targetMs = Date.parse(target.target.replace(' ', 'T').replace(/\+00$/, 'Z'));
  return (
    ordered.find((entry) => {
      const endedMs = entry[3] === undefined ? Number.NaN : Date.parse(entry[3]);
      return Number.isFinite(endedMs) && targetMs < endedMs;
    })?.[0] ?? 'latest'
  );
}

/** A timeline as the API receives it, or undefined when it is none of a positive integer, current and latest. */
export function parseTargetTimeline(value: unknown): TargetTimeline | undefined {
  if (value === 'current' || value === 'latest') return value;
  return typeof value === 'number' && Number.isInteger(value) && value >= 1 ? value : undefined;
}

/** The target as one phrase, e.g. `time 2026-12-07 10:15:30+00`. */
export function describeRestoreTarget(target: RestoreTarget): string {
  const where = target.type === 'immediate' ? 'the end of the backup (immediate)' : `${target.type} ${target.target}`;
  return typeof target.timeline === 'number' ? `${where} on timeline ${target.timeline}` : where;
}
