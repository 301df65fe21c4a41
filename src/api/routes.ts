// Patroni-compatible REST API, health part: pure handlers from (request, agent snapshot) to status and body.
import { wireRole } from '../core/patroni-wire.js';
import type { AgentSnapshot } from '../agent/snapshot.js';
import { summarizeCluster } from '../core/cluster-summary.js';
import { isWaitingForSyncStandby, syncSettingsOf } from '../core/sync-plan.js';
import { redactSecrets } from '../util/redact.js';
import { parsePatroniInt } from '../util/patroni-int.js';
import { UI_HEADERS, UI_PAGE } from './ui-page.js';

export interface ApiRequest {
  readonly method: string;
  readonly path: string;
  readonly query: URLSearchParams;
}

export interface ApiResponse {
  readonly status: number;
  /** undefined = status line only (HEAD, OPTIONS, /liveness, /readiness). */
  readonly body: string | undefined;
  readonly contentType: string;
  /** Extra response headers (POST /failsafe's `lsn`). */
  readonly headers?: Readonly<Record<string, string>> | undefined;
}

export interface ApiContext {
  readonly snapshot: AgentSnapshot;
  readonly nowMs: number;
}

const JSON_TYPE = 'application/json';
/**
 * `?lag=` as Patroni 3.0.2 reads it (parse_int with base unit B): bytes, or a number with B/kB/MB/GB/TB (case-sensitive).
 * undefined for a value Patroni cannot parse (`1XB`, `abc`, `1kb`): Patroni then applies no lag limit at all, and so do we
 * (documented in the README's REST section), so a typo widens the check instead of taking every replica out of rotation.
 */
export const parseLag = (text: string): number | undefined => parsePatroniInt(text, 'B');

/** Patroni's status document (GET /patroni and the body of every GET health check). */
export function statusDocument(snapshot: AgentSnapshot): Record<string, unknown> {
  const pg = snapshot.pg;
  const view = snapshot.view;
  const document: Record<string, unknown> = { state: snapshot.state };
  if (pg.isRunning) {
    if (pg.postmasterStartTime !== undefined) document.postmaster_start_time = pg.postmasterStartTime;
    if (pg.role !== undefined) document.role = snapshot.isStandbyLeader ? 'standby_leader' : wireRole(pg.role);
    if (pg.serverVersion !== undefined) document.server_version = pg.serverVersion;
    document.xlog =
      pg.role === 'primary'
        ? { location: Number(pg.writeLsn ?? 0n) }
        : {
            received_location: Number(pg.receivedLsn ?? pg.replayedLsn ?? 0n),
            replayed_location: Number(pg.replayedLsn ?? 0n),
            replayed_timestamp: pg.replayedTimestamp ?? null,
            paused: pg.isReplayPaused,
          };
    if (pg.timeline !== undefined) document.timeline = pg.timeline;
    if (pg.role === 'replica') document.replication_state = pg.isStreaming ? 'streaming' : 'in archive recovery';
    if (pg.replication.length > 0) document.replication = pg.replication;
  } else {
    document.role = pg.dataDir !== 'initialized' ? 'uninitialized' : pg.role === 'primary' ? 'demoted' : 'replica';
  }
  if (snapshot.isPaused) document.pause = true;
  if (view === undefined || view.leader === undefined || !snapshot.isDcsReachable) document.cluster_unlocked = true;
  if (snapshot.isFailsafeActive === true) document.failsafe_mode_is_active = true;
  if (snapshot.dcsLastSeenEpochS !== undefined) document.dcs_last_seen = snapshot.dcsLastSeenEpochS;
  if (Object.keys(snapshot.tags).length > 0) document.tags = snapshot.tags;
  if (pg.sysid !== undefined) document.database_system_identifier = pg.sysid;
  if (pg.isPendingRestart) document.pending_restart = true;
  if (pg.isRunning && pg.role === 'primary' && isWaitingForSyncStandby(syncSettingsOf(view?.config), pg.synchronousStandbyNames)) {
    document.writes_waiting = 'synchronous_mode_strict: no synchronous standby, commits wait until one connects';
  }
  if (snapshot.binDir !== undefined) document.bin_dir = snapshot.binDir;
  document.patroni = { version: snapshot.version, scope: snapshot.scope, name: snapshot.name };
  return document;
}

