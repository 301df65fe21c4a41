// The fence process of one simulated node: its own process, so a frozen or killed agent does not stop its timers. At
// the freeze instant (the heartbeat window) it freezes the node's postmaster if that runs as a primary, thaws it when a
// newer proof moves the instant into the future, and at the newest lock deadline kills it, as bin/fence.js does.
import type { ExternalFence } from '../../src/core/ports.js';
import type { MemoryPgCluster } from '../../src/postgres/memory/memory-pg.js';
import type { SimRuntime } from './sim-runtime.js';

export class SimFence implements ExternalFence {
  /** The deadline in force (simulated ms), undefined when disarmed or fired. */
  deadlineMs: number | undefined;
  /** The freeze instant in force (simulated ms), undefined when none. */
  freezeAtMs: number | undefined;
  /** Whether this fence froze the node's postmaster and has not thawed or killed it since. */
  isFrozen = false;
  readonly #runtime: SimRuntime;
  readonly #pg: MemoryPgCluster;
  readonly #name: string;
  readonly #onStop: (message: string) => void;
  #cancel: (() => void) | undefined;
  #cancelFreeze: (() => void) | undefined;

  constructor(runtime: SimRuntime, pg: MemoryPgCluster, name: string, onStop: (message: string) => void) {
    this.#runtime = runtime;
    this.#pg = pg;
    this.#name = name;
    this.#onStop = onStop;
  }

  armUntil(deadlineMs: number, freezeAtMs?: number): void {
    this.#cancel?.();
    this.#cancelFreeze?.();
    this.#cancelFreeze = undefined;
    this.deadlineMs = deadlineMs;
    this.freezeAtMs = freezeAtMs;
    const now = this.#runtime.nowMs;
    // The agent killed what this fence froze (a demote stops a frozen postmaster): nothing of it is left to thaw.
    if (this.isFrozen && !this.#pg.inspect(this.#name).isFrozen) this.isFrozen = false;
    // No owner: the fence's timers run whatever the agent's process does.
    this.#cancel = this.#runtime.schedule(deadlineMs - now, undefined, () => this.#fire());
    if (this.isFrozen && (freezeAtMs === undefined || freezeAtMs > now)) {
      this.isFrozen = false;
      this.#pg.thaw(this.#name);
      this.#onStop(`FENCE thawed the primary of ${this.#name}: a newer heartbeat proof`);
    }
    // An instant already past freezes at once, as bin/fence.js steps on every message it reads.
    if (freezeAtMs !== undefined && !this.isFrozen) {
      if (freezeAtMs <= now) this.#freeze();
      else this.#cancelFreeze = this.#runtime.schedule(freezeAtMs - now, undefined, () => this.#freeze());
    }
  }

  isConnected(): boolean {
    return true;
  }

  disarm(): void {
    this.#cancel?.();
    this.#cancelFreeze?.();
    this.#cancel = undefined;
    this.#cancelFreeze = undefined;
    this.deadlineMs = undefined;
    this.freezeAtMs = undefined;
    // A disarm while frozen kills rather than thaws (fence-state.ts nextFenceStep).
    if (this.isFrozen) {
      this.isFrozen = false;
      this.#pg.killFrozen(this.#name);
      this.#onStop(`FENCE killed the frozen primary of ${this.#name} on a disarm`);
    }
  }

  async close(options: { readonly exit: boolean }): Promise<void> {
    if (options.exit) this.disarm();
  }

  #freeze(): void {
    this.#cancelFreeze = undefined;
    if (this.#pg.freeze(this.#name)) {
      this.isFrozen = true;
      this.#onStop(`FENCE froze the primary of ${this.#name}: no heartbeat proof within its window`);
    } else this.freezeAtMs = undefined; // nothing to freeze: forgotten, as bin/fence.js does
  }

  #fire(): void {
    this.#cancel = undefined;
    this.#cancelFreeze?.();
    this.#cancelFreeze = undefined;
    this.deadlineMs = undefined;
    this.freezeAtMs = undefined;
    const pg = this.#pg.inspect(this.#name);
    if (this.isFrozen) {
      this.isFrozen = false;
      this.#pg.killFrozen(this.#name);
      this.#onStop(`FENCE killed the frozen primary of ${this.#name} at its lock deadline`);
      return;
    }
    if (!pg.isRunning || pg.role !== 'primary') return;
    this.#pg.crash(this.#name);
    this.#onStop(`FENCE stopped the primary of ${this.#name} at its lock deadline`);
  }
}
