// The safety properties as executable checks (pure): run by the unit tests, by the simulator after every step and,
// in debug mode, by the agent itself before it executes a decision.
//
// 1. Never promote without the lock: promote, startPrimary and a restart as primary are decided only by a node whose
//    lock deadline is in the future and whose fresh view names it leader.
// 2. Never race a holder: acquireLeader is never decided while the view shows a leader, nor by a member that accepted
//    a failsafe leader's POST /failsafe less than ttl ago (that leader may run as primary without the DCS).
// 3. Synchronous mode: a replica that is not in the sync key never races (unless an operator named it in a failover).
// 4. Synchronous mode: at every point of an action list the sync key is safe for every synchronous_standby_names
//    value whose commits may exist: the one in effect and each one set earlier in the list (widen before waiting,
//    narrow only after the new set is in effect).
// 5. At most one writable primary among nodes whose lock deadline has not passed, and none of them past it.
// 6. Synchronous mode: a node that becomes the writable leader holds every commit any primary acknowledged.
import { lockDeadlineOf } from './lease.js';
import { isFailsafeRecordFresh } from './rules/failsafe.js';
import { keyRuleOf, SYNC_OFF, syncNames } from './sync-plan.js';
import { guaranteeOf, isKeySafeFor, type SyncGuarantee, type SyncKeyRule } from './sync-standby-names.js';
import type { Action, Decision, Observation, SyncState } from './types.js';

export interface InvariantViolation {
  /** Stable name of the property, e.g. 'promote-needs-lock'. */
  readonly invariant: string;
  readonly message: string;
}

const startsPrimary = (action: Action): boolean =>
  action.kind === 'promote' || action.kind === 'startPrimary' || (action.kind === 'restart' && action.asPrimary);

/** Properties 1 to 4: what one agent decided, judged against what it observed. */
export function checkDecision(obs: Observation, decision: Decision): InvariantViolation[] {
  const violations: InvariantViolation[] = [];
  const name = obs.self.name;
  const view = obs.dcs.kind === 'ok' ? obs.dcs.view : undefined;
  const lock = obs.lock;
  const lockDeadlineMs = lockDeadlineOf(lock);
  const isLockValid = lockDeadlineMs !== undefined && obs.nowMs < lockDeadlineMs;
  const sync = obs.sync ?? SYNC_OFF;
  for (const action of decision.actions) {
    if (startsPrimary(action) && (!isLockValid || view?.leader?.name !== name)) {
      violations.push({
        invariant: 'promote-needs-lock',
        message: `${name} decided ${action.kind} without holding the lock (${decision.reason})`,
      });
    }
    if (action.kind === 'acquireLeader' && view?.leader !== undefined) {
      violations.push({ invariant: 'no-race-against-holder', message: `${name} raced although ${view.leader.name} holds the lock` });
    }
    const isRaceCandidate = !(obs.pg.isRunning && obs.pg.role === 'primary');
    const failsafeLeader = obs.failsafe?.record;
    if (
      action.kind === 'acquireLeader' &&
      isRaceCandidate &&
      isFailsafeRecordFresh(failsafeLeader, obs.nowMs) &&
      failsafeLeader.leader !== name
    ) {
      violations.push({
        invariant: 'no-race-against-failsafe-leader',
        message: `${name} raced although failsafe leader ${failsafeLeader.leader} was confirmed ${obs.nowMs - failsafeLeader.receivedAtMs} ms ago`,
      });
    }
    if (
      action.kind === 'acquireLeader' &&
      isRaceCandidate &&
      sync.mode !== 'off' &&
      view?.sync?.leader !== undefined &&
      view.sync.leader !== null &&
      view.sync.leader !== name &&
      view.failover?.member !== name &&
      !syncNames(view.sync).includes(name)
    ) {
      violations.push({
        invariant: 'sync-race-in-set',
        message: `${name} raced in synchronous mode but the sync key of ${view.sync.leader} lists ${view.sync.sync_standby ?? 'nobody'}`,
      });
    }
  }
  if (sync.mode !== 'off' && view !== undefined) violations.push(...checkSyncOrder(obs, decision, view.sync, name));
  return violations;
}