function isLeaderOk(snapshot: AgentSnapshot): boolean {
  return snapshot.isLeaderWithLock && snapshot.pg.isRunning && snapshot.pg.role === 'primary';
}

function tagsMatch(snapshot: AgentSnapshot, query: URLSearchParams): boolean {
  for (const [key, expected] of query) {
    if (!key.startsWith('tag_')) continue;
    const actual = snapshot.tags[key.slice(4)];
    const isScalar = typeof actual === 'string' || typeof actual === 'number' || typeof actual === 'boolean';
    if (!isScalar || String(actual).toLowerCase() !== expected.toLowerCase()) return false;
  }
  return true;
}

function isReplicaOk(snapshot: AgentSnapshot, query: URLSearchParams): boolean {
  const pg = snapshot.pg;
  if (!pg.isRunning || pg.role !== 'replica' || snapshot.state !== 'running' || snapshot.tags.noloadbalance === true) return false;
  // Patroni 3.0.2: the standby leader is not a replica of this cluster (it answers /standby-leader and /read-only).
  if (snapshot.isStandbyLeader) return false;
  if (!isFollowingLeader(snapshot)) return false;
  const lagText = query.get('lag');
  if (lagText !== null) {
    const maxLag = parseLag(lagText) ?? Number.MAX_SAFE_INTEGER;
    const leaderOptime = Math.max(snapshot.view?.optime ?? 0, Number(pg.receivedLsn ?? 0n));
    if (leaderOptime > Number(pg.replayedLsn ?? 0n) + maxLag) return false;
  }
  const state = query.get('replication_state');
  if (state !== null && state !== (pg.isStreaming ? 'streaming' : 'in archive recovery')) return false;
  return tagsMatch(snapshot, query);
}

/**
 * A replica serves reads only while it follows the current leader: streaming (a nostream member: replaying the
 * archive), not behind the leader's timeline, with a history that did not part from it. A thawed old primary, a replica cut
 * off from the leader or one waiting for a rewind would otherwise serve stale or diverged data behind a load balancer.
 * Without a DCS view or a leader there is nothing to compare with: running is enough, as in Patroni (reads keep working
 * while the DCS is away).
 */
function isFollowingLeader(snapshot: AgentSnapshot): boolean {
  const { view, pg } = snapshot;
  const leader = view?.leader?.name;
  if (!snapshot.isDcsReachable || view === undefined || leader === undefined || leader === snapshot.name) return true;
  if (pg.isHistoryDivergent === true) return false;
  const leaderTimeline = view.members.find((member) => member.name === leader)?.timeline;
  // Behind the leader's timeline: not switched over yet, or a thawed former primary. (The leader's member key may lag
  // its own promotion by a cycle, so a replica already on a newer timeline than the key says is fine.)
  if (leaderTimeline !== undefined && pg.timeline !== undefined && pg.timeline < leaderTimeline) return false;
  return pg.isStreaming || snapshot.tags.nostream === true;
}

/** Listed in the DCS `sync` key as a synchronous standby (only meaningful while the DCS answers). */
function isSyncStandby(snapshot: AgentSnapshot): boolean {
  return snapshot.isDcsReachable && (snapshot.view?.sync?.sync_standby ?? '').split(',').includes(snapshot.name);
}

const isQuorumMode = (snapshot: AgentSnapshot): boolean => syncSettingsOf(snapshot.view?.config).mode === 'quorum';

/** Health-check routing as Patroni does it: by substring of the path, most specific first. */
function healthCheck(path: string, snapshot: AgentSnapshot, query: URLSearchParams): boolean {
  if (path === '/' || path.includes('primary') || path.includes('master') || path.includes('read-write')) return isLeaderOk(snapshot);
  if (path.includes('standby-leader') || path.includes('standby_leader')) return snapshot.isStandbyLeader;
  if (path.includes('leader')) return isLeaderOk(snapshot);
  if (path.includes('read-only-sync') || path.includes('read-only-synchronous'))
    return isLeaderOk(snapshot) || (isSyncStandby(snapshot) && isReplicaOk(snapshot, query));
  if (path.includes('read-only')) return isLeaderOk(snapshot) || snapshot.isStandbyLeader || isReplicaOk(snapshot, query);
  if (path.includes('quorum')) return isQuorumMode(snapshot) && isSyncStandby(snapshot) && isReplicaOk(snapshot, query);
  if (path.includes('async')) return snapshot.isDcsReachable && !isSyncStandby(snapshot) && isReplicaOk(snapshot, query);
  if (path.includes('sync')) return !isQuorumMode(snapshot) && isSyncStandby(snapshot) && isReplicaOk(snapshot, query);
  if (path.includes('replica')) return isReplicaOk(snapshot, query);
  if (path.includes('health')) return snapshot.state === 'running';
  return false;
}

