// Structured logs: one JSON line per event on stdout, every line carrying the member and scope.
import { destination as pinoDestination, pino } from 'pino';
import type { Log } from '../util/log.js';

const LEVELS: Readonly<Record<string, string>> = {
  DEBUG: 'debug',
  INFO: 'info',
  WARNING: 'warn',
  WARN: 'warn',
  ERROR: 'error',
  CRITICAL: 'fatal',
};

export function createLogger(options: { readonly member: string; readonly scope: string; readonly level?: string }): Log {
  const destination = pinoDestination({ dest: 1, sync: true });
  // A full log disk (often the data disk) must not kill the agent and leave PostgreSQL unsupervised: lines that
  // cannot be written are dropped, and logging resumes once there is space again.
  destination.on('error', () => undefined);
  return pino(
    {
      level: LEVELS[(options.level ?? 'INFO').toUpperCase()] ?? 'info',
      base: { member: options.member, scope: options.scope },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    destination,
  );
}
