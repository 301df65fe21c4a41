// The HA decision: a pure function from what the agent observed (and remembers) to actions, a reason and a wake time.
//
// Safety invariants, in priority order (each enforced by the rule named after it):
// 1. PostgreSQL is a writable primary only on the node holding the leader lock, and only until that node's own
//    deadline (last renewal *sent* + ttl - margin), which is earlier than any moment etcd can hand the lock to
//    someone else. A primary that cannot prove it holds the lock demotes (primary-safety). With failsafe_mode, a round
//    of POST /failsafe every member confirmed proves the lock like a renewal sent at that moment (rules/failsafe.ts).
// 2. Promotion happens only after the lock is acquired and renewed with enough time left to finish (leader).
// 3. Only the healthiest eligible member races for the lock, and the race is an atomic create-if-absent (race).
// 4. Exactly one member runs initdb: the winner of the create-only `initialize` key (bootstrap).
// 5. A former primary never streams from a new leader before pg_rewind (or a re-clone) removed its divergence (follow).
// When in doubt a rule demotes or waits; it never promotes.
import { buildContext, decision, type Rule } from './context.js';
import { uninitializedRule } from './rules/bootstrap.js';
import { commandRule } from './rules/command.js';
import { failsafeRaceRule, withFailsafeTopology } from './rules/failsafe.js';
import { followRule } from './rules/follow.js';
import { leaderRule } from './rules/leader.js';
import { pausedRule } from './rules/pause.js';
import { primarySafetyRule } from './rules/primary-safety.js';
import { raceRule } from './rules/race.js';
import { scheduledRestartRule } from './rules/scheduled-restart.js';
import { reconfigureAction } from './parameters.js';
import { switchoverRule } from './rules/switchover.js';
import { failedTaskRule, isBackingOff, runningTaskRule } from './rules/task.js';
import type { Action, Decision, HaMemory, Observation } from './types.js';
import { withArchiveSteps } from './wal-archive.js';

export function initialMemory(): HaMemory {
  return {
    promotedFrom: undefined,
    rewindFailedFor: undefined,
    handledTaskEndedAtMs: undefined,
    retryNotBeforeMs: undefined,
    notStreamingSinceMs: undefined,
    handledCommandId: undefined,
  };
}

/** DCS unreachable and not a primary: keep whatever runs (a replica keeps streaming), start nothing. */
const dcsUnreachableRule: Rule = (context) => {
  if (context.view !== undefined) return undefined;
  const { obs } = context;
  // A primary stopped by its fence or its demotion (or a crashed replica) comes back read-only, as in Patroni: reads
  // keep working while the DCS is away, and a standby without an upstream can never accept a write.
  if (!obs.pg.isRunning && obs.pg.dataDir === 'initialized' && obs.task.kind !== 'running' && !isBackingOff(context))
    return decision(context, `DCS is not accessible; starting PostgreSQL read-only (${context.name})`, [
      { kind: 'startReplica', upstream: undefined },
    ]);
  return decision(context, `DCS is not accessible; I am (${context.name}) and take no action`, [], {
    wakeAfterMs: Math.min(context.obs.timing.loopWaitMs, 1000),
  });
};

/** Data from another cluster must never be started, promoted or cloned over automatically. */
const foreignDataRule: Rule = (context) => {
  const { view, obs } = context;
  const initialized = view?.initialize;
  if (initialized === undefined || initialized === '' || obs.pg.sysid === undefined || obs.pg.sysid === initialized) return undefined;
  return decision(
    context,
    `data directory belongs to another cluster (system identifier ${obs.pg.sysid}, cluster has ${initialized}); reinitialize this member`,
    [],
  );
};

/** The rules in order; the first that decides wins. Safety first, then long tasks, then the normal roles. */
export const RULES: readonly (readonly [string, Rule])[] = [
  ['paused', pausedRule],
  ['primary-safety', primarySafetyRule],
  ['running-task', runningTaskRule],
  ['failed-task', failedTaskRule],
  ['command', commandRule],
  ['scheduled-restart', scheduledRestartRule],
  ['dcs-unreachable', dcsUnreachableRule],
  ['uninitialized', uninitializedRule],
  ['foreign-data', foreignDataRule],
  ['switchover', switchoverRule],
  ['leader', leaderRule],
  ['follow', followRule],
  ['failsafe-race', failsafeRaceRule],
  ['race', raceRule],
];

export function decide(obs: Observation, mem: HaMemory, rules: readonly (readonly [string, Rule])[] = RULES): Decision {
  const context = buildContext(obs, mem);
  let chosen: Decision | undefined;
  let ruleName = 'none';
  for (const [name, rule] of rules) {
    chosen = rule(context);
    if (chosen !== undefined) {
      ruleName = name;
      break;
    }
  }
  const decided = withArchiveSteps(
    context,
    withFailsafeTopology(context, withReconfigure(obs, chosen ?? decision(context, `no action. I am (${context.name})`, []))),
  );
  return { ...decided, rule: ruleName };
}

/**
 * Changed GUCs are applied whatever the rules decided, right after the lock actions (a renewal never waits behind a
 * reload), and never in a cycle that demotes: stopping a primary must not wait for anything.
 */
function withReconfigure(obs: Observation, chosen: Decision): Decision {
  const reconfigure = reconfigureAction(obs);
  if (reconfigure === undefined || chosen.actions.some((action) => action.kind === 'demote')) return chosen;
  const isLockAction = (action: Action): boolean => action.kind === 'renewLeader' || action.kind === 'acquireLeader';
  const lead = chosen.actions.findIndex((action) => !isLockAction(action));
  const at = lead === -1 ? chosen.actions.length : lead;
  return { ...chosen, actions: [...chosen.actions.slice(0, at), reconfigure, ...chosen.actions.slice(at)] };
}
