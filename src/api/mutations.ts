// Unsafe REST endpoints (switchover, failover, config): validate like Patroni, then only write DCS intents.
import { roleFromWire } from '../core/patroni-wire.js';
import { parseTargetTimeline, restoreTargetOf, type RestoreTarget } from '../core/restore-target.js';
import { checkDynamicConfig, mergeConfigPatch } from '../core/dynamic-config-rules.js';
import type { AgentSnapshot } from '../agent/snapshot.js';
import { isViableCandidate } from '../core/failover-intent.js';
import type { Dcs } from '../core/ports.js';
import type { ClusterView, DynamicConfig, FailoverIntent, MemberRecord, PeerStatus } from '../core/types.js';
import { describeError } from '../util/errors.js';
import { REDACTED, redactedPath, redactSecrets } from '../util/redact.js';
import { parsePatroniInt } from '../util/patroni-int.js';
import type { ApiResponse } from './routes.js';

export interface MutationContext {
  readonly snapshot: AgentSnapshot;
  /** Live `/patroni` of a member (Patroni checks candidates this way, not from possibly stale member keys). */
  readonly fetchPeerStatus?: ((member: MemberRecord) => Promise<PeerStatus>) | undefined;
  readonly dcs: Pick<Dcs, 'loadCluster' | 'setFailover' | 'setConfig'>;
  readonly wallNowMs: () => number;
  readonly sleep: (ms: number) => Promise<void>;
  /** Wakes the local HA loop after a change it should act on. */
  readonly nudge: () => void;
}

const text = (status: number, body: string): ApiResponse => ({ status, body, contentType: 'text/plain' });
const json = (status: number, value: unknown): ApiResponse => ({
  status,
  body: JSON.stringify(redactSecrets(value)),
  contentType: 'application/json',
});
const DCS_BUDGET_MS = 5000;
const isObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);

async function load(context: MutationContext): Promise<ClusterView | ApiResponse> {
  try {
    return await context.dcs.loadCluster(AbortSignal.timeout(DCS_BUDGET_MS));
  } catch (error) {
    return text(503, `DCS is not accessible: ${describeError(error)}`);
  }
}

/**
 * Parses a schedule (`scheduled_at` of a switchover, `schedule` of a restart) as Patroni does: a timestamp with a mandatory
 * time zone, not in the past. Patroni's sentences, prefixed with the parameter at fault and followed by the value given.
 */
function parseSchedule(parameter: string, action: string, value: unknown, nowMs: number): { at: string } | ApiResponse {
  const given = JSON.stringify(value);
  const unparsable = text(
    422,
    `${parameter}: Unable to parse scheduled timestamp ${given}. It should be in an unambiguous format, e.g. ISO 8601 (2026-01-31T10:00:00+00:00)`,
  );
  if (typeof value !== 'string') return unparsable;
  const at = Date.parse(value);
  if (!Number.isFinite(at)) return unparsable;
  if (!/\d:\d{2}(:\d{2}(\.\d+)?)?\s*(Z|UTC|GMT|[+-]\d{2}(:?\d{2})?)$/i.test(value.trim()))
    return text(400, `${parameter}: Timezone information is mandatory for the scheduled ${action} (got ${given}; add Z or +00:00)`);
  if (at < nowMs)
    return text(422, `${parameter}: Cannot schedule ${action} in the past (got ${given}, now is ${new Date(nowMs).toISOString()})`);
  return { at: new Date(at).toISOString() };
}

const SWITCHOVER_PARAMETERS = ['leader', 'candidate', 'member', 'scheduled_at'];

/** A member name parameter: absent (undefined, null or ""), a name, or an error naming the parameter. */
function memberName(body: Record<string, unknown>, parameter: string): { name: string | undefined } | ApiResponse {
  const value = body[parameter];
  if (value === undefined || value === null || value === '') return { name: undefined };
  if (typeof value !== 'string') return text(400, `${parameter} should be a member name (a string), got ${JSON.stringify(value)}`);
  return { name: value };
}

