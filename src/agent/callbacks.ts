// User callbacks (postgresql.callbacks): `<cmd> <action> <role> <scope>` run in the background with a timeout, never blocking the HA loop.
import { spawn, type ChildProcess } from 'node:child_process';
import { wireRole } from '../core/patroni-wire.js';
import { describeError } from '../util/errors.js';
import type { Log } from '../util/log.js';

export type CallbackAction = 'on_start' | 'on_stop' | 'on_restart' | 'on_reload' | 'on_role_change';

/** A callback that hangs must not pile up: it is killed after this long (Patroni does the same). */
const CALLBACK_TIMEOUT_MS = 60_000;

export class CallbackRunner {
  readonly #commands: Readonly<Partial<Record<string, string>>>;
  readonly #scope: string;
  readonly #log: Log;
  #running: ChildProcess | undefined;

  constructor(commands: Readonly<Partial<Record<string, string>>>, scope: string, log: Log) {
    this.#commands = commands;
    this.#scope = scope;
    this.#log = log;
  }

  /** Fire and forget; a still-running previous callback is killed first, so events are reported in order. */
  fire(action: CallbackAction, role: string): void {
    const command = this.#commands[action];
    if (command === undefined || command.trim() === '') return;
    const [program, ...args] = command.trim().split(/\s+/);
    if (program === undefined) return;
    if (this.#running !== undefined && this.#running.exitCode === null) this.#running.kill('SIGKILL');
    try {
      const child = spawn(program, [...args, action, wireRole(role), this.#scope], { stdio: 'ignore', detached: false });
      this.#running = child;
      const timer = setTimeout(() => child.kill('SIGKILL'), CALLBACK_TIMEOUT_MS);
      timer.unref();
      child.once('exit', (code) => {
        clearTimeout(timer);
        if (code !== 0) this.#log.warn({ callback: action, command, code }, `callback ${action} exited with ${code ?? 'a signal'}`);
      });
      child.once('error', (error) =>
        this.#log.warn({ callback: action, command, error: describeError(error) }, `callback ${action} could not run`),
      );
      this.#log.info({ callback: action, role: wireRole(role) }, `calling ${action} ${wireRole(role)} ${this.#scope}`);
    } catch (error) {
      this.#log.warn({ callback: action, error: describeError(error) }, `callback ${action} could not run`);
    }
  }
}