/** A key that does not exist restricts nobody: no guarantee with a standby in it is safe under it. */
function isSafe(key: SyncKeyRule | undefined, guarantee: SyncGuarantee): boolean {
  if (key === undefined) return guarantee.isBlocking || guarantee.count === 0;
  return isKeySafeFor(key, guarantee);
}

function checkSyncOrder(obs: Observation, decision: Decision, viewKey: SyncState | undefined, name: string): InvariantViolation[] {
  if (!(obs.pg.isRunning && obs.pg.role === 'primary')) return [];
  const violations: InvariantViolation[] = [];
  const guarantees: SyncGuarantee[] = [guaranteeOf(obs.pg.synchronousStandbyNames ?? '')];
  let key = keyRuleOf(viewKey, name);
  for (const action of decision.actions) {
    if (action.kind === 'setSynchronousStandbyNames') {
      const guarantee = guaranteeOf(action.value);
      if (!isSafe(key, guarantee)) {
        violations.push({
          invariant: 'sync-widen-before-wait',
          message: `${name} set synchronous_standby_names to '${action.value}' while the sync key (${key?.names.join(',') ?? 'none'}) does not cover it`,
        });
      }
      guarantees.push(guarantee);
    }
    if (action.kind === 'writeSync') {
      key = action.state === undefined ? undefined : keyRuleOf(action.state, name);
      const unsafe = guarantees.find((guarantee) => !isSafe(key, guarantee));
      if (unsafe !== undefined) {
        violations.push({
          invariant: 'sync-narrow-after-confirm',
          message: `${name} wrote a sync key (${key?.names.join(',') ?? 'none'}, quorum ${key?.quorum ?? 0}) that does not cover standbys ${unsafe.names.join(',')} still acknowledging commits`,
        });
      }
    }
  }
  return violations;
}

/** One node as a cluster-wide check sees it. */
export interface NodeSafetyState {
  readonly name: string;
  readonly isWritablePrimary: boolean;
  /** The node's own lock deadline (monotonic, the checker's clock), undefined when it holds no renewal. */
  readonly lockDeadlineMs: number | undefined;
  /** Whether its agent runs right now (not killed, not frozen): only then can it be asked to keep its deadline. */
  readonly isAgentRunning: boolean;
}

/**
 * Property 5. `graceMs` is how late a running agent may act on its own deadline (one scheduling slot: its fence
 * timer fires at the deadline, the stop takes effect a moment later).
 */
export function checkWritablePrimaries(nodes: readonly NodeSafetyState[], nowMs: number, graceMs: number): InvariantViolation[] {
  const violations: InvariantViolation[] = [];
  const writable = nodes.filter((node) => node.isWritablePrimary);
  const withLock = writable.filter((node) => node.lockDeadlineMs !== undefined && nowMs < node.lockDeadlineMs);
  if (withLock.length > 1) {
    violations.push({
      invariant: 'single-writable-primary',
      message: `two writable primaries with valid locks: ${withLock.map((node) => node.name).join(', ')}`,
    });
  }
  for (const node of writable) {
    if (node.isAgentRunning && node.lockDeadlineMs !== undefined && nowMs > node.lockDeadlineMs + graceMs) {
      violations.push({ invariant: 'no-primary-past-deadline', message: `${node.name} is a writable primary past its lock deadline` });
    }
  }
  return violations;
}

/** Where a node's WAL stands: its timeline and position, and where its history left each earlier timeline. */
export interface WalReach {
  readonly timeline: number;
  readonly lsn: bigint;
  readonly forks: ReadonlyMap<number, bigint>;
}

/** Property 6: every commit acknowledged on any timeline is in the history of the node taking over. */
export function checkKeepsAcknowledged(name: string, reach: WalReach, acknowledged: ReadonlyMap<number, bigint>): InvariantViolation[] {
  const violations: InvariantViolation[] = [];
  for (const [timeline, acked] of acknowledged) {
    const reached = reach.timeline === timeline ? reach.lsn : reach.forks.get(timeline);
    if (reached === undefined || reached < acked) {
      violations.push({
        invariant: 'acknowledged-commit-kept',
        message: `${name} took over on timeline ${reach.timeline} at ${reach.lsn}, but commits up to ${acked} were acknowledged on timeline ${timeline} (reached ${reached ?? 'never'}): lost`,
      });
    }
  }
  return violations;
}
