// Applies planned slot steps with SQL, one at a time, and reports each; copies logical slot state from an upstream.
import type { SlotStep, SlotStepResult } from '../core/slot-changes.js';
import { describeError, PgwardenError } from '../util/errors.js';
import type { Log } from '../util/log.js';
import { formatLsn } from '../core/lsn.js';
import type { LocalSession, SqlClient } from './sql-session.js';

async function applyStep(step: SlotStep, session: LocalSession, signal: AbortSignal, log: Log): Promise<void> {
  const { slot } = step;
  switch (step.kind) {
    case 'drop':
      await session.query('SELECT pg_drop_replication_slot($1)', signal, [slot.name]);
      log.info(
        { slot: slot.name, type: slot.type },
        step.reason === 'unknown'
          ? 'dropped a replication slot no member or permanent slot needs'
          : 'dropped a replication slot whose definition changed',
      );
      return;
    case 'create':
      if (slot.type === 'physical') {
        // immediately_reserve: the slot holds WAL from now on, not only once a standby first connects.
        await session.query('SELECT pg_create_physical_replication_slot($1, true)', signal, [slot.name]);
        log.info({ slot: slot.name }, 'created physical replication slot');
      } else {
        // A logical slot belongs to one database: it must be created from a session in that database.
        await session.queryIn(
          slot.database ?? 'postgres',
          'SELECT pg_create_logical_replication_slot($1, $2)',
          [slot.name, slot.plugin],
          signal,
        );
        log.info({ slot: slot.name, database: slot.database ?? null, plugin: slot.plugin ?? null }, 'created logical replication slot');
      }
      return;
    case 'advance': {
      const lsn = formatLsn(step.lsn);
      if (slot.type === 'logical')
        await session.queryIn(slot.database ?? 'postgres', 'SELECT pg_replication_slot_advance($1, $2::pg_lsn)', [slot.name, lsn], signal);
      else await session.query('SELECT pg_replication_slot_advance($1, $2::pg_lsn)', signal, [slot.name, lsn]);
      return;
    }
  }
}

/** Each step is tried even when an earlier one failed: one bad slot must not starve the others. */
export async function applySlotSteps(
  steps: readonly SlotStep[],
  session: LocalSession,
  signal: AbortSignal,
  log: Log,
): Promise<SlotStepResult[]> {
  const results: SlotStepResult[] = [];
  for (const step of steps) {
    try {
      await applyStep(step, session, signal, log);
      results.push({ step, status: 'ok' });
    } catch (error) {
      results.push({ step, status: 'failed', error: describeError(error) });
    }
  }
  return results;
}

/** The on-disk state of logical slots on an upstream (pg_replslot/<name>/state), read over SQL. */
export async function readLogicalSlotStates(
  client: SqlClient,
  slotNames: readonly string[],
  context: { readonly member: string; readonly from: string },
): Promise<Map<string, Buffer>> {
  const states = new Map<string, Buffer>();
  for (const name of slotNames) {
    const result = await client.query<{ state: Buffer }>(
      "SELECT pg_read_binary_file('pg_replslot/' || slot_name || '/state') AS state FROM pg_replication_slots WHERE slot_name = $1 AND slot_type = 'logical'",
      [name],
    );
    const state = result.rows[0]?.state;
    if (state === undefined)
      throw new PgwardenError(
        'PGW_PG_COMMAND_FAILED',
        `[${context.member}] logical slot ${name} is not on ${context.from} (any more): nothing to copy`,
        {
          context: { member: context.member, slot: name },
        },
      );
    states.set(name, state);
  }
  return states;
}
