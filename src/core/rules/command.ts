// Manual commands from the REST API (restart, reinitialize): acted on once, and never in a way that breaks the lock rules.
import { decision, type Rule } from '../context.js';

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
  if (!obs.pg.isRunning)
    return decision(context, 'restart requested but PostgreSQL is not running: the normal rules will start it', [], {
      memory: handled,
      wakeAfterMs: 0,
    });
  if (context.isRunningPrimary) {
    // A primary restarts only while it holds the lock, and keeps renewing it while the restart task runs.
    if (!context.holdsLock)
      return decision(context, 'restart requested on a primary without a valid lock: refused', [], { memory: handled });
    return decision(
      context,
      'restarting PostgreSQL on request',
      [{ kind: 'renewLeader' }, { kind: 'restart', asPrimary: true, upstream: undefined }],
      { memory: handled },
    );
  }
  return decision(
    context,
    'restarting PostgreSQL on request',
    [{ kind: 'restart', asPrimary: false, upstream: leader !== undefined && leader !== name ? leader : undefined }],
    { memory: handled },
  );
};
