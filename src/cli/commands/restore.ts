// `pgwarden restore`: point-in-time recovery in place. The plan (core/restore-plan.ts) is applied step by step through
// the members' REST APIs, each step waited for and reported; a failed step stops the run with what to do next.
import {
  describeRestoreStep,
  restoreFailureHint,
  restoreTargetProblem,
  type RestorePlan,
  type RestoreStep,
} from '../../core/restore-plan.js';
import { planNewClusterRestore, type NewClusterMemberConfig, type NewClusterRestorePlan } from '../../core/restore-new-cluster.js';
import { describeRestoreTarget, type RestoreTarget } from '../../core/restore-target.js';
import type { ClusterView, MemberRecord } from '../../core/types.js';
import { describeError, isPgwardenError, PgwardenError } from '../../util/errors.js';
import { callApi, type ApiReply } from '../api-client.js';
import { backupCommand, fetchBackupRows } from './backup.js';
import type { ControlContext } from './control.js';

/** Applies one step and resolves with a short sentence of what it found or did; rejects with why it failed. */
export type RestoreStepRunner = (step: RestoreStep) => Promise<string>;

/**
 * Runs the plan's steps in order, printing `[n/N] ...` before and the outcome after each. The first failure stops the
 * run: the error names the step and says where the cluster stands and how to go on (restoreFailureHint).
 */
export async function applyRestorePlan(plan: RestorePlan, run: RestoreStepRunner, out: (text: string) => void): Promise<void> {
  const total = plan.steps.length;
  for (const [index, step] of plan.steps.entries()) {
    const label = `[${index + 1}/${total}] ${describeRestoreStep(step)}`;
    out(`${label} ...`);
    let detail: string;
    try {
      detail = await run(step);
    } catch (error) {
      out(`${label}: FAILED`);
      throw new PgwardenError(
        'PGW_CLI_PARTIAL_FAILURE',
        `restore stopped at step ${index + 1}/${total} (${describeRestoreStep(step)}): ${describeError(error)}`,
        {
          cause: error,
          context: {
            command: ['pgwarden', 'restore'],
            step: step.kind,
            ...('member' in step ? { member: step.member } : {}),
            hint: restoreFailureHint(plan, step),
          },
        },
      );
    }
    out(`${label}: ok (${detail})`);
  }
}

export interface RestoreRunOptions {
  /** How long the restore, each re-clone and the backup may take, seconds. */
  readonly timeoutS: number;
  readonly reload: () => Promise<ClusterView>;
  readonly sleep?: ((ms: number) => Promise<void>) | undefined;
  readonly nowMs?: (() => number) | undefined;
}

const errorText = (reply: ApiReply): string => `${reply.status} ${reply.text.trim()}`;

/** GET /patroni of a member, or undefined while it does not answer (its agent busy or restarting). */
async function statusOf(member: MemberRecord, context: ControlContext): Promise<Record<string, unknown> | undefined> {
  const reply = await callApi(member, 'GET', '/patroni', undefined, context.rest, 5000).catch((error: unknown) => {
    if (isPgwardenError(error, 'PGW_API_AUTH')) throw error;
    return undefined;
  });
  if (reply === undefined || reply.text === '') return undefined;
  try {
    return JSON.parse(reply.text) as Record<string, unknown>;
  } catch {
    return undefined;
  }
}

/**
 * The step runner of a real cluster: each step is a REST call on the member it names (the DCS for pause/resume through
 * any member), then a bounded wait until GET /patroni or the DCS shows the step done.
 */
