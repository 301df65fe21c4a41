// Reading a switchover/failover intent: when it is due and which members could take over. Shared by the switchover
// rule, the REST API (which checks candidates before writing the intent) and the proxy (which holds clients while a
// due switchover runs); none of them may import a rule file.
import { failoverPriority } from './candidates.js';
import type { FailoverIntent, MemberRecord } from './types.js';

/** True once a scheduled intent is due (ISO-8601 with a zone; an unparsable time never becomes due). */
export function isDue(intent: FailoverIntent, wallIso: string): boolean {
  if (intent.scheduled_at === undefined) return true;
  const at = Date.parse(intent.scheduled_at);
  return Number.isFinite(at) && at <= Date.parse(wallIso);
}

/**
 * Whether a member could win the race right now: running, allowed to promote, and within maximum_lag_on_failover
 * of `referenceLsn` by its published WAL position (a lagging candidate would refuse the race, leaving no leader).
 */
export function isViableCandidate(member: MemberRecord, referenceLsn: number | undefined, maximumLagOnFailover: number): boolean {
  if (member.state !== 'running' || failoverPriority(member.tags ?? {}) === 0) return false;
  if (referenceLsn === undefined) return true;
  return member.xlog_location !== undefined && referenceLsn - member.xlog_location <= maximumLagOnFailover;
}
