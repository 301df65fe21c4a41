// The fence's memory, decided purely: the newest deadline the agent proved, and whether to leave. Times are
// CLOCK_MONOTONIC nanoseconds (process.hrtime.bigint()), the one clock the agent and the fence process share.

export type FenceMessage = { readonly kind: 'arm'; readonly deadlineNs: bigint } | { readonly kind: 'disarm' } | { readonly kind: 'exit' };

export interface FenceState {
  /** PostgreSQL, if running as a primary, is stopped at this instant unless a newer arm or a disarm comes first. */
  readonly deadlineNs: bigint | undefined;
  readonly isExiting: boolean;
}

export const INITIAL_FENCE_STATE: FenceState = { deadlineNs: undefined, isExiting: false };

/** One line of the protocol (JSON); undefined for anything else, which the fence logs and ignores. */
export function parseFenceMessage(line: string): FenceMessage | undefined {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null) return undefined;
  const message = value as { kind?: unknown; deadlineNs?: unknown };
  if (message.kind === 'disarm' || message.kind === 'exit') return { kind: message.kind };
  if (message.kind === 'arm' && typeof message.deadlineNs === 'string' && /^\d+$/.test(message.deadlineNs))
    return { kind: 'arm', deadlineNs: BigInt(message.deadlineNs) };
  return undefined;
}

export function formatFenceMessage(message: FenceMessage): string {
  return JSON.stringify(message.kind === 'arm' ? { kind: 'arm', deadlineNs: message.deadlineNs.toString() } : message);
}

/**
 * An arm replaces the deadline (a renewal moves it forward; a renewal under a shorter ttl may move it back, and the
 * newest proof is the one that counts). A disarm (PostgreSQL stopped, demoted, or maintenance mode) clears it.
 */
export function applyFenceMessage(state: FenceState, message: FenceMessage): FenceState {
  switch (message.kind) {
    case 'arm':
      return { ...state, deadlineNs: message.deadlineNs };
    case 'disarm':
      return { ...state, deadlineNs: undefined };
    case 'exit':
      return { deadlineNs: undefined, isExiting: true };
  }
}

/** Whether the deadline has passed at `nowNs`. */
export function isFenceDue(state: FenceState, nowNs: bigint): boolean {
  return state.deadlineNs !== undefined && nowNs >= state.deadlineNs;
}
