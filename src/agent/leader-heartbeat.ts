// The leader's side of the silent-leader detector: beat the heartbeat key every interval while holding the lock as a
// running primary, and move the fence's freeze instant forward with every beat etcd acknowledged.
import type { Clock, Dcs } from '../core/ports.js';
import type { SilenceDetection } from '../core/types.js';
import { within } from '../util/abort.js';
import { describeError } from '../util/errors.js';
import type { Log } from '../util/log.js';

export interface LeaderHeartbeatOptions {
  readonly dcs: Dcs;
  readonly clock: Clock;
  readonly log: Log;
  /** The detector's settings now, or undefined when the dynamic config turns it off. */
  readonly settings: () => SilenceDetection | undefined;
  /** Whether this member holds the lock and runs PostgreSQL as a primary, outside maintenance mode. */
  readonly isLeading: () => boolean;
  /** The creation revision of the leader key this member holds (its term), when the last view showed it. */
  readonly term: () => string | undefined;
  /** Whether PostgreSQL runs as a primary at all (a freeze instant has an object only then). */
  readonly isPrimaryRunning: () => boolean;
  /** Whether a fence process would carry out a freeze now (only then is a fence window announced). */
  readonly isFenced: () => boolean;
  /** The fence's freeze instant (agent clock), or undefined to stop freezing. */
  readonly setFreezeAt: (freezeAtMs: number | undefined) => void;
  /** A beat found the lock gone: the HA cycle should look now. */
  readonly onLockLost: () => void;
  /**
   * Resolves after the next HA cycle: what a member that is not leading waits on. Only a cycle makes it leading (the
   * lock, PostgreSQL's role and the settings all change there), so no timer wakes it meanwhile.
   */
  readonly nextCycle: (stop: AbortSignal) => Promise<void>;
}

/** With the detector turned off while a window is still announced: how often the "no window" beat is tried. */
const UNANNOUNCE_INTERVAL_MS = 1000;

/**
 * The freeze instant only ever comes from a beat etcd acknowledged (its send time + the window), or, before the first
 * beat, from the moment this leader decided to announce a window (no later than that beat's send). So whatever a replica
 * saw, the fence freezes PostgreSQL no later than `fence window` after it.
 */
export async function runLeaderHeartbeat(options: LeaderHeartbeatOptions, stop: AbortSignal): Promise<void> {
  const { dcs, clock, log } = options;
  /** The window the last acknowledged beat announced (0: none, so replicas do not act on silence). */
  let announcedMs = 0;
  let freezeAtMs: number | undefined;
  let failingSinceMs: number | undefined;
  let lastFailureLogMs = 0;
  const setFreezeAt = (value: number | undefined): void => {
    freezeAtMs = value;
    options.setFreezeAt(value);
  };

  let wasLeading = false;
  let lastTerm: string | undefined;
  while (!stop.aborted) {
    const settings = options.settings();
    const isLeading = settings !== undefined && options.isLeading();
    const term = options.term();
    const isNewTerm = isLeading && term !== undefined && lastTerm !== undefined && term !== lastTerm;
    if (term !== undefined) lastTerm = term;
    if (isLeading && (!wasLeading || isNewTerm)) {
      // A new term: no freeze instant of an earlier one may stop this primary. Until its first beat is acknowledged the
      // instant counts from now (before that beat's send).
      setFreezeAt(options.isFenced() ? clock.nowMs() + settings.fenceWindowMs : undefined);
    }
    wasLeading = isLeading;
    if (!isLeading && announcedMs === 0) {
      // Not leading and nothing announced: a primary that lost its lock keeps its freeze instant (it must freeze); once
      // PostgreSQL is a replica or stopped the instant has no object, and must not freeze a later promotion.
      if (freezeAtMs !== undefined && !options.isPrimaryRunning()) setFreezeAt(undefined);
      await options.nextCycle(stop);
      continue;
    }
    const intervalMs = settings?.intervalMs ?? UNANNOUNCE_INTERVAL_MS;
    // Leaving the leader's role while a window is announced: announce none first (if the lock is still ours), so that
    // replicas do not take the end of the beats for silence; only then stop freezing.
    const fenceMs = isLeading && options.isFenced() ? settings.fenceWindowMs : 0;
    if (fenceMs > 0 && freezeAtMs === undefined) setFreezeAt(clock.nowMs() + fenceMs);
    const sentAtMs = clock.nowMs();
    try {
      // One interval at most: a beat stuck on an etcd member that lost its leader (an election) gives way to the next,
      // sent to another member at once, so that a healthy leader lands a beat as soon as etcd answers again.
      const isOk = await within(clock.deadline(Math.max(intervalMs, 150), stop), (signal) => dcs.beatHeartbeat(fenceMs, signal));
      if (isOk) {
        if (failingSinceMs !== undefined)
          log.info({ failing_ms: Math.round(clock.nowMs() - failingSinceMs) }, 'heartbeat acknowledged again');
        failingSinceMs = undefined;
        announcedMs = fenceMs;
        setFreezeAt(fenceMs > 0 ? sentAtMs + fenceMs : undefined);
      } else {
        // The key is not ours on our lease: nothing more to announce; the fence keeps its last instant.
        announcedMs = 0;
        options.onLockLost();
      }
    } catch (error) {
      if (stop.aborted) break;
      failingSinceMs ??= sentAtMs;
      const now = clock.nowMs();
      if (now - lastFailureLogMs >= 1000) {
        lastFailureLogMs = now;
        log.warn(
          { error: describeError(error), failing_ms: Math.round(now - failingSinceMs), freeze_in_ms: freezeInMs(freezeAtMs, now) },
          'heartbeat not acknowledged by etcd',
        );
      }
    }
    await clock.sleep(Math.max(0, sentAtMs + intervalMs - clock.nowMs()), stop).catch(() => undefined);
  }
}

const freezeInMs = (freezeAtMs: number | undefined, nowMs: number): number | undefined =>
  freezeAtMs === undefined ? undefined : Math.round(freezeAtMs - nowMs);
