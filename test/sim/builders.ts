// Concise builders for Observations, views and PostgreSQL states in core tests and the simulator.
import type { AgentSnapshot } from '../../src/agent/snapshot.js';
import { initialMemory } from '../../src/core/decide.js';
import type { ClusterView, HaMemory, LeaderRecord, LocalPg, MemberRecord, Observation } from '../../src/core/types.js';

export const TIMING = { ttlMs: 30_000, loopWaitMs: 10_000, retryTimeoutMs: 10_000 };

export function pgState(overrides: Partial<LocalPg> = {}): LocalPg {
  return {
    dataDir: 'initialized',
    isRunning: true,
    role: 'replica',
    sysid: '7711055670619385940',
    timeline: 1,
    writeLsn: undefined,
    receivedLsn: 1000n,
    replayedLsn: 1000n,
    isStreaming: true,
    upstream: 'node1',
    crashedAtMs: undefined,
    controlState: undefined,
    serverVersion: 150018,
    postmasterStartTime: undefined,
    replayedTimestamp: null,
    isReplayPaused: false,
    replication: [],
    isPendingRestart: false,
    ...overrides,
  };
}

export const primaryPg = (overrides: Partial<LocalPg> = {}): LocalPg =>
  pgState({
    role: 'primary',
    writeLsn: 1000n,
    receivedLsn: undefined,
    replayedLsn: undefined,
    isStreaming: false,
    upstream: undefined,
    ...overrides,
  });

export function member(name: string, overrides: Partial<MemberRecord> = {}): MemberRecord {
  return {
    name,
    conn_url: `postgres://127.0.0.1:5432/${name}`,
    api_url: `http://127.0.0.1:8008/${name}/patroni`,
    state: 'running',
    role: 'replica',
    timeline: 1,
    xlog_location: 1000,
    ...overrides,
  };
}

export function view(overrides: Partial<ClusterView> & { leaderName?: string } = {}): ClusterView {
  const { leaderName, ...rest } = overrides;
  const leader: LeaderRecord | undefined = leaderName === undefined ? undefined : { name: leaderName, modRevision: '42' };
  return {
    initialize: '7711055670619385940',
    config: { ttl: 30, loop_wait: 10, retry_timeout: 10, maximum_lag_on_failover: 1048576 },
    configRevision: '3',
    leader,
    members: [member('node1'), member('node2'), member('node3')],
    failover: undefined,
    failoverRevision: undefined,
    sync: undefined,
    history: [],
    optime: 1000,
    revision: '100',
    ...rest,
  };
}

/** A renewal as tests write it; without a TTL it was made under the observation's own ttl. */
export type LockOverride = { readonly lastRenewSentAtMs: number | undefined; readonly ttlMs?: number | undefined };

export function observe(overrides: Omit<Partial<Observation>, 'lock'> & { name?: string; lock?: LockOverride } = {}): Observation {
  const { name, lock, ...rest } = overrides;
  const ttlMs = lock?.ttlMs ?? (rest.timing ?? TIMING).ttlMs;
  return {
    nowMs: 100_000,
    wallIso: '2026-11-24T00:00:00.000Z',
    self: { name: name ?? 'node1', tags: {}, canBootstrap: true },
    pg: pgState(),
    dcs: { kind: 'ok', view: view({ leaderName: 'node1' }) },
    peers: [],
    task: { kind: 'idle' },
    timing: TIMING,
    maximumLagOnFailover: 1048576,
    primaryStartTimeoutMs: 300_000,
    useRewind: true,
    useSlots: true,
    isPaused: false,
    leaderProbe: undefined,
    ...rest,
    lock: lock?.lastRenewSentAtMs === undefined ? { lastRenewSentAtMs: undefined } : { lastRenewSentAtMs: lock.lastRenewSentAtMs, ttlMs },
  };
}

export const freshMemory = (): HaMemory => initialMemory();
export const kinds = (actions: readonly { kind: string }[]): string[] => actions.map((action) => action.kind);

/** What the REST API reads of an agent: by default node1, the leader with its lock, on a primary (tests override). */
export function agentSnapshot(overrides: Partial<AgentSnapshot> = {}): AgentSnapshot {
  return {
    name: 'node1',
    scope: 'batman',
    version: '3.0.2',
    tags: {},
    state: 'running',
    pg: primaryPg(),
    view: view({ leaderName: 'node1' }),
    isDcsReachable: true,
    dcsLastSeenEpochS: 0,
    isLeaderWithLock: true,
    isStandbyLeader: false,
    isPaused: false,
    task: { kind: 'idle' },
    lastCycleAtMs: 0,
    ttlMs: 30_000,
    lastReason: '',
    ...overrides,
  };
}
