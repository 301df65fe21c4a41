// The single long-task slot (bootstrap, basebackup, rewind, start, promote...): one at a time, cancellable, outcome kept for the next observation.
import type { TaskName, TaskState } from '../core/types.js';
import type { Clock } from '../core/ports.js';
import { describeError, isPgwardenError, PgwardenError } from '../util/errors.js';
import type { Log } from '../util/log.js';

/**
 * `progress`: the task reached a point the HA cycle should see now (e.g. PostgreSQL promoted, while the checkpoint
 * after it still runs): wakes the loop as the task's end would.
 */
export type TaskBody = (signal: AbortSignal, progress: () => void) => Promise<void>;

/** A clone's source not answering yet is what a normal start looks like (the leader is still starting): said at info. */
const TRANSIENT_FAILURES_IN_ROW = 3;

function isExpectedTransient(name: TaskName, error: unknown, failuresInRow: number): boolean {
  const isClone = name === 'basebackup' || name === 'reinitialize' || name === 'rewind';
  return isClone && failuresInRow <= TRANSIENT_FAILURES_IN_ROW && isPgwardenError(error, 'PGW_PG_UNREACHABLE');
}

export class TaskSlot {
  #state: TaskState = { kind: 'idle' };
  #controller: AbortController | undefined;
  #running: Promise<void> | undefined;
  readonly #clock: Clock;
  readonly #log: Log;
  readonly #onSettled: () => void;
  /** Consecutive failures per task name, reset by a success of that task: the core backs off on them. */
  readonly #failuresInRow = new Map<TaskName, number>();

  constructor(clock: Clock, log: Log, onSettled: () => void) {
    this.#clock = clock;
    this.#log = log;
    this.#onSettled = onSettled;
  }

  state(): TaskState {
    return this.#state;
  }

  isRunning(): boolean {
    return this.#state.kind === 'running';
  }

  /** Starts `body` unless a task is already running (then returns false: the caller's decision is stale). */
  start(name: TaskName, body: TaskBody): boolean {
    if (this.#state.kind === 'running') return false;
    const controller = new AbortController();
    this.#controller = controller;
    this.#state = { kind: 'running', name, startedAtMs: this.#clock.nowMs() };
    this.#log.info({ task: name }, `task ${name} started`);
    const progress = (): void => {
      if (this.#controller === controller) this.#onSettled();
    };
    this.#running = body(controller.signal, progress).then(
      () => this.#finish(name, controller, undefined),
      (error: unknown) => this.#finish(name, controller, error),
    );
    return true;
  }

  #finish(name: TaskName, controller: AbortController, error: unknown): void {
    if (this.#controller !== controller) return; // superseded by cancel()
    this.#controller = undefined;
    this.#running = undefined;
    const endedAtMs = this.#clock.nowMs();
    if (error === undefined) {
      this.#failuresInRow.delete(name);
      this.#state = { kind: 'done', name, isOk: true, endedAtMs };
      this.#log.info({ task: name }, `task ${name} finished`);
    } else {
      const failuresInRow = (this.#failuresInRow.get(name) ?? 0) + 1;
      this.#failuresInRow.set(name, failuresInRow);
      this.#state = { kind: 'done', name, isOk: false, error: describeError(error), endedAtMs, failuresInRow };
      const fields = { task: name, error: describeError(error), failures_in_row: failuresInRow };
      if (isExpectedTransient(name, error, failuresInRow))
        this.#log.info(fields, `task ${name} did not complete: its source is not accepting connections yet; retrying`);
      else this.#log.error(fields, `task ${name} failed`);
    }
    this.#onSettled();
  }

  /** Aborts the running task and waits (bounded) for it to unwind; used before a demote, which must not wait behind it. */
  async cancel(waitMs: number): Promise<void> {
    const controller = this.#controller;
    const running = this.#running;
    if (controller === undefined || running === undefined) return;
    const name = this.#state.kind === 'running' ? this.#state.name : undefined;
    controller.abort(
      new PgwardenError('PGW_TASK_CANCELLED', `task ${name ?? 'unknown'} cancelled: a demote or shutdown does not wait for it`),
    );
    this.#controller = undefined;
    this.#running = undefined;
    this.#state = { kind: 'done', name: name ?? 'stop', isOk: false, error: 'cancelled', endedAtMs: this.#clock.nowMs() };
    await Promise.race([running, this.#clock.sleep(waitMs)]);
  }
}
