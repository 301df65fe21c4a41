// failsafe_mode (Patroni 3.0+): a leader that loses the DCS stays primary while every member it knows confirms it.
//
// Why this never gives two writable primaries (the lock is only ever taken through the DCS, atomically):
// 1. The leader counts a round of POST /failsafe as a proof of the lock only when every member of the topology answered
//    200, and only from the moment the round was SENT: its deadline becomes `sent + ttl - margin`, exactly as a renewal
//    sent then would give, and the lease fence and the fence process enforce it.
// 2. A member that accepts a round records it on its own monotonic clock at reception (never earlier than the send)
//    and, while that record is younger than ttl, never acquires the lock: the race yields to it and the executor vetoes
//    any acquire decided before the record arrived. A member holding the lock, acquiring it or running as primary
//    refuses the round instead, so the leader demotes.
//    An agent that restarts forgets what it confirmed, so it does not race during its first ttl (failsafe_mode on).
// 3. Only members listed in the failsafe key may race (the leader writes the key each cycle it holds the lock), and the
//    leader asks every member listed there or known from its last view. So any member that could take the lock after
//    the old lock expired has confirmed the leader less than ttl ago, and will not take it before `sent + ttl`, which is
//    later than the leader's own deadline. A member that did not answer makes the leader demote (Patroni's rule).
// 4. Once the DCS answers again, the leader renews or re-acquires the key (atomic create); a leader that sees another
//    member in the key demotes at once (primary-safety).
import { decision, type DecisionContext, type Rule } from '../context.js';
import { safetyMarginMs } from '../lease.js';
import type { Action, ClusterView, Decision, FailsafeRecord, FailsafeTarget, FailsafeTopology } from '../types.js';

/** A POST /failsafe gets at most this long (Patroni's 2 s); never longer than a fifth of the TTL nor than the lock has left. */
export const FAILSAFE_CALL_MS = 2000;
/** Rounds are never sent more often than this. */
const MIN_ROUND_INTERVAL_MS = 1000;
/** Time kept in hand when scheduling the next round, for timer jitter and a slow event loop. */
const ROUND_SLACK_MS = 200;

/** Whether a POST /failsafe accepted at `record.receivedAtMs` still forbids racing at `nowMs`. */
export function isFailsafeRecordFresh(record: FailsafeRecord | undefined, nowMs: number): record is FailsafeRecord {
  return record !== undefined && nowMs < record.receivedAtMs + record.ttlMs;
}

/** The topology the leader publishes: every member with an api_url, and itself (Patroni's `_failsafe_config`). */
export function failsafeTopologyOf(view: ClusterView, self: string, selfApiUrl: string | undefined): FailsafeTopology {
  const topology: Record<string, string> = {};
  for (const member of view.members) if (member.api_url !== '') topology[member.name] = member.api_url;
  if (topology[self] === undefined && selfApiUrl !== undefined && selfApiUrl !== '') topology[self] = selfApiUrl;
  return topology;
}

function sameTopology(a: FailsafeTopology | undefined, b: FailsafeTopology): boolean {
  if (a === undefined) return false;
  const keys = Object.keys(b);
  return Object.keys(a).length === keys.length && keys.every((key) => a[key] === b[key]);
}

/**
 * The leader keeps the failsafe key current: right after a renewal that the decision makes (so only while it holds the
 * lock and the DCS answers), and only when the members changed, as Patroni writes it only on a change. Unlike Patroni,
 * it empties the key once failsafe_mode is off: a key that outlived the mode would otherwise say, when the mode comes
 * back, that the leader has taken it up before it has (a tool waiting for the key would go on too early).
 */
export function withFailsafeTopology(context: DecisionContext, chosen: Decision): Decision {
  const { obs, view, name } = context;
  if (view === undefined || context.leaderName !== name || !context.holdsLock) return chosen;
  const isEnabled = obs.failsafe?.isEnabled === true;
  if (!isEnabled && Object.keys(view.failsafe ?? {}).length === 0) return chosen;
  if (chosen.actions.some((action) => action.kind === 'demote' || action.kind === 'releaseLeader')) return chosen;
  const at = chosen.actions.findIndex((action) => action.kind === 'renewLeader');
  if (at === -1) return chosen;
  const topology = isEnabled ? failsafeTopologyOf(view, name, obs.self.apiUrl) : {};
  if (sameTopology(view.failsafe, topology)) return chosen;
  const write: Action = { kind: 'writeFailsafe', topology };
  return { ...chosen, actions: [...chosen.actions.slice(0, at + 1), write, ...chosen.actions.slice(at + 1)] };
}

