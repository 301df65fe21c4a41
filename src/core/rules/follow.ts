// Another member holds the lock: stream from it, rewinding or re-cloning a diverged data dir first.
import { decision, type DecisionContext, type Rule } from '../context.js';
import { silentLeaderVerdict } from '../silent-leader.js';
import { cascadeSourceOf } from '../slot-plan.js';
import { slotActions } from './slots.js';
import { isBackingOff } from './task.js';

/** A replica that cannot stream from the leader this long (several loops, at least 5 s) is checked with pg_rewind. */
function notStreamingLimitMs(loopWaitMs: number): number {
  return Math.max(5000, 3 * loopWaitMs);
}

/** Long enough that a replica which merely lost its connection for a while is never mistaken for a stuck one. */
export const STUCK_REPLAY_LIMIT_MS = 30_000;

/** The member this replica streams from: its cascade source (replicatefrom) or the leader. */
export function upstreamToFollow(context: DecisionContext): string | undefined {
  const { view, name, obs } = context;
  const leader = context.leaderName;
  return (view === undefined ? undefined : cascadeSourceOf(view, name, obs.self.tags, leader)) ?? leader;
}

export const followRule: Rule = (context) => {
  const { obs, view, name, mem } = context;
  const leader = context.leaderName;
  if (view === undefined || leader === undefined || leader === name) return undefined;
  const pg = obs.pg;

  const silent = silentLeaderVerdict(obs, view.leader);
  if (silent !== undefined && view.leader !== undefined) {
    return decision(
      context,
      `leader ${leader} is silent: no heartbeat for ${Math.round(silent.silentForMs)} ms (its fence stops writes after ${silent.fenceMs} ms) while etcd answers: removing its lock`,
      [{ kind: 'deleteSilentLeader', leader: view.leader, heartbeatRevision: silent.heartbeatRevision }],
      { wakeAfterMs: 0 },
    );
  }

  const probe = obs.leaderProbe;
  if (
    probe !== undefined &&
    probe.leader.name === leader &&
    probe.leader.modRevision === view.leader?.modRevision &&
    probe.isApiRefused &&
    probe.isPgRefused
  ) {
    // Safe because the delete compares the key's mod revision: if the old leader's agent came back and rewrote the
    // key (which it must do before starting PostgreSQL as primary), the delete fails and nothing happens.
    return decision(
      context,
      `leader ${leader} is gone (its API and PostgreSQL refuse connections): removing its stale lock`,
      [{ kind: 'deleteStaleLeader', leader: probe.leader }],
      { wakeAfterMs: 0 },
    );
  }

  if (context.leaderMember === undefined) return decision(context, `waiting for leader ${leader} to publish its member key`, []);
  const upstream = upstreamToFollow(context) ?? leader;
  if (pg.isRunning && pg.role === 'replica') {
    if (pg.upstream !== upstream)
      return decision(
        context,
        upstream === leader
          ? `changing primary_conninfo to follow new leader (${leader})`
          : `changing primary_conninfo to replicate from member ${upstream} (replicatefrom)`,
        [{ kind: 'followLeader', upstream }],
        { memory: { notStreamingSinceMs: undefined } },
      );
    if (obs.self.tags.nostream === true)
      // No WAL receiver by design: recovery reads the archive (restore_command) and pg_wal, and follows a new
      // timeline from the history file the new primary archives; no slot copies either, as in Patroni. A stopped
      // former primary is rewound before it starts (below); a running one is never nostream's concern.
      return decision(
        context,
        `no action. I am (${name}), a secondary, and following a leader (${leader}) from the WAL archive (nostream)`,
        [],
        {
          memory: { notStreamingSinceMs: undefined },
        },
      );
    if (pg.isStreaming) {
      const slots = obs.task.kind === 'running' ? [] : slotActions(context, false);
      const copy = slots.find((action) => action.kind === 'copyLogicalSlots');
      const reason =
        copy !== undefined
          ? `copying logical slots ${copy.slots.join(',')} from the leader (${leader}): restarting`
          : `no action. I am (${name}), a secondary, and following a leader (${leader})`;
      return decision(context, reason, slots, { memory: { notStreamingSinceMs: undefined, rewindFailedFor: undefined } });
    }
    if (pg.isHistoryDivergent === true && !isBackingOff(context)) {
      // Same timeline ID, different history: pg_rewind would report "no rewind required"; only a re-clone helps.
      return decision(
        context,
        `my timeline ${pg.timeline ?? '?'} history differs from the leader's (a promotion cut short): reinitializing from ${leader}`,
        [{ kind: 'reinitialize', from: leader }],
        { memory: { notStreamingSinceMs: undefined } },
      );
    }
    const since = mem.notStreamingSinceMs ?? obs.nowMs;
    const leaderTimeline = context.leaderMember.timeline;
    // Behind, or on a timeline the leader never had (a short-lived promotion elsewhere): both need a rewind.
    const isBehindTimeline = leaderTimeline !== undefined && pg.timeline !== undefined && pg.timeline !== leaderTimeline;
    // A failed pg_rewind means this data dir cannot follow the leader as it is: re-clone rather than wait forever.
    const hasFailedRewind = mem.rewindFailedFor === leader;
    if (
      (isBehindTimeline || hasFailedRewind) &&
      obs.nowMs - since >= notStreamingLimitMs(obs.timing.loopWaitMs) &&
      !isBackingOff(context)
    ) {
      // Not streaming and on an older timeline: probably diverged (a former primary). pg_rewind fixes it or says there is nothing to do.
      const action =
        obs.useRewind && mem.rewindFailedFor !== leader
          ? ({ kind: 'rewind', from: leader } as const)
          : ({ kind: 'reinitialize', from: leader } as const);
      return decision(
        context,
        `replica cannot stream from ${leader} on timeline ${leaderTimeline}: ${action.kind === 'rewind' ? 'rewinding' : 'reinitializing'}`,
        [action],
        { memory: { notStreamingSinceMs: undefined } },
      );
    }
    // WAL it received but cannot replay, with no WAL receiver for this long, while the leader answers with the same
    // history: two members promoted to the same timeline ID at the same LSN (a switchover target killed right after
    // promoting) and their WAL parted there. pg_rewind sees "same timeline"; only a re-clone helps. Never while the
    // leader is unreachable (isHistoryDivergent is false only after reading the leader's history file).
    const isReplayStuck = pg.receivedLsn !== undefined && pg.replayedLsn !== undefined && pg.receivedLsn > pg.replayedLsn;
    if (
      !isBehindTimeline &&
      isReplayStuck &&
      pg.isHistoryDivergent === false &&
      obs.nowMs - since >= Math.max(STUCK_REPLAY_LIMIT_MS, notStreamingLimitMs(obs.timing.loopWaitMs)) &&
      !isBackingOff(context)
    ) {
      return decision(
        context,
        `replica cannot replay WAL it received from ${leader} on timeline ${leaderTimeline} (its WAL parted from the leader's at the same timeline ID): reinitializing`,
        [{ kind: 'reinitialize', from: leader }],
        { memory: { notStreamingSinceMs: undefined } },
      );
    }
    return decision(context, `no action. I am (${name}), a secondary, waiting to stream from the leader (${leader})`, [], {
      memory: { notStreamingSinceMs: since },
    });
  }
  if (pg.isRunning || obs.task.kind === 'running') return undefined;
  if (isBackingOff(context)) return decision(context, 'waiting before retrying to start PostgreSQL', []);
  if (pg.role === 'primary') {
    // A former primary may hold WAL the new leader never got: it must not stream until its history is rewound.
    if (obs.useRewind && mem.rewindFailedFor !== leader)
      return decision(context, `rewinding former primary to follow the leader (${leader})`, [{ kind: 'rewind', from: leader }]);
    return decision(context, `reinitializing former primary from the leader (${leader})`, [{ kind: 'reinitialize', from: leader }]);
  }
  if (mem.rewindFailedFor === leader) {
    // pg_rewind could not read this data dir's WAL (e.g. a record torn by SIGKILL): starting it would only wait forever.
    return decision(context, `reinitializing from the leader (${leader}) after pg_rewind failed`, [{ kind: 'reinitialize', from: leader }]);
  }
  if (upstream !== leader)
    return decision(context, `starting as a secondary replicating from member ${upstream} (replicatefrom)`, [
      { kind: 'startReplica', upstream },
    ]);
  return decision(context, `starting as a secondary following the leader (${leader})`, [{ kind: 'startReplica', upstream: leader }]);
};
