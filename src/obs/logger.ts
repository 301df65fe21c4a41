// Structured logs: one JSON line per event on stdout, every line carrying the member and scope.
import { pino } from 'pino';
import type { Log } from '../util/log.js';

const LEVELS: Readonly<Record<string, string>> = { DEBUG: 'debug', INFO: 'info', WARNING: 'warn', WARN: 'warn', ERROR: 'error', CRITICAL: 'fatal' };

export function createLogger(options: { readonly member: string; readonly scope: string; readonly level?: string }): Log {
  return pino({
    level: LEVELS[(options.level ?? 'INFO').toUpperCase()] ?? 'info',
    base: { member: options.member, scope: options.scope },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
  });
}
