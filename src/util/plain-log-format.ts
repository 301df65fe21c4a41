// Patroni's plain log layout (log.type: plain): a Python logging format string, '%(asctime)s %(levelname)s: %(message)s'
// by default, so that log greps and alerts written for Patroni keep matching. Pure: the caller passes the time.

export const PATRONI_PLAIN_FORMAT = '%(asctime)s %(levelname)s: %(message)s';

export const LEVEL_NAMES: Readonly<Record<string, string>> = {
  debug: 'DEBUG',
  info: 'INFO',
  warn: 'WARNING',
  error: 'ERROR',
  fatal: 'CRITICAL',
};

export interface PlainRecord {
  readonly level: string;
  readonly time: Date;
  readonly message: string;
  readonly member: string;
  readonly scope: string;
  /** Structured fields of the event, appended after the format's text as key=value. */
  readonly fields: string;
}

const pad = (value: number, width = 2): string => String(value).padStart(width, '0');

/** Python's default asctime: local time, 'YYYY-MM-DD HH:MM:SS,mmm'. */
function defaultAsctime(time: Date): string {
  return `${strftime('%Y-%m-%d %H:%M:%S', time)},${pad(time.getMilliseconds(), 3)}`;
}

const STRFTIME: Readonly<Record<string, (time: Date) => string>> = {
  Y: (time) => String(time.getFullYear()),
  m: (time) => pad(time.getMonth() + 1),
  d: (time) => pad(time.getDate()),
  H: (time) => pad(time.getHours()),
  M: (time) => pad(time.getMinutes()),
  S: (time) => pad(time.getSeconds()),
  f: (time) => pad(time.getMilliseconds() * 1000, 6),
  z: (time) => {
    const offset = -time.getTimezoneOffset();
    return `${offset >= 0 ? '+' : '-'}${pad(Math.floor(Math.abs(offset) / 60))}${pad(Math.abs(offset) % 60)}`;
  },
  '%': () => '%',
};

function strftime(format: string, time: Date): string {
  return format.replace(/%(.)/g, (whole, token: string) => STRFTIME[token]?.(time) ?? whole);
}

type Part = (record: PlainRecord) => string;

const PLACEHOLDERS: Readonly<Record<string, (record: PlainRecord, dateformat: string | undefined) => string>> = {
  asctime: (record, dateformat) => (dateformat === undefined ? defaultAsctime(record.time) : strftime(dateformat, record.time)),
  levelname: (record) => LEVEL_NAMES[record.level] ?? record.level.toUpperCase(),
  message: (record) => record.message,
  msecs: (record) => String(record.time.getMilliseconds()),
  name: () => 'pgwarden',
  process: () => String(process.pid),
  member: (record) => record.member,
  scope: (record) => record.scope,
};

/**
 * Compiles a format once; throws (with the placeholder named) on one pgwarden cannot fill, so a typo in log.format
 * is a config error, not a line that silently reads "%(levlname)s".
 */
export function compilePlainFormat(format: string, dateformat?: string): (record: PlainRecord) => string {
  const parts: Part[] = [];
  const pattern = /%\((\w+)\)(-?\d*)([sd])/g;
  let last = 0;
  for (const match of format.matchAll(pattern)) {
    const literal = format.slice(last, match.index);
    parts.push(() => literal);
    const name = match[1]!;
    const fill = PLACEHOLDERS[name];
    if (fill === undefined)
      throw new Error(
        `log.format: %(${name})s is not supported; use ${Object.keys(PLACEHOLDERS)
          .map((key) => `%(${key})s`)
          .join(', ')}`,
      );
    const width = Number(match[2] || '0');
    const zeroPad = match[3] === 'd' && (match[2] ?? '').startsWith('0');
    parts.push((record) => {
      const text = fill(record, dateformat);
      if (width === 0) return text;
      return width < 0 ? text.padEnd(-width) : text.padStart(width, zeroPad ? '0' : ' ');
    });
    last = match.index + match[0].length;
  }
  const tail = format.slice(last);
  parts.push(() => tail);
  return (record) => `${parts.map((part) => part(record)).join('')}${record.fields === '' ? '' : ` ${record.fields}`}`;
}
