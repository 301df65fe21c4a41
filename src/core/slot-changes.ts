// The slot changes of one cycle, decided purely from what the probe saw: steps for the PgController to apply, and
// what was left alone with the reason, so the adapter only applies and the decision is unit-tested here.
import { isIgnored, type IgnoreRule, type SlotSpec, type SlotState } from './slot-plan.js';

/** A slot as a step names it: enough to run the SQL (a logical slot is advanced from a session in its database). */
export type SlotStep =
  | { readonly kind: 'create'; readonly slot: SlotSpec }
  | { readonly kind: 'drop'; readonly slot: SlotSpec; readonly reason: 'unknown' | 'redefined' | 'xmin' }
  | { readonly kind: 'advance'; readonly slot: SlotSpec; readonly lsn: bigint };

export type SlotSkipReason =
  /** An ignore_slots rule protects it. */
  | 'ignored'
  /** A consumer is connected: dropping or advancing it would pull WAL from under it. */
  | 'active'
  /** PostgreSQL 15 cannot create a logical slot in recovery: replicas get a copy of the primary's instead. */
  | 'logical-on-replica'
  /** A slot of that name with another definition stays (active or ignored), so the wanted one cannot be created. */
  | 'name-taken'
  /** A replica without a replay position has nothing to cap the advance at. */
  | 'no-replay-position';

export interface SkippedSlot {
  readonly slot: string;
  readonly step: SlotStep['kind'];
  readonly reason: SlotSkipReason;
}

export interface SlotPlan {
  /** Drops first (a redefined slot is dropped before it is created again), then creates, then advances. */
  readonly steps: readonly SlotStep[];
  readonly skipped: readonly SkippedSlot[];
}

export interface SlotPlanInput {
  /** Slots the probe saw on this node (non-temporary). */
  readonly observed: readonly SlotState[];
  readonly wanted: readonly SlotSpec[];
  readonly ignore: readonly IgnoreRule[];
  /** Replica: the position (bytes) each slot's copy should reach, from the leader's `status`. */
  readonly advanceTo: Readonly<Record<string, number>>;
  readonly role: 'primary' | 'replica';
  readonly replayedLsn: bigint | undefined;
}

/** What applying one step gave. A failed step never stops the others. */
export type SlotStepResult =
  { readonly step: SlotStep; readonly status: 'ok' } | { readonly step: SlotStep; readonly status: 'failed'; readonly error: string };

const matches = (have: SlotState, spec: SlotSpec | undefined): boolean =>
  spec !== undefined &&
  have.type === spec.type &&
  (spec.type === 'physical' || (have.database === spec.database && have.plugin === spec.plugin));

const specOf = (slot: SlotState): SlotSpec => ({
  name: slot.name,
  type: slot.type,
  ...(slot.database !== undefined ? { database: slot.database } : {}),
  ...(slot.plugin !== undefined ? { plugin: slot.plugin } : {}),
});

/**
 * Makes the node's slots match `wanted`: unknown or redefined slots that are inactive and not ignored are dropped,
 * missing ones created (logical ones only on a primary), and on a replica each kept copy is advanced towards
 * `advanceTo`, never past the replay position (a slot cannot point at WAL this node has not replayed).
 */
export function planSlotChanges(input: SlotPlanInput): SlotPlan {
  const byName = new Map(input.wanted.map((spec) => [spec.name, spec]));
  const drops: SlotStep[] = [];
  const creates: SlotStep[] = [];
  const advances: SlotStep[] = [];
  const skipped: SkippedSlot[] = [];
  const present = new Set<string>();
  const kept: SlotState[] = [];
  for (const have of input.observed) {
    const spec = byName.get(have.name);
    if (matches(have, spec)) {
      // A replica's copy of a member slot keeps the xmin its standby's hot_standby_feedback left on it when this node
      // was primary; nothing updates it here, and the standby would hold vacuum back on the new primary: recreate it.
      if (input.role === 'replica' && have.type === 'physical' && !have.isActive && have.xmin !== undefined) {
        drops.push({ kind: 'drop', slot: specOf(have), reason: 'xmin' });
        continue;
      }
      present.add(have.name);
      kept.push(have);
      continue;
    }
    if (isIgnored(specOf(have), input.ignore) || have.isActive) {
      skipped.push({ slot: have.name, step: 'drop', reason: have.isActive ? 'active' : 'ignored' });
      kept.push(have);
      continue;
    }
    drops.push({ kind: 'drop', slot: specOf(have), reason: spec === undefined ? 'unknown' : 'redefined' });
  }
  const keptNames = new Set(kept.map((slot) => slot.name));
  for (const spec of input.wanted) {
    if (present.has(spec.name)) continue;
    if (keptNames.has(spec.name)) skipped.push({ slot: spec.name, step: 'create', reason: 'name-taken' });
    else if (spec.type === 'logical' && input.role === 'replica')
      skipped.push({ slot: spec.name, step: 'create', reason: 'logical-on-replica' });
    else creates.push({ kind: 'create', slot: spec });
  }
  // A slot created in this cycle reserves WAL from the replay position, which is already at or past any target.
  if (input.role === 'replica') {
    for (const have of kept) {
      const target = input.advanceTo[have.name];
      if (target === undefined || !byName.has(have.name)) continue;
      if (have.isActive) {
        skipped.push({ slot: have.name, step: 'advance', reason: 'active' });
        continue;
      }
      if (input.replayedLsn === undefined) {
        skipped.push({ slot: have.name, step: 'advance', reason: 'no-replay-position' });
        continue;
      }
      const capped = BigInt(target) < input.replayedLsn ? BigInt(target) : input.replayedLsn;
      const reached = have.type === 'logical' ? have.confirmedFlushLsn : have.restartLsn;
      if (reached !== undefined && reached >= capped) continue;
      advances.push({ kind: 'advance', slot: specOf(have), lsn: capped });
    }
  }
  return { steps: [...drops, ...creates, ...advances], skipped };
}

/** Every step failed with the same error: what an adapter that could not even start reports. */
export function failedSlotSteps(steps: readonly SlotStep[], error: string): SlotStepResult[] {
  return steps.map((step) => ({ step, status: 'failed', error }));
}

/** The operator's one log line for each failed step, with what usually fixes it. */
export function describeSlotFailures(results: readonly SlotStepResult[]): { fields: Record<string, unknown>; message: string }[] {
  return results.flatMap((result) => {
    if (result.status === 'ok') return [];
    const { step } = result;
    const fields = { slot: step.slot.name, type: step.slot.type, error: result.error };
    switch (step.kind) {
      case 'create':
        return [
          {
            fields,
            message: `could not create replication slot ${step.slot.name}${
              step.slot.type === 'logical' ? ' (logical slots need wal_level=logical, the database and the output plugin)' : ''
            }`,
          },
        ];
      case 'drop':
        return [{ fields, message: `could not drop replication slot ${step.slot.name} (a consumer may have connected since the probe)` }];
      case 'advance':
        return [
          { fields: { ...fields, lsn: String(step.lsn) }, message: `could not advance the copy of replication slot ${step.slot.name}` },
        ];
    }
  });
}
