// Every HA cycle's decision counted by the rule that made it and by the actions it took, since the agent started:
// GET /metrics serves them as counters, so a rate shows which rule holds a member (a replica stuck in 'failed-task',
// a leader demoting) without reading its log. Bounded: one entry per rule name and per action kind.
import type { Decision } from '../core/types.js';

/** What GET /metrics reads: counts so far, in first-seen order. */
export interface DecisionCountSource {
  byRule(): ReadonlyMap<string, number>;
  byAction(): ReadonlyMap<string, number>;
}

export class DecisionCounts implements DecisionCountSource {
  readonly #byRule = new Map<string, number>();
  readonly #byAction = new Map<string, number>();

  record(decision: Pick<Decision, 'rule' | 'actions'>): void {
    const rule = decision.rule ?? 'unknown';
    this.#byRule.set(rule, (this.#byRule.get(rule) ?? 0) + 1);
    for (const action of decision.actions) this.#byAction.set(action.kind, (this.#byAction.get(action.kind) ?? 0) + 1);
  }

  byRule(): ReadonlyMap<string, number> {
    return this.#byRule;
  }

  byAction(): ReadonlyMap<string, number> {
    return this.#byAction;
  }
}
