// `pgwarden upgrade --minor --bin-dir NEW`: preflight, then one step at a time as core/minor-upgrade.ts plans it from
// the members' live status, with the target kept in the DCS so that a re-run after an interruption continues.
import {
  describeStep,
  isUpgraded,
  nextUpgradeStep,
  preflight,
  versionText,
  type BinDirReport,
  type UpgradeBounds,
  type UpgradeMember,
  type UpgradeRecord,
  type UpgradeStep,
  type UpgradeTarget,
} from '../../core/minor-upgrade.js';
import { roleFromWire } from '../../core/patroni-wire.js';
import type { UpgradeLedger } from '../../core/ports.js';
import type { ClusterView, MemberRecord } from '../../core/types.js';
import { describeError, isPgwardenError, PgwardenError } from '../../util/errors.js';
import type { RestClient } from '../../util/rest-client.js';
import { callApi } from '../api-client.js';

export interface UpgradeContext {
  readonly scope: string;
  readonly rest: RestClient;
  readonly out: (text: string) => void;
  /** A fresh read of the cluster from the DCS. */
  readonly reload: () => Promise<ClusterView>;
  readonly ledger: UpgradeLedger;
  readonly sleep: (ms: number) => Promise<void>;
  readonly nowMs: () => number;
  readonly wallNow: () => Date;
}

export interface MinorUpgradeOptions {
  readonly binDir?: string | undefined;
  readonly bounds: UpgradeBounds;
  /** Forget the upgrade record (members already upgraded stay so). */
  readonly isAbort?: boolean;
  /** How long one step (a restart and the member streaming again, a switchover) may take. */
  readonly stepTimeoutMs?: number;
}

/** A restart replays WAL and reconnects; a few minutes covers a large shared_buffers and a busy primary. */
const DEFAULT_STEP_TIMEOUT_MS = 300_000;
/** How often a step's outcome is polled: a 3-member cluster answers GET /patroni in a few ms. */
const POLL_MS = 200;
const DCS_MS = 5000;
const STATUS_MS = 5000;

interface PatroniStatus {
  readonly state?: string;
  readonly role?: string;
  readonly server_version?: number;
  readonly bin_dir?: string;
  readonly replication_state?: string;
  readonly xlog?: { readonly location?: number; readonly replayed_location?: number };
}

async function statusOf(member: MemberRecord, rest: RestClient): Promise<PatroniStatus | undefined> {
  try {
    const reply = await callApi(member, 'GET', '/patroni', undefined, rest, STATUS_MS);
    return reply.status === 200 || reply.status === 503 ? (JSON.parse(reply.text) as PatroniStatus) : undefined;
  } catch (error) {
    if (isPgwardenError(error, 'PGW_API_AUTH')) throw error;
    return undefined;
  }
}

/** Every member as the plan needs it: its live GET /patroni (an unreachable member counts as not running). */
async function observe(context: UpgradeContext): Promise<{ view: ClusterView; members: UpgradeMember[] }> {
  const view = await context.reload();
  const statuses = await Promise.all(view.members.map(async (member) => [member, await statusOf(member, context.rest)] as const));
  const leaderName = view.leader?.name;
  const leaderStatus = statuses.find(([member]) => member.name === leaderName)?.[1];
  const leaderLsn = leaderStatus?.xlog?.location;
  const members = statuses.map(([member, status]): UpgradeMember => {
    const replayed = status?.xlog?.replayed_location;
    return {
      name: member.name,
      // Patroni 3's wire name for a primary is 'master' (core/patroni-wire.ts).
      isLeader: member.name === leaderName && roleFromWire(status?.role ?? '') === 'primary',
      isRunning: status?.state === 'running',
      isStreaming: status?.replication_state === 'streaming',
      binDir: status?.bin_dir,
      serverVersionNum: status?.server_version,
      lagBytes: leaderLsn !== undefined && replayed !== undefined ? Math.max(0, leaderLsn - replayed) : undefined,
      isNoFailover: member.tags?.nofailover === true,
    };
  });
  return { view, members };
}

function refused(message: string, context: UpgradeContext, extra: Record<string, unknown>, hint: string): PgwardenError {
  return new PgwardenError('PGW_UPGRADE_REFUSED', message, {
    context: { command: ['pgwarden', 'upgrade'], scope: context.scope, ...extra, hint },
  });
}

