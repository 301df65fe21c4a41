// Maintenance mode: keep the lock of a running primary, never start, stop, promote or demote on our own.
import { decision, type Rule } from '../context.js';
import { planSync } from '../sync-plan.js';
import { commandRule } from './command.js';
import { primarySafetyRule } from './primary-safety.js';
import { scheduledRestartRule } from './scheduled-restart.js';

export const pausedRule: Rule = (context) => {
  if (!context.obs.isPaused) return undefined;
  // Maintenance mode never keeps two writable primaries: a primary whose lock another member holds, or whose deadline
  // passed, demotes as it would unpaused (Patroni keeps it running; pgwarden's lease fence would stop it anyway).
  const { isRunningPrimary, deadlineMs, leaderName, name: self, obs } = context;
  const isLockLost = (leaderName !== undefined && leaderName !== self) || deadlineMs === undefined || obs.nowMs >= deadlineMs;
  if (isRunningPrimary && isLockLost && (leaderName !== undefined || deadlineMs !== undefined)) {
    const safety = primarySafetyRule(context);
    if (safety !== undefined && safety.actions.some((action) => action.kind === 'demote'))
      return { ...safety, reason: `PAUSE: ${safety.reason}` };
  }
  // A restart that falls due in maintenance mode is skipped, as in Patroni.
  const scheduled = scheduledRestartRule(context);
  if (scheduled !== undefined) return { ...scheduled, reason: `PAUSE: ${scheduled.reason}` };
  // Manual restart and reinitialize stay possible in maintenance mode, as in Patroni.
  const manual = commandRule(context);
  if (manual !== undefined) return { ...manual, reason: `PAUSE: ${manual.reason}` };
  const { name, view } = context;
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
