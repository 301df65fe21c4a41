// How long a switchover or failover left the cluster without a writable primary, as the dashboard's timeline shows
// it, from recorded data only: a history entry's timestamp (the new leader's first cycle as a primary on the new
// timeline, when it writes the entry) and the decision events of the members.
//   switchover: the old primary demoted (its `demote` event) -> the history entry: "writes paused ~X s".
//   failover (a crashed primary sends nothing): its agent renewed the lock's lease every loop, so it was writable at
//     its last renewal at least; a replica that lost its stream read the lease's time left (agent/old-lease.ts) and
//     that reading came with the decision removing the stale lock or taking the lock: last renewal no earlier than
//     readAt - (ttl - left), so the pause is at most the history entry minus that: "writes paused <= X s". It is an
//     upper bound: the primary may have died any time after that renewal (up to a loop_wait later), and etcd's whole
//     seconds add up to 1 s more.
// The page embeds this function's source (api/ui-page.ts): it must stay self-contained (no imports, no module-level
// helpers) and take the events as plain JSON, which a peer's GET /events may have sent in any shape.

export type WritePauseBasis = 'demote' | 'lease' | 'unknown';

export interface WritePause {
  readonly basis: WritePauseBasis;
  /** The pause (demote) or its upper bound (lease), seconds; undefined when unknown. */
  readonly seconds: number | undefined;
  /** What the timeline shows, saying what was measured. */
  readonly text: string;
}

/**
 * The write pause of the switch recorded by `entry` ([timeline, lsn, reason, iso time, new leader]), after the
 * `previous` entry, from the events known (any order); undefined when nothing says how the new leader came to be.
 */
export function writePauseOf(
  entry: readonly unknown[],
  previous: readonly unknown[] | undefined,
  events: readonly unknown[],
): WritePause | undefined {
  const WINDOW_MS = 120_000;
  /** An event of the new leader can be stamped a little after the entry it led to (it is read from the same clock). */
  const AFTER_MS = 5000;
  const at = typeof entry[3] === 'string' ? Date.parse(entry[3]) : NaN;
  if (Number.isNaN(at)) return undefined;
  const newLeader = entry[4];
  const previousAt = previous !== undefined && typeof previous[3] === 'string' ? Date.parse(previous[3]) : NaN;
  const since = Math.max(Number.isNaN(previousAt) ? -Infinity : previousAt, at - WINDOW_MS);
  const clock = (ms: number): string => new Date(ms).toISOString().slice(11, 21);
  interface Seen {
    readonly member: string;
    readonly atMs: number;
    readonly actions: readonly string[];
    readonly lease: Record<string, unknown> | undefined;
  }
  const seen: Seen[] = [];
  for (const event of events) {
    if (typeof event !== 'object' || event === null) continue;
    const e = event as Record<string, unknown>;
    const atMs = typeof e.at === 'string' ? Date.parse(e.at) : NaN;
    if (typeof e.member !== 'string' || !Array.isArray(e.actions) || Number.isNaN(atMs)) continue;
    if (atMs <= since || atMs > at + AFTER_MS) continue;
    const lease = typeof e.oldLease === 'object' && e.oldLease !== null ? (e.oldLease as Record<string, unknown>) : undefined;
    seen.push({ member: e.member, atMs, actions: e.actions.filter((a): a is string => typeof a === 'string'), lease });
  }

  // A switchover: the old primary's demote, before the entry.
  const demotes = seen.filter((e) => e.member !== newLeader && e.atMs <= at && e.actions.includes('demote'));
  const demote = demotes.reduce<Seen | undefined>((latest, e) => (latest === undefined || e.atMs > latest.atMs ? e : latest), undefined);
  if (demote !== undefined) {
    const seconds = (at - demote.atMs) / 1000;
    return { basis: 'demote', seconds, text: `writes paused ~${seconds.toFixed(1)} s (${demote.member} demoted at ${clock(demote.atMs)})` };
  }

  // A failover: the latest bound on the old primary's last lease renewal (all readings of one lock are true bounds).
  let best: { readonly renewedMs: number; readonly by: Seen; readonly lease: Record<string, unknown> } | undefined;
  for (const e of seen) {
    const lease = e.lease;
    const isLockDecision =
      (e.member === newLeader && e.actions.includes('acquireLeader')) ||
      e.actions.includes('deleteStaleLeader') ||
      e.actions.includes('deleteSilentLeader');
    if (lease === undefined || !isLockDecision || typeof lease.leader !== 'string' || lease.leader === newLeader) continue;
    const renewedMs = typeof lease.renewedNotBefore === 'string' ? Date.parse(lease.renewedNotBefore) : NaN;
    if (Number.isNaN(renewedMs) || renewedMs > at) continue;
    if (best === undefined || renewedMs > best.renewedMs) best = { renewedMs, by: e, lease };
  }
  if (best !== undefined) {
    const seconds = (at - best.renewedMs) / 1000;
    const { lease, by } = best;
    const readAtMs = typeof lease.readAt === 'string' ? Date.parse(lease.readAt) : NaN;
    const reading =
      typeof lease.leftS === 'number' && typeof lease.ttlS === 'number' && !Number.isNaN(readAtMs)
        ? `: ${by.member} read ${lease.leftS} of ${lease.ttlS} s left at ${clock(readAtMs)}`
        : '';
    return {
      basis: 'lease',
      seconds,
      text: `writes paused \u2264 ${seconds.toFixed(1)} s (${String(lease.leader)} last renewed its lease no earlier than ${clock(best.renewedMs)}${reading})`,
    };
  }
  const isTakeover = seen.some((e) => e.member === newLeader && e.actions.includes('acquireLeader'));
  return isTakeover
    ? { basis: 'unknown', seconds: undefined, text: 'write pause unknown (no member read the old lock\u2019s lease before it went)' }
    : undefined;
}
