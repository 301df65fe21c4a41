// A replica's side of the silent-leader detector: follows the heartbeat key with its own watch, notes when each beat
// was first seen (on this agent's clock), and once a beat grows old reads the key now and then to learn whether etcd
// answers while no new beat comes. It gathers evidence only; core/silent-leader.ts judges it.
import type { Clock, Dcs } from '../core/ports.js';
import { confirmingFromMs, isBeatOfTerm, silencePhase } from '../core/silent-leader.js';
import type { ClusterView, HeartbeatRecord, LeaderRecord, LeaderSilence, SilenceDetection } from '../core/types.js';
import { within } from '../util/abort.js';
import type { SilenceStatus } from './snapshot.js';

export interface LeaderSilenceContext {
  readonly settings: SilenceDetection | undefined;
  readonly self: string;
  readonly leader: LeaderRecord | undefined;
  readonly isPaused: boolean;
  /** The revision of the last view read (where a watch starts when no beat was seen). */
  readonly revision: string | undefined;
}

export interface LeaderSilenceOptions {
  readonly dcs: Dcs;
  readonly clock: Clock;
  readonly context: () => LeaderSilenceContext;
  /** The evidence is complete: the HA cycle should decide now. */
  readonly onSilent: () => void;
  /**
   * Resolves after the next HA cycle: what the monitor waits on while it has nothing to watch. Only a cycle changes
   * what it looks at (the settings, the leader, this member's role), so no timer wakes it meanwhile.
   */
  readonly nextCycle: (stop: AbortSignal) => Promise<void>;
}

const WATCH_RETRY_MS = 100;
/** A heartbeat watch is re-opened at least this often, in case its etcd member went quiet without closing it. */
const MAX_WATCH_MS = 5000;

const isNewer = (beat: HeartbeatRecord, than: HeartbeatRecord | undefined): boolean =>
  than === undefined || BigInt(beat.modRevision) > BigInt(than.modRevision);

export class LeaderSilenceMonitor {
  readonly #options: LeaderSilenceOptions;
  #evidence: LeaderSilence | undefined;
  #silenced: { readonly name: string; readonly atMs: number } | undefined;

  constructor(options: LeaderSilenceOptions) {
    this.#options = options;
  }

  evidence(): LeaderSilence | undefined {
    return this.#evidence;
  }

  /** What GET /metrics shows: whether the detector is on, and the beat it follows (none on the leader itself). */
  status(): SilenceStatus {
    const context = this.#options.context();
    const settings = context.settings;
    const evidence = this.#evidence;
    // The leader sees its own beats in every view, but judges none of them.
    if (settings === undefined || evidence === undefined || context.leader?.name === context.self)
      return { isEnabled: settings !== undefined };
    const nowMs = this.#options.clock.nowMs();
    return {
      isEnabled: true,
      leader: evidence.beat.leader,
      beatAgeMs: nowMs - evidence.seenAtMs,
      phase: silencePhase(evidence, settings, nowMs),
    };
  }

