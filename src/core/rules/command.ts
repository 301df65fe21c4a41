// Manual commands from the REST API (restart, reinitialize): acted on once, and never in a way that breaks the lock rules.
import { decision, type DecisionContext, type Rule } from '../context.js';
import type { Decision, HaMemory } from '../types.js';

export const commandRule: Rule = (context) => {
  const { obs, mem, view, name } = context;
  const command = obs.command;
  if (command === undefined || command.id <= (mem.handledCommandId ?? 0)) return undefined;
  const handled = { handledCommandId: command.id };
  if (obs.task.kind === 'running')
    return decision(context, `${command.kind} requested while ${obs.task.name} is in progress: ignored`, [], { memory: handled });
  const leader = context.leaderName;
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
  const { obs, name } = context;
  if (!obs.pg.isRunning)
    return decision(context, `${what} but PostgreSQL is not running: the normal rules will start it`, [], { memory, wakeAfterMs: 0 });
  if (context.isRunningPrimary) {
    if (!context.holdsLock) return decision(context, `${what} on a primary without a valid lock: refused`, [], { memory });
    return decision(
      context,
      'restarting PostgreSQL on request',
      [{ kind: 'renewLeader' }, { kind: 'restart', asPrimary: true, upstream: undefined }],
      { memory },
    );
  }
  const leader = context.leaderName;
  return decision(
    context,
    'restarting PostgreSQL on request',
    [{ kind: 'restart', asPrimary: false, upstream: leader !== undefined && leader !== name ? leader : undefined }],
    { memory },
  );
}
