// failsafe_mode in the shell: what this member remembers between cycles (the POST /failsafe it last accepted, the last
// round it sent as leader, lock calls in flight) and the round itself. The rules are in core/rules/failsafe.ts.
import type { FailsafeRequest, PeerClient } from '../core/ports.js';
import { isFailsafeRecordFresh } from '../core/rules/failsafe.js';
import type { DynamicConfig, FailsafeObservation, FailsafeRecord, FailsafeRound, FailsafeTarget } from '../core/types.js';

export interface FailsafeState {
  /** The last POST /failsafe this member accepted (judged fresh or not by the reader). */
  record: FailsafeRecord | undefined;
  /** The last round this member sent as leader. */
  lastRound: FailsafeRound | undefined;
  /** Acquire/renew calls under way: a POST /failsafe that arrives meanwhile is refused. */
  lockCallsInFlight: number;
  /** When this agent started: a restart forgets every round confirmed before it. */
  readonly agentStartedAtMs: number;
}

export function initialFailsafeState(nowMs: number): FailsafeState {
  return { record: undefined, lastRound: undefined, lockCallsInFlight: 0, agentStartedAtMs: nowMs };
}

/** failsafe_mode as the dynamic config says (Patroni's check_mode: a true value). */
export function isFailsafeEnabled(config: DynamicConfig | undefined): boolean {
  const value = config?.failsafe_mode;
  return value === true || (typeof value === 'string' && ['on', 'true', 'yes'].includes(value.toLowerCase()));
}

export function failsafeObservation(state: FailsafeState, config: DynamicConfig | undefined, nowMs: number): FailsafeObservation {
  return {
    isEnabled: isFailsafeEnabled(config),
    record: isFailsafeRecordFresh(state.record, nowMs) ? state.record : undefined,
    lastRound: state.lastRound,
    agentStartedAtMs: state.agentStartedAtMs,
  };
}

/** One round: POST /failsafe to every target in parallel under one deadline; confirmed only if all said "Accepted". */
export async function runFailsafeRound(
  peers: PeerClient,
  request: FailsafeRequest,
  targets: readonly FailsafeTarget[],
  signal: AbortSignal,
  sentAtMs: number,
): Promise<FailsafeRound> {
  const answers = await Promise.all(
    targets.map(async (target) => ({ name: target.name, isAccepted: await peers.postFailsafe(target.apiUrl, request, signal) })),
  );
  const unconfirmed = answers.filter((answer) => !answer.isAccepted).map((answer) => answer.name);
  return { sentAtMs, isConfirmed: unconfirmed.length === 0, unconfirmed };
}
