// Simulated time and processes for the simulator: one timer queue, a Clock per process, and a gate that makes a
// killed process's calls never return and a frozen (SIGSTOP) one's wait until it resumes.
import type { Clock } from '../../src/core/ports.js';

interface Timer {
  atMs: number;
  seq: number;
  readonly owner: SimProcess | undefined;
  readonly fire: () => void;
  isCancelled: boolean;
  /**
   * A deadline: its abort reaches whatever still waits on it (nothing in the simulator outlasts its budget: no call
   * here is slow), so firing it needs no settling step of its own; any reaction runs with the next event.
   */
  readonly isQuiet: boolean;
}

const earlier = (a: Timer, b: Timer): boolean => a.atMs < b.atMs || (a.atMs === b.atMs && a.seq < b.seq);

/** A binary min-heap of timers by (time, order of scheduling); cancelled timers are skipped when they surface. */
class TimerHeap {
  readonly #items: Timer[] = [];

  push(timer: Timer): void {
    const items = this.#items;
    items.push(timer);
    let index = items.length - 1;
    while (index > 0) {
      const parent = (index - 1) >> 1;
      if (!earlier(items[index]!, items[parent]!)) break;
      [items[index], items[parent]] = [items[parent]!, items[index]!];
      index = parent;
    }
  }

  peek(): Timer | undefined {
    while (this.#items[0]?.isCancelled === true) this.#pop();
    return this.#items[0];
  }

  pop(): Timer | undefined {
    return this.peek() === undefined ? undefined : this.#pop();
  }

  #pop(): Timer | undefined {
    const items = this.#items;
    const top = items[0];
    const last = items.pop();
    if (items.length > 0 && last !== undefined) {
      items[0] = last;
      let index = 0;
      for (;;) {
        const left = 2 * index + 1;
        const right = left + 1;
        let smallest = index;
        if (left < items.length && earlier(items[left]!, items[smallest]!)) smallest = left;
        if (right < items.length && earlier(items[right]!, items[smallest]!)) smallest = right;
        if (smallest === index) break;
        [items[index], items[smallest]] = [items[smallest]!, items[index]!];
        index = smallest;
      }
    }
    return top;
  }
}

/** One reason object for every simulated timeout: building a DOMException per deadline dominated the profile. */
const TIMEOUT = new DOMException('The operation timed out.', 'TimeoutError');

/** What one port call costs in simulated time (a round trip to etcd or a local query on loopback). */
const CALL_LATENCY_MS = 1;

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

  /**
   * A port call as the process makes it: not before it runs, taking a little simulated time (a real call is never
   * free, and a loop that decides "again at once" must not spin without time passing), and its answer reaches it
   * only while it runs.
   */
  async gate<T>(call: () => Promise<T>): Promise<T> {
    await this.#runnable();
    await new Promise<void>((resolve) => this.#runtime.schedule(CALL_LATENCY_MS, this, resolve));
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
        return (...args: unknown[]) => this.gate<unknown>(async () => await method.apply(target, args));
      },
    });
  }

  clock(): Clock {
    return this.#runtime.clockFor(this);
  }
}

export class SimRuntime {
  nowMs = 0;
  /** Steps that settled promise chains (for the simulator's own cost figures). */
  settledSteps = 0;
  readonly #timers = new TimerHeap();
  #seq = 0;
  readonly #epochMs = Date.UTC(2026, 10, 24);

  wallIso(): string {
    return new Date(this.#epochMs + this.nowMs).toISOString();
  }

  schedule(delayMs: number, owner: SimProcess | undefined, fire: () => void, isQuiet = false): () => void {
    const timer: Timer = { atMs: this.nowMs + Math.max(0, delayMs), seq: this.#seq++, owner, fire, isCancelled: false, isQuiet };
    this.#timers.push(timer);
    return () => {
      timer.isCancelled = true;
    };
  }

  /** A Clock whose timers belong to `owner`: dropped when it dies, held back while it is frozen. */
  clockFor(owner: SimProcess | undefined): Clock {
    const sleep = (ms: number, signal?: AbortSignal): Promise<void> =>
      new Promise((resolve, reject) => {
        if (signal?.aborted === true) {
          reject(signal.reason as Error);
          return;
        }
        const onAbort = (): void => {
          cancel();
          reject(signal?.reason as Error);
        };
        const cancel = this.schedule(ms, owner, () => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        });
        signal?.addEventListener('abort', onAbort, { once: true });
      });
    const deadline = (ms: number, parent?: AbortSignal): AbortSignal => {
      const controller = new AbortController();
      this.schedule(ms, owner, () => controller.abort(TIMEOUT), true);
      // AbortSignal.any holds the parent weakly: no listener piles up on a long-lived parent (the agent's stop signal).
      return parent === undefined ? controller.signal : AbortSignal.any([controller.signal, parent]);
    };
    return {
      nowMs: () => this.nowMs,
      wallIso: () => this.wallIso(),
      sleep,
      deadline,
      setTimer: (ms: number, fire: () => void) => this.schedule(ms, owner, fire),
    };
  }

  /**
   * Fires every timer up to `targetMs` in time order, letting promise chains settle after each, and calls `afterEach`
   * after every step so that invariants are checked in every state the world passes through. `passTime` moves the
   * world's physics (WAL written and replayed) up to the next event first: nothing but physics happens in between.
   */
  async runUntil(targetMs: number, afterEach: () => void, passTime: (toMs: number) => void = () => undefined): Promise<void> {
    await settle();
    for (;;) {
      const peeked = this.#timers.peek();
      if (peeked === undefined || peeked.atMs > targetMs) break;
      const next = this.#timers.pop()!;
      if (next.atMs > this.nowMs) passTime(next.atMs);
      this.nowMs = Math.max(this.nowMs, next.atMs);
      if (next.owner !== undefined && !next.owner.isAlive) continue;
      if (next.owner !== undefined && next.owner.isFrozen()) {
        // A frozen process's timer fires when it resumes (an overdue timer runs at once after SIGCONT).
        next.atMs = next.owner.pausedUntilMs;
        next.seq = this.#seq++;
        this.#timers.push(next);
        continue;
      }
      next.fire();
      if (next.isQuiet) continue;
      this.settledSteps++;
      await settle();
      afterEach();
    }
    if (targetMs > this.nowMs) passTime(targetMs);
    this.nowMs = Math.max(this.nowMs, targetMs);
  }
}
