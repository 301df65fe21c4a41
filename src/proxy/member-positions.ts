// Fresh replication positions for routing reads: every member of the view is asked for its WAL position a few times a
// second over one kept-open session each, so a replica that falls behind or stops streaming leaves the replica route
// within a poll or two, instead of when its agent next publishes (loop_wait) — or never, when its published lag was 0
// when it stopped (Patroni issue 3717).
import type { MemberPosition, PositionReader } from '../core/ports.js';
import type { MemberRecord } from '../core/types.js';
import { deadline } from '../util/abort.js';
import { describeError } from '../util/errors.js';
import type { Log } from '../util/log.js';

export interface ObservedPosition extends MemberPosition {
  /** Monotonic ms when the answer arrived. */
  readonly observedAtMs: number;
}

export interface PositionMonitorOptions {
  readonly reader: PositionReader;
  /** The members to follow (the current view's). */
  readonly members: () => readonly MemberRecord[];
  readonly intervalMs: number;
  readonly nowMs: () => number;
  readonly log: Log;
  /** After each round: routing may have changed. */
  readonly onRound: () => void;
}

export class PositionMonitor {
  readonly #options: PositionMonitorOptions;
  readonly #positions = new Map<string, ObservedPosition>();
  /** Members whose last read failed, with the message said (one line per change, not one per poll). */
  readonly #failing = new Map<string, string>();
  readonly #stop = new AbortController();
  #loop: Promise<void> | undefined;

  constructor(options: PositionMonitorOptions) {
    this.#options = options;
  }

  start(): void {
    this.#loop ??= this.#run();
  }

  async stop(): Promise<void> {
    this.#stop.abort();
    await this.#loop;
    await this.#options.reader.close();
  }

  /** The last answer of each member that answered its last read. */
  positions(): ReadonlyMap<string, ObservedPosition> {
    return this.#positions;
  }

  async #run(): Promise<void> {
    const { intervalMs, nowMs } = this.#options;
    const stop = this.#stop.signal;
    while (!stop.aborted) {
      const startedAtMs = nowMs();
      await this.#round();
      if (stop.aborted) break;
      this.#options.onRound();
      const waitMs = Math.max(0, startedAtMs + intervalMs - nowMs());
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, waitMs);
        function done(): void {
          clearTimeout(timer);
          stop.removeEventListener('abort', done);
          resolve();
        }
        stop.addEventListener('abort', done, { once: true });
      });
    }
  }

  async #round(): Promise<void> {
    const { reader, intervalMs, nowMs, log } = this.#options;
    const members = this.#options.members();
    const names = new Set(members.map((member) => member.name));
    for (const name of this.#positions.keys()) if (!names.has(name)) this.#positions.delete(name);
    reader.retain(names);
    // A member that does not answer within a few intervals is dropped from the fresh positions (routing then falls back
    // to what its agent published, and to its streaming state there).
    const signal = deadline(Math.max(1000, 5 * intervalMs), this.#stop.signal);
    const readOne = async (member: MemberRecord): Promise<void> => {
      try {
        const position = await reader.read(member, signal);
        this.#positions.set(member.name, { ...position, observedAtMs: nowMs() });
        if (this.#failing.delete(member.name)) log.info({ target: member.name }, 'replication position readable again');
      } catch (error) {
        this.#positions.delete(member.name);
        const message = describeError(error);
        if (this.#stop.signal.aborted || this.#failing.get(member.name) === message) return;
        this.#failing.set(member.name, message);
        log.warn({ target: member.name, error: message }, 'cannot read the replication position: routing uses the published one');
      }
    };
    // The primary first, then the replicas: a replica is compared with a primary position read before its own, so a
    // burst of WAL between the two reads can never make a current replica look behind (a 16 MB segment switch did).
    const isReplica = (member: MemberRecord): boolean => member.role === 'replica';
    await Promise.all(members.filter((member) => !isReplica(member)).map(readOne));
    await Promise.all(members.filter(isReplica).map(readOne));
  }
}