export function restStepRunner(context: ControlContext, options: RestoreRunOptions): RestoreStepRunner {
  const sleep = options.sleep ?? ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)));
  const nowMs = options.nowMs ?? Date.now;
  const byName = (name: string): MemberRecord => {
    const member = context.view.members.find((candidate) => candidate.name === name);
    if (member === undefined) throw new Error(`${name} is no longer a member of the cluster`);
    return member;
  };
  /** Polls `check` once a second until it says done (a string) or the deadline passes. */
  const waitFor = async (what: string, timeoutMs: number, check: () => Promise<string | undefined>): Promise<string> => {
    const deadline = nowMs() + timeoutMs;
    for (;;) {
      const done = await check();
      if (done !== undefined) return done;
      if (nowMs() > deadline) throw new Error(`${what} did not happen within ${Math.round(timeoutMs / 1000)} s`);
      await sleep(1000);
    }
  };
  const setPause = async (isPause: boolean): Promise<string> => {
    const current = await options.reload();
    if ((current.config?.pause === true) !== isPause) {
      const leader = current.leader?.name;
      const ordered = [...current.members].sort((a, b) => Number(b.name === leader) - Number(a.name === leader));
      let answered: ApiReply | undefined;
      const problems: string[] = [];
      for (const member of ordered) {
        answered = await callApi(member, 'PATCH', '/config', { pause: isPause ? true : null }, context.rest, 10_000).catch(
          (error: unknown) => {
            problems.push(`${member.name}: ${describeError(error)}`);
            return undefined;
          },
        );
        if (answered !== undefined) break;
      }
      if (answered === undefined) throw new Error(`no member's REST API answered (${problems.join('; ')})`);
      if (answered.status !== 200) throw new Error(`PATCH /config answered ${errorText(answered)}`);
    }
    return waitFor(`every member ${isPause ? 'paused' : 'resumed'}`, 60_000, async () => {
      const view = await options.reload();
      return view.members.every((member) => (member.pause === true) === isPause)
        ? `${view.members.length} members ${isPause ? 'paused' : 'resumed'}`
        : undefined;
    });
  };
  /** The leader's timeline before the restore, then the new one it was promoted onto. */
  let leaderTimeline: number | undefined;
  return async (step) => {
    switch (step.kind) {
      case 'pause':
        return setPause(true);
      case 'resume':
        return setPause(false);
      case 'stop': {
        const member = byName(step.member);
        const reply = await callApi(member, 'POST', '/stop', {}, context.rest, 150_000);
        if (reply.status !== 200) throw new Error(`${member.name} answered POST /stop with ${errorText(reply)}`);
        return reply.text.trim();
      }
      case 'restore': {
        const member = byName(step.member);
        const before = await statusOf(member, context);
        const timelineBefore = typeof before?.timeline === 'number' ? before.timeline : undefined;
        const body = {
          type: step.target.type,
          ...(step.target.type !== 'immediate' ? { target: step.target.target } : {}),
          ...(step.target.timeline !== undefined ? { timeline: step.target.timeline } : {}),
        };
        const reply = await callApi(member, 'POST', '/restore', body, context.rest, 60_000);
        if (reply.status !== 202) throw new Error(`${member.name} answered POST /restore with ${errorText(reply)}`);
        return waitFor(`the restore on ${member.name}`, options.timeoutS * 1000, async () => {
          const status = await statusOf(member, context);
          if (status?.state === 'restore failed')
            throw new Error(`the restore on ${member.name} failed; its agent log (and PostgreSQL's log) says why`);
          const timeline = status?.timeline;
          const isNewTimeline = typeof timeline === 'number' && (timelineBefore === undefined || timeline > timelineBefore);
          if (status?.state === 'running' && status.role === 'master' && isNewTimeline) {
            leaderTimeline = timeline;
            return `${member.name} runs as primary on timeline ${timeline}`;
          }
          return undefined;
        });
      }
      case 'reinit': {
        const member = byName(step.member);
        const reply = await callApi(member, 'POST', '/reinitialize', { force: true }, context.rest, 60_000);
        if (reply.status !== 200) throw new Error(`${member.name} answered POST /reinitialize with ${errorText(reply)}`);
        return waitFor(`the re-clone of ${member.name}`, options.timeoutS * 1000, async () => {
          const status = await statusOf(member, context);
          const isOnNewTimeline = leaderTimeline === undefined || status?.timeline === leaderTimeline;
          return status?.state === 'running' && status.replication_state === 'streaming' && isOnNewTimeline
            ? `${member.name} streams from ${step.from} on timeline ${String(status.timeline)}`
            : undefined;
        });
      }
      case 'backup': {
        const lines: string[] = [];
        await backupCommand(
          { type: 'full', from: 'primary', wait: true, timeoutS: options.timeoutS, sleep },
          { ...context, view: await options.reload(), out: (line) => lines.push(line) },
        );
        return lines[lines.length - 1] ?? 'backup finished';
      }
    }
  };
}

/**
 * Checks that the repository can reach the target before anything changes: a member answers GET /backups (so the
 * backup: section is configured), it holds a backup, and a target time lies between the oldest backup and now.
 */
export async function checkRestorePossible(target: RestoreTarget, context: ControlContext, wallNowMs: number): Promise<void> {
  const { rows } = await fetchBackupRows(context);
  const stops = rows.filter((row) => !row.isError && row.stop !== undefined).map((row) => row.stop!);
  const problem = restoreTargetProblem(target, stops, wallNowMs);
  if (problem !== undefined)
    throw new PgwardenError('PGW_CLI_USAGE', `cannot restore to ${describeRestoreTarget(target)}: ${problem}`, {
      context: {
        command: ['pgwarden', 'restore'],
        scope: context.scope,
        hint: 'nothing was changed; pgwarden backup list shows the backups',
      },
    });
}

/** What `restore --scope` needs beyond the source cluster's ControlContext (config files and the new scope's DCS). */
export interface NewClusterRestoreDeps {
  readonly readMemberConfig: (path: string) => Promise<NewClusterMemberConfig>;
  readonly writeBootstrap: (path: string, bootstrap: NewClusterRestorePlan['bootstrap']) => Promise<void>;
  /** The DCS view of the scope a config file names. */
  readonly loadView: (path: string) => Promise<ClusterView>;
  /** Asks for the new cluster's name and "Yes I am aware"; rejects on a wrong answer. */
  readonly confirm: (plan: NewClusterRestorePlan) => Promise<void>;
  readonly out: (text: string) => void;
  readonly sleep?: ((ms: number) => Promise<void>) | undefined;
  readonly nowMs?: (() => number) | undefined;
}

