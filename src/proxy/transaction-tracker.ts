// Where a client's next message may go, per transaction (issue 17): fed what the client sends and the server's
// ReadyForQuery status, it keeps a transaction on the backend it started on and pins the session to the primary
// once session state that cannot move exists. Pure: the listener does the I/O and tells it what happened.
import type { Classification } from './sql-classifier.js';

export type BackendKind = 'primary' | 'replica';

export interface TrackerDecision {
  /** `refuse`: the statement would leave session state on a replica inside a read-only transaction; do not forward it. */
  readonly route: 'replica-ok' | 'primary' | 'refuse';
  readonly reason: string;
}

/** ReadyForQuery's transaction status: idle, in a transaction, in a failed transaction. */
export type TransactionStatus = 'I' | 'T' | 'E';

/**
 * Rules (README "Read/write classification"):
 * - idle ('I'): a message goes where its classification says; a pinned session goes to the primary;
 * - in a transaction ('T'/'E'): every message follows the backend the transaction started on; on a replica only
 *   read-only statements, transaction control and cursor operations go on, anything else is refused;
 * - pins (session state that cannot move): temporary objects, LISTEN, session advisory locks, WITH HOLD cursors,
 *   named prepared statements (PREPARE, or an extended-protocol Parse with a name), SET without LOCAL and
 *   set_config(..., false), LOAD. A pin lasts until a DISCARD ALL sent alone has run (next ReadyForQuery 'I').
 */
export class TransactionTracker {
  readonly #classify: (sql: string) => Classification;
  #pins: string[] = [];
  #transaction: { backend: BackendKind; status: 'T' | 'E' } | undefined;
  #lastBackend: BackendKind | undefined;
  #pendingDiscard = false;

  constructor(classify: (sql: string) => Classification) {
    this.#classify = classify;
  }

  /** What pins the session to the primary (empty: not pinned). */
  get pinnedBy(): readonly string[] {
    return this.#pins;
  }

  /** The backend of the open transaction, if one is open. */
  get transactionBackend(): BackendKind | undefined {
    return this.#transaction?.backend;
  }

  /** A simple-protocol Query message. */
  onQuery(sql: string): TrackerDecision {
    return this.#decide(this.#classify(sql), []);
  }

  /** An extended-protocol Parse: a named statement outlives the transaction, so it pins the session. */
  onParse(name: string, sql: string): TrackerDecision {
    return this.#decide(this.#classify(sql), name === '' ? [] : [`named prepared statement ${name}`]);
  }

  /** Where the listener sent the last message (it may send a replica-ok message to the primary). */
  onForwarded(backend: BackendKind): void {
    this.#lastBackend = backend;
  }

  onReadyForQuery(status: TransactionStatus): void {
    if (status === 'I') {
      this.#transaction = undefined;
      if (this.#pendingDiscard) this.#pins = [];
    } else {
      this.#transaction = { backend: this.#transaction?.backend ?? this.#lastBackend ?? 'primary', status };
    }
    this.#pendingDiscard = false;
  }

  #decide(classification: Classification, extraPins: string[]): TrackerDecision {
    const newPins = [...(classification.pins?.what ?? []), ...extraPins];
    const transaction = this.#transaction;
    if (transaction?.backend === 'replica') {
      if (transaction.status === 'E') return this.#to('replica', 'failed transaction on a replica: the server answers');
      if (classification.route === 'replica-ok' && newPins.length === 0) {
        return this.#to('replica', `inside a read-only transaction on a replica: ${classification.reason}`);
      }
      const why = newPins.length > 0 ? `leaves session state (${newPins.join(', ')})` : classification.reason;
      return { route: 'refuse', reason: `not allowed inside a transaction on a replica: ${why}` };
    }
    this.#pin(newPins);
    if (transaction !== undefined) return this.#to('primary', 'inside a transaction on the primary');
    if (classification.discardAll === true) this.#pendingDiscard = true;
    if (newPins.length > 0) return this.#to('primary', `${classification.reason}; pins the session (${newPins.join(', ')})`);
    if (this.#pins.length > 0) return this.#to('primary', `session pinned to the primary by ${this.#pins.join(', ')}`);
    if (classification.route === 'replica-ok') return this.#to('replica', classification.reason);
    return this.#to('primary', classification.reason);
  }

  #pin(what: readonly string[]): void {
    for (const item of what) if (!this.#pins.includes(item)) this.#pins.push(item);
  }

  #to(backend: BackendKind, reason: string): TrackerDecision {
    this.#lastBackend = backend;
    return { route: backend === 'replica' ? 'replica-ok' : 'primary', reason };
  }
}