export async function handleSwitchover(kind: 'switchover' | 'failover', body: unknown, context: MutationContext): Promise<ApiResponse> {
  const title = kind === 'failover' ? 'Failover' : 'Switchover';
  if (!isObject(body))
    return text(
      400,
      `the ${kind} request body must be a JSON object with ${SWITCHOVER_PARAMETERS.join(', ')}; got ${JSON.stringify(body)}`,
    );
  const leaderName = memberName(body, 'leader');
  if ('status' in leaderName) return leaderName;
  const candidateName = memberName(body, 'candidate');
  if ('status' in candidateName) return candidateName;
  const memberParameter = memberName(body, 'member');
  if ('status' in memberParameter) return memberParameter;
  const leader = leaderName.name;
  if (candidateName.name !== undefined && memberParameter.name !== undefined && candidateName.name !== memberParameter.name)
    return text(
      400,
      `candidate and member name the target differently (${JSON.stringify(candidateName.name)} and ${JSON.stringify(memberParameter.name)}); give one of them`,
    );
  const candidateParameter = candidateName.name !== undefined ? 'candidate' : 'member';
  const candidate = candidateName.name ?? memberParameter.name;
  // Patroni treats a failover that names the current leader as a switchover.
  const action = kind === 'failover' && leader !== undefined ? 'switchover' : kind;
  if (action === 'failover' && candidate === undefined) return text(400, 'Failover could be performed only to a specific candidate');
  if (action === 'switchover' && leader === undefined) return text(400, `${title} could be performed only from a specific leader`);
  // Patroni ignores unknown keys; its acceptance test expects the missing-candidate answer for {"foo": "bar"}, so the
  // check comes after that one. A request that would otherwise run is refused rather than run without a mistyped key.
  for (const key of Object.keys(body))
    if (!SWITCHOVER_PARAMETERS.includes(key))
      return text(400, `Unknown parameter for the ${kind}: ${key} (known: ${SWITCHOVER_PARAMETERS.join(', ')})`);
  let scheduledAt: string | undefined;
  if (body.scheduled_at !== undefined && body.scheduled_at !== null) {
    if (action === 'failover')
      return text(400, "scheduled_at: Failover can't be scheduled; only a switchover from a specific leader (leader) can");
    if (context.snapshot.isPaused) return text(400, `scheduled_at: Can't schedule ${action} in the paused state`);
    const parsed = parseSchedule('scheduled_at', action, body.scheduled_at, context.wallNowMs());
    if ('status' in parsed) return parsed;
    scheduledAt = parsed.at;
  }
  if (context.snapshot.isPaused && candidate === undefined)
    return text(400, `${title} is possible only to a specific candidate in a paused state`);
  if (leader !== undefined && leader === candidate)
    return text(400, `Switchover target and source are the same: leader and ${candidateParameter} both name ${JSON.stringify(leader)}`);

  const view = await load(context);
  if ('status' in view) return view;
  if (leader !== undefined && view.leader?.name !== leader)
    return text(
      412,
      `leader name does not match: leader ${JSON.stringify(leader)} is not the leader (${view.leader === undefined ? 'the cluster has no leader' : `the leader is ${JSON.stringify(view.leader.name)}`})`,
    );
  if (candidate !== undefined && !view.members.some((member) => member.name === candidate))
    return text(
      412,
      `candidate does not exists: ${candidateParameter} ${JSON.stringify(candidate)} is not a member of the cluster (members: ${view.members.map((member) => member.name).join(', ')})`,
    );
  const others = view.members.filter((member) => member.name !== view.leader?.name);
  if (others.length === 0) return text(412, `${action} is not possible: cluster does not have members except leader`);
  const maximumLag = Number(view.config?.maximum_lag_on_failover ?? 1048576);
  const named = others.filter(
    (member) => (candidate === undefined || member.name === candidate) && isViableCandidate(member, undefined, maximumLag),
  );
  const good = await liveCandidates(named, view, maximumLag, context);
  if (good.length === 0) return text(412, `${action} is not possible: no good candidates have been found`);

  const intent: FailoverIntent = {
    ...(leader !== undefined ? { leader } : {}),
    ...(candidate !== undefined ? { member: candidate } : {}),
    ...(scheduledAt !== undefined ? { scheduled_at: scheduledAt } : {}),
  };
  try {
    if (!(await context.dcs.setFailover(intent, view.failoverRevision ?? '0', AbortSignal.timeout(DCS_BUDGET_MS))))
      return text(409, 'another switchover or failover was requested concurrently; try again');
  } catch {
    return text(503, 'failed to write failover key into DCS');
  }
  context.nudge();
  if (scheduledAt !== undefined) return text(202, `${action === 'switchover' ? 'Switchover' : 'Failover'} scheduled`);
  return waitForOutcome(action, view, candidate, context);
}

