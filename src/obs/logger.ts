// Structured logs: one JSON line per event on stdout (or Patroni's plain layout with log.type: plain), every line
// carrying the member and scope. The lines are
// pino's (level label, ISO time, member, scope, fields, msg), written synchronously with one write(2) each; pino itself
// is not loaded (~7 MB RSS of modules in an agent that logs a few lines a minute).
import { writeSync } from 'node:fs';
import type { Log } from '../util/log.js';
import { compilePlainFormat, PATRONI_PLAIN_FORMAT } from '../util/plain-log-format.js';
import { redactSecrets, redactText } from '../util/redact.js';

const LEVELS: Readonly<Record<string, string>> = {
  DEBUG: 'debug',
  INFO: 'info',
  WARNING: 'warn',
  WARN: 'warn',
  ERROR: 'error',
  CRITICAL: 'fatal',
};

const SEVERITY: Readonly<Record<string, number>> = { debug: 20, info: 30, warn: 40, error: 50, fatal: 60 };

/** JSON for values JSON.stringify refuses or empties: bigint as a number, Error with its message and stack. */
function replacer(_key: string, value: unknown): unknown {
  if (typeof value === 'bigint') return Number.isSafeInteger(Number(value)) ? Number(value) : value.toString();
  if (value instanceof Error) return { type: value.name, message: value.message, stack: value.stack };
  return value;
}

function fieldsJson(fields: Record<string, unknown>): string {
  let text: string;
  try {
    text = JSON.stringify(fields, replacer);
  } catch {
    return ',"fields":"[unserializable]"';
  }
  return text === '{}' ? '' : `,${text.slice(1, -1)}`;
}

const sleepBuffer = new Int32Array(new SharedArrayBuffer(4));

/**
 * Writes the whole line to fd 1. A full log disk (often the data disk) must not kill the agent and leave PostgreSQL
 * unsupervised: a line that cannot be written is dropped, and logging resumes once there is space again. A
 * non-blocking pipe that is momentarily full (EAGAIN) gets a few short retries first.
 */
function writeLine(fd: number, line: string): void {
  let buffer = Buffer.from(line, 'utf8');
  for (let attempt = 0; buffer.length > 0 && attempt < 20;) {
    try {
      const written = writeSync(fd, buffer);
      buffer = buffer.subarray(written);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EAGAIN') return;
      attempt++;
      Atomics.wait(sleepBuffer, 0, 0, 5);
    }
  }
}

/** Fields as key=value after a plain line (values with spaces or structure JSON-encoded). */
function fieldsPlain(fields: Record<string, unknown>): string {
  const pairs: string[] = [];
  for (const [key, value] of Object.entries(fields)) {
    if (value === undefined) continue;
    let text: string;
    try {
      text = typeof value === 'string' && /^[^\s"=]+$/.test(value) ? value : (JSON.stringify(value, replacer) ?? typeof value);
    } catch {
      text = '[unserializable]';
    }
    pairs.push(`${key}=${text}`);
  }
  return pairs.join(' ');
}

export interface LoggerOptions {
  readonly member: string;
  readonly scope: string;
  readonly level?: string | undefined;
  /** log.type: json (pgwarden's default: pino-shaped lines) or plain (Patroni's layout, log.format/log.dateformat). */
  readonly type?: string | undefined;
  readonly format?: string | undefined;
  readonly dateformat?: string | undefined;
}

export function createLogger(options: LoggerOptions): Log {
  const threshold = SEVERITY[LEVELS[(options.level ?? 'INFO').toUpperCase()] ?? 'info']!;
  const base = `"member":${JSON.stringify(options.member)},"scope":${JSON.stringify(options.scope)}`;
  const plain = options.type === 'plain' ? compilePlainFormat(options.format ?? PATRONI_PLAIN_FORMAT, options.dateformat) : undefined;
  const emit = (level: string, rawFields: Record<string, unknown>, rawMessage: string): void => {
    if (SEVERITY[level]! < threshold) return;
    // No password, token or private key reaches a log line, whatever a caller passes (util/redact.ts).
    const fields = redactSecrets(rawFields);
    const message = redactText(rawMessage);
    const time = new Date();
    if (plain !== undefined) {
      writeLine(1, `${plain({ level, time, message, member: options.member, scope: options.scope, fields: fieldsPlain(fields) })}\n`);
      return;
    }
    writeLine(1, `{"level":"${level}","time":"${time.toISOString()}",${base}${fieldsJson(fields)},"msg":${JSON.stringify(message)}}\n`);
  };
  return {
    debug: (fields, message) => emit('debug', fields, message),
    info: (fields, message) => emit('info', fields, message),
    warn: (fields, message) => emit('warn', fields, message),
    error: (fields, message) => emit('error', fields, message),
  };
}
