// Simulator options that can cross a worker boundary: a decide() mutation is named here instead of passed as a
// function, so seeds run off the test runner's thread (see seed-runs.ts) with the same options as in-thread.
import { SYNC_OFF } from '../../src/core/sync-plan.js';
import type { SimOptions } from './sim-world.js';

export const DECIDE_MUTATIONS = {
  /** Replicas race as if no sync key existed (priority mode's promotion guard removed). */
  'replicas-ignore-sync-key': (decide) => (obs, mem) => decide(obs.pg.role === 'replica' ? { ...obs, sync: SYNC_OFF } : obs, mem),
  /** Replicas ignore a fresh POST /failsafe from the leader and race for the key. */
  'replicas-ignore-failsafe-record': (decide) => (obs, mem) =>
    decide(obs.failsafe === undefined ? obs : { ...obs, failsafe: { ...obs.failsafe, record: undefined } }, mem),
} satisfies Record<string, NonNullable<SimOptions['mutateDecide']>>;

export type DecideMutationName = keyof typeof DECIDE_MUTATIONS;

export type SeedRunOptions = Omit<SimOptions, 'mutateDecide'> & { readonly mutation?: DecideMutationName | undefined };

export function simOptionsOf(options: SeedRunOptions): SimOptions {
  const { mutation, ...rest } = options;
  return mutation === undefined ? rest : { ...rest, mutateDecide: DECIDE_MUTATIONS[mutation] };
}
