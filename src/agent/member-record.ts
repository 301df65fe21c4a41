// Derives Patroni's state string and the `members/<name>` value from what the agent observed.
import { wireRole } from '../core/patroni-wire.js';
import { lagSecondsOf } from '../core/replica-lag.js';
import type { LocalPg, MemberRecord, MemberTags, PgState, TaskState } from '../core/types.js';

const TASK_STATES: Readonly<Partial<Record<string, PgState>>> = {
  bootstrap: 'initializing new cluster',
  'abort-bootstrap': 'stopping',
  basebackup: 'creating replica',
  reinitialize: 'creating replica',
  start: 'starting',
  stop: 'stopping',
  restart: 'restarting',
  'copy-slots': 'restarting',
  restore: 'restoring',
};

export function pgStateOf(pg: LocalPg | undefined, task: TaskState): PgState {
  if (task.kind === 'running') {
    const state = TASK_STATES[task.name];
    if (state !== undefined) return state;
  }
  if (pg === undefined) return 'unknown';
  if (pg.isRunning) return 'running';
  if (task.kind === 'done' && !task.isOk) {
    if (task.name === 'start') return 'start failed';
    if (task.name === 'bootstrap') return 'initdb failed';
    if (task.name === 'restore') return 'restore failed';
  }
  if (pg.crashedAtMs !== undefined) return 'crashed';
  return 'stopped';
}

export interface MemberIdentity {
  readonly name: string;
  readonly connUrl: string;
  readonly apiUrl: string;
  readonly version: string;
  readonly tags: MemberTags;
}

export function buildMemberRecord(
  identity: MemberIdentity,
  pg: LocalPg | undefined,
  state: PgState,
  isPaused: boolean,
  scheduledRestart?: MemberRecord['scheduled_restart'],
  isStandbyLeader = false,
): MemberRecord {
  const role = isStandbyLeader ? 'standby_leader' : (pg?.role ?? 'uninitialized');
  const base = {
    name: identity.name,
    conn_url: identity.connUrl,
    api_url: identity.apiUrl,
    state,
    role: wireRole(
      pg?.isRunning === true ? role : pg?.dataDir === 'initialized' ? (role === 'primary' ? 'demoted' : role) : 'uninitialized',
    ),
    version: identity.version,
    ...(Object.keys(identity.tags).length > 0 ? { tags: identity.tags } : {}),
    ...(isPaused ? { pause: true } : {}),
    ...(pg?.timeline !== undefined ? { timeline: pg.timeline } : {}),
    ...(pg?.isPendingRestart === true ? { pending_restart: true } : {}),
    ...(scheduledRestart !== undefined ? { scheduled_restart: scheduledRestart } : {}),
  };
  if (pg === undefined || !pg.isRunning) return base;
  if (pg.role === 'primary') {
    return { ...base, ...(pg.writeLsn !== undefined ? { xlog_location: Number(pg.writeLsn) } : {}) };
  }
  const received = pg.receivedLsn ?? 0n;
  const replayed = pg.replayedLsn ?? 0n;
  const lagSeconds = lagSecondsOf(pg);
  return {
    ...base,
    xlog_location: Number(received > replayed ? received : replayed),
    ...(pg.receivedLsn !== undefined ? { receive_lsn: Number(pg.receivedLsn) } : {}),
    ...(pg.replayedLsn !== undefined ? { replay_lsn: Number(pg.replayedLsn) } : {}),
    replication_state: pg.isStreaming ? 'streaming' : 'in archive recovery',
    ...(lagSeconds !== undefined ? { lag_seconds: lagSeconds } : {}),
  };
}
