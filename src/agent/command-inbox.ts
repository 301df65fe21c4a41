// Manual commands from the REST API (restart, reinitialize) waiting for the HA cycle, and the scheduled restart.
import type { RestoreTarget } from '../core/restore-target.js';
import type { AgentCommand, MemberRecord, ScheduledRestart } from '../core/types.js';

/** A restart scheduled through POST /restart {schedule}: kept locally and published in the member key, as Patroni does. */
export interface ScheduledRestartEntry {
  readonly due: ScheduledRestart;
  readonly record: NonNullable<MemberRecord['scheduled_restart']>;
}

/**
 * One command at a time reaches the core (`pending`); the cycle settles it with the sentence the core decided, which
 * resolves the API request waiting for it. A newer command replaces an unsettled one, whose waiter learns so.
 */
export class CommandInbox {
  #seq = 0;
  #pending: { readonly command: AgentCommand; readonly settle: (reason: string) => void } | undefined;
  #scheduled: ScheduledRestartEntry | undefined;

  /** Queues a command and resolves with the core's sentence once a decision handled it. */
  submit(kind: AgentCommand['kind'], target?: RestoreTarget): { readonly id: number; readonly handled: Promise<string> } {
    const id = ++this.#seq;
    this.#pending?.settle(`${this.#pending.command.kind} superseded by a newer request`);
    let settle: (reason: string) => void = () => undefined;
    const handled = new Promise<string>((resolve) => (settle = resolve));
    this.#pending = { command: { id, kind, ...(target !== undefined ? { target } : {}) }, settle };
    return { id, handled };
  }

  /** Gives up on a command that was not picked up in time (so a later cycle does not act on a request nobody awaits). */
  withdraw(id: number): void {
    if (this.#pending?.command.id === id) this.#pending = undefined;
  }

  pending(): AgentCommand | undefined {
    return this.#pending?.command;
  }

  /** Called after each decision with the id the core has handled up to. */
  settleUpTo(handledId: number | undefined, reason: string): void {
    const pending = this.#pending;
    if (pending === undefined || (handledId ?? 0) < pending.command.id) return;
    this.#pending = undefined;
    pending.settle(reason);
  }

  schedule(entry: ScheduledRestartEntry): boolean {
    if (this.#scheduled !== undefined) return false;
    this.#scheduled = entry;
    return true;
  }

  cancelScheduled(): boolean {
    const had = this.#scheduled !== undefined;
    this.#scheduled = undefined;
    return had;
  }

  scheduled(): ScheduledRestartEntry | undefined {
    return this.#scheduled;
  }
}
