// The newest timeline the cluster is known to have reached (Patroni's cluster.timeline), from the DCS history and
// the members' published timelines: a node behind it holds a history someone has already moved past.
import type { DecisionContext } from './context.js';
import type { ClusterView } from './types.js';
import { SYNC_OFF } from './sync-plan.js';

export function clusterTimelineOf(view: ClusterView): number | undefined {
  // A history entry [t, lsn, ...] records the switch from timeline t to t + 1.
  const fromHistory = view.history.reduce<number | undefined>((newest, entry) => Math.max(newest ?? 0, entry[0] + 1), undefined);
  const fromMembers = view.members.reduce<number | undefined>(
    (newest, member) => (member.timeline === undefined ? newest : Math.max(newest ?? 0, member.timeline)),
    undefined,
  );
  if (fromHistory === undefined) return fromMembers;
  return fromMembers === undefined ? fromHistory : Math.max(fromHistory, fromMembers);
}

/**
 * Synchronous mode only (Patroni's check_timeline): why this node must not take the lock because its timeline is
 * behind the cluster's. Its WAL past the fork point was never acknowledged under the newer timeline's sync set, and
 * comparing LSNs across timelines would let that diverged WAL look "ahead" of the acknowledged history.
 */
export function timelineRestriction(context: DecisionContext): string | undefined {
  const { obs, view } = context;
  if ((obs.sync ?? SYNC_OFF).mode === 'off' || view === undefined) return undefined;
  const clusterTimeline = clusterTimelineOf(view);
  const mine = obs.pg.timeline;
  if (clusterTimeline === undefined || mine === undefined || mine >= clusterTimeline) return undefined;
  return `my timeline ${mine} is behind last known cluster timeline ${clusterTimeline}`;
}
