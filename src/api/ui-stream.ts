// GET /ui/stream: the dashboard's live feed as server-sent events. A `cluster` event with the whole cluster document on
// connect and after every HA cycle that changed it (each DCS watch event runs a cycle), an `event` event per new HA
// decision of any member (this one's from memory, the others' read from their GET /events after a cycle), and a
// keep-alive comment every 15 s. The browser never polls.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AgentSnapshot } from '../agent/snapshot.js';
import { summarizeCluster } from '../core/cluster-summary.js';
import type { DecisionEvent } from '../core/types.js';
import { redactSecrets } from '../util/redact.js';

export const UI_STREAM_MAX_CLIENTS = 20;
export const UI_STREAM_KEEPALIVE_MS = 15_000;
/** Decisions of the whole cluster kept for a new client (the newest). */
const RECENT_EVENTS = 300;
const PEER_EVENTS_LIMIT = 100;
/** A client that leaves this much unread (a stalled tab, a dead link) is dropped instead of buffered without end. */
const MAX_UNREAD_BYTES = 1024 * 1024;
/** Lag and WAL position history: one sample per 10 s at most, the last hour (360 samples), kept even with no client. */
export const UI_SAMPLE_EVERY_MS = 10_000;
/** The lock's countdown: asked of the DCS at most this often, and only while a dashboard is open. */
export const UI_LOCK_EVERY_MS = 1000;
const UI_SAMPLES = 360;

/** One point of the history: wall-clock ms, the leader's published WAL position, each replica's lag in bytes. */
export interface UiSample {
  readonly at: number;
  readonly optime: number | undefined;
  readonly lag: Readonly<Record<string, number>>;
}

/**
 * What the dashboard reads: an agent's snapshot, or what a proxy knows (its DCS view; no lock of its own, no decisions
 * of its own). `readOnly` says why this page cannot act (the proxy's page).
 */
export type UiSnapshot = Pick<AgentSnapshot, 'name' | 'scope' | 'view' | 'isDcsReachable' | 'lockDeadlineMs' | 'events'> & {
  readonly readOnly?: string | undefined;
};

export interface UiStreamOptions {
  readonly getSnapshot: () => UiSnapshot;
  readonly nowMs: () => number;
  /** Calls the listener after every HA cycle; returns the unsubscribe function. Without it the stream never updates. */
  readonly subscribe?: ((listener: () => void) => () => void) | undefined;
  /** A peer's decisions after `since` (its GET /events); rejects when it does not answer. */
  readonly fetchPeerEvents?: ((apiUrl: string, since: number, limit: number) => Promise<readonly DecisionEvent[]>) | undefined;
  readonly maxClients?: number;
  readonly keepAliveMs?: number;
  /** Wall clock for the history's timestamps (Date.now when absent). */
  readonly wallNowMs?: () => number;
  /** The leader lock's time left as the DCS counts it (etcd's lease TTL of the leader key), for members not holding it. */
  readonly lockTimeLeft?: ((signal: AbortSignal) => Promise<number | undefined>) | undefined;
  /** How often the lock's time left is sent (UI_LOCK_EVERY_MS when absent). */
  readonly lockEveryMs?: number;
}

/** What the page shows of the leader lock: who holds it, how long it has left and where that figure comes from. */
export interface UiLockReading {
  readonly leader: string | undefined;
  readonly left_ms?: number;
  readonly ttl_s?: number;
  readonly source: string;
}

/**
 * The lock reading for this member: the holder knows its own deadline (no DCS read); any other member reports what the
 * DCS answered (`dcsLeftMs`; undefined: not asked or no answer). Pure.
 */
export function lockReadingOf(snapshot: UiSnapshot, nowMs: number, dcsLeftMs: number | undefined): UiLockReading {
  const view = snapshot.view;
  const leader = view?.leader?.name;
  const ttl = view?.config?.ttl;
  const base = { leader, ...(ttl !== undefined ? { ttl_s: ttl } : {}) };
  if (leader === undefined) return { ...base, source: 'no leader lock in the DCS' };
  if (leader === snapshot.name && snapshot.lockDeadlineMs !== undefined)
    return { ...base, left_ms: Math.max(0, Math.round(snapshot.lockDeadlineMs - nowMs)), source: "this member's own lease deadline" };
  if (dcsLeftMs === undefined) return { ...base, source: 'the DCS did not say (unreachable, or not asked yet)' };
  return { ...base, left_ms: dcsLeftMs, source: "the DCS's TTL of the leader key's lease (whole seconds)" };
}