/** Keeps the members whose live status is a running replica within maximum_lag_on_failover of the leader. */
async function liveCandidates(
  members: readonly MemberRecord[],
  view: ClusterView,
  maximumLag: number,
  context: MutationContext,
): Promise<MemberRecord[]> {
  const fetchStatus = context.fetchPeerStatus;
  if (fetchStatus === undefined) return [...members];
  const isSelfLeader = context.snapshot.name === view.leader?.name && context.snapshot.pg.writeLsn !== undefined;
  const leaderLsn = isSelfLeader
    ? Number(context.snapshot.pg.writeLsn)
    : (view.members.find((member) => member.name === view.leader?.name)?.xlog_location ?? view.optime);
  const statuses = await Promise.all(members.map(async (member) => ({ member, status: await fetchStatus(member) })));
  return statuses
    .filter(
      ({ status }) =>
        status.isReachable &&
        status.isRunning &&
        status.walPosition !== undefined &&
        (leaderLsn === undefined || leaderLsn - Number(status.walPosition) <= maximumLag),
    )
    .map(({ member }) => member);
}

/** Polls the DCS until the leader changes (Patroni waits 2*max(10, loop_wait) seconds). */
async function waitForOutcome(
  action: 'switchover' | 'failover',
  before: ClusterView,
  candidate: string | undefined,
  context: MutationContext,
): Promise<ApiResponse> {
  const loopWaitS = Number(before.config?.loop_wait ?? 10);
  const limitMs = 2 * Math.max(10, loopWaitS) * 1000;
  const startedAt = context.wallNowMs();
  const verb = action === 'switchover' ? 'switched over' : 'failed over';
  while (context.wallNowMs() - startedAt < limitMs) {
    await context.sleep(100);
    const view = await load(context);
    if ('status' in view) continue;
    const leader = view.leader?.name;
    if (leader !== undefined && leader !== before.leader?.name) {
      if (candidate === undefined || leader === candidate) return text(200, `Successfully ${verb} to "${leader}"`);
      return text(200, `${action === 'switchover' ? 'Switched over' : 'Failed over'} to "${leader}" instead of "${candidate}"`);
    }
    if (view.failover === undefined && leader === before.leader?.name)
      return text(503, `${action === 'switchover' ? 'Switchover' : 'Failover'} failed`);
  }
  return text(
    503,
    `${action === 'switchover' ? 'Switchover' : 'Failover'} status unknown after ${Math.round(limitMs / 1000)} seconds; operation may still be in progress`,
  );
}

export async function handleDeleteSwitchover(context: MutationContext): Promise<ApiResponse> {
  const view = await load(context);
  if ('status' in view) return view;
  if (view.failover?.scheduled_at === undefined) return text(404, 'no switchover is scheduled');
  try {
    if (!(await context.dcs.setFailover(undefined, view.failoverRevision, AbortSignal.timeout(DCS_BUDGET_MS))))
      return text(409, 'the scheduled switchover changed concurrently; try again');
  } catch {
    return text(503, 'failed to delete the failover key in DCS');
  }
  return text(200, 'scheduled switchover deleted');
}

export { mergeConfigPatch };

