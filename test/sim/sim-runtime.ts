// Simulated time and processes for the simulator: one timer queue, a Clock per process, and a gate that makes a
// killed process's calls never return and a frozen (SIGSTOP) one's wait until it resumes.
import type { Clock } from '../../src/core/ports.js';

interface Timer {
  readonly atMs: number;
  readonly seq: number;
  readonly owner: SimProcess | undefined;
  readonly fire: () => void;
}

/** Lets every promise continuation that is ready run (they are microtasks; setImmediate runs after all of them). */
const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** A process of the simulated world (an agent): it can be killed or frozen; its timers and port calls obey that. */
export class SimProcess {
  readonly name: string;
  isAlive = true;
  pausedUntilMs = 0;
  readonly #runtime: SimRuntime;

  constructor(runtime: SimRuntime, name: string) {
    this.#runtime = runtime;
    this.name = name;
  }

  isFrozen(): boolean {
    return this.#runtime.nowMs < this.pausedUntilMs;
  }

  isRunning(): boolean {
    return this.isAlive && !this.isFrozen();
  }

  /** Resolves once the process may run again (at once when it is not frozen); never when it is dead. */
  async #runnable(): Promise<void> {
    while (this.isAlive && this.isFrozen()) {
      await new Promise<void>((resolve) => this.#runtime.schedule(this.pausedUntilMs - this.#runtime.nowMs, undefined, resolve));
    }
    if (!this.isAlive) await new Promise<never>(() => undefined);
  }

  /** A port call as the process makes it: not before it runs, and its answer reaches it only while it runs. */
  async gate<T>(call: () => Promise<T>): Promise<T> {
    await this.#runnable();
    const result = await call();
    await this.#runnable();
    return result;
  }

  /** Wraps every method of a port so each call goes through the gate. */
  gatePort<T extends object>(port: T): T {
    return new Proxy(port, {
      get: (target, property, receiver) => {
        const value: unknown = Reflect.get(target, property, receiver);
        if (typeof value !== 'function') return value;
        const method = value as (...args: unknown[]) => unknown;
        if (property === 'onUnexpectedExit') {
          // The listener, too, runs only while the process runs.
          return (listener: () => void) => method.call(target, () => void this.#runnable().then(listener));
        }
        return (...args: unknown[]) => this.gate(async () => (await method.apply(target, args)) as unknown);
      },
    });
  }

  clock(): Clock {
    return this.#runtime.clockFor(this);
  }
}

export class SimRuntime {
  nowMs = 0;
  #timers: Timer[] = [];
  #seq = 0;
  readonly #epochMs = Date.UTC(2026, 10, 24);

  wallIso(): string {
    return new Date(this.#epochMs + this.nowMs).toISOString();
  }

  schedule(delayMs: number, owner: SimProcess | undefined, fire: () => void): () => void {
    const timer: Timer = { atMs: this.nowMs + Math.max(0, delayMs), seq: this.#seq++, owner, fire };
    this.#timers.push(timer);
    return () => {
      const index = this.#timers.indexOf(timer);
      if (index >= 0) this.#timers.splice(index, 1);
    };
  }

  /** A Clock whose timers belong to `owner`: dropped when it dies, held back while it is frozen. */
  clockFor(owner: SimProcess | undefined): Clock {
    const runtime = this;
    return {
      nowMs: () => runtime.nowMs,
      wallIso: () => runtime.wallIso(),
      sleep(ms: number, signal?: AbortSignal): Promise<void> {
        return new Promise((resolve, reject) => {
          if (signal?.aborted === true) {
            reject(signal.reason as Error);
            return;
          }
          const onAbort = (): void => {
            cancel();
            reject(signal?.reason as Error);
          };
          const cancel = runtime.schedule(ms, owner, () => {
            signal?.removeEventListener('abort', onAbort);
            resolve();
          });
          signal?.addEventListener('abort', onAbort, { once: true });
        });
      },
      deadline(ms: number, parent?: AbortSignal): AbortSignal {
        const controller = new AbortController();
        const cancel = runtime.schedule(ms, owner, () => controller.abort(new DOMException('The operation timed out.', 'TimeoutError')));
        parent?.addEventListener(
          'abort',
          () => {
            cancel();
            controller.abort(parent.reason);
          },
          { once: true },
        );
        return controller.signal;
      },
      setTimer: (ms: number, fire: () => void) => runtime.schedule(ms, owner, fire),
    };
  }

  /**
   * Fires every timer up to `targetMs` in time order, letting promise chains settle after each, and calls `afterEach`
   * after every step so that invariants are checked in every state the world passes through.
   */
  async runUntil(targetMs: number, afterEach: () => void): Promise<void> {
    await settle();
    for (;;) {
      const next = this.#earliest();
      if (next === undefined || next.atMs > targetMs) break;
      this.#timers.splice(this.#timers.indexOf(next), 1);
      this.nowMs = Math.max(this.nowMs, next.atMs);
      if (next.owner !== undefined && !next.owner.isAlive) continue;
      if (next.owner !== undefined && next.owner.isFrozen()) {
        // A frozen process's timer fires when it resumes (an overdue timer runs at once after SIGCONT).
        this.#timers.push({ ...next, atMs: next.owner.pausedUntilMs, seq: this.#seq++ });
        continue;
      }
      next.fire();
      await settle();
      afterEach();
    }
    this.nowMs = Math.max(this.nowMs, targetMs);
  }

  #earliest(): Timer | undefined {
    let best: Timer | undefined;
    for (const timer of this.#timers)
      if (best === undefined || timer.atMs < best.atMs || (timer.atMs === best.atMs && timer.seq < best.seq)) best = timer;
    return best;
  }
}