function failed(message: string, context: UpgradeContext, member: string | undefined, hint: string): PgwardenError {
  return new PgwardenError('PGW_UPGRADE_FAILED', message, {
    context: { command: ['pgwarden', 'upgrade'], scope: context.scope, ...(member !== undefined ? { member } : {}), hint },
  });
}

const RESUME_HINT = 'fix the cause, then run the same pgwarden upgrade again: it continues where it stopped';

async function post(
  context: UpgradeContext,
  member: MemberRecord,
  path: string,
  body: unknown,
  timeoutMs: number,
): Promise<{ status: number; text: string }> {
  try {
    return await callApi(member, 'POST', path, body, context.rest, timeoutMs);
  } catch (error) {
    if (isPgwardenError(error, 'PGW_API_AUTH')) throw error;
    return { status: 0, text: describeError(error) };
  }
}

/** The preflight: every member checks the new bin_dir (POST /bin_dir/check), then core/minor-upgrade.ts judges. */
async function runPreflight(
  binDir: string,
  options: MinorUpgradeOptions,
  context: UpgradeContext,
): Promise<{ target: UpgradeTarget; version: string }> {
  const { view, members } = await observe(context);
  const reports = new Map<string, BinDirReport | { error: string }>();
  await Promise.all(
    view.members.map(async (member) => {
      const reply = await post(context, member, '/bin_dir/check', { bin_dir: binDir }, 20_000);
      reports.set(
        member.name,
        reply.status === 200 ? (JSON.parse(reply.text) as BinDirReport) : { error: `${reply.status}: ${reply.text}` },
      );
    }),
  );
  const result = preflight({ members, reports, bounds: options.bounds });
  for (const member of members) {
    const report = reports.get(member.name);
    const found = report === undefined || 'error' in report ? 'unchecked' : (report.version_output ?? 'no version');
    context.out(
      `  ${member.name} (${member.isLeader ? 'leader' : 'replica'}): runs ${member.serverVersionNum === undefined ? '?' : versionText(member.serverVersionNum)} from ${member.binDir ?? '?'}${member.isLeader ? '' : `, lag ${member.lagBytes ?? '?'} bytes`}; new: ${found}`,
    );
  }
  if (result.problems.length > 0 || result.target === undefined) {
    for (const problem of result.problems) context.out(`  refused: ${problem}`);
    throw refused(
      `preflight refused the upgrade: ${result.problems.join('; ') || 'no member reported the new version'}`,
      context,
      { problems: result.problems },
      'nothing was changed: fix what is named above and run pgwarden upgrade again',
    );
  }
  return { target: { binDir, versionNum: result.target.versionNum }, version: result.target.text };
}

/** Polls until `isReached` holds for the observed members, or fails naming the step and what was seen last. */
async function waitFor(
  context: UpgradeContext,
  what: string,
  member: string | undefined,
  timeoutMs: number,
  isReached: (members: readonly UpgradeMember[], view: ClusterView) => boolean,
): Promise<void> {
  const deadline = context.nowMs() + timeoutMs;
  let last: UpgradeMember | undefined;
  for (;;) {
    const { view, members } = await observe(context);
    if (isReached(members, view)) return;
    last = members.find((candidate) => candidate.name === member);
    if (context.nowMs() > deadline)
      throw failed(
        `${what}: not reached within ${Math.round(timeoutMs / 1000)} s${last === undefined ? '' : ` (${member}: ${last.isRunning ? 'running' : 'not running'}, ${last.isStreaming ? 'streaming' : 'not streaming'}, version ${last.serverVersionNum ?? '?'}, bin_dir ${last.binDir ?? '?'})`}`,
        context,
        member,
        `look at the agent log of ${member ?? 'the members'}; ${RESUME_HINT}`,
      );
    await context.sleep(POLL_MS);
  }
}

async function setBinDir(context: UpgradeContext, view: ClusterView, name: string, binDir: string): Promise<void> {
  const member = view.members.find((candidate) => candidate.name === name);
  if (member === undefined) throw failed(`${name} is no longer a member`, context, name, RESUME_HINT);
  const reply = await post(context, member, '/bin_dir', { bin_dir: binDir }, 20_000);
  if (reply.status !== 200) throw failed(`${name} refused bin_dir ${binDir}: ${reply.status} ${reply.text}`, context, name, RESUME_HINT);
}

