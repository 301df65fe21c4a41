// The silent-leader detector's judgement: when a replica may remove the lock of a leader that stopped beating.
import { isFailsafeRecordFresh } from './rules/failsafe.js';
import type { LeaderRecord, LeaderSilence, Observation, SilenceDetection } from './types.js';

export interface SilentLeaderVerdict {
  readonly heartbeatRevision: string;
  readonly silentForMs: number;
  readonly fenceMs: number;
}

/**
 * `beating`: nothing to do yet. `confirming`: the beat is old enough that the replica should read the heartbeat from
 * etcd now and then (agent/leader-silence.ts), to learn whether etcd answers and the beat stays the same. `silent`: the
 * leader's PostgreSQL acknowledges nothing any more, and etcd has been answering while no beat came.
 */
export type SilencePhase = 'beating' | 'confirming' | 'silent';

/**
 * Safety: the leader's fence freezes its PostgreSQL `fenceMs` after *sending* the last beat etcd acknowledged. We saw
 * that beat after etcd committed it, so after the send: `fenceMs + margin` after seeing it, on our own clock, that
 * PostgreSQL acknowledges nothing. The delete compares the beat's revision, so a beat written since makes it fail, and a
 * beat written after the delete fails (the key is gone), so the leader's fence is never moved by it.
 *
 * Liveness (no failover for an etcd election or stall): etcd must also have answered *us* promptly, with the same beat,
 * for `confirmMs` (four beat intervals, inside the window), starting at least one interval after the beat. While etcd answers, a live
 * leader beats within one interval.
 */
export function silencePhase(evidence: LeaderSilence, settings: SilenceDetection, nowMs: number): SilencePhase {
  const { beat, seenAtMs, confirmedSinceMs, lastConfirmedAtMs } = evidence;
  if (beat.fenceMs <= 0) return 'beating';
  const silentAfterMs = seenAtMs + beat.fenceMs + settings.marginMs;
  if (nowMs < silentAfterMs - settings.confirmMs) return 'beating';
  const isConfirmed =
    confirmedSinceMs !== undefined &&
    lastConfirmedAtMs !== undefined &&
    confirmedSinceMs >= seenAtMs + settings.intervalMs &&
    nowMs - confirmedSinceMs >= settings.confirmMs &&
    nowMs - lastConfirmedAtMs <= 2 * settings.intervalMs;
  return nowMs >= silentAfterMs && isConfirmed ? 'silent' : 'confirming';
}

/** When a beating leader's beat is old enough to start confirming (agent clock). */
export function confirmingFromMs(evidence: LeaderSilence, settings: SilenceDetection): number {
  return evidence.seenAtMs + evidence.beat.fenceMs + settings.marginMs - settings.confirmMs;
}

/**
 * Whether `beat` was written by the holder of this very leader key (after the key was created): a beat of an earlier
 * term of the same member says nothing about this one, whose fence may not be armed with it.
 */
export function isBeatOfTerm(beat: LeaderSilence['beat'], leader: LeaderRecord): boolean {
  if (beat.leader !== leader.name) return false;
  try {
    return BigInt(beat.modRevision) > BigInt(leader.createRevision ?? leader.modRevision);
  } catch {
    return false;
  }
}

export function silentLeaderVerdict(obs: Observation, leader: LeaderRecord | undefined): SilentLeaderVerdict | undefined {
  const settings = obs.timing.silence;
  const evidence = obs.leaderSilence;
  if (settings === undefined || evidence === undefined || leader === undefined || obs.isPaused) return undefined;
  if (!isBeatOfTerm(evidence.beat, leader) || silencePhase(evidence, settings, obs.nowMs) !== 'silent') return undefined;
  // failsafe_mode: this member confirmed that leader runs without the DCS; its beats stopped because etcd did, and the
  // leader keeps its primary on our confirmation, not on its fence window.
  const record = obs.failsafe?.record;
  if (isFailsafeRecordFresh(record, obs.nowMs) && record.leader === leader.name) return undefined;
  return { heartbeatRevision: evidence.beat.modRevision, silentForMs: obs.nowMs - evidence.seenAtMs, fenceMs: evidence.beat.fenceMs };
}