/** Every JSON answer is redacted: a password in the DCS config (a conninfo in a parameter) never leaves the agent. */
function json(status: number, value: unknown): ApiResponse {
  return { status, body: JSON.stringify(redactSecrets(value)), contentType: JSON_TYPE };
}

function statusOnly(status: number): ApiResponse {
  return { status, body: undefined, contentType: JSON_TYPE };
}

function liveness(context: ApiContext): boolean {
  const { snapshot, nowMs } = context;
  if (snapshot.isPaused) return true;
  const limit = snapshot.isLeaderWithLock ? snapshot.ttlMs : 2 * snapshot.ttlMs;
  return nowMs - snapshot.lastCycleAtMs <= limit;
}

function readiness(snapshot: AgentSnapshot): boolean {
  if (isLeaderOk(snapshot)) return true;
  return snapshot.state === 'running' && snapshot.isDcsReachable && snapshot.pg.isStreaming;
}

/** GET /events[?since=<seq>][&limit=<n>]: this member's recent decisions that changed something, oldest first. */
function decisionEvents(snapshot: AgentSnapshot, query: URLSearchParams): ApiResponse {
  const number = (name: string): number | undefined | 'bad' => {
    const given = query.get(name);
    if (given === null) return undefined;
    return /^\d+$/.test(given) ? Number(given) : 'bad';
  };
  const since = number('since');
  const limit = number('limit');
  if (since === 'bad' || limit === 'bad')
    return json(400, { error: `${since === 'bad' ? 'since' : 'limit'}: expected a non-negative integer (since: the last seq seen)` });
  return json(200, snapshot.events?.since(since, limit) ?? []);
}

export function handleRequest(request: ApiRequest, context: ApiContext): ApiResponse {
  const { snapshot } = context;
  const method = request.method;
  const segment = `/${request.path.split('/')[1] ?? ''}`;
  if (method === 'HEAD' || method === 'OPTIONS') return statusOnly(healthCheck(request.path, snapshot, request.query) ? 200 : 503);
  if (method !== 'GET') return json(501, { error: `${method} ${request.path} is not supported by this agent yet` });
  switch (segment) {
    case '/patroni':
      return json(200, statusDocument(snapshot));
    case '/liveness':
      return statusOnly(liveness(context) ? 200 : 503);
    case '/readiness':
      return statusOnly(readiness(snapshot) ? 200 : 503);
    case '/cluster':
      return snapshot.view === undefined
        ? json(503, { error: 'no DCS view yet' })
        : json(200, { ...summarizeCluster(snapshot.view), scope: snapshot.scope });
    case '/history':
      return json(200, snapshot.view?.history ?? []);
    case '/failsafe':
      // Patroni answers 502 when the key is absent or is not an object (failsafe_mode never enabled).
      return snapshot.view?.failsafe === undefined
        ? json(502, { error: 'no failsafe topology in the DCS' })
        : json(200, snapshot.view.failsafe);
    case '/config':
      return snapshot.view?.config === undefined ? json(502, { error: 'no config in the DCS' }) : json(200, snapshot.view.config);
    case '/events':
      return decisionEvents(snapshot, request.query);
    case '/ui':
      // The dashboard (its live feed, /ui/stream, is a stream that server.ts serves).
      return request.path === '/ui' || request.path === '/ui/'
        ? { status: 200, body: UI_PAGE, contentType: 'text/html; charset=utf-8', headers: UI_HEADERS }
        : json(404, { error: `${request.path}: the dashboard is at /ui` });
    default:
      return json(healthCheck(request.path, snapshot, request.query) ? 200 : 503, statusDocument(snapshot));
  }
}
