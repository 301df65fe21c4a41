// In-place point-in-time recovery (pgwarden restore) as a plan: the ordered steps and, for each, what to do when it
// fails. Pure; cli/commands/restore.ts applies the steps one by one through the members' REST APIs.
//
// Why this order keeps the cluster safe:
// - Maintenance mode (pause) first: a paused agent starts, stops, promotes and demotes nothing on its own, so no agent
//   fights the restore (a stopped primary is not restarted, no replica races for a lock that looks idle).
// - The member that restores is the leader, and it holds the leader lock from start to end (a paused leader renews it
//   while its PostgreSQL is stopped and while the restore task runs). No other member can become primary, so there are
//   never two primaries, even if a step fails half way.
// - The replicas stop before the restore: nobody reads data from the future of the target while the leader recovers.
// - The `initialize` key stays: a pgBackRest restore keeps the system identifier it holds, and a key that stays set
//   is what keeps every agent from bootstrapping a new cluster while PostgreSQL is down everywhere.
// - The restored leader is promoted onto a new timeline; the replicas hold WAL of the abandoned future, so they are
//   re-cloned (reinitialize) from it, never rewound.
// - A full backup of the restored leader comes before the re-clones: a replica restored from an older backup replays
//   the archive, and until the new timeline's first segment is archived the archive holds only the old timeline's
//   copy of that segment, with the abandoned commits after the branch point: the replica would replay them (seen in
//   the integration test). pgBackRest's backup waits until its WAL is archived, and the re-clones start from it. It
//   also makes the new history recoverable at once: the older backups lead into the abandoned timelines.
// - Resume only once every member follows the new leader.
import { describeRestoreTarget, type RestoreTarget } from './restore-target.js';
import type { ClusterView } from './types.js';

export type RestoreStep =
  | { readonly kind: 'pause' }
  | { readonly kind: 'stop'; readonly member: string }
  | { readonly kind: 'restore'; readonly member: string; readonly target: RestoreTarget }
  | { readonly kind: 'reinit'; readonly member: string; readonly from: string }
  | { readonly kind: 'resume' }
  /** A full backup, on the leader (the replicas are stopped). */
  | { readonly kind: 'backup' };

export interface RestorePlan {
  readonly leader: string;
  readonly steps: readonly RestoreStep[];
}

/**
 * The steps of an in-place restore to `target`. A cluster the operator had already paused stays paused at the end
 * (no resume step). Refused without a leader: the member that restores must hold the lock throughout.
 */
export function planInPlaceRestore(view: ClusterView, target: RestoreTarget): RestorePlan | { readonly problem: string } {
  const leader = view.leader?.name;
  if (leader === undefined || !view.members.some((member) => member.name === leader))
    return {
      problem:
        'the cluster has no leader: the member that restores must hold the leader lock throughout (start the agents, or failover --candidate <member> first)',
    };
  const others = view.members
    .map((member) => member.name)
    .filter((name) => name !== leader)
    .sort();
  const wasPaused = view.config?.pause === true;
  return {
    leader,
    steps: [
      { kind: 'pause' },
      ...others.map((member): RestoreStep => ({ kind: 'stop', member })),
      { kind: 'restore', member: leader, target },
      { kind: 'backup' },
      ...others.map((member): RestoreStep => ({ kind: 'reinit', member, from: leader })),
      ...(wasPaused ? [] : [{ kind: 'resume' } as const]),
    ],
  };
}

/** One line for the progress output. */
export function describeRestoreStep(step: RestoreStep): string {
  switch (step.kind) {
    case 'pause':
      return 'pause the cluster (maintenance mode)';
    case 'stop':
      return `stop PostgreSQL on ${step.member}`;
    case 'restore':
      return `restore ${step.member} to ${describeRestoreTarget(step.target)} and promote it`;
    case 'reinit':
      return `re-clone ${step.member} from ${step.from}`;
    case 'resume':
      return 'resume the cluster';
    case 'backup':
      return 'take a full backup of the new timeline (on the leader)';
  }
}

/** What the operator does when `step` failed: where the cluster stands and how to go on. */
export function restoreFailureHint(plan: RestorePlan, step: RestoreStep): string {
  const reinits = plan.steps.filter((entry) => entry.kind === 'reinit').map((entry) => entry.member);
  const hasResume = plan.steps.some((entry) => entry.kind === 'resume');
  const reinit = reinits.length > 0 ? [`pgwarden reinit ${reinits.join(' ')} --wait`] : [];
  const resume = hasResume ? ['pgwarden resume'] : [];
  switch (step.kind) {
    case 'pause':
      return 'nothing was changed; check that the agents run (pgwarden list) and run pgwarden restore again';
    case 'stop':
      return `the cluster is paused and ${plan.leader} still runs as primary; fix ${step.member} (its agent log says why) and run pgwarden restore again, or leave everything as it was with pgwarden resume`;
    case 'restore':
      return `the cluster stays paused and ${plan.leader} keeps the leader lock, so no other member becomes primary; PostgreSQL on ${step.member} is stopped or recovering. Read ${step.member}'s agent log, fix the cause (e.g. a target before the oldest backup or past the archived WAL) and run pgwarden restore again`;
    case 'backup':
      return `${plan.leader} runs restored as primary and the replicas are stopped; re-clone them only from a backup of the new timeline: run ${['pgwarden backup --type full --from primary --wait', ...reinit, ...resume].join('; ')}`;
    case 'reinit':
      return `${plan.leader} runs restored as primary, with a new full backup; then run: ${[...reinit, ...resume].join('; ')}`;
    case 'resume':
      return `${plan.leader} runs restored and the replicas follow it; run pgwarden resume`;
  }
}

/**
 * Why the repository cannot reach `target`, checked before anything changes; undefined when it may. A time before the
 * oldest backup ended cannot be reached (pgBackRest would pick the newest backup and recovery would fail), nor a time
 * still in the future (recovery would run out of WAL before it). `backupStopsIso` are the valid backups' stop times.
 */
export function restoreTargetProblem(target: RestoreTarget, backupStopsIso: readonly string[], wallNowMs: number): string | undefined {
  if (backupStopsIso.length === 0)
    return 'the repository holds no backup to restore from: take one first (pgwarden backup --wait), then restore to a point after it';
  if (target.type !== 'time') return undefined;
  const targetMs = Date.parse(target.target.replace(' ', 'T').replace(/\+00$/, 'Z'));
  const oldestStopMs = Math.min(...backupStopsIso.map((stop) => Date.parse(stop)));
  if (targetMs < oldestStopMs)
    return `--target-time ${target.target} is before the oldest backup ended (${new Date(oldestStopMs).toISOString()}): no backup can be recovered to it`;
  if (targetMs > wallNowMs) return `--target-time ${target.target} is in the future: recovery would run out of WAL before reaching it`;
  return undefined;
}