export async function handleConfigWrite(method: 'PATCH' | 'PUT', body: unknown, context: MutationContext): Promise<ApiResponse> {
  if (!isObject(body) || Object.keys(body).length === 0) return text(400, 'the request body must be a non-empty JSON object');
  const placeholder = redactedPath(body);
  if (placeholder !== undefined)
    return text(
      400,
      `invalid configuration: ${placeholder} holds the placeholder ${REDACTED} that GET /config and show-config show instead of a secret; send the real value, or leave the key out of a PATCH`,
    );
  const view = await load(context);
  if ('status' in view) return view;
  if (method === 'PATCH' && view.config === undefined) return text(503, 'no configuration in the DCS yet: the cluster is not initialized');
  const next = method === 'PATCH' ? mergeConfigPatch(view.config as Record<string, unknown>, body) : body;
  // The same rules as the config file's bootstrap.dcs and edit-config: nothing invalid reaches the DCS.
  const problems = checkDynamicConfig(next);
  if (problems.length > 0) return text(400, `invalid configuration: ${problems.join('; ')}`);
  try {
    const isWritten = await context.dcs.setConfig(
      next as DynamicConfig,
      method === 'PATCH' ? view.configRevision : undefined,
      AbortSignal.timeout(DCS_BUDGET_MS),
    );
    if (!isWritten) return text(409, 'the configuration changed concurrently; re-read it and try again');
  } catch {
    return text(502, 'failed to write the configuration into DCS');
  }
  context.nudge();
  return json(200, next);
}

export type CommandRunner = (
  kind: 'restart' | 'reinitialize' | 'stop' | 'restore',
  timeoutMs: number,
  target?: RestoreTarget,
) => Promise<{ readonly isOk: boolean; readonly message: string }>;

const RESTART_FILTERS = ['schedule', 'restart_pending', 'role', 'postgres_version', 'timeout'];

/** Patroni's postgres_version_to_int: `9.6.24` -> 90624, `15.4` -> 150004; the sentence of its error otherwise. */
export function postgresVersionNumber(version: string): number | string {
  const parts = version.split('.').map((part) => (/^\s*[-+]?\d+\s*$/.test(part) ? Number(part) : Number.NaN));
  if (parts.some((part) => Number.isNaN(part))) return `Invalid PostgreSQL version: ${version}`;
  const [major = 0, minor = 0, patch = 0] = parts;
  if (parts.length < 2 || (parts.length === 2 && major < 10) || parts.length > 3)
    return `Invalid PostgreSQL version format: X.Y or X.Y.Z is accepted: ${version}`;
  return parts.length === 2 ? major * 10000 + minor : major * 10000 + minor * 100 + patch;
}

export interface RestartScheduler {
  schedule(scheduleIso: string, filters: { readonly role?: string | undefined; readonly isPendingOnly: boolean }): boolean;
  cancel(): boolean;
}

interface RestartRequest {
  readonly scheduleAt?: string;
  readonly role?: 'primary' | 'replica';
  readonly isPendingOnly: boolean;
  readonly versionLimit?: number;
  readonly timeoutS?: number;
}

/**
 * Validates the restart filters in request order, as Patroni does, stopping at the first bad one. Each error names the
 * parameter at fault and the value given; where Patroni has a sentence for it, that sentence leads.
 */
