// Unsafe REST endpoints (switchover, failover, config): validate like Patroni, then only write DCS intents.
import { roleFromWire } from '../core/patroni-wire.js';
import { validateSlotConfig } from '../core/slot-plan.js';
import { validateStandbyCluster } from '../core/standby-cluster.js';
import type { AgentSnapshot } from '../agent/snapshot.js';
import { isViableCandidate } from '../core/failover-intent.js';
import type { Dcs } from '../core/ports.js';
import type { ClusterView, DynamicConfig, FailoverIntent, MemberRecord, PeerStatus } from '../core/types.js';
import { describeError } from '../util/errors.js';
import { REDACTED, redactedPath, redactSecrets } from '../util/redact.js';
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

/** Parses Patroni's `scheduled_at`: ISO-8601 with a mandatory zone, not in the past. */
function parseSchedule(value: unknown, nowMs: number): { at: string } | ApiResponse {
  if (typeof value !== 'string')
    return text(422, 'Unable to parse scheduled timestamp. It should be in an unambiguous format, e.g. ISO 8601');
  if (!/(Z|[+-]\d{2}:?\d{2})$/i.test(value.trim())) return text(400, 'Timezone information is mandatory for the scheduled switchover');
  const at = Date.parse(value);
  if (!Number.isFinite(at)) return text(422, 'Unable to parse scheduled timestamp. It should be in an unambiguous format, e.g. ISO 8601');
  if (at < nowMs) return text(422, "Can't schedule switchover in the past");
  return { at: new Date(at).toISOString() };
}

export async function handleSwitchover(kind: 'switchover' | 'failover', body: unknown, context: MutationContext): Promise<ApiResponse> {
  if (!isObject(body) || Object.keys(body).length === 0)
    return text(
      400,
      kind === 'failover'
        ? 'Failover could be performed only to a specific candidate'
        : 'Switchover could be performed only from a specific leader',
    );
  const leader = typeof body.leader === 'string' && body.leader !== '' ? body.leader : undefined;
  const candidateValue = body.candidate ?? body.member;
  const candidate = typeof candidateValue === 'string' && candidateValue !== '' ? candidateValue : undefined;
  // Patroni treats a failover that names the current leader as a switchover.
  const action = kind === 'failover' && leader !== undefined ? 'switchover' : kind;
  if (action === 'failover' && candidate === undefined) return text(400, 'Failover could be performed only to a specific candidate');
  if (action === 'switchover' && leader === undefined) return text(400, 'Switchover could be performed only from a specific leader');
  let scheduledAt: string | undefined;
  if (body.scheduled_at !== undefined && body.scheduled_at !== null) {
    if (action === 'failover') return text(400, "Failover can't be scheduled");
    if (context.snapshot.isPaused) return text(400, "Can't schedule switchover in the paused state");
    const parsed = parseSchedule(body.scheduled_at, context.wallNowMs());
    if ('status' in parsed) return parsed;
    scheduledAt = parsed.at;
  }
  if (context.snapshot.isPaused && candidate === undefined)
    return text(400, 'Switchover is possible only to a specific candidate in a paused state');
  if (leader !== undefined && leader === candidate) return text(400, 'Switchover target and source are the same');

  const view = await load(context);
  if ('status' in view) return view;
  if (leader !== undefined && view.leader?.name !== leader) return text(412, 'leader name does not match');
  if (candidate !== undefined && !view.members.some((member) => member.name === candidate)) return text(412, 'candidate does not exists');
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

/** Deep merge where `null` deletes a key (Patroni's PATCH /config semantics). */
export function mergeConfigPatch(base: Record<string, unknown>, patch: Record<string, unknown>): Record<string, unknown> {
  const merged: Record<string, unknown> = { ...base };
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete merged[key];
    else if (isObject(value) && isObject(merged[key])) merged[key] = mergeConfigPatch(merged[key], value);
    else merged[key] = value;
  }
  return merged;
}

