// Long tasks: while one runs only the lock is renewed; a finished failure is acted on exactly once.
import { decision, type DecisionContext, type Rule } from '../context.js';
import { failoverCandidates } from '../failover-candidates.js';
import type { Action, Decision } from '../types.js';

/**
 * A failed PostgreSQL action is retried after a pause, never in a tight loop: one loop_wait after a first failure,
 * doubling with each failure in a row (a cause that does not go away, e.g. a full disk) up to this cap.
 */
const RETRY_AFTER_FAILURE_LOOPS = 1;
const MAX_RETRY_PAUSE_MS = 300_000;

/** The pause before retrying after the `failuresInRow`-th failure in a row. */
export function retryPauseMs(loopWaitMs: number, failuresInRow: number): number {
  const doublings = Math.min(Math.max(failuresInRow, 1) - 1, 16);
  return Math.min(
    MAX_RETRY_PAUSE_MS,
    Math.max(loopWaitMs * RETRY_AFTER_FAILURE_LOOPS, loopWaitMs * RETRY_AFTER_FAILURE_LOOPS * 2 ** doublings),
  );
}

export const runningTaskRule: Rule = (context) => {
  const task = context.obs.task;
  if (task.kind !== 'running') return undefined;
  if (context.holdsLock) {
    const { obs } = context;
    const startingForMs = obs.nowMs - task.startedAtMs;
    // A primary that does not come back within primary_start_timeout hands over, if anyone can take over.
    if (task.name === 'start' && obs.pg.role === 'primary' && startingForMs >= obs.primaryStartTimeoutMs) {
      if (failoverCandidates(context, { referenceLsn: context.view?.optime }).length > 0)
        return decision(context, 'primary start has timed out: failing over to a replica', [{ kind: 'demote', mode: 'immediate' }], {
          wakeAfterMs: 0,
        });
      return decision(context, 'primary start has timed out, but continuing to wait because failover is not possible', [
        { kind: 'renewLeader' },
      ]);
    }
    return decision(context, `updated leader lock during ${task.name}`, [{ kind: 'renewLeader' }]);
  }
  if (context.leaderName === context.name && (task.name === 'promote' || task.name === 'start')) {
    // Starting or promoting as leader without a valid lock: stop before it becomes a writable primary.
    return decision(context, `lost leader lock during ${task.name}`, [{ kind: 'demote', mode: 'immediate-nolock' }], { wakeAfterMs: 0 });
  }
  return decision(context, `${task.name} in progress`, []);
};

function failureFollowUp(
  context: DecisionContext,
): { readonly actions: readonly Action[]; readonly memory: Partial<Decision['memory']>; readonly reason: string } | undefined {
  const task = context.obs.task;
  if (task.kind !== 'done' || task.isOk || task.endedAtMs === context.mem.handledTaskEndedAtMs) return undefined;
  const retryNotBeforeMs = context.obs.nowMs + retryPauseMs(context.obs.timing.loopWaitMs, task.failuresInRow ?? 1);
  const base = { handledTaskEndedAtMs: task.endedAtMs, retryNotBeforeMs };
  switch (task.name) {
    case 'bootstrap':
      return {
        actions: [{ kind: 'abortBootstrap' }],
        memory: base,
        reason: `removing initialize key after failed attempt to bootstrap the cluster: ${task.error ?? ''}`,
      };
    case 'rewind':
      return {
        actions: [],
        memory: { ...base, rewindFailedFor: context.leaderName },
        reason: `pg_rewind failed (${task.error ?? ''}); will re-clone from the leader`,
      };
    case 'start':
      // A primary (or standby leader) that cannot start is demoted: the lock goes and on_role_change reports
      // `demoted`, as in Patroni since 4.0.4 (3.0.2 only released the lock). PostgreSQL is already down: the stop is a no-op.
      if (context.holdsLock)
        return {
          actions: [
            context.obs.pg.role === 'primary' || context.isStandbyCluster
              ? { kind: 'demote', mode: 'immediate' }
              : { kind: 'releaseLeader' },
          ],
          memory: base,
          reason: 'removed leader key after trying and failing to start postgres',
        };
      return { actions: [], memory: base, reason: `failed to start postgres: ${task.error ?? ''}` };
    case 'abort-bootstrap':
      // The keys are released first; what failed is removing the data dir. Tried again after the pause.
      return { actions: [], memory: base, reason: `aborting the failed bootstrap failed: ${task.error ?? ''}` };
    case 'basebackup':
    case 'reinitialize':
    case 'promote':
    case 'stop':
    case 'restart':
    case 'restore':
      // A failed restore is reached unpaused only (it runs in maintenance mode, whose rule comes first): no retry.
      return { actions: [], memory: base, reason: `${task.name} failed: ${task.error ?? ''}` };
    case 'copy-slots':
      // Each attempt restarts the replica: retry rarely.
      return {
        actions: [],
        memory: { ...base, retryNotBeforeMs: context.obs.nowMs + Math.max(60_000, 6 * context.obs.timing.loopWaitMs) },
        reason: `copying logical slots failed: ${task.error ?? ''}`,
      };
  }
}

export const failedTaskRule: Rule = (context) => {
  const followUp = failureFollowUp(context);
  if (followUp === undefined) return undefined;
  return decision(context, followUp.reason, followUp.actions, {
    memory: followUp.memory,
    wakeAfterMs: followUp.actions.length > 0 ? 0 : context.obs.timing.loopWaitMs,
  });
};

/** True while a recent failure asks us to wait before starting another PostgreSQL task. */
export function isBackingOff(context: DecisionContext): boolean {
  const retryAt = context.mem.retryNotBeforeMs;
  return retryAt !== undefined && context.obs.nowMs < retryAt;
}
