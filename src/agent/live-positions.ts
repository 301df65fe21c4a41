// WAL positions read when someone asks (the REST API, a peer in a leader race or a switchover), as Patroni reads them
// per request: a streaming replica's position moves between cycles and a candidate is judged on it. Concurrent asks
// share one query; nothing is read while nobody asks.
import { within } from '../util/abort.js';
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
  /** Monotonic ms of the newest positions read: by this class, or by the HA cycle's probe (noteProbe). */
  #readAtMs = Number.NEGATIVE_INFINITY;

  constructor(options: LivePositionsOptions) {
    this.#options = options;
  }

  /** The HA cycle's probe read the positions at `atMs`: a reading that young serves a `refresh(maxAgeMs)` too. */
  noteProbe(atMs: number): void {
    this.#readAtMs = Math.max(this.#readAtMs, atMs);
  }

  /**
   * Resolves once a reading was applied, or failed (the last cycle's positions stand). With `maxAgeMs`, positions read
   * that recently (by the probe or an earlier refresh) are good enough: no query (GET /metrics, scraped by several
   * Prometheus servers, costs at most one query per `maxAgeMs`).
   */
  refresh(maxAgeMs = 0): Promise<void> {
    if (this.#inFlight !== undefined) return this.#inFlight;
    const { pg, clock, isApplicable, apply } = this.#options;
    if (!isApplicable()) return Promise.resolve();
    if (maxAgeMs > 0 && clock.nowMs() - this.#readAtMs < maxAgeMs) return Promise.resolve();
    const sentAtMs = clock.nowMs();
    this.#inFlight = within(clock.deadline(LIVE_POSITIONS_BUDGET_MS), (signal) => pg.walStatus(signal))
      .then(
        (status) => {
          if (status !== undefined && isApplicable()) {
            apply(status);
            this.noteProbe(sentAtMs);
          }
        },
        () => undefined,
      )
      .finally(() => (this.#inFlight = undefined));
    return this.#inFlight;
  }
}
