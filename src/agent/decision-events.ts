// The agent's recent HA decisions that changed something (a new reason, or actions taken), kept in memory for
// `GET /events`, `pgwarden events` and the dashboard: bounded, oldest dropped first, numbered so a reader can ask
// for what came after the last event it saw.
import type { DecisionEvent, DecisionEventSource } from '../core/types.js';

export const DECISION_EVENT_CAPACITY = 500;

/** What a healthy member does every cycle: alone they are no event (a leader renews its lock each loop_wait). */
const ROUTINE_ACTIONS: ReadonlySet<string> = new Set([
  'renewLeader',
  'publishStatus',
  'manageSlots',
  'writeFailsafe',
  'confirmFailsafe',
  'copyLogicalSlots',
]);

/** A decision is an event when its reason changed or it does more than the routine. */
export function isDecisionEvent(isReasonNew: boolean, actions: readonly string[]): boolean {
  return isReasonNew || actions.some((action) => !ROUTINE_ACTIONS.has(action));
}

export class DecisionEvents implements DecisionEventSource {
  readonly #capacity: number;
  readonly #events: DecisionEvent[] = [];
  #nextSeq = 1;

  constructor(capacity = DECISION_EVENT_CAPACITY) {
    this.#capacity = capacity;
  }

  add(event: Omit<DecisionEvent, 'seq'>): DecisionEvent {
    const recorded = { seq: this.#nextSeq++, ...event };
    this.#events.push(recorded);
    if (this.#events.length > this.#capacity) this.#events.splice(0, this.#events.length - this.#capacity);
    return recorded;
  }

  /** Events after `seq` (all kept ones without it), oldest first, at most `limit` (the newest ones). */
  since(seq = 0, limit = this.#capacity): readonly DecisionEvent[] {
    const newer = this.#events.filter((event) => event.seq > seq);
    return newer.slice(Math.max(0, newer.length - limit));
  }
}