async function executeStep(
  step: UpgradeStep,
  target: UpgradeTarget,
  view: ClusterView,
  timeoutMs: number,
  context: UpgradeContext,
): Promise<void> {
  switch (step.kind) {
    case 'restart': {
      await setBinDir(context, view, step.member, target.binDir);
      const member = view.members.find((candidate) => candidate.name === step.member)!;
      const reply = await post(context, member, '/restart', {}, Math.min(timeoutMs, 180_000));
      if (reply.status !== 200)
        throw failed(`restart of ${step.member} failed: ${reply.status} ${reply.text}`, context, step.member, RESUME_HINT);
      const isLeader = view.leader?.name === step.member;
      await waitFor(
        context,
        `${step.member} running ${versionText(target.versionNum)}${isLeader ? '' : ' and streaming'}`,
        step.member,
        timeoutMs,
        (members) => {
          const now = members.find((candidate) => candidate.name === step.member);
          return now !== undefined && isUpgraded(now, target) && (now.isLeader || now.isStreaming);
        },
      );
      return;
    }
    case 'waitStreaming':
      await waitFor(context, `${step.member} streaming`, step.member, timeoutMs, (members) =>
        members.some((candidate) => candidate.name === step.member && candidate.isRunning && candidate.isStreaming),
      );
      return;
    case 'switchover': {
      // The old primary starts from the new binaries when it rejoins as a replica: no second restart for it.
      await setBinDir(context, view, step.from, target.binDir);
      const member = view.members.find((candidate) => candidate.name === step.from)!;
      const reply = await post(context, member, '/switchover', { leader: step.from, candidate: step.to }, 60_000);
      if (reply.status !== 200 && reply.status !== 202)
        throw failed(`switchover to ${step.to} refused: ${reply.status} ${reply.text}`, context, step.from, RESUME_HINT);
      await waitFor(context, `${step.to} primary`, step.to, timeoutMs, (members) =>
        members.some((candidate) => candidate.name === step.to && candidate.isLeader),
      );
      return;
    }
    case 'done':
    case 'blocked':
      return;
  }
}

const stamp = (context: UpgradeContext): string => context.wallNow().toISOString();