/**
 * Whom the leader must ask: every member of the failsafe key it last read, plus every member of its last view (a
 * member it wrote into the key in that same cycle may not be in the key it read yet), except itself.
 */
export function failsafeTargetsOf(view: ClusterView, topology: FailsafeTopology, self: string): FailsafeTarget[] {
  const targets = new Map<string, string>();
  for (const [member, apiUrl] of Object.entries(topology)) targets.set(member, apiUrl);
  for (const member of view.members) if (!targets.has(member.name) && member.api_url !== '') targets.set(member.name, member.api_url);
  targets.delete(self);
  return [...targets].map(([member, apiUrl]) => ({ name: member, apiUrl })).sort((a, b) => a.name.localeCompare(b.name));
}

/**
 * The running primary while the DCS is unreachable (called by primary-safety): with failsafe_mode on and a topology
 * that lists this member, ask every member to confirm it; demote when a round was not confirmed or the proof ran out.
 * Undefined when failsafe does not apply, so primary-safety handles the loss as without failsafe_mode.
 */
/** Why failsafe_mode, enabled, does not carry this leader through a DCS outage (said in the decision), or undefined. */
export function failsafeGap(context: DecisionContext): string | undefined {
  const { obs, name } = context;
  if (obs.dcs.kind !== 'unreachable' || obs.failsafe?.isEnabled !== true) return undefined;
  const lastView = obs.dcs.lastView;
  if (lastView === undefined) return 'failsafe_mode: no view of the cluster read yet';
  if (lastView.failsafe === undefined) return 'failsafe_mode: the last view read has no failsafe key';
  if (lastView.failsafe[name] === undefined) return `failsafe_mode: the failsafe key in the last view does not list ${name}`;
  return undefined;
}

export function failsafeLeaderDecision(context: DecisionContext): Decision | undefined {
  const { obs, name, deadlineMs } = context;
  const failsafe = obs.failsafe;
  if (obs.dcs.kind !== 'unreachable' || failsafe?.isEnabled !== true) return undefined;
  const lastView = obs.dcs.lastView;
  const topology = lastView?.failsafe;
  // Patroni gives up when the key holds garbage or does not list us: nothing is known about who could race.
  if (lastView === undefined || topology === undefined || topology[name] === undefined) return undefined;
  const now = obs.nowMs;
  if (deadlineMs === undefined || now >= deadlineMs)
    return decision(
      context,
      'demoting self because DCS is not accessible and I was a leader (no confirmed failsafe round in time)',
      [{ kind: 'demote', mode: 'offline' }],
      { wakeAfterMs: 0 },
    );
  const round = failsafe.lastRound;
  if (round !== undefined && round.sentAtMs >= obs.dcs.sinceMs && !round.isConfirmed)
    return decision(
      context,
      `demoting self because DCS is not accessible and failsafe members did not confirm me: ${round.unconfirmed.join(', ')}`,
      [{ kind: 'demote', mode: 'offline' }],
      { wakeAfterMs: 0 },
    );
  const targets = failsafeTargetsOf(lastView, topology, name);
  const ttlMs = obs.lock.ttlMs ?? obs.timing.ttlMs;
  const untilDeadlineMs = deadlineMs - now;
  const budgetMs = Math.max(1, Math.floor(Math.min(FAILSAFE_CALL_MS, ttlMs / 5, untilDeadlineMs)));
  // If this round is confirmed the deadline moves to about now + ttl - margin; the next round must be sent and
  // answered before that, after this round (budgetMs) and the next cycle's DCS read (at most min(3 s, retry_timeout)).
  // Never more often than once a second though (an etcd that refuses at once would make the loop spin): with a ttl too
  // short for that, a slow round ends in a demotion at the deadline, never in a primary past it.
  const nextReadMs = Math.min(3000, obs.timing.retryTimeoutMs);
  const inTimeMs = ttlMs - safetyMarginMs(ttlMs) - 2 * budgetMs - nextReadMs - ROUND_SLACK_MS;
  const wakeAfterMs = Math.min(obs.timing.loopWaitMs, Math.max(MIN_ROUND_INTERVAL_MS, inTimeMs));
  const isOnFailsafe = obs.lock.lastFailsafeSentAtMs !== undefined && obs.lock.lastFailsafeSentAtMs >= obs.dcs.sinceMs;
  const reason = isOnFailsafe
    ? 'continue to run as a leader because failsafe mode is enabled and all members are accessible'
    : `DCS is not accessible; asking ${targets.length === 0 ? 'nobody (single member)' : targets.map((target) => target.name).join(', ')} to confirm me (failsafe_mode)`;
  return decision(context, reason, [{ kind: 'confirmFailsafe', targets, budgetMs }], { wakeAfterMs });
}