/** What the dashboard draws: Patroni's cluster document plus the leader, its lock, the history and pending intents. */
export function uiClusterDocument(snapshot: UiSnapshot, nowMs: number): Record<string, unknown> {
  const view = snapshot.view;
  const base = {
    scope: snapshot.scope,
    this_member: snapshot.name,
    ...(snapshot.readOnly !== undefined ? { read_only: snapshot.readOnly } : {}),
    dcs_reachable: snapshot.isDcsReachable,
    ttl: view?.config?.ttl,
    loop_wait: view?.config?.loop_wait,
  };
  if (view === undefined) return { ...base, members: [], history: [] };
  const lockLeftMs = snapshot.lockDeadlineMs === undefined ? undefined : Math.max(0, Math.round(snapshot.lockDeadlineMs - nowMs));
  const records = new Map(view.members.map((member) => [member.name, member]));
  const summary = summarizeCluster(view);
  return redactSecrets({
    ...base,
    ...summary,
    members: summary.members.map((member) => {
      const record = records.get(member.name);
      return {
        ...member,
        xlog_location: record?.xlog_location,
        replication_state: record?.replication_state,
        lag_seconds: record?.lag_seconds,
      };
    }),
    leader: view.leader?.name,
    // Known exactly on the leader only (its own lease); elsewhere the page shows the TTL.
    ...(lockLeftMs !== undefined ? { lock_left_ms: lockLeftMs } : {}),
    sync: view.sync,
    proxies: view.proxies ?? [],
    history: view.history,
    failover: view.failover,
    optime: view.optime,
    revision: view.revision,
  });
}

function send(response: ServerResponse, frame: string): void {
  if (response.writableLength > MAX_UNREAD_BYTES) response.destroy();
  else response.write(frame);
}

interface Client {
  readonly response: ServerResponse;
  readonly keepAlive: NodeJS.Timeout;
}

export class UiStream {
  readonly #options: UiStreamOptions;
  readonly #clients = new Set<Client>();
  #unsubscribe: (() => void) | undefined;
  #lastDocument = '';
  /** Every member's decisions seen so far (the newest RECENT_EVENTS), and the last seq read per member. */
  #events: DecisionEvent[] = [];
  readonly #lastSeq = new Map<string, number>();
  #isFetchingPeers = false;
  readonly #samples: UiSample[] = [];
  #lockTimer: NodeJS.Timeout | undefined;
  #isReadingLock = false;
  #lastLock = '';

  constructor(options: UiStreamOptions) {
    this.#options = options;
    // Subscribed for the agent's lifetime: the history must cover the hour before a dashboard is opened.
    this.#unsubscribe = options.subscribe?.(() => this.#onCycle());
  }

  get clientCount(): number {
    return this.#clients.size;
  }