export async function minorUpgradeCommand(options: MinorUpgradeOptions, context: UpgradeContext): Promise<void> {
  const signal = (): AbortSignal => AbortSignal.timeout(DCS_MS);
  const found = await context.ledger.readUpgrade(signal());
  if (found?.record.kind === 'major')
    throw refused(
      `a major upgrade to PostgreSQL ${found.record.to} (${found.record.bin_dir}) is in progress since ${found.record.started}`,
      context,
      {},
      `run pgwarden upgrade --major --to ${found.record.to} --bin-dir ${found.record.bin_dir} to finish it (or --rollback before its point of no return)`,
    );
  const existing = found === undefined ? undefined : { record: found.record, revision: found.revision };
  if (options.isAbort === true) {
    if (existing === undefined) {
      context.out('No upgrade in progress');
      return;
    }
    await context.ledger.deleteUpgrade(signal());
    context.out(
      `Forgot the upgrade to ${existing.record.version} (${existing.record.bin_dir}); members already upgraded keep their bin_dir`,
    );
    return;
  }
  if (existing !== undefined && options.binDir !== undefined && existing.record.bin_dir !== options.binDir)
    throw refused(
      `an upgrade to ${existing.record.bin_dir} (${existing.record.version}) is in progress since ${existing.record.started}`,
      context,
      { bin_dir: options.binDir },
      `run pgwarden upgrade --minor --bin-dir ${existing.record.bin_dir} to finish it, or pgwarden upgrade --abort to forget it`,
    );
  const binDir = options.binDir ?? existing?.record.bin_dir;
  if (binDir === undefined)
    throw new PgwardenError('PGW_CLI_USAGE', 'upgrade --minor needs --bin-dir <directory of the new binaries>', {
      context: {
        command: ['pgwarden', 'upgrade'],
        flag: '--bin-dir',
        hint: 'e.g. pgwarden upgrade --minor --bin-dir /usr/lib/postgresql/15/bin',
      },
    });
  if (!binDir.startsWith('/'))
    throw new PgwardenError(
      'PGW_CLI_USAGE',
      `--bin-dir must be an absolute path (it is looked up on every member's host), got "${binDir}"`,
      {
        context: { command: ['pgwarden', 'upgrade'], flag: '--bin-dir', value: binDir, hint: 'e.g. --bin-dir /usr/lib/postgresql/15/bin' },
      },
    );
  if (existing !== undefined)
    context.out(
      `${stamp(context)} resuming the upgrade to PostgreSQL ${existing.record.version} from ${existing.record.bin_dir} (started ${existing.record.started}, ${existing.record.steps.length} step(s) done)`,
    );
  context.out(
    `${stamp(context)} preflight: ${binDir} on every member, replica lag <= ${options.bounds.maxLagBytes} bytes, transactions <= ${options.bounds.maxTransactionSeconds} s`,
  );
  const { target, version } = await runPreflight(binDir, options, context);
  if (existing !== undefined && existing.record.version_num !== target.versionNum)
    throw refused(
      `${binDir} now holds PostgreSQL ${version}, but the upgrade in progress is to ${existing.record.version}`,
      context,
      { bin_dir: binDir },
      'members may run different minors now: put the binaries back, or pgwarden upgrade --abort and start a new upgrade',
    );
  context.out(`${stamp(context)} preflight passed: upgrading to PostgreSQL ${version}`);
  let record: UpgradeRecord = existing?.record ?? {
    kind: 'minor',
    bin_dir: binDir,
    version,
    version_num: target.versionNum,
    started: stamp(context),
    steps: [],
  };
  let revision = existing?.revision ?? '0';
  const note = async (line: string): Promise<void> => {
    const next = { ...record, steps: [...record.steps, line] };
    if (!(await context.ledger.writeUpgrade(next, revision, signal())))
      throw failed(
        'the upgrade record in the DCS changed under this run (another pgwarden upgrade?)',
        context,
        undefined,
        'run only one pgwarden upgrade at a time; run it again to continue',
      );
    record = next;
    revision = (await context.ledger.readUpgrade(signal()))?.revision ?? revision;
  };
  if (existing === undefined) {
    if (!(await context.ledger.writeUpgrade(record, '0', signal())))
      throw refused('another pgwarden upgrade started meanwhile', context, {}, 'run pgwarden upgrade again to continue that one');
    revision = (await context.ledger.readUpgrade(signal()))?.revision ?? revision;
  }
  const timeoutMs = options.stepTimeoutMs ?? DEFAULT_STEP_TIMEOUT_MS;
  let previous: string | undefined;
  // Each member is restarted at most once and there is one switchover: more steps than this means a step does not take.
  for (let index = 1; index <= 64; index += 1) {
    const { view, members } = await observe(context);
    const step = nextUpgradeStep(members, target);
    const line = describeStep(step, target);
    if (step.kind === 'done') {
      await context.ledger.deleteUpgrade(signal());
      context.out(`${stamp(context)} done: ${members.map((member) => member.name).join(', ')} run PostgreSQL ${version} from ${binDir}`);
      return;
    }
    if (step.kind === 'blocked') throw failed(`upgrade ${line}`, context, undefined, RESUME_HINT);
    if (line === previous && step.kind !== 'waitStreaming')
      throw failed(`the step "${line}" did not take effect`, context, 'member' in step ? step.member : step.from, RESUME_HINT);
    previous = line;
    context.out(`${stamp(context)} step: ${line}`);
    const startedAtMs = context.nowMs();
    await executeStep(step, target, view, timeoutMs, context);
    const took = `${((context.nowMs() - startedAtMs) / 1000).toFixed(1)} s`;
    // Recorded before it is reported: a run interrupted after printing "ok" has the step in the DCS record.
    if (step.kind !== 'waitStreaming') await note(`${stamp(context)} ${line}`);
    context.out(`${stamp(context)} ok (${took}): ${line}`);
  }
  throw failed('the upgrade did not converge within 64 steps', context, undefined, RESUME_HINT);
}
