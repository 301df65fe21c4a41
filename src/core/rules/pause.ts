// Maintenance mode: keep the lock of a running primary, never start, stop, promote or demote on our own; a switchover
// to a named member is the one handover that still happens, as in Patroni.
import { decision, type DecisionContext, type Rule } from '../context.js';
import { planSync } from '../sync-plan.js';
import type { Decision, HaMemory } from '../types.js';
import { commandRule } from './command.js';
import { followRule } from './follow.js';
import { leaderRule } from './leader.js';
import { primarySafetyRule } from './primary-safety.js';
import { failsafeRaceRule } from './failsafe.js';
import { raceRule } from './race.js';
import { scheduledRestartRule } from './scheduled-restart.js';
import { switchoverRule } from './switchover.js';

const paused = (chosen: Decision, memory: Partial<HaMemory> = {}): Decision => ({
  ...chosen,
  reason: `PAUSE: ${chosen.reason}`,
  memory: { ...chosen.memory, ...memory },
});

/**
 * A switchover to a named candidate in maintenance mode (Patroni 3.0.2 accepts only those while paused, and never runs
 * a scheduled one): the leader demotes gracefully, the candidate takes the lock and promotes, and the old leader starts
 * again as its replica. The normal rules do each step; pause only lets them run for the members the request names.
 */
function pausedSwitchover(context: DecisionContext): Decision | undefined {
  const { view, name, obs, mem } = context;
  const intent = view?.failover;
  if (view !== undefined && intent?.member !== undefined && intent.scheduled_at === undefined) {
    if (context.leaderName === name && intent.member !== name && context.isRunningPrimary && context.holdsLock) {
      const handover = switchoverRule(context);
      if (handover !== undefined) {
        const isDemote = handover.actions.some((action) => action.kind === 'demote');
        return paused(handover, isDemote ? { handedOverInPauseTo: intent.member } : {});
      }
    }
    if (intent.member === name && context.leaderName === undefined && context.isRunningReplica) {
      // A failsafe leader confirmed less than a ttl ago may still run as primary without its key: it goes first.
      const race = failsafeRaceRule(context) ?? raceRule(context);
      if (race !== undefined) return paused(race);
    }
    if (intent.member === name && context.leaderName === name && (context.isRunningReplica || context.isRunningPrimary)) {
      const lead = leaderRule(context);
      if (lead !== undefined) return paused(lead);
    }
  }
  // The new primary writes its history entry (and clears the request) as an unpaused leader would; not while a task
  // runs (an in-place restore's PostgreSQL is still the old primary until its stop).
  if (
    context.leaderName === name &&
    context.isRunningPrimary &&
    context.holdsLock &&
    mem.promotedFrom !== undefined &&
    context.obs.task.kind !== 'running'
  ) {
    const lead = leaderRule(context);
    if (lead !== undefined) return paused(lead);
  }
  const handedTo = mem.handedOverInPauseTo;
  if (handedTo !== undefined && !obs.pg.isRunning && context.leaderName === handedTo) {
    const follow = followRule(context);
    if (follow !== undefined) return paused(follow);
  }
  return undefined;
}

export const pausedRule: Rule = (incoming) => {
  if (!incoming.obs.isPaused) return undefined;
  // Once PostgreSQL runs again after a handover, a later stop in maintenance mode is left alone like any other.
  const context: DecisionContext =
    incoming.mem.handedOverInPauseTo !== undefined && incoming.obs.pg.isRunning
      ? { ...incoming, mem: { ...incoming.mem, handedOverInPauseTo: undefined } }
      : incoming;
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
  const handover = pausedSwitchover(context);
  if (handover !== undefined) return handover;
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
