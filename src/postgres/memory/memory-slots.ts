// Slot steps on the in-memory model, failing where PostgreSQL 15 fails (with its words) so planner and executor
// meet the same outcomes as on a real server.
import type { SlotStep, SlotStepResult } from '../../core/slot-changes.js';
import { formatLsn } from '../../core/lsn.js';
import { walLevelOf, type MemorySlot, type NodeState } from './memory-node.js';

/** Throws PostgreSQL's error for a step that cannot be applied; otherwise changes `node`. */
function applyStep(node: NodeState, step: SlotStep, activeSlots: ReadonlySet<string>): void {
  const { slot } = step;
  const existing = node.slots.get(slot.name);
  switch (step.kind) {
    case 'create': {
      if (existing !== undefined) throw new Error(`replication slot "${slot.name}" already exists`);
      if (slot.type === 'logical') {
        if (node.role === 'replica') throw new Error('logical decoding cannot be used while in recovery');
        if (walLevelOf(node.runningParameters) !== 'logical') throw new Error('logical decoding requires wal_level >= logical');
        if (slot.database === undefined || slot.plugin === undefined) throw new Error('a logical slot needs a database and a plugin');
      }
      const created: MemorySlot = {
        name: slot.name,
        type: slot.type,
        database: slot.database,
        plugin: slot.plugin,
        restartLsn: node.lsn,
        confirmedFlushLsn: slot.type === 'logical' ? node.lsn : undefined,
      };
      node.slots.set(slot.name, created);
      return;
    }
    case 'drop':
      if (existing === undefined) throw new Error(`replication slot "${slot.name}" does not exist`);
      if (activeSlots.has(slot.name)) throw new Error(`replication slot "${slot.name}" is active`);
      node.slots.delete(slot.name);
      return;
    case 'advance': {
      if (existing === undefined) throw new Error(`replication slot "${slot.name}" does not exist`);
      if (activeSlots.has(slot.name)) throw new Error(`replication slot "${slot.name}" is active`);
      // PostgreSQL caps the target at what this node has flushed (primary) or replayed (replica).
      const target = step.lsn < node.lsn ? step.lsn : node.lsn;
      const minimum = existing.type === 'logical' ? (existing.confirmedFlushLsn ?? existing.restartLsn) : existing.restartLsn;
      if (target < minimum) throw new Error(`cannot advance replication slot to ${formatLsn(target)}, minimum is ${formatLsn(minimum)}`);
      if (existing.type === 'logical') existing.confirmedFlushLsn = target;
      existing.restartLsn = existing.type === 'logical' ? existing.restartLsn : target;
      return;
    }
  }
}

export function applyStepsToNode(node: NodeState, steps: readonly SlotStep[], activeSlots: ReadonlySet<string>): SlotStepResult[] {
  return steps.map((step) => {
    try {
      applyStep(node, step, activeSlots);
      return { step, status: 'ok' };
    } catch (error) {
      return { step, status: 'failed', error: error instanceof Error ? error.message : String(error) };
    }
  });
}
