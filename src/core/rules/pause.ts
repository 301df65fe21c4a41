// Maintenance mode: keep the lock of a running primary, never start, stop, promote or demote on our own.
import { decision, type Rule } from '../context.js';
import { planSync } from '../sync-plan.js';
import { commandRule } from './command.js';
import { scheduledRestartRule } from './scheduled-restart.js';

export const pausedRule: Rule = (context) => {
  if (!context.obs.isPaused) return undefined;
  // A restart that falls due in maintenance mode is skipped, as in Patroni.
  const scheduled = scheduledRestartRule(context);
  if (scheduled !== undefined) return { ...scheduled, reason: `PAUSE: ${scheduled.reason}` };
  // Manual restart and reinitialize stay possible in maintenance mode, as in Patroni.
  const manual = commandRule(context);
  if (manual !== undefined) return { ...manual, reason: `PAUSE: ${manual.reason}` };
  const { name, view, isRunningPrimary } = context;
  if (view !== undefined && context.leaderName === name) {
    // Synchronous replication stays managed in maintenance mode: it is about durability, not about failover.
    const sync = isRunningPrimary && context.holdsLock ? planSync(context) : undefined;
    return decision(
      context,
      `PAUSE: no action. I am (${name}), the leader with the lock`,
      [{ kind: 'renewLeader' }, ...(sync?.actions ?? [])],
      {
        memory: sync?.memory ?? {},
        ...(sync?.wakeAfterMs !== undefined ? { wakeAfterMs: Math.min(sync.wakeAfterMs, context.obs.timing.loopWaitMs) } : {}),
      },
    );
  }
  if (view !== undefined && context.leaderName === undefined && isRunningPrimary) {
    return decision(context, `PAUSE: acquiring the leader lock for the running primary (${name})`, [{ kind: 'acquireLeader' }], {
      wakeAfterMs: 0,
    });
  }
  return decision(
    context,
    `PAUSE: no action. I am (${name})${context.leaderName !== undefined ? `, following ${context.leaderName}` : ''}`,
    [],
  );
};