function parseRestartRequest(body: Record<string, unknown>, wallNowMs: number): RestartRequest | ApiResponse {
  let request: RestartRequest = { isPendingOnly: false };
  for (const [key, value] of Object.entries(body)) {
    const given = JSON.stringify(value);
    switch (key) {
      case 'schedule': {
        if (value === null) break;
        const parsed = parseSchedule('schedule', 'restart', value, wallNowMs);
        if ('status' in parsed) return parsed;
        request = { ...request, scheduleAt: parsed.at };
        break;
      }
      case 'role': {
        if (value === null) break;
        const role = typeof value === 'string' ? roleFromWire(value) : undefined;
        if (role !== 'primary' && role !== 'replica')
          return text(400, `PostgreSQL role should be either primary or replica (role: got ${given})`);
        request = { ...request, role };
        break;
      }
      case 'postgres_version': {
        if (value === null) break;
        if (typeof value !== 'string')
          return text(400, `postgres_version: Invalid PostgreSQL version: ${given} (give a string such as "15.4" or "9.6.24")`);
        const version = postgresVersionNumber(value);
        if (typeof version === 'string') return text(400, `postgres_version: ${version}`);
        request = { ...request, versionLimit: version };
        break;
      }
      case 'timeout': {
        const seconds = value === null ? undefined : parsePatroniInt(value, 's');
        if (seconds === undefined || seconds <= 0)
          return text(400, `Timeout should be a positive number of seconds (timeout: got ${given}; e.g. 60 or "5min")`);
        request = { ...request, timeoutS: seconds };
        break;
      }
      case 'restart_pending': {
        const flag = parseFlag(value);
        if (flag === undefined) return text(400, `restart_pending should be true or false (got ${given})`);
        request = { ...request, isPendingOnly: flag };
        break;
      }
      default:
        return text(400, `Unknown filter for the scheduled restart: ${key} (known: ${RESTART_FILTERS.join(', ')})`);
    }
  }
  return request;
}

/** Booleans as Patroni's parse_bool reads them from JSON: true/false, on/off, yes/no, 1/0 (strings in any case). */
function parseFlag(value: unknown): boolean | undefined {
  if (typeof value === 'boolean' || value === null) return value === true;
  if (typeof value !== 'string' && typeof value !== 'number') return undefined;
  const word = String(value).trim().toLowerCase();
  if (['true', 'on', 'yes', '1'].includes(word)) return true;
  if (['false', 'off', 'no', '0'].includes(word)) return false;
  return undefined;
}

/** Why a filtered restart does not apply to this member now, naming the filter (undefined when every filter matches). */
function unmetRestartFilter(request: RestartRequest, snapshot: AgentSnapshot): string | undefined {
  const role = snapshot.pg.isRunning ? snapshot.pg.role : undefined;
  if (request.role !== undefined && request.role !== role)
    return `role: this member is ${role === undefined ? 'not running' : `a ${role}`}, not a ${request.role}`;
  if (request.versionLimit !== undefined && (snapshot.pg.serverVersion ?? 0) >= request.versionLimit)
    return `postgres_version: the server version ${snapshot.pg.serverVersion ?? 'unknown'} is not lower than ${request.versionLimit}`;
  if (request.isPendingOnly && !snapshot.pg.isPendingRestart) return 'restart_pending: no restart is pending on this member';
  return undefined;
}

const DEFAULT_RESTART_TIMEOUT_S = 120;

export async function handleRestart(
  body: unknown,
  snapshot: AgentSnapshot,
  runCommand: CommandRunner,
  scheduler?: RestartScheduler,
  wallNowMs: () => number = Date.now,
): Promise<ApiResponse> {
  if (!isObject(body))
    return text(
      400,
      `the restart request body must be a JSON object of filters (${RESTART_FILTERS.join(', ')}); got ${JSON.stringify(body)}`,
    );
  if (snapshot.isPaused && body.schedule !== undefined && body.schedule !== null)
    return text(500, "schedule: Can't schedule restart in the paused state");
  const request = parseRestartRequest(body, wallNowMs());
  if ('status' in request) return request;
  if (request.scheduleAt !== undefined) {
    if (scheduler === undefined) return text(501, 'schedule: scheduled restarts are not available on this server');
    return scheduler.schedule(request.scheduleAt, { role: request.role, isPendingOnly: request.isPendingOnly })
      ? text(202, 'Restart scheduled')
      : text(409, 'Another restart is already scheduled');
  }
  const unmet = unmetRestartFilter(request, snapshot);
  if (unmet !== undefined) return text(503, `restart conditions are not satisfied: ${unmet}`);
  if (snapshot.task.kind === 'running') return text(503, `${snapshot.task.name} already in progress`);
  const outcome = await runCommand('restart', (request.timeoutS ?? DEFAULT_RESTART_TIMEOUT_S) * 1000);
  return text(outcome.isOk ? 200 : 503, outcome.message);
}

