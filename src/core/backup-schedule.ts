// backup.schedule: five-field cron expressions (minute hour day-of-month month day-of-week, in UTC) and which backup
// falls due between two instants. Written here rather than taken from an npm cron package: the subset cron users write
// (*, lists, ranges, steps, @hourly/@daily/@weekly/@monthly) is a page of pure code the core can own, with no
// dependency in the agent for it.
import type { BackupType } from './backup-plan.js';

export interface CronSpec {
  readonly minutes: ReadonlySet<number>;
  readonly hours: ReadonlySet<number>;
  readonly days: ReadonlySet<number>;
  readonly months: ReadonlySet<number>;
  readonly weekdays: ReadonlySet<number>;
  /** Day of month and day of week both restricted: cron matches either (Vixie cron's rule). */
  readonly isEitherDay: boolean;
}

const MACROS: Readonly<Record<string, string>> = {
  '@hourly': '0 * * * *',
  '@daily': '0 0 * * *',
  '@midnight': '0 0 * * *',
  '@weekly': '0 0 * * 0',
  '@monthly': '0 0 1 * *',
};

const FIELDS = [
  { name: 'minute', min: 0, max: 59 },
  { name: 'hour', min: 0, max: 23 },
  { name: 'day of month', min: 1, max: 31 },
  { name: 'month', min: 1, max: 12 },
  { name: 'day of week', min: 0, max: 7 },
] as const;

function parseField(text: string, field: (typeof FIELDS)[number]): Set<number> | string {
  const values = new Set<number>();
  for (const part of text.split(',')) {
    const match = /^(\*|(\d+)(?:-(\d+))?)(?:\/(\d+))?$/.exec(part);
    if (match === null) return `${field.name} "${part}" is not a number, range, list or step`;
    const step = match[4] === undefined ? 1 : Number(match[4]);
    const from = match[1] === '*' ? field.min : Number(match[2]);
    const to = match[1] === '*' ? field.max : match[3] !== undefined ? Number(match[3]) : match[4] !== undefined ? field.max : from;
    if (step < 1 || from < field.min || to > field.max || from > to)
      return `${field.name} "${part}" is out of range (${field.min}-${field.max})`;
    for (let value = from; value <= to; value += step) values.add(field.name === 'day of week' && value === 7 ? 0 : value);
  }
  return values;
}

/** A cron expression, or why it is not one. */
export function parseCron(expression: string): CronSpec | string {
  const text = MACROS[expression.trim()] ?? expression.trim();
  const parts = text.split(/\s+/);
  if (parts.length !== 5) return `"${expression}" is not a cron expression: five fields (minute hour day month weekday) or @daily`;
  const sets: Set<number>[] = [];
  for (const [index, field] of FIELDS.entries()) {
    const parsed = parseField(parts[index]!, field);
    if (typeof parsed === 'string') return `"${expression}": ${parsed}`;
    sets.push(parsed);
  }
  const [minutes, hours, days, months, weekdays] = sets as [Set<number>, Set<number>, Set<number>, Set<number>, Set<number>];
  return { minutes, hours, days, months, weekdays, isEitherDay: parts[2] !== '*' && parts[4] !== '*' };
}

/** Whether the minute starting at `epochMs` (UTC) matches. */
export function cronMatches(spec: CronSpec, epochMs: number): boolean {
  const date = new Date(epochMs);
  if (!spec.minutes.has(date.getUTCMinutes()) || !spec.hours.has(date.getUTCHours()) || !spec.months.has(date.getUTCMonth() + 1))
    return false;
  const isDay = spec.days.has(date.getUTCDate());
  const isWeekday = spec.weekdays.has(date.getUTCDay());
  return spec.isEitherDay ? isDay || isWeekday : isDay && isWeekday;
}

const MINUTE_MS = 60_000;
/** Minutes looked back at most: an agent that was away longer does not make up for every missed run, only one. */
const LOOKBACK_MINUTES = 24 * 60;

/**
 * The backup that fell due in (fromMs, toMs], if any: the biggest of those due (a full backup covers a diff or incr due
 * at the same time, a diff an incr).
 */
export function dueBackupType(
  schedules: readonly { readonly type: BackupType; readonly spec: CronSpec }[],
  fromMs: number,
  toMs: number,
): BackupType | undefined {
  const first = Math.max(Math.floor(fromMs / MINUTE_MS) + 1, Math.floor(toMs / MINUTE_MS) - LOOKBACK_MINUTES);
  const last = Math.floor(toMs / MINUTE_MS);
  let due: BackupType | undefined;
  const rank = { full: 3, diff: 2, incr: 1 } as const;
  for (const { type, spec } of schedules) {
    if (due !== undefined && rank[due] >= rank[type]) continue;
    for (let minute = first; minute <= last; minute++) {
      if (cronMatches(spec, minute * MINUTE_MS)) {
        due = type;
        break;
      }
    }
  }
  return due;
}
