// The slot work of one cycle, for the leader and for a streaming replica (pure).
import type { DecisionContext } from '../context.js';
import { planSlotChanges } from '../slot-changes.js';
import { cascadeSourceOf, ignoreRules, wantedSlots } from '../slot-plan.js';
import { slotNameForMember } from '../slot-names.js';
import type { Action } from '../types.js';
import { isBackingOff } from './task.js';

/**
 * Leader: create/drop to match the wanted set. Replica: the same, plus advance each copy to the position the leader
 * published, and fetch logical slots it cannot create itself (a restart, so only when the leader has the slot).
 * With use_slots off pgwarden leaves slots alone entirely, as Patroni does. Nothing is planned before the probe has
 * listed the node's slots, and a plan without steps is no action.
 */
export function slotActions(context: DecisionContext, isLeader: boolean): Action[] {
  const { view, obs, name } = context;
  if (view === undefined || !obs.useSlots) return [];
  const all = wantedSlots(view, name, obs.self.tags, isLeader, obs.useSlots);
  // Logical slots are neither copied to a nostream member nor to anything cascading from one (Patroni 3.0+).
  const source = isLeader ? undefined : cascadeSourceOf(view, name, obs.self.tags, context.leaderName);
  const isBehindNostream = view.members.some((member) => member.name === source && member.tags?.nostream === true);
  const wanted = isBehindNostream ? all.filter((slot) => slot.type !== 'logical') : all;
  const ignore = ignoreRules(view.config);
  const existing = obs.pg.slots;
  if (existing === undefined) return [];
  const manage = (advanceTo: Readonly<Record<string, number>>): Action[] => {
    const plan = planSlotChanges({
      observed: existing,
      wanted,
      ignore,
      advanceTo,
      role: isLeader ? 'primary' : 'replica',
      replayedLsn: obs.pg.replayedLsn,
    });
    return plan.steps.length === 0 ? [] : [{ kind: 'manageSlots', plan }];
  };
  if (isLeader) return manage({});
  const leader = context.leaderName;
  const published = view.statusSlots ?? {};
  // A copied logical slot stops a replica without wal_level=logical from starting: never try there.
  if (leader !== undefined && obs.pg.walLevel === 'logical' && !isBackingOff(context)) {
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
  return manage(advanceTo);
}
