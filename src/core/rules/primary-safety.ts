// The safety rules of a running primary: whoever cannot prove it holds the lock stops being primary.
import { decision, type Rule } from '../context.js';
import { timelineRestriction } from '../cluster-timeline.js';
import { syncRaceRestriction } from '../sync-plan.js';
import { failsafeGap, failsafeLeaderDecision } from './failsafe.js';

/**
 * Invariant: PostgreSQL runs as a writable primary only while this node holds the lock, i.e. its last renewal (or, with
 * failsafe_mode and the DCS away, its last round every member confirmed: rules/failsafe.ts) was sent less than
 * `ttl - margin` ago and the DCS (when readable) names it leader. Every branch below either proves
 * that, restores it without a window (renew/acquire are atomic), or demotes.
 */
export const primarySafetyRule: Rule = (context) => {
  if (!context.isRunningPrimary) return undefined;
  const { obs, name, deadlineMs } = context;
  const now = obs.nowMs;
  const isPastDeadline = deadlineMs === undefined || now >= deadlineMs;

  if (obs.dcs.kind === 'unreachable') {
    const failsafe = failsafeLeaderDecision(context);
    if (failsafe !== undefined) return failsafe;
    const unreachableForMs = now - obs.dcs.sinceMs;
    // retry_timeout is the budget the user gave the DCS; the deadline is the hard limit either way.
    if (isPastDeadline || unreachableForMs >= obs.timing.retryTimeoutMs) {
      return decision(context, 'demoting self because DCS is not accessible and I was a leader', [{ kind: 'demote', mode: 'offline' }], {
        wakeAfterMs: 0,
      });
    }
    const untilRetryBudget = obs.dcs.sinceMs + obs.timing.retryTimeoutMs - now;
    const gap = failsafeGap(context);
    return decision(
      context,
      `DCS is not accessible; keeping the primary for at most ${Math.ceil(Math.min(untilRetryBudget, (deadlineMs ?? now) - now))} ms${gap === undefined ? '' : ` (${gap})`}`,
      [{ kind: 'renewLeader' }],
      {
        wakeAfterMs: Math.min(obs.timing.loopWaitMs, untilRetryBudget, 500),
      },
    );
  }

  const leader = context.leaderName;
  if (leader !== undefined && leader !== name) {
    return decision(context, `demoting self because ${leader} holds the leader lock`, [{ kind: 'demote', mode: 'immediate-nolock' }], {
      wakeAfterMs: 0,
    });
  }
  if (deadlineMs !== undefined && isPastDeadline) {
    return decision(context, 'demoted self because failed to update leader lock in DCS', [{ kind: 'demote', mode: 'immediate-nolock' }], {
      wakeAfterMs: 0,
    });
  }
  const behind = leader === undefined ? timelineRestriction(context) : undefined;
  if (behind !== undefined) {
    // Synchronous mode: the lock went to nobody, but someone promoted past our timeline since (we were frozen or cut
    // off): our WAL past that fork was never acknowledged, theirs may have been.
    return decision(context, `demoting self: the leader key is gone and ${behind}`, [{ kind: 'demote', mode: 'immediate-nolock' }], {
      wakeAfterMs: 0,
    });
  }
  if (leader === undefined && syncRaceRestriction(context) !== undefined) {
    // Synchronous mode: the lock went to nobody, but the sync key says another leader acknowledged commits since
    // (we were fenced out): re-taking the lock here would throw them away.
    return decision(
      context,
      `demoting self: the leader key is gone and the sync key no longer allows me (${syncRaceRestriction(context) ?? ''})`,
      [{ kind: 'demote', mode: 'immediate-nolock' }],
      { wakeAfterMs: 0 },
    );
  }
  if (leader === undefined) {
    // The key vanished under a running primary (expired or deleted). Take it back atomically; if another member
    // won the race, the next decision (at once) sees its name and demotes.
    return decision(context, `acquiring the leader lock for the running primary (${name})`, [{ kind: 'acquireLeader' }], {
      wakeAfterMs: 0,
    });
  }
  if (!context.holdsLock) {
    // The key names us but we have no fresh renewal (agent restart, or an acquire whose answer was lost).
    return decision(context, `updating the leader lock of the running primary (${name})`, [{ kind: 'renewLeader' }], { wakeAfterMs: 0 });
  }
  return undefined;
};
