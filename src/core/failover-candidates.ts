// Which members could take over from this leader now (pure): for a planned switchover and for a primary that gives up
// its lock after a crash (primary_start_timeout). Lag is judged against `referenceLsn` when one is given.
import type { DecisionContext } from './context.js';
import { isViableCandidate } from './failover-intent.js';
import { keyRuleOf, SYNC_OFF } from './sync-plan.js';
import type { DynamicConfig } from './types.js';

export function failoverCandidates(
  context: DecisionContext,
  options: { readonly member?: string | undefined; readonly referenceLsn?: number | undefined } = {},
): string[] {
  const view = context.view;
  if (view === undefined) return [];
  // In synchronous mode only a standby known to hold every acknowledged commit may take over.
  const syncSet = (context.obs.sync ?? SYNC_OFF).mode === 'off' ? undefined : keyRuleOf(view.sync, context.name)?.names;
  return view.members
    .filter((member) => member.name !== context.name)
    .filter((member) => syncSet === undefined || syncSet.includes(member.name))
    .filter((member) => options.member === undefined || member.name === options.member)
    .filter((member) => isViableCandidate(member, options.referenceLsn, context.obs.maximumLagOnFailover))
    .map((member) => member.name);
}

/** Patroni's default primary_start_timeout (seconds). */
export const DEFAULT_PRIMARY_START_TIMEOUT_S = 300;

/** primary_start_timeout, or its old name master_start_timeout, in ms. */
export function primaryStartTimeoutMs(config: Pick<DynamicConfig, 'primary_start_timeout' | 'master_start_timeout'>): number {
  const seconds = config.primary_start_timeout ?? config.master_start_timeout ?? DEFAULT_PRIMARY_START_TIMEOUT_S;
  return Number.isFinite(seconds) && seconds >= 0 ? seconds * 1000 : DEFAULT_PRIMARY_START_TIMEOUT_S * 1000;
}