  /** A beat from the watch, a read, or a cycle's view; only a newer one counts (a view may be older than the watch). */
  observe(beat: HeartbeatRecord | undefined): void {
    if (beat === undefined) {
      this.#forget();
      return;
    }
    if (!isNewer(beat, this.#evidence?.beat)) return;
    this.#evidence = { beat, seenAtMs: this.#options.clock.nowMs(), confirmedSinceMs: undefined, lastConfirmedAtMs: undefined };
  }

  /** What a cycle's view says: its beat, or none when the key is gone. */
  observeView(view: ClusterView): void {
    if (view.heartbeat === undefined) {
      if (view.leader === undefined) this.#forget();
      return;
    }
    this.observe(view.heartbeat);
  }

  /**
   * The member whose beats stopped before its key went away (removed for silence, by this member or another), within
   * `forMs` of noticing: the race that follows treats it as unreachable at once instead of waiting for its REST API.
   */
  silencedMember(nowMs: number, forMs: number): string | undefined {
    const silenced = this.#silenced;
    return silenced !== undefined && nowMs - silenced.atMs < forMs ? silenced.name : undefined;
  }

  #forget(): void {
    const evidence = this.#evidence;
    const settings = this.#options.context().settings;
    const now = this.#options.clock.nowMs();
    if (evidence !== undefined && settings !== undefined && silencePhase(evidence, settings, now) !== 'beating')
      this.#silenced = { name: evidence.beat.leader, atMs: now };
    this.#evidence = undefined;
  }

  run(stop: AbortSignal): Promise<unknown> {
    return Promise.allSettled([this.#watch(stop), this.#confirm(stop)]);
  }

  async #watch(stop: AbortSignal): Promise<void> {
    const { dcs, clock } = this.#options;
    while (!stop.aborted) {
      const context = this.#options.context();
      const from = this.#evidence?.beat.modRevision ?? context.revision;
      // The leader does not follow its own beats: nothing to judge, and four wake-ups a second saved.
      if (context.settings === undefined || from === undefined || context.leader?.name === context.self) {
        await this.#options.nextCycle(stop);
        continue;
      }
      const signal = clock.deadline(MAX_WATCH_MS, stop);
      await dcs.watchHeartbeat(from, (beat) => this.observe(beat), signal).catch(() => undefined);
      if (stop.aborted || signal.aborted) continue;
      // The stream broke (its etcd member died, or etcd cancelled it): catch up with a read, then watch again.
      await clock.sleep(WATCH_RETRY_MS, stop).catch(() => undefined);
      await dcs
        .readHeartbeat(clock.deadline(MAX_WATCH_MS, stop))
        .then((beat) => this.observe(beat))
        .catch(() => undefined);
    }
  }

  async #confirm(stop: AbortSignal): Promise<void> {
    const { clock } = this.#options;
    while (!stop.aborted) {
      const context = this.#options.context();
      const evidence = this.#evidence;
      const settings = context.settings;
      if (
        settings === undefined ||
        evidence === undefined ||
        context.isPaused ||
        context.leader === undefined ||
        context.leader.name === context.self ||
        // A leader that announces no fence window is never judged by its beats: nothing to confirm.
        evidence.beat.fenceMs <= 0 ||
        !isBeatOfTerm(evidence.beat, context.leader)
      ) {
        await this.#options.nextCycle(stop);
        continue;
      }
      const now = clock.nowMs();
      if (silencePhase(evidence, settings, now) === 'beating') {
        // Until this beat grows old; a newer beat meanwhile only moves that instant, looked at on waking. Never less
        // than half a beat: this loop must not spin.
        await clock.sleep(Math.max(settings.intervalMs / 2, confirmingFromMs(evidence, settings) - now), stop).catch(() => undefined);
        continue;
      }
      await this.#readOnce(evidence, settings);
      const updated = this.#evidence;
      if (updated !== undefined && silencePhase(updated, settings, clock.nowMs()) === 'silent') this.#options.onSilent();
      await clock.sleep(settings.intervalMs / 2, stop).catch(() => undefined);
    }
  }

  /** One linearizable read: a prompt answer with the same beat extends the confirmation; anything else restarts it. */
  async #readOnce(evidence: LeaderSilence, settings: SilenceDetection): Promise<void> {
    const { dcs, clock } = this.#options;
    const sentAtMs = clock.nowMs();
    let beat: HeartbeatRecord | undefined;
    let isAnswered = false;
    try {
      beat = await within(clock.deadline(settings.intervalMs), (signal) => dcs.readHeartbeat(signal));
      isAnswered = true;
    } catch {
      // No answer in time: etcd is not answering promptly, so silence proves nothing yet.
    }
    const answeredAtMs = clock.nowMs();
    if (this.#evidence !== evidence) return;
    if (!isAnswered || answeredAtMs - sentAtMs > settings.intervalMs) {
      this.#evidence = { ...evidence, confirmedSinceMs: undefined, lastConfirmedAtMs: undefined };
      return;
    }
    if (beat === undefined || beat.modRevision !== evidence.beat.modRevision) {
      this.observe(beat);
      return;
    }
    this.#evidence = { ...evidence, confirmedSinceMs: evidence.confirmedSinceMs ?? answeredAtMs, lastConfirmedAtMs: answeredAtMs };
  }
}
