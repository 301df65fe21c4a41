// When PostgreSQL must be reconfigured: the GUCs it should run with differ from the set last applied (pure).
import type { Action, Observation } from './types.js';

/** Order-independent identity of a GUC set, so an unchanged config is never re-applied. */
export function parametersFingerprint(parameters: Readonly<Record<string, unknown>>): string {
  return JSON.stringify(Object.entries(parameters).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

/** The reconfigure action this observation calls for, if any. The first application is a render, not a reload. */
export function reconfigureAction(obs: Observation): Action | undefined {
  const state = obs.parameters;
  if (state === undefined) return undefined;
  const fingerprint = parametersFingerprint(state.wanted);
  if (fingerprint === state.appliedFingerprint) return undefined;
  const isReload = state.appliedFingerprint !== undefined && obs.pg.isRunning;
  return {
    kind: 'reconfigure',
    parameters: state.wanted,
    fingerprint,
    reloadCallbackRole: isReload ? (obs.pg.role ?? 'replica') : undefined,
  };
}
