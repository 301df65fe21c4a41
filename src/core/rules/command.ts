// Manual commands from the REST API (restart, reinitialize): acted on once, and never in a way that breaks the lock rules.
import { decision, type DecisionContext, type Rule } from '../context.js';
import { describeRestoreTarget } from '../restore-target.js';
import { wantedSlots } from '../slot-plan.js';
import { REMOTE_PRIMARY } from '../standby-cluster.js';
import type { Decision, HaMemory } from '../types.js';

/** Where a replica restarts from: the leader, or the remote primary when it is the standby leader itself. */
function restartUpstream(context: DecisionContext): string | undefined {
  const leader = context.leaderName;
  if (leader === undefined) return undefined;
  if (leader !== context.name) return leader;
  return context.isStandbyCluster ? REMOTE_PRIMARY : undefined;
}

export const commandRule: Rule = (context) => {
  const { obs, mem, view, name } = context;
  const command = obs.command;
  if (command === undefined || command.id <= (mem.handledCommandId ?? 0)) return undefined;
  const handled = { handledCommandId: command.id };
  if (obs.task.kind === 'running')
    return decision(context, `${command.kind} requested while ${obs.task.name} is in progress: ignored`, [], { memory: handled });
  const leader = context.leaderName;
  if (command.kind === 'stop' || command.kind === 'restore') return restoreStepDecision(context, handled);
  if (command.kind === 'reinitialize') {
    if (view === undefined || leader === undefined)
      return decision(context, 'cluster has no leader, can not reinitialize', [], { memory: handled });
    if (leader === name) return decision(context, 'I am the leader, can not reinitialize', [], { memory: handled });
    return decision(context, `reinitializing from the leader (${leader}) on request`, [{ kind: 'reinitialize', from: leader }], {
      memory: handled,
    });
  }
  return restartDecision(context, 'restart requested', handled);
};

/**
 * A restart, asked for now (REST) or due now (scheduled): a primary restarts only while it holds the lock, and keeps
 * renewing it while the restart task runs; a replica restarts following the leader.
 */
export function restartDecision(context: DecisionContext, what: string, memory: Partial<HaMemory> = {}): Decision {
  const { obs } = context;
  if (!obs.pg.isRunning) {
    // In maintenance mode nothing else starts PostgreSQL: the restart does, as Patroni's does (stop is a no-op).
    if (obs.isPaused) return stoppedRestartInPause(context, what, memory);
    return decision(context, `${what} but PostgreSQL is not running: the normal rules will start it`, [], { memory, wakeAfterMs: 0 });
  }
  if (context.isRunningPrimary) {
    if (!context.holdsLock) return decision(context, `${what} on a primary without a valid lock: refused`, [], { memory });
    return decision(
      context,
      'restarting PostgreSQL on request',
      [{ kind: 'renewLeader' }, { kind: 'restart', asPrimary: true, upstream: undefined }],
      { memory },
    );
  }
  return decision(
    context,
    'restarting PostgreSQL on request',
    [{ kind: 'restart', asPrimary: false, upstream: restartUpstream(context) }],
    { memory },
  );
}

function stoppedRestartInPause(context: DecisionContext, what: string, memory: Partial<HaMemory>): Decision {
  const { obs, name } = context;
  if (obs.pg.dataDir !== 'initialized') return decision(context, `${what} but there is no data directory to start`, [], { memory });
  const leader = context.leaderName;
  if (obs.pg.role === 'primary') {
    // A primary's data dir starts as primary only under the lock: without it, it would be a second writable primary.
    if (leader !== name || !context.holdsLock)
      return decision(
        context,
        `${what}: PostgreSQL is stopped and its data dir is a primary's, but I do not hold the leader lock: refused`,
        [],
        {
          memory,
        },
      );
    return decision(
      context,
      'starting PostgreSQL on request (maintenance mode)',
      [{ kind: 'renewLeader' }, { kind: 'restart', asPrimary: true, upstream: undefined }],
      {
        memory,
      },
    );
  }
  return decision(
    context,
    'starting PostgreSQL on request (maintenance mode)',
    [{ kind: 'restart', asPrimary: false, upstream: restartUpstream(context) }],
    { memory },
  );
}

/**
 * pgwarden restore's steps on this member. Only in maintenance mode, where no agent starts, stops or promotes anything
 * on its own, so nothing undoes a stop or races the restore. The restore runs on the leader only, under its lock, which
 * it keeps renewing throughout (the running-task and paused rules do): no other member can become primary meanwhile.
 */
function restoreStepDecision(context: DecisionContext, memory: Partial<HaMemory>): Decision {
  const { obs, name, view } = context;
  const command = obs.command!;
  if (!obs.isPaused)
    return decision(context, `${command.kind} refused: only in maintenance mode (pgwarden restore pauses the cluster first)`, [], {
      memory,
    });
  if (command.kind === 'stop') {
    if (!obs.pg.isRunning) return decision(context, 'stop requested: PostgreSQL is already stopped', [], { memory });
    return decision(context, 'stopping PostgreSQL on request (maintenance mode)', [{ kind: 'stopPostgres' }], { memory });
  }
  const target = command.target;
  if (target === undefined) return decision(context, 'restore refused: no recovery target given', [], { memory });
  if (view === undefined || context.leaderName !== name || !context.holdsLock)
    return decision(context, 'restore refused: only the leader, holding the leader lock, restores in place', [], { memory });
  // The history entry once the restored copy runs on its new timeline: the cluster left this timeline here. Recorded as
  // the timeline that ended (not the restored copy's parent, which its history file names): restore targets are
  // resolved from this key (targetTimelineOf), and a time on the abandoned timeline must still lead to it.
  const promotedFrom = {
    timeline: obs.pg.timeline ?? 1,
    lsn: obs.pg.writeLsn ?? obs.pg.replayedLsn ?? 0n,
    reason: `pgwarden restore to ${describeRestoreTarget(target)}`,
  };
  return decision(
    context,
    `restoring the data dir in place to ${describeRestoreTarget(target)} on request`,
    [
      { kind: 'renewLeader' },
      {
        kind: 'restoreToTarget',
        target,
        memberSlots: wantedSlots(view, name, obs.self.tags, true, obs.useSlots)
          .filter((slot) => slot.type === 'physical')
          .map((slot) => slot.name),
      },
    ],
    { memory: { ...memory, promotedFrom } },
  );
}
