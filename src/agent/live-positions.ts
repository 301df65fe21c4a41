// WAL positions read when someone asks (the REST API, a peer in a leader race or a switchover), as Patroni reads them
// per request: a streaming replica's position moves between cycles and a candidate is judged on it. Concurrent asks
// share one query; nothing is read while nobody asks.
import type { Clock, PgController, WalStatus } from '../core/ports.js';

const LIVE_POSITIONS_BUDGET_MS = 1000;

export interface LivePositionsOptions {
  readonly pg: PgController;
  readonly clock: Clock;
  /** Whether a reading can be taken now (PostgreSQL running, no task holding it). */
  readonly isApplicable: () => boolean;
  readonly apply: (status: WalStatus) => void;
}

export class LivePositions {
  readonly #options: LivePositionsOptions;
  #inFlight: Promise<void> | undefined;

  constructor(options: LivePositionsOptions) {
    this.#options = options;
  }

  /** Resolves once a reading was applied, or failed (the last cycle's positions stand). */
  refresh(): Promise<void> {
    if (this.#inFlight !== undefined) return this.#inFlight;
    const { pg, clock, isApplicable, apply } = this.#options;
    if (!isApplicable()) return Promise.resolve();
    this.#inFlight = pg
      .walStatus(clock.deadline(LIVE_POSITIONS_BUDGET_MS))
      .then(
        (status) => {
          if (status !== undefined && isApplicable()) apply(status);
        },
        () => undefined,
      )
      .finally(() => (this.#inFlight = undefined));
    return this.#inFlight;
  }
}
