// Who holds the PostgreSQL leader key, sampled from the DCS through a run: the leader changes a fault caused (a
// failover, or a false one when the fault should not have caused any), and when each new leader was first seen.
import type { ClusterView } from '../core/types.js';

export interface LeaderChange {
  /** When this leader was first seen (monotonic ms, performance.now()). */
  readonly atMs: number;
  readonly leader: string;
}

/** Samples the leader key every intervalMs; a sample that fails (no quorum, a slow etcd) is skipped, not recorded. */
export class LeaderWatch {
  readonly changes: LeaderChange[] = [];
  #isStopped = false;
  #loop: Promise<void> | undefined;

  constructor(
    private readonly view: () => Promise<ClusterView>,
    private readonly intervalMs = 200,
  ) {}

  start(): void {
    this.#loop = this.#run();
  }

  async stop(): Promise<void> {
    this.#isStopped = true;
    await this.#loop;
  }

  /** The leader last seen (undefined before the first successful sample). */
  get current(): string | undefined {
    return this.changes.at(-1)?.leader;
  }

  async #run(): Promise<void> {
    while (!this.#isStopped) {
      const leader = await this.view().then(
        (view) => view.leader?.name,
        () => undefined,
      );
      if (leader !== undefined && leader !== this.current) this.changes.push({ atMs: performance.now(), leader });
      await new Promise((resolve) => setTimeout(resolve, this.intervalMs));
    }
  }
}

/**
 * The leader changes first seen after startMs and no later than endMs, from `before` on (a change back to it
 * included): empty when `before` kept the key throughout.
 */
export function leaderChangesWithin(changes: readonly LeaderChange[], before: string, startMs: number, endMs: number): LeaderChange[] {
  const within = changes.filter((change) => change.atMs > startMs && change.atMs <= endMs);
  const first = within.findIndex((change) => change.leader !== before);
  return first < 0 ? [] : within.slice(first);
}