export function handleDeleteRestart(scheduler: RestartScheduler | undefined): ApiResponse {
  if (scheduler === undefined) return text(501, 'scheduled restarts are not available');
  return scheduler.cancel() ? text(200, 'scheduled restart deleted') : text(404, 'no restarts are scheduled');
}

export async function handleReinitialize(body: unknown, snapshot: AgentSnapshot, runCommand: CommandRunner): Promise<ApiResponse> {
  if (!isObject(body)) return text(400, 'the request body must be a JSON object');
  const leader = snapshot.view?.leader?.name;
  if (leader === undefined) return text(503, 'Cluster has no leader, can not reinitialize');
  if (leader === snapshot.name) return text(503, 'I am the leader, can not reinitialize');
  if (snapshot.task.kind === 'running' && body.force !== true) return text(503, `${snapshot.task.name} already in progress`);
  const outcome = await runCommand('reinitialize', 30_000);
  return text(outcome.isOk ? 200 : 503, outcome.message);
}

/**
 * POST /stop (pgwarden restore's first step on the replicas): stops PostgreSQL and leaves it stopped. Maintenance mode
 * only, where no agent starts it again on its own; answers once it stopped.
 */
export async function handleStop(body: unknown, snapshot: AgentSnapshot, runCommand: CommandRunner): Promise<ApiResponse> {
  if (!isObject(body)) return text(400, 'the request body must be a JSON object');
  if (!snapshot.isPaused) return text(409, 'stop is only accepted in maintenance mode (pgwarden pause)');
  if (snapshot.task.kind === 'running') return text(503, `${snapshot.task.name} already in progress`);
  if (!snapshot.pg.isRunning) return text(200, 'PostgreSQL is already stopped');
  const outcome = await runCommand('stop', 120_000);
  return text(outcome.isOk ? 200 : 503, outcome.message);
}

const RESTORE_TYPES = ['time', 'lsn', 'name', 'immediate'];

/**
 * POST /restore {type: time|lsn|name|immediate, target, timeline?}: point-in-time recovery of this member's data dir in place, on
 * the leader of a paused cluster only (pgwarden restore). Answers 202 once the restore started; GET /patroni then says
 * `restoring`, and `running` as primary on a new timeline, or `restore failed`.
 */
export async function handleRestore(body: unknown, snapshot: AgentSnapshot, runCommand: CommandRunner): Promise<ApiResponse> {
  if (!isObject(body)) return text(400, 'the request body must be a JSON object: {"type": "time", "target": "..."}');
  const type = body.type;
  if (typeof type !== 'string' || !RESTORE_TYPES.includes(type))
    return text(400, `type must be one of ${RESTORE_TYPES.join(', ')} (got ${JSON.stringify(type)})`);
  if (type !== 'immediate' && typeof body.target !== 'string')
    return text(400, `target must be a string for type ${type} (got ${JSON.stringify(body.target)})`);
  const given = body.target as string;
  const target = restoreTargetOf(
    type === 'time'
      ? { targetTime: given }
      : type === 'lsn'
        ? { targetLsn: given }
        : type === 'name'
          ? { targetName: given }
          : { immediate: true },
  );
  if ('problem' in target) return text(400, target.problem);
  const timeline = body.timeline === undefined ? undefined : parseTargetTimeline(body.timeline);
  if (body.timeline !== undefined && timeline === undefined)
    return text(400, `timeline must be a positive integer, "current" or "latest" (got ${JSON.stringify(body.timeline)})`);
  if (!snapshot.isPaused) return text(409, 'restore is only accepted in maintenance mode (pgwarden restore pauses the cluster first)');
  if (snapshot.view?.leader?.name !== snapshot.name)
    return text(409, 'restore runs on the leader only: it keeps the leader lock throughout');
  if (snapshot.task.kind === 'running') return text(503, `${snapshot.task.name} already in progress`);
  const outcome = await runCommand('restore', 30_000, { ...target, ...(timeline !== undefined ? { timeline } : {}) });
  return text(outcome.isOk ? 202 : 503, outcome.message);
}
