// The slot work of one cycle, for the leader and for a streaming replica (pure).
import type { DecisionContext } from '../context.js';
import { ignoreRules, wantedSlots } from '../slot-plan.js';
import { slotNameForMember } from '../slot-names.js';
import type { Action } from '../types.js';
import { isBackingOff } from './task.js';

/**
 * Leader: create/drop to match the wanted set. Replica: the same, plus advance each copy to the position the leader
 * published, and fetch logical slots it cannot create itself (a restart, so only when the leader has the slot).
 * With use_slots off pgwarden leaves slots alone entirely, as Patroni does.
 */
export function slotActions(context: DecisionContext, isLeader: boolean): Action[] {
  const { view, obs, name } = context;
  if (view === undefined || !obs.useSlots) return [];
  const wanted = wantedSlots(view, name, obs.self.tags, isLeader, obs.useSlots);
  const ignore = ignoreRules(view.config);
  if (isLeader) return [{ kind: 'manageSlots', wanted, ignore, advanceTo: {} }];
  const leader = context.leaderName;
  const published = view.statusSlots ?? {};
  const existing = obs.pg.slots;
  // A copied logical slot stops a replica without wal_level=logical from starting: never try there.
  if (leader !== undefined && existing !== undefined && obs.pg.walLevel === 'logical' && !isBackingOff(context)) {
    const missing = wanted.filter(
      (slot) =>
        slot.type === 'logical' &&
        published[slot.name] !== undefined &&
        !existing.some((have) => have.name === slot.name && have.type === 'logical'),
    );
    if (missing.length > 0) return [{ kind: 'copyLogicalSlots', from: leader, slots: missing.map((slot) => slot.name) }];
  }
  const advanceTo: Record<string, number> = {};
  for (const slot of wanted) {
    const position = published[slot.name] ?? (leader !== undefined && slot.name === slotNameForMember(leader) ? view.optime : undefined);
    if (position !== undefined) advanceTo[slot.name] = position;
  }
  return [{ kind: 'manageSlots', wanted, ignore, advanceTo }];
}
