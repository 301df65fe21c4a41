// The one validation of a dynamic configuration, whatever writes it: the config file's bootstrap.dcs, PATCH/PUT /config
// and edit-config refuse what it finds; the agent logs it for a value found in the DCS (pure).
import { validateSlotConfig } from './slot-plan.js';
import { validateStandbyCluster } from './standby-cluster.js';
import { checkTimingValues } from './timing-rules.js';

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Deep merge where `null` deletes a key (Patroni's PATCH /config semantics). */
export function mergeConfigPatch(base: Record<string, unknown>, patch: Record<string, unknown>): Record<string, unknown> {
  const merged: Record<string, unknown> = { ...base };
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete merged[key];
    else if (isObject(value) && isObject(merged[key])) merged[key] = mergeConfigPatch(merged[key], value);
    else merged[key] = value;
  }
  return merged;
}

/** synchronous_mode and synchronous_node_count as Patroni accepts them. */
function checkSyncConfig(config: Readonly<Record<string, unknown>>): string[] {
  const problems: string[] = [];
  const mode = config.synchronous_mode;
  if (
    mode !== undefined &&
    mode !== null &&
    typeof mode !== 'boolean' &&
    !(typeof mode === 'string' && ['on', 'off', 'true', 'false', 'quorum'].includes(mode.toLowerCase()))
  )
    problems.push(`synchronous_mode must be true, false or "quorum", got ${JSON.stringify(mode)}`);
  const count = config.synchronous_node_count;
  if (count !== undefined && count !== null && !(typeof count === 'number' && Number.isInteger(count) && count >= 1))
    problems.push(`synchronous_node_count must be an integer >= 1, got ${JSON.stringify(count)}`);
  const strict = config.synchronous_mode_strict;
  if (strict !== undefined && strict !== null && typeof strict !== 'boolean')
    problems.push(`synchronous_mode_strict must be true or false, got ${JSON.stringify(strict)}`);
  return problems;
}

/** Keys that hold a non-negative number (seconds or bytes) when present. */
const NON_NEGATIVE_KEYS = [
  'maximum_lag_on_failover',
  'primary_start_timeout',
  'master_start_timeout',
  'maximum_lag_on_syncnode',
  'max_timelines_history',
] as const;

/**
 * Every problem of a dynamic config, each naming the key and saying what to change; empty when it is usable.
 * Timing follows pgwarden's rules (core/timing-rules.ts): a ttl below Patroni's 20 is allowed on purpose (fast
 * failover), loop_wait + 2*retry_timeout <= ttl is required rather than repaired as Patroni 3.0.2 does.
 */
export function checkDynamicConfig(config: Readonly<Record<string, unknown>>): string[] {
  const problems = checkTimingValues(config);
  for (const key of NON_NEGATIVE_KEYS) {
    const value = config[key];
    // maximum_lag_on_syncnode: Patroni's -1 means no limit.
    const minimum = key === 'maximum_lag_on_syncnode' ? -1 : 0;
    if (value !== undefined && value !== null && !(typeof value === 'number' && Number.isFinite(value) && value >= minimum))
      problems.push(`${key}: must be a number >= ${minimum} (got ${JSON.stringify(value)})`);
  }
  problems.push(...checkSyncConfig(config));
  const slots = validateSlotConfig(config);
  if (slots !== undefined) problems.push(slots);
  const standby = validateStandbyCluster(config.standby_cluster);
  if (standby !== undefined) problems.push(standby);
  return problems;
}
