// A pending switchover/failover (the DCS `failover` key) addressed to this leader: hand over cleanly, or drop an impossible request.
import { failoverPriority } from '../candidates.js';
import { failoverCandidates } from '../failover-candidates.js';
import { isDue, isViableCandidate } from '../failover-intent.js';
import { decision, type DecisionContext, type Rule } from '../context.js';

// Lag is not judged here: member keys are up to loop_wait old, so a healthy candidate could look far behind right
// after a WAL segment switch. The API checks lag on live /patroni data before writing the intent, and a candidate that
// really lags refuses the race, which lifts the restriction for the others (raceRestriction).
export const switchoverRule: Rule = (context) => {
  const { view, name, obs } = context;
  const intent = view?.failover;
  const isActingLeader = context.isRunningPrimary || (context.isStandbyCluster && context.isRunningReplica);
  if (view === undefined || intent === undefined || context.leaderName !== name || !context.holdsLock || !isActingLeader) return undefined;
  if (intent.leader !== undefined && intent.leader !== name) return undefined;
  if (!isDue(intent, obs.wallIso)) return undefined;
  if (intent.member === name)
    return decision(context, `cleaning up a switchover to myself (${name})`, [{ kind: 'renewLeader' }, { kind: 'clearFailover' }]);
  const candidates = failoverCandidates(context, { member: intent.member });
  if (candidates.length === 0) {
    return decision(
      context,
      `manual ${intent.leader === undefined ? 'failover' : 'switchover'}: no healthy candidate${intent.member !== undefined ? ` (${intent.member})` : ''} found, staying the leader`,
      [{ kind: 'renewLeader' }, { kind: 'clearFailover' }],
    );
  }
  // Graceful: a fast shutdown writes the shutdown checkpoint and waits for the replicas to receive it, then the
  // lock is released so the candidate can take it at once; the failover key stays for the candidate to read.
  return decision(
    context,
    `manual switchover: demoting myself in favour of ${intent.member ?? 'the healthiest replica'}`,
    [{ kind: 'demote', mode: 'graceful' }],
    { wakeAfterMs: 0 },
  );
};

/**
 * In the race, a pending intent decides who may try: the named candidate only, or anyone but the old leader.
 * Returns undefined when the intent does not restrict this member.
 */
export function raceRestriction(context: DecisionContext): string | undefined {
  const intent = context.view?.failover;
  if (intent === undefined) return undefined;
  if (intent.member !== undefined && intent.member !== context.name) {
    const candidate = context.view?.members.find((member) => member.name === intent.member);
    // A candidate that is gone or too far behind to race must not block the cluster: fall back to the normal race.
    if (candidate !== undefined && isViableCandidate(candidate, context.view?.optime, context.obs.maximumLagOnFailover))
      return `following a different leader because a switchover to ${intent.member} is pending`;
  }
  if (intent.member === undefined && intent.leader === context.name && anotherMayRace(context))
    return 'not racing: I am the leader that is being switched over';
  return undefined;
}

/**
 * Whether a member other than this one may take the lock in a switchover "to anyone": one that is not tagged
 * nofailover and, with failsafe_mode on and a failsafe key, is in that key (the others do not race). When none may, the
 * old leader races again rather than leave the cluster without a leader for good (Patroni: "no healthy members,
 * failover to me").
 */
function anotherMayRace(context: DecisionContext): boolean {
  const topology = context.obs.failsafe?.isEnabled === true ? context.view?.failsafe : undefined;
  const isFailsafeLimited = topology !== undefined && Object.keys(topology).length > 0;
  return (context.view?.members ?? []).some(
    (member) =>
      member.name !== context.name &&
      failoverPriority(member.tags ?? {}) > 0 &&
      (!isFailsafeLimited || topology[member.name] !== undefined),
  );
}