export interface NewClusterRestoreOptions {
  readonly newScope: string;
  readonly sourceConfigPath: string;
  readonly memberConfigs: readonly string[];
  /** Wait until the agents (started by the operator) made the new cluster healthy. */
  readonly wait: boolean;
  readonly timeoutS: number;
}

/** The new cluster runs: a leader on a running primary, every member of `names` running, the others as replicas. */
function newClusterState(view: ClusterView, names: readonly string[]): { readonly isHealthy: boolean; readonly text: string } {
  const leader = view.leader?.name;
  const states = names.map((name) => {
    const member = view.members.find((candidate) => candidate.name === name);
    return member === undefined
      ? `${name}: no key`
      : `${name}: ${member.role} ${member.state}${member.replication_state ? ` (${member.replication_state})` : ''}`;
  });
  const isHealthy =
    leader !== undefined &&
    names.every((name) => {
      const member = view.members.find((candidate) => candidate.name === name);
      if (member?.state !== 'running') return false;
      return name === leader ? ['master', 'primary'].includes(member.role) : member.replication_state === 'streaming';
    });
  return { isHealthy, text: `leader ${leader ?? 'none'}; ${states.join('; ')}` };
}

/**
 * `pgwarden restore --scope NEW`: checks the source's repository reaches the target and every member config of the new
 * cluster (core/restore-new-cluster.ts), prints the plan, asks for the new cluster's name, writes the pgBackRest
 * bootstrap into the member configs, and with `wait` follows the new cluster until it is healthy. The source cluster
 * is only read (its DCS keys and GET /backups).
 */
export async function restoreIntoNewCluster(
  target: RestoreTarget,
  options: NewClusterRestoreOptions,
  context: ControlContext,
  deps: NewClusterRestoreDeps,
): Promise<void> {
  const command = ['pgwarden', 'restore', '--scope', options.newScope];
  await checkRestorePossible(target, context, Date.now());
  const source = await deps.readMemberConfig(options.sourceConfigPath);
  const members = await Promise.all(options.memberConfigs.map((path) => deps.readMemberConfig(path)));
  const newView = options.memberConfigs.length > 0 ? await deps.loadView(options.memberConfigs[0]!) : undefined;
  const plan = planNewClusterRestore({
    sourceScope: context.scope,
    sourceBackup: source.backup,
    newScope: options.newScope,
    members,
    newView: newView ?? { ...context.view, initialize: undefined, leader: undefined, members: [] },
    target,
  });
  if ('problems' in plan)
    throw new PgwardenError('PGW_CLI_USAGE', `cannot restore into a new cluster ${options.newScope}: ${plan.problems.join('; ')}`, {
      context: {
        command,
        scope: context.scope,
        problems: plan.problems,
        hint: 'nothing was changed; fix the member config files and run it again',
      },
    });
  deps.out(`Restore of cluster ${context.scope} to ${describeRestoreTarget(target)} into a new cluster ${options.newScope}:`);
  plan.steps.forEach((step, index) => deps.out(`  ${index + 1}. ${step}`));
  await deps.confirm(plan);
  for (const path of options.memberConfigs) await deps.writeBootstrap(path, plan.bootstrap);
  deps.out(`Wrote the restore bootstrap into ${options.memberConfigs.join(', ')}.`);
  const names = members.map((member) => member.name);
  if (!options.wait) {
    deps.out(
      `Start the agents of ${options.newScope} now (e.g. pgwarden agent ${options.memberConfigs[0]!}); pgwarden -c ${options.memberConfigs[0]!} list follows them.`,
    );
    return;
  }
  deps.out(`Waiting up to ${options.timeoutS} s for ${names.join(', ')} to run as cluster ${options.newScope}: start their agents now.`);
  const sleep = deps.sleep ?? ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)));
  const nowMs = deps.nowMs ?? Date.now;
  const deadline = nowMs() + options.timeoutS * 1000;
  let last = 'not read yet';
  for (;;) {
    const view = await deps.loadView(options.memberConfigs[0]!).catch((error: unknown) => {
      last = `the DCS did not answer: ${describeError(error)}`;
      return undefined;
    });
    if (view !== undefined) {
      const state = newClusterState(view, names);
      last = state.text;
      if (state.isHealthy) break;
    }
    if (nowMs() > deadline)
      throw new PgwardenError(
        'PGW_CLI_PARTIAL_FAILURE',
        `cluster ${options.newScope} was not healthy within ${options.timeoutS} s (${last})`,
        {
          context: {
            command,
            scope: options.newScope,
            hint: `the bootstrap is written; check that the agents of ${options.newScope} run and read their logs (the first member's says how the restore went)`,
          },
        },
      );
    await sleep(1000);
  }
  deps.out(
    `Success: cluster ${options.newScope} restored from ${context.scope} to ${describeRestoreTarget(target)} (${last}); ${context.scope} was not touched`,
  );
}