/** synchronous_mode and synchronous_node_count as Patroni accepts them. */
function validateSyncConfig(config: Readonly<Record<string, unknown>>): string | undefined {
  const mode = config.synchronous_mode;
  if (
    mode !== undefined &&
    mode !== null &&
    typeof mode !== 'boolean' &&
    !(typeof mode === 'string' && ['on', 'off', 'true', 'false', 'quorum'].includes(mode.toLowerCase()))
  ) {
    return `synchronous_mode must be true, false or "quorum", got ${JSON.stringify(mode)}`;
  }
  const count = config.synchronous_node_count;
  if (count !== undefined && count !== null && !(typeof count === 'number' && Number.isInteger(count) && count >= 1))
    return `synchronous_node_count must be an integer >= 1, got ${JSON.stringify(count)}`;
  const strict = config.synchronous_mode_strict;
  if (strict !== undefined && strict !== null && typeof strict !== 'boolean')
    return `synchronous_mode_strict must be true or false, got ${JSON.stringify(strict)}`;
  return undefined;
}

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
  const invalid = validateSlotConfig(next) ?? validateSyncConfig(next) ?? validateStandbyCluster(next.standby_cluster);
  if (invalid !== undefined) return text(400, `invalid configuration: ${invalid}`);
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
  kind: 'restart' | 'reinitialize',
  timeoutMs: number,
) => Promise<{ readonly isOk: boolean; readonly message: string }>;

const RESTART_FILTERS = new Set(['role', 'restart_pending', 'postgres_version', 'timeout', 'schedule']);

/** `9.6.24`, `15`, `15.4` -> server_version_num style integer for comparison. */
function versionNumber(text: string): number | undefined {
  const parts = text.split('.').map(Number);
  if (parts.some((part) => !Number.isInteger(part))) return undefined;
  const [major = 0, minor = 0, patch = 0] = parts;
  return major >= 10 ? major * 10000 + minor : major * 10000 + minor * 100 + patch;
}

export interface RestartScheduler {
  schedule(scheduleIso: string, filters: { readonly role?: string | undefined; readonly isPendingOnly: boolean }): boolean;
  cancel(): boolean;
}

export async function handleRestart(
  body: unknown,
  snapshot: AgentSnapshot,
  runCommand: CommandRunner,
  scheduler?: RestartScheduler,
  wallNowMs: () => number = Date.now,
): Promise<ApiResponse> {
  if (!isObject(body)) return text(400, 'the request body must be a JSON object');
  for (const key of Object.keys(body)) if (!RESTART_FILTERS.has(key)) return text(400, `Unknown filter for the scheduled restart: ${key}`);
  const role = snapshot.pg.isRunning ? snapshot.pg.role : undefined;
  const wanted = typeof body.role === 'string' ? roleFromWire(body.role) : body.role;
  if (wanted !== undefined && wanted !== 'primary' && wanted !== 'replica')
    return text(400, `PostgreSQL role should be one of primary, replica (got ${JSON.stringify(wanted)})`);
  const isPendingOnly = body.restart_pending === true || body.restart_pending === 'True' || body.restart_pending === 'true';
  if (body.schedule !== undefined && body.schedule !== null) {
    if (scheduler === undefined) return text(501, 'scheduled restarts are not available');
    if (snapshot.isPaused) return text(500, "Can't schedule restart in the paused state");
    const parsed = parseSchedule(body.schedule, wallNowMs());
    if ('status' in parsed) return parsed;
    return scheduler.schedule(parsed.at, { role: wanted, isPendingOnly })
      ? text(202, 'Restart scheduled')
      : text(409, 'Another restart is already scheduled');
  }
  const isPendingFilterUnmet = isPendingOnly && !snapshot.pg.isPendingRestart;
  const versionLimit = typeof body.postgres_version === 'string' ? versionNumber(body.postgres_version) : undefined;
  const isVersionFilterUnmet = versionLimit !== undefined && (snapshot.pg.serverVersion ?? 0) >= versionLimit;
  if ((wanted !== undefined && wanted !== role) || isPendingFilterUnmet || isVersionFilterUnmet)
    return text(503, 'restart conditions are not satisfied');
  if (snapshot.task.kind === 'running') return text(503, `${snapshot.task.name} already in progress`);
  const timeoutS = typeof body.timeout === 'number' && body.timeout > 0 ? body.timeout : 120;
  const outcome = await runCommand('restart', timeoutS * 1000);
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
