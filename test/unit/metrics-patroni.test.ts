// GET /metrics against Patroni 3.0.2's own output from a real cluster (/work/shared/reference, copied into
// test/fixtures/patroni-3.0.2): every metric name and label Patroni serves on a leader and on a replica is served,
// with the values Patroni served when the snapshot describes the same state, and each value follows the snapshot
// (changed snapshot, changed value: no constant placeholders). Also pgwarden's own: decision counts by rule from the
// real decision core, the fence and silent-leader detector state, the proxy's routes, and what a scrape costs.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { DecisionCounts } from '../../src/agent/decision-counts.js';
import { LivePositions } from '../../src/agent/live-positions.js';
import type { AgentSnapshot } from '../../src/agent/snapshot.js';
import { MetricsExporter, pgTimestampEpochS } from '../../src/api/metrics.js';
import { decide, RULES } from '../../src/core/decide.js';
import type { PgController, WalStatus } from '../../src/core/ports.js';
import type { DynamicConfig } from '../../src/core/types.js';
import { ProxyMetrics } from '../../src/proxy/proxy-metrics.js';
import { FakeClock } from '../kit/fake-clock.js';
import { agentSnapshot, freshMemory, observe, pgState, primaryPg, view } from '../sim/builders.js';

const FIXTURES = fileURLToPath(new URL('../../../test/fixtures/patroni-3.0.2/', import.meta.url));

interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

