// The fence's memory, decided purely: the newest deadlines the agent proved, and whether to leave. Times are
// CLOCK_MONOTONIC nanoseconds (process.hrtime.bigint()), the one clock the agent and the fence process share.

export type FenceMessage =
  | { readonly kind: 'arm'; readonly deadlineNs: bigint; readonly freezeAtNs?: bigint | undefined }
  | { readonly kind: 'disarm' }
  | { readonly kind: 'exit' };

export interface FenceState {
  /** PostgreSQL, if running as a primary, is stopped at this instant unless a newer arm or a disarm comes first. */
  readonly deadlineNs: bigint | undefined;
  /**
   * The silent-leader detector's window: from this instant a primary is frozen (no commit acknowledged) until an arm
   * moves it into the future again (the agent proved a heartbeat), or killed at `deadlineNs`.
   */
  readonly freezeAtNs: bigint | undefined;
  /** Whether this fence froze PostgreSQL and has not thawed or killed it since. */
  readonly isFrozen: boolean;
  readonly isExiting: boolean;
}

export const INITIAL_FENCE_STATE: FenceState = { deadlineNs: undefined, freezeAtNs: undefined, isFrozen: false, isExiting: false };

const isDigits = (value: unknown): value is string => typeof value === 'string' && /^\d+$/.test(value);

/** One line of the protocol (JSON); undefined for anything else, which the fence logs and ignores. */
export function parseFenceMessage(line: string): FenceMessage | undefined {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null) return undefined;
  const message = value as { kind?: unknown; deadlineNs?: unknown; freezeAtNs?: unknown };
  if (message.kind === 'disarm' || message.kind === 'exit') return { kind: message.kind };
  if (message.kind !== 'arm' || !isDigits(message.deadlineNs)) return undefined;
  if (message.freezeAtNs === undefined) return { kind: 'arm', deadlineNs: BigInt(message.deadlineNs) };
  if (!isDigits(message.freezeAtNs)) return undefined;
  return { kind: 'arm', deadlineNs: BigInt(message.deadlineNs), freezeAtNs: BigInt(message.freezeAtNs) };
}

export function formatFenceMessage(message: FenceMessage): string {
  if (message.kind !== 'arm') return JSON.stringify(message);
  return JSON.stringify({
    kind: 'arm',
    deadlineNs: message.deadlineNs.toString(),
    ...(message.freezeAtNs !== undefined ? { freezeAtNs: message.freezeAtNs.toString() } : {}),
  });
}

/**
 * An arm replaces both deadlines (a renewal moves them forward; a renewal under a shorter ttl may move one back, and
 * the newest proof is the one that counts). A disarm (PostgreSQL stopped, demoted, or maintenance mode) clears them.
 */
export function applyFenceMessage(state: FenceState, message: FenceMessage): FenceState {
  switch (message.kind) {
    case 'arm':
      return { ...state, deadlineNs: message.deadlineNs, freezeAtNs: message.freezeAtNs };
    case 'disarm':
      return { ...state, deadlineNs: undefined, freezeAtNs: undefined };
    case 'exit':
      return { ...state, deadlineNs: undefined, freezeAtNs: undefined, isExiting: true };
  }
}

/** What the fence must do to PostgreSQL at `nowNs`. */
export type FenceStep = 'kill' | 'freeze' | 'thaw' | 'none';

/**
 * Kill at the lock deadline. Freeze from the freeze instant. Thaw only what this fence froze, and only when a newer
 * proof moved the freeze instant into the future. A disarm while frozen kills rather than thaws: the agent disarms when
 * PostgreSQL must not run as a primary any more, and a thawed backend could still acknowledge a commit.
 */
export function nextFenceStep(state: FenceState, nowNs: bigint): FenceStep {
  if (state.deadlineNs !== undefined && nowNs >= state.deadlineNs) return 'kill';
  if (state.isFrozen && state.deadlineNs === undefined) return 'kill';
  const isFreezeDue = state.freezeAtNs !== undefined && nowNs >= state.freezeAtNs;
  if (isFreezeDue && !state.isFrozen) return 'freeze';
  if (!isFreezeDue && state.isFrozen) return 'thaw';
  return 'none';
}

/** When the fence must look again (the nearest future deadline), undefined when nothing is armed. */
export function nextFenceCheckNs(state: FenceState, nowNs: bigint): bigint | undefined {
  const future = [state.deadlineNs, state.isFrozen ? undefined : state.freezeAtNs].filter(
    (value): value is bigint => value !== undefined && value > nowNs,
  );
  return future.length === 0 ? undefined : future.reduce((a, b) => (a < b ? a : b));
}

/** Whether the lock deadline has passed at `nowNs`. */
export function isFenceDue(state: FenceState, nowNs: bigint): boolean {
  return state.deadlineNs !== undefined && nowNs >= state.deadlineNs;
}