  /** Serves one client; answers 503 when the client limit is reached. */
  attach(request: IncomingMessage, response: ServerResponse): void {
    const max = this.#options.maxClients ?? UI_STREAM_MAX_CLIENTS;
    if (this.#clients.size >= max) {
      const body = `too many dashboard streams (at most ${max}); close another dashboard tab and retry\n`;
      response.writeHead(503, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body), 'retry-after': '5' });
      response.end(body);
      return;
    }
    response.writeHead(200, {
      'content-type': 'text/event-stream',
      'cache-control': 'no-cache',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
    // No request timeout on a stream that lives as long as the tab.
    request.socket.setTimeout(0);
    request.socket.setNoDelay(true);
    const keepAlive = setInterval(() => send(response, ': keep-alive\n\n'), this.#options.keepAliveMs ?? UI_STREAM_KEEPALIVE_MS);
    keepAlive.unref();
    const client: Client = { response, keepAlive };
    this.#clients.add(client);
    const remove = (): void => this.#detach(client);
    request.once('close', remove);
    response.once('close', remove);
    response.once('error', remove);
    this.#collectOwnEvents();
    const document = JSON.stringify(uiClusterDocument(this.#options.getSnapshot(), this.#options.nowMs()));
    this.#lastDocument = document;
    response.write(`retry: 1000\n`);
    response.write(`event: cluster\ndata: ${document}\n\n`);
    response.write(`event: events\ndata: ${JSON.stringify(redactSecrets(this.#events))}\n\n`);
    if (this.#samples.length === 0) this.#sample();
    response.write(`event: samples\ndata: ${JSON.stringify(this.#samples)}\n\n`);
    if (this.#lastLock !== '') response.write(`event: lock\ndata: ${this.#lastLock}\n\n`);
    this.#fetchPeerEvents();
    this.#startLockTimer();
  }

  close(): void {
    this.#stopLockTimer();
    this.#unsubscribe?.();
    this.#unsubscribe = undefined;
    for (const client of [...this.#clients]) {
      this.#detach(client);
      client.response.end();
    }
  }

  #detach(client: Client): void {
    if (!this.#clients.delete(client)) return;
    clearInterval(client.keepAlive);
    if (this.#clients.size === 0) this.#stopLockTimer();
  }

  /** The lock's countdown runs only while somebody watches: no DCS read for a dashboard nobody has open. */
  #startLockTimer(): void {
    if (this.#lockTimer !== undefined) return;
    this.#readLock();
    this.#lockTimer = setInterval(() => this.#readLock(), this.#options.lockEveryMs ?? UI_LOCK_EVERY_MS);
    this.#lockTimer.unref();
  }

  #stopLockTimer(): void {
    clearInterval(this.#lockTimer);
    this.#lockTimer = undefined;
  }

  /** One reading (never two DCS reads at once); sent to every client when it changed. */
  #readLock(): void {
    if (this.#isReadingLock || this.#clients.size === 0) return;
    const snapshot = this.#options.getSnapshot();
    const ask = this.#options.lockTimeLeft;
    const leader = snapshot.view?.leader?.name;
    const isOwn = leader === snapshot.name && snapshot.lockDeadlineMs !== undefined;
    const publish = (dcsLeftMs: number | undefined): void => {
      const reading = JSON.stringify(lockReadingOf(this.#options.getSnapshot(), this.#options.nowMs(), dcsLeftMs));
      if (reading === this.#lastLock) return;
      this.#lastLock = reading;
      const frame = `event: lock\ndata: ${reading}\n\n`;
      for (const client of this.#clients) send(client.response, frame);
    };
    if (leader === undefined || isOwn || ask === undefined) {
      publish(undefined);
      return;
    }
    this.#isReadingLock = true;
    ask(AbortSignal.timeout(this.#options.lockEveryMs ?? UI_LOCK_EVERY_MS))
      .then(publish, () => publish(undefined))
      .catch(() => undefined)
      .finally(() => {
        this.#isReadingLock = false;
      });
  }

  /** Takes a history sample when the last is UI_SAMPLE_EVERY_MS old; returns it, or undefined when none was due. */
  #sample(): UiSample | undefined {
    const at = (this.#options.wallNowMs ?? Date.now)();
    const last = this.#samples[this.#samples.length - 1];
    if (last !== undefined && at - last.at < UI_SAMPLE_EVERY_MS) return undefined;
    const view = this.#options.getSnapshot().view;
    if (view === undefined) return undefined;
    const lag: Record<string, number> = {};
    for (const member of summarizeCluster(view).members) if (typeof member.lag === 'number') lag[member.name] = member.lag;
    const sample = { at, optime: view.optime, lag };
    this.#samples.push(sample);
    if (this.#samples.length > UI_SAMPLES) this.#samples.splice(0, this.#samples.length - UI_SAMPLES);
    return sample;
  }

  #broadcast(name: string, data: unknown): void {
    const frame = `event: ${name}\ndata: ${JSON.stringify(redactSecrets(data))}\n\n`;
    for (const client of this.#clients) send(client.response, frame);
  }

  #onCycle(): void {
    try {
      const sample = this.#sample();
      if (this.#clients.size === 0) return;
      if (sample !== undefined) this.#broadcast('sample', sample);
      const document = JSON.stringify(uiClusterDocument(this.#options.getSnapshot(), this.#options.nowMs()));
      if (document !== this.#lastDocument) {
        this.#lastDocument = document;
        const frame = `event: cluster\ndata: ${document}\n\n`;
        for (const client of this.#clients) send(client.response, frame);
      }
      for (const event of this.#collectOwnEvents()) this.#broadcast('event', event);
      this.#fetchPeerEvents();
    } catch {
      // A broken snapshot must not break the HA loop that called us; the next cycle tries again.
    }
  }

  /** New decisions of this member (read from its own ring), remembered for the next client. */
  #collectOwnEvents(): DecisionEvent[] {
    const snapshot = this.#options.getSnapshot();
    return this.#remember(snapshot.name, snapshot.events?.since(this.#lastSeq.get(snapshot.name) ?? 0) ?? []);
  }

  #remember(member: string, events: readonly DecisionEvent[]): DecisionEvent[] {
    const last = this.#lastSeq.get(member) ?? 0;
    const fresh = events.filter((event) => event.seq > last);
    if (fresh.length === 0) return [];
    this.#lastSeq.set(member, Math.max(...fresh.map((event) => event.seq)));
    this.#events.push(...fresh);
    this.#events.sort((a, b) => a.at.localeCompare(b.at));
    if (this.#events.length > RECENT_EVENTS) this.#events.splice(0, this.#events.length - RECENT_EVENTS);
    return fresh;
  }

  /** One round of GET /events on every other member (never two at once); new decisions go to every client. */
  #fetchPeerEvents(): void {
    const fetch = this.#options.fetchPeerEvents;
    if (fetch === undefined || this.#isFetchingPeers || this.#clients.size === 0) return;
    const snapshot = this.#options.getSnapshot();
    const peers = (snapshot.view?.members ?? []).filter((member) => member.name !== snapshot.name);
    if (peers.length === 0) return;
    this.#isFetchingPeers = true;
    void Promise.all(
      peers.map(async (peer) => {
        try {
          // Asked from the last one seen, which must come back: none means the agent restarted (numbering from 1 again).
          const last = this.#lastSeq.get(peer.name) ?? 0;
          const events = await fetch(peer.api_url, Math.max(0, last - 1), PEER_EVENTS_LIMIT);
          if (last > 0 && events.length === 0) {
            this.#lastSeq.set(peer.name, 0);
            return;
          }
          for (const event of this.#remember(peer.name, events)) this.#broadcast('event', event);
        } catch {
          // A peer that does not answer (stopped, partitioned) shows no new decisions; its member row says why.
        }
      }),
    ).finally(() => {
      this.#isFetchingPeers = false;
    });
  }
}
