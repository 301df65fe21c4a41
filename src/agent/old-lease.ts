// A failover's write pause needs the moment the old primary was last known writable. Its agent renews the leader
// lock's lease every loop (a keepalive: no write, nothing any watch sees), so the one record of that moment is the
// lease's time left in the DCS. A replica that cannot stream from the leader (the first sign of a crashed primary)
// reads it; the reading goes with the decision that removes that lock as stale, or that takes the lock after it
// vanished, into the event log, where the dashboard finds it (api/write-pause.ts).
import type { Clock, LeaderLockTimer } from '../core/ports.js';
import type { Action, ClusterView, LeaderRecord, LeaseReading, LocalPg } from '../core/types.js';

/** The read's own budget; an answer that comes after the cycle moved on is kept for the next decision. */
export const LEASE_READ_BUDGET_MS = 500;
/** How long a cycle waits for the reading beside the leader probe (an answer from a healthy etcd takes a few ms). */
export const LEASE_READ_WAIT_MS = 50;

/** A lock's term: the revision that created the key (a re-acquired lock gets a new one). */
export function termOf(leader: LeaderRecord): string {
  return leader.createRevision ?? leader.modRevision;
}

/**
 * etcd answers a lease's time to live in whole seconds, rounded down, so `leftS` means between leftS and leftS + 1 s
 * were left. The lease had its whole ttl when it was last renewed, ttl - left before the reading: no earlier than
 * readAt - (ttl - leftS). A lease with nothing left (0, or expired) bounds nothing. Pure.
 */
export function leaseReadingOf(leader: LeaderRecord, readAtMs: number, leftMs: number, ttlMs: number): LeaseReading | undefined {
  const leftS = Math.floor(leftMs / 1000);
  const ttlS = Math.round(ttlMs / 1000);
  if (!Number.isFinite(readAtMs) || leftS <= 0 || leftS > ttlS) return undefined;
  return {
    leader: leader.name,
    term: termOf(leader),
    readAt: new Date(readAtMs).toISOString(),
    leftS,
    ttlS,
    renewedNotBefore: new Date(readAtMs - (ttlS - leftS) * 1000).toISOString(),
  };
}

/** Whether this member should read the leader's lease this cycle: a running replica that lost its stream from it. */
export function shouldReadLease(view: ClusterView | undefined, self: string, pg: LocalPg, isNoStream: boolean): boolean {
  const leader = view?.leader;
  if (leader === undefined || leader.name === self || isNoStream) return false;
  return pg.isRunning && pg.role === 'replica' && !pg.isStreaming;
}

/**
 * Reads the leader lock's lease now; undefined when the DCS does not answer in time, the key is gone or the lease has
 * nothing left. The DCS reads the key anew: a lock taken over within that one round trip since the view would be read
 * under the old term, which could only make a pause look shorter than it was.
 */
export async function readLease(
  timer: LeaderLockTimer,
  clock: Clock,
  leader: LeaderRecord,
  ttlMs: number,
): Promise<LeaseReading | undefined> {
  try {
    const leftMs = await timer.leaderLockTimeLeft(clock.deadline(LEASE_READ_BUDGET_MS));
    if (leftMs === undefined) return undefined;
    return leaseReadingOf(leader, Date.parse(clock.wallIso()), leftMs, ttlMs);
  } catch {
    // Only a figure for the dashboard: a DCS that did not answer leaves the failover's pause unknown.
    return undefined;
  }
}

/**
 * The reading that belongs with this decision: one of the very lock it deletes as stale or silent, or, when it takes
 * the lock, one of the lock last seen before it vanished (held by another member). Pure.
 */
export function leaseForDecision(
  actions: readonly Action[],
  reading: LeaseReading | undefined,
  lastLeader: LeaderRecord | undefined,
  self: string,
): LeaseReading | undefined {
  if (reading === undefined) return undefined;
  for (const action of actions) {
    if ((action.kind === 'deleteStaleLeader' || action.kind === 'deleteSilentLeader') && termOf(action.leader) === reading.term)
      return reading;
    if (action.kind === 'acquireLeader' && lastLeader !== undefined && lastLeader.name !== self && termOf(lastLeader) === reading.term)
      return reading;
  }
  return undefined;
}
