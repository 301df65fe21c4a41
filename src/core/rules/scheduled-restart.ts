// A restart scheduled through POST /restart {schedule}: when it is due, its filters decide whether it runs or is skipped.
import { isDue } from '../failover-intent.js';
import { decision, type Rule } from '../context.js';
import { restartDecision } from './command.js';

/** Patroni 3 clients say 'master' where pgwarden's PostgreSQL role is 'primary'. */
const roleMatches = (wanted: string, role: string | undefined): boolean => (wanted === 'master' ? 'primary' : wanted) === role;

export const scheduledRestartRule: Rule = (context) => {
  const { obs } = context;
  const scheduled = obs.scheduledRestart;
  if (scheduled === undefined || !isDue({ scheduled_at: scheduled.atIso }, obs.wallIso)) return undefined;
  // A long task finishes first: the restart is still due afterwards.
  if (obs.task.kind === 'running') return undefined;
  const clear = { kind: 'clearScheduledRestart' } as const;
  const skip = (why: string): ReturnType<Rule> =>
    decision(context, `scheduled restart at ${scheduled.atIso} skipped: ${why}`, [clear], { wakeAfterMs: 0 });
  if (obs.isPaused) return skip('maintenance mode is on');
  const role = obs.pg.isRunning ? obs.pg.role : undefined;
  if (scheduled.role !== undefined && !roleMatches(scheduled.role, role)) return skip(`role is ${role ?? 'none'}, not ${scheduled.role}`);
  if (scheduled.isPendingOnly && !obs.pg.isPendingRestart) return skip('no restart is pending');
  const restart = restartDecision(context, 'scheduled restart');
  return { ...restart, reason: `scheduled restart at ${scheduled.atIso}: ${restart.reason}`, actions: [clear, ...restart.actions] };
};
