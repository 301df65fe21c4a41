// The fence process of one simulated node: its own process, so a frozen or killed agent does not stop its timer. At
// the newest deadline the agent proved it crashes the node's postmaster if that runs as a primary, as bin/fence.js
// freezes and kills a real one.
import type { ExternalFence } from '../../src/core/ports.js';
import type { MemoryPgCluster } from '../../src/postgres/memory/memory-pg.js';
import type { SimRuntime } from './sim-runtime.js';

export class SimFence implements ExternalFence {
  /** The deadline in force (simulated ms), undefined when disarmed or fired. */
  deadlineMs: number | undefined;
  readonly #runtime: SimRuntime;
  readonly #pg: MemoryPgCluster;
  readonly #name: string;
  readonly #onStop: (message: string) => void;
  #cancel: (() => void) | undefined;

  constructor(runtime: SimRuntime, pg: MemoryPgCluster, name: string, onStop: (message: string) => void) {
    this.#runtime = runtime;
    this.#pg = pg;
    this.#name = name;
    this.#onStop = onStop;
  }

  armUntil(deadlineMs: number): void {
    this.#cancel?.();
    this.deadlineMs = deadlineMs;
    // No owner: the fence's timer runs whatever the agent's process does.
    this.#cancel = this.#runtime.schedule(deadlineMs - this.#runtime.nowMs, undefined, () => this.#fire());
  }

  disarm(): void {
    this.#cancel?.();
    this.#cancel = undefined;
    this.deadlineMs = undefined;
  }

  async close(options: { readonly exit: boolean }): Promise<void> {
    if (options.exit) this.disarm();
  }

  #fire(): void {
    this.#cancel = undefined;
    this.deadlineMs = undefined;
    const pg = this.#pg.inspect(this.#name);
    if (!pg.isRunning || pg.role !== 'primary') return;
    this.#pg.crash(this.#name);
    this.#onStop(`FENCE stopped the primary of ${this.#name} at its lock deadline`);
  }
}