/**
 * No leader key, the DCS answers: a member holding a fresh failsafe record follows that leader and does not race (the
 * leader runs as primary without the DCS; the record holds whatever the config says now). With failsafe_mode on, a
 * member missing from a non-empty failsafe key does not race either: the leader never asked it (Patroni's rule).
 */
export const failsafeRaceRule: Rule = (context) => {
  const { obs, view, name } = context;
  if (view === undefined || context.leaderName !== undefined || context.isRunningPrimary || !obs.pg.isRunning) return undefined;
  const record = obs.failsafe?.record;
  if (isFailsafeRecordFresh(record, obs.nowMs) && record.leader !== name) {
    const leftMs = record.receivedAtMs + record.ttlMs - obs.nowMs;
    return decision(
      context,
      `following failsafe leader ${record.leader}: it was confirmed ${Math.round(obs.nowMs - record.receivedAtMs)} ms ago, no leader race for ${Math.ceil(leftMs)} ms`,
      [],
      { wakeAfterMs: Math.min(obs.timing.loopWaitMs, Math.ceil(leftMs)) },
    );
  }
  const topology = view.failsafe;
  if (obs.failsafe?.isEnabled !== true || topology === undefined || Object.keys(topology).length === 0) return undefined;
  if (topology[name] === undefined)
    return decision(context, `not racing for the leader lock: failsafe_mode is on and I am not in the failsafe topology`, []);
  // A restarted agent has lost the record of any round it confirmed: a leader may still run on it for up to a ttl.
  const startedAtMs = obs.failsafe.agentStartedAtMs;
  if (startedAtMs !== undefined && obs.nowMs < startedAtMs + obs.timing.ttlMs)
    return decision(
      context,
      `not racing for the leader lock for ${Math.ceil(startedAtMs + obs.timing.ttlMs - obs.nowMs)} ms: this agent started less than ttl ago and may have confirmed a failsafe leader it no longer remembers`,
      [],
      { wakeAfterMs: Math.min(obs.timing.loopWaitMs, Math.ceil(startedAtMs + obs.timing.ttlMs - obs.nowMs)) },
    );
  return undefined;
};

/** What a member knows when a leader's POST /failsafe arrives. */
export interface FailsafeRequestFacts {
  readonly self: string;
  readonly sender: string;
  readonly isEnabled: boolean;
  readonly isRunningPrimary: boolean;
  /** Holds the lock, has an acquire or renew in flight, or is promoting. */
  readonly isLockBusy: boolean;
  /** The leader of the last view, when the last DCS read succeeded (undefined: no leader key, or DCS unreachable). */
  readonly viewLeader: string | undefined;
}

export type FailsafeAnswer =
  { readonly isAccepted: true } | { readonly isAccepted: false; readonly status: 500 | 502; readonly message: string };

/**
 * Patroni accepts unless failsafe_mode is off (502) or it runs as primary (500 "Running as a leader"). This member
 * also refuses while it holds or is taking the lock (it may be about to promote: the leader must not outlive that) and
 * when a DCS it can read names another leader (the sender lost the lock).
 */
export function answerFailsafe(facts: FailsafeRequestFacts): FailsafeAnswer {
  if (!facts.isEnabled) return { isAccepted: false, status: 502, message: 'failsafe_mode is not enabled' };
  if (facts.sender === facts.self) return { isAccepted: false, status: 500, message: 'a member cannot confirm itself' };
  if (facts.isRunningPrimary) return { isAccepted: false, status: 500, message: 'Running as a leader' };
  if (facts.isLockBusy) return { isAccepted: false, status: 500, message: 'holding or acquiring the leader lock' };
  if (facts.viewLeader !== undefined && facts.viewLeader !== facts.sender)
    return { isAccepted: false, status: 500, message: `${facts.viewLeader} holds the leader lock` };
  return { isAccepted: true };
}