/** Sample lines of a text exposition (Patroni's HTTP head and its stray space before `{` tolerated). */
function parseSamples(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*) ?(?:\{([^}]*)\})? (\S+)$/.exec(line.trim());
    if (match === null) continue;
    const labels = Object.fromEntries([...(match[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((pair) => [pair[1]!, pair[2]!]));
    samples.push({ name: match[1]!, labels, value: Number(match[3]) });
  }
  return samples;
}

async function reference(role: 'leader' | 'replica'): Promise<Sample[]> {
  return parseSamples(await readFile(`${FIXTURES}${role}-metrics.txt`, 'utf8'));
}

async function rendered(snapshot: AgentSnapshot): Promise<Sample[]> {
  return parseSamples(await new MetricsExporter().render(snapshot));
}

async function valueOf(snapshot: AgentSnapshot, name: string, labels: Record<string, string> = {}): Promise<number | undefined> {
  const matching = (await rendered(snapshot)).filter(
    (sample) => sample.name === name && Object.entries(labels).every(([key, value]) => sample.labels[key] === value),
  );
  assert.ok(matching.length <= 1, `${name}: one sample for ${JSON.stringify(labels)}`);
  return matching[0]?.value;
}

// The state of the reference cluster when it was scraped (scope bench, PostgreSQL 15.18, Patroni 3.0.2, timeline 1,
// WAL at 0/5000000, idle: nothing replayed since the replica started).
const REFERENCE = {
  scope: 'bench',
  version: '3.0.2',
  dcsLastSeenEpochS: 1795370069,
  view: view({ leaderName: 'node1' }),
};

const SYNC_CONFIG: DynamicConfig = { ttl: 30, loop_wait: 10, retry_timeout: 10, maximum_lag_on_failover: 1048576, synchronous_mode: true };

const leaderSnapshot = (overrides: Partial<AgentSnapshot> = {}): AgentSnapshot =>
  agentSnapshot({
    ...REFERENCE,
    name: 'node1',
    pg: primaryPg({ writeLsn: 83886080n, serverVersion: 150018, postmasterStartTime: '2026-11-22 17:54:15.702182+00:00' }),
    ...overrides,
  });

const replicaSnapshot = (overrides: Partial<AgentSnapshot> = {}): AgentSnapshot =>
  agentSnapshot({
    ...REFERENCE,
    name: 'node2',
    isLeaderWithLock: false,
    pg: pgState({
      receivedLsn: 83886080n,
      replayedLsn: 83886080n,
      serverVersion: 150018,
      postmasterStartTime: '2026-11-22 17:54:18.184638+00:00',
    }),
    ...overrides,
  });

describe('GET /metrics: every Patroni 3.0.2 metric', () => {
  for (const [role, snapshot] of [
    ['leader', leaderSnapshot()],
    ['replica', replicaSnapshot()],
  ] as const) {
    it(`on a ${role}: every name and label of Patroni's output is there, with Patroni's values for the same state`, async () => {
      const expected = await reference(role);
      assert.ok(expected.length >= 20, `the reference holds Patroni's metrics (${expected.length})`);
      const ours = await rendered(snapshot);
      for (const sample of expected) {
        const found = ours.filter((each) => each.name === sample.name);
        assert.equal(found.length, 1, `${sample.name} is served once`);
        const [mine] = found;
        for (const [key, value] of Object.entries(sample.labels)) assert.equal(mine!.labels[key], value, `${sample.name}: label ${key}`);
        assert.equal(mine!.labels.name, snapshot.name, `${sample.name}: the member's name label`);
        assert.equal(mine!.value, sample.value, `${sample.name} on the ${role}`);
      }
    });
  }

  // Each Patroni metric, a change of the snapshot, and the value that change gives.
  const changes: readonly (readonly [string, AgentSnapshot, number])[] = [
    ['patroni_version', leaderSnapshot({ version: '4.1.12' }), 40112],
    ['patroni_postgres_running', leaderSnapshot({ state: 'stopped', pg: primaryPg({ isRunning: false }) }), 0],
    [
      'patroni_postmaster_start_time',
      leaderSnapshot({ pg: primaryPg({ postmasterStartTime: '2026-12-01 08:00:00.25+00:00' }) }),
      1796112000.25,
    ],
    [
      'patroni_postmaster_start_time',
      leaderSnapshot({ pg: primaryPg({ isRunning: false, postmasterStartTime: '2026-12-01 08:00:00+00:00' }) }),
      0,
    ],
    ['patroni_master', replicaSnapshot(), 0],
    ['patroni_master', leaderSnapshot({ isLeaderWithLock: false }), 1],
    ['patroni_primary', leaderSnapshot({ pg: primaryPg({ isRunning: false }) }), 0],
    ['patroni_xlog_location', leaderSnapshot({ pg: primaryPg({ writeLsn: 123456789n }) }), 123456789],
    ['patroni_standby_leader', replicaSnapshot({ isStandbyLeader: true, isLeaderWithLock: true }), 1],
    ['patroni_replica', replicaSnapshot({ isStandbyLeader: true, isLeaderWithLock: true }), 0],
    ['patroni_replica', replicaSnapshot({ pg: pgState({ isRunning: false }) }), 0],
    [
      'patroni_sync_standby',
      replicaSnapshot({
        view: view({ leaderName: 'node1', config: SYNC_CONFIG, sync: { leader: 'node1', sync_standby: 'node3,node2' } }),
      }),
      1,
    ],
    [
      'patroni_sync_standby',
      replicaSnapshot({
        view: view({ leaderName: 'node1', config: SYNC_CONFIG, sync: { leader: 'node1', sync_standby: 'node3' } }),
      }),
      0,
    ],
    ['patroni_xlog_received_location', replicaSnapshot({ pg: pgState({ receivedLsn: 2000n, replayedLsn: 1500n }) }), 2000],
    ['patroni_xlog_received_location', replicaSnapshot({ pg: pgState({ receivedLsn: undefined, replayedLsn: 1500n }) }), 1500],
    ['patroni_xlog_replayed_location', replicaSnapshot({ pg: pgState({ receivedLsn: 2000n, replayedLsn: 1500n }) }), 1500],
    ['patroni_xlog_replayed_timestamp', replicaSnapshot({ pg: pgState({ replayedTimestamp: '2026-11-22 17:54:15.5+00' }) }), 1795370055.5],
    ['patroni_xlog_paused', replicaSnapshot({ pg: pgState({ isReplayPaused: true }) }), 1],
    ['patroni_postgres_server_version', leaderSnapshot({ pg: primaryPg({ serverVersion: 160004 }) }), 160004],
    ['patroni_cluster_unlocked', leaderSnapshot({ view: view() }), 1],
    ['patroni_cluster_unlocked', replicaSnapshot({ isDcsReachable: false, dcsLastSeenEpochS: Date.now() / 1000 - 5 }), 0],
    ['patroni_cluster_unlocked', replicaSnapshot({ isDcsReachable: false, dcsLastSeenEpochS: Date.now() / 1000 - 31 }), 1],
    ['patroni_failsafe_mode_is_active', leaderSnapshot({ isFailsafeActive: true }), 1],
    ['patroni_postgres_timeline', leaderSnapshot({ pg: primaryPg({ timeline: 7 }) }), 7],
    ['patroni_postgres_timeline', leaderSnapshot({ pg: primaryPg({ timeline: 7, isRunning: false }) }), 0],
    ['patroni_dcs_last_seen', leaderSnapshot({ dcsLastSeenEpochS: 1795371234 }), 1795371234],
    ['patroni_pending_restart', replicaSnapshot({ pg: pgState({ isPendingRestart: true }) }), 1],
    ['patroni_is_paused', leaderSnapshot({ isPaused: true }), 1],
  ];
  for (const [name, snapshot, expected] of changes) {
    it(`${name} follows the snapshot: ${expected}`, async () => {
      assert.equal(await valueOf(snapshot, name), expected);
    });
  }

  it('every Patroni name is covered by a change above', async () => {
    const names = new Set([...(await reference('leader')), ...(await reference('replica'))].map((sample) => sample.name));
    const changed = new Set(changes.map(([name]) => name));
    assert.deepEqual(
      [...names].filter((name) => !changed.has(name)),
      [],
    );
  });

  it("parses PostgreSQL's timestamptz text in any offset form, 0 for none", () => {
    assert.equal(pgTimestampEpochS('2026-11-22 17:54:15.702182+00'), 1795370055.702182);
    assert.equal(pgTimestampEpochS('2026-11-22 18:54:15.702182+01'), 1795370055.702182);
    assert.equal(pgTimestampEpochS('2026-11-22 23:24:15+05:30'), 1795370055);
    assert.equal(pgTimestampEpochS('2026-11-22T17:54:15Z'), 1795370055);
    assert.equal(pgTimestampEpochS(null), 0);
    assert.equal(pgTimestampEpochS('infinity'), 0);
  });
});

describe("GET /metrics: pgwarden's own", () => {
  it('counts decisions by the rule of the decision core that made them, every rule present from the start', async () => {
    const counts = new DecisionCounts();
    const snapshot = leaderSnapshot({ decisionCounts: counts });
    for (const rule of [...RULES.map(([name]) => name), 'none'])
      assert.equal(await valueOf(snapshot, 'pgwarden_ha_decisions_total', { rule }), 0, rule);
    // A leader renewing its lock (rule leader), twice; a replica following it (rule follow); a paused member.
    const leading = decide(observe({ pg: primaryPg(), lock: { lastRenewSentAtMs: 99_000 } }), freshMemory());
    const following = decide(observe({ name: 'node2' }), freshMemory());
    const paused = decide(observe({ name: 'node2', isPaused: true }), freshMemory());
    for (const decision of [leading, leading, following, paused]) counts.record(decision);
    assert.deepEqual([leading.rule, following.rule, paused.rule], ['leader', 'follow', 'paused']);
    assert.equal(await valueOf(snapshot, 'pgwarden_ha_decisions_total', { rule: 'leader' }), 2);
    assert.equal(await valueOf(snapshot, 'pgwarden_ha_decisions_total', { rule: 'follow' }), 1);
    assert.equal(await valueOf(snapshot, 'pgwarden_ha_decisions_total', { rule: 'paused' }), 1);
    assert.equal(await valueOf(snapshot, 'pgwarden_ha_decisions_total', { rule: 'race' }), 0);
    assert.equal(await valueOf(snapshot, 'pgwarden_ha_actions_total', { action: 'renewLeader' }), 2);
    assert.match(await new MetricsExporter().render(snapshot), /# TYPE pgwarden_ha_decisions_total counter\n/);
  });

  it('shows the fence and the silent-leader detector as the agent last saw them, nothing of them when absent', async () => {
    const guarded = replicaSnapshot({
      guards: {
        fence: { isConnected: true, killInMs: 4500, freezeInMs: -250 },
        silence: { isEnabled: true, leader: 'node1', beatAgeMs: 1750, phase: 'confirming' },
      },
    });
    assert.equal(await valueOf(guarded, 'pgwarden_fence_connected'), 1);
    assert.equal(await valueOf(guarded, 'pgwarden_fence_armed'), 1);
    assert.equal(await valueOf(guarded, 'pgwarden_fence_deadline_seconds'), 4.5);
    assert.equal(await valueOf(guarded, 'pgwarden_fence_freeze_seconds'), -0.25);
    assert.equal(await valueOf(guarded, 'pgwarden_silent_leader_detector_enabled'), 1);
    assert.equal(await valueOf(guarded, 'pgwarden_leader_heartbeat_age_seconds'), 1.75);
    assert.equal(await valueOf(guarded, 'pgwarden_leader_silence_phase', { phase: 'confirming' }), 1);
    assert.equal(await valueOf(guarded, 'pgwarden_leader_silence_phase', { phase: 'silent' }), 0);

    const passed = replicaSnapshot({
      guards: { fence: { isConnected: false, killInMs: -10, freezeInMs: undefined }, silence: { isEnabled: false } },
    });
    assert.equal(await valueOf(passed, 'pgwarden_fence_connected'), 0);
    assert.equal(await valueOf(passed, 'pgwarden_fence_armed'), 0);
    assert.equal(await valueOf(passed, 'pgwarden_fence_deadline_seconds'), undefined);
    assert.equal(await valueOf(passed, 'pgwarden_silent_leader_detector_enabled'), 0);
    assert.equal(await valueOf(passed, 'pgwarden_leader_silence_phase', { phase: 'beating' }), undefined);

    const bare = replicaSnapshot({ guards: { fence: undefined, silence: { isEnabled: true } } });
    assert.equal(await valueOf(bare, 'pgwarden_fence_connected'), undefined, 'no fence process: no fence series');
    assert.equal(await valueOf(bare, 'pgwarden_leader_heartbeat_age_seconds'), undefined, 'no beat followed (the leader itself)');
  });

  it('the proxy serves its routes (primary member, replica members and count) and empty hold queues from the start', async () => {
    let routes = {
      primary: { kind: 'route', backend: { member: 'node1', host: '127.0.0.1', port: 5432 }, leader: 'node1@42' },
      replicas: {
        kind: 'route',
        backends: [
          { member: 'node2', host: '127.0.0.1', port: 5433 },
          { member: 'node3', host: '127.0.0.1', port: 5434 },
        ],
        isFallback: false,
      },
    } as ConstructorParameters<typeof ProxyMetrics>[3] extends (() => infer R) | undefined ? R : never;
    const metrics = new ProxyMetrics(
      () => [],
      () => 1,
      async () => undefined,
      () => routes,
    );
    const scrape = async (): Promise<Sample[]> => parseSamples(await metrics.registry.metrics());
    let samples = await scrape();
    const find = (name: string, labels: Record<string, string> = {}): number | undefined =>
      samples.find((sample) => sample.name === name && Object.entries(labels).every(([key, value]) => sample.labels[key] === value))?.value;
    assert.equal(find('pgwarden_proxy_primary_route', { member: 'node1' }), 1);
    assert.equal(find('pgwarden_proxy_replica_routes'), 2);
    assert.equal(find('pgwarden_proxy_replica_route', { member: 'node3', fallback: '0' }), 1);
    assert.equal(find('pgwarden_proxy_held_connections', { listener: 'primary' }), 0);
    assert.equal(find('pgwarden_proxy_connections', { listener: 'replica' }), 0);
    metrics.held('primary', true);
    routes = { primary: { kind: 'hold', reason: 'no leader' }, replicas: { kind: 'hold', reason: 'no replica' } };
    samples = await scrape();
    assert.equal(find('pgwarden_proxy_primary_route'), undefined, 'held: no primary route');
    assert.equal(find('pgwarden_proxy_replica_routes'), 0);
    assert.equal(find('pgwarden_proxy_held_connections', { listener: 'primary' }), 1);
  });
});

describe('GET /metrics: what a scrape costs', () => {
  it('reads WAL positions at most once per max age, none when the HA probe read them that recently', async () => {
    const clock = new FakeClock();
    let queries = 0;
    const pg = {
      walStatus: (): Promise<WalStatus> => {
        queries += 1;
        return Promise.resolve({ isStreaming: true, writeLsn: undefined, receivedLsn: BigInt(queries), replayedLsn: BigInt(queries) });
      },
    } as unknown as PgController;
    const applied: WalStatus[] = [];
    const positions = new LivePositions({ pg, clock, isApplicable: () => true, apply: (status) => applied.push(status) });
    positions.noteProbe(clock.nowMs());
    await positions.refresh(1000);
    assert.equal(queries, 0, 'the probe read them just now');
    clock.advance(1500);
    await Promise.all([positions.refresh(1000), positions.refresh(1000), positions.refresh(1000)]);
    assert.equal(queries, 1, 'three scrapes at once share one query');
    clock.advance(500);
    await positions.refresh(1000);
    assert.equal(queries, 1, 'a scrape within the max age reuses it');
    clock.advance(600);
    await positions.refresh(1000);
    assert.equal(queries, 2);
    await positions.refresh();
    assert.equal(queries, 3, 'without a max age (a peer in a leader race) it reads now');
    assert.equal(applied.length, 3);
  });
});
