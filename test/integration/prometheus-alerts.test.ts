// System test of the shipped alert rules (issue 18 point 3) with Debian's real Prometheus scraping a real cluster.
//
// The scenario where "no leader" is real and stays so: two members, node2 tagged nofailover. The leader's agent and
// postmaster are killed (a crash); its lock expires after ttl and node2 may not take it, so the cluster has no leader
// while node2 keeps serving /metrics (patroni_primary 0, patroni_cluster_unlocked 1) and node1's series go stale.
// (Stopping etcd's quorum would also leave no leader, but it tests the DCS alert's cause; a failover to a healthy
// replica would not leave the cluster without one.)
//
// Prometheus scrapes each member's REST API every second and evaluates every second, on a copy of the shipped rules
// whose `for:` durations are all 5s (the shipped 1m would only make the test a minute longer: the expressions are the
// shipped ones, byte for byte). PgwardenNoLeader must be neither pending nor firing while the cluster is healthy
// (checked over Prometheus's whole history at the moment of the fault: max_over_time of ALERTS), and fire after.
// The same scrape shows every metric name the rules and the dashboard use (except those pending), with real values for
// ttl, the pg_wal file system and the archiver, and every dashboard query runs on the real server.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { LocalCluster } from '../../src/local/local-cluster.js';
import { pickFreePorts } from '../../src/local/free-port.js';
import { waitUntil } from '../../src/util/wait-until.js';
import { assertStays } from '../kit/assert-stays.js';
import { dashboardQueries, metricUses, PENDING_METRICS, RULES_FILE } from '../kit/alert-files.js';
import { sql, waitHealthy } from '../kit/cluster-kit.js';
import { FAST_TIMING, startTestCluster, stopOnInterrupt, teardownCluster } from '../kit/fixtures.js';

const SCOPE = 'alerts';
const FIXTURES = new URL('../../../test/fixtures/', import.meta.url);

interface MetricSample {
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

/** The samples of a text exposition by metric name (Patroni's stray space before `{` tolerated). */
function parseMetrics(text: string): Record<string, MetricSample[]> {
  const byName: Record<string, MetricSample[]> = {};
  for (const line of text.split('\n')) {
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*) ?(?:\{([^}]*)\})? (\S+)$/.exec(line.trim());
    if (match === null) continue;
    const labels = Object.fromEntries([...(match[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((pair) => [pair[1]!, pair[2]!]));
    (byName[match[1]!] ??= []).push({ labels, value: Number(match[3]) });
  }
  return byName;
}

/** The one sample of `name` with `labels`. */
function valueIn(served: Record<string, MetricSample[]>, name: string, labels: Record<string, string> = {}): number {
  const samples = (served[name] ?? []).filter((sample) => Object.entries(labels).every(([key, value]) => sample.labels[key] === value));
  assert.equal(samples.length, 1, `${name}${JSON.stringify(labels)}: ${JSON.stringify(served[name])}`);
  return samples[0]!.value;
}
const TEST_FOR = '5s';

interface PromAlert {
  readonly labels: Readonly<Record<string, string>>;
  readonly state: 'pending' | 'firing';
}

interface PromSample {
  readonly metric: Readonly<Record<string, string>>;
  readonly value: readonly [number, string];
}

/** A real `prometheus` server on 127.0.0.1, its TSDB in a temp dir; stopped by its PID. */
class PrometheusServer {
  readonly #child: ChildProcess;
  readonly #exited: Promise<void>;
  readonly #forgetInterrupt: () => void;
  #output = '';

  private constructor(
    readonly url: string,
    readonly dir: string,
    child: ChildProcess,
  ) {
    this.#child = child;
    this.#exited = new Promise((resolve) => child.once('exit', () => resolve()));
    child.stdout?.on('data', (chunk: Buffer) => (this.#output = (this.#output + chunk.toString()).slice(-20_000)));
    child.stderr?.on('data', (chunk: Buffer) => (this.#output = (this.#output + chunk.toString()).slice(-20_000)));
    this.#forgetInterrupt = stopOnInterrupt(() => this.stop());
  }

  static async start(targets: readonly string[]): Promise<PrometheusServer> {
    const dir = await mkdtemp(join(tmpdir(), 'pgw-prometheus-'));
    const rules = (await readFile(RULES_FILE, 'utf8')).replace(/^(\s+)for: \S+$/gm, `$1for: ${TEST_FOR}`);
    await writeFile(join(dir, 'rules.yml'), rules);
    await writeFile(
      join(dir, 'prometheus.yml'),
      [
        'global:',
        '  scrape_interval: 1s',
        '  scrape_timeout: 1s',
        '  evaluation_interval: 1s',
        'rule_files:',
        `  - ${join(dir, 'rules.yml')}`,
        'scrape_configs:',
        '  - job_name: pgwarden',
        '    static_configs:',
        `      - targets: [${targets.map((target) => `'${target}'`).join(', ')}]`,
        '',
      ].join('\n'),
    );
    const [port] = await pickFreePorts(1);
    const child = spawn(
      'prometheus',
      [
        `--config.file=${join(dir, 'prometheus.yml')}`,
        `--storage.tsdb.path=${join(dir, 'data')}`,
        `--web.listen-address=127.0.0.1:${port!}`,
        '--log.level=warn',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const server = new PrometheusServer(`http://127.0.0.1:${port!}`, dir, child);
    await waitUntil(
      async () => {
        if (child.exitCode !== null) throw new Error(`prometheus exited with ${child.exitCode}: ${server.output}`);
        try {
          return (await fetch(`${server.url}/-/ready`, { signal: AbortSignal.timeout(1000) })).ok;
        } catch {
          return false;
        }
      },
      { timeoutMs: 30_000, intervalMs: 200, describe: 'prometheus ready', lastState: () => server.output },
    );
    return server;
  }

  get output(): string {
    return this.#output;
  }

  async api<T>(path: string): Promise<T> {
    const response = await fetch(`${this.url}${path}`, { signal: AbortSignal.timeout(5000) });
    const body = (await response.json()) as { status: string; data: T; error?: string };
    if (body.status !== 'success') throw new Error(`${path}: ${body.error ?? body.status}`);
    return body.data;
  }

  async query(expr: string): Promise<PromSample[]> {
    return (await this.api<{ result: PromSample[] }>(`/api/v1/query?query=${encodeURIComponent(expr)}`)).result;
  }

  async alerts(name: string): Promise<PromAlert[]> {
    return (await this.api<{ alerts: PromAlert[] }>('/api/v1/alerts')).alerts.filter((alert) => alert.labels.alertname === name);
  }

  /** SIGTERM by PID, SIGKILL after 10 s; then its directory goes. */
  async stop(): Promise<void> {
    if (this.#child.exitCode === null && this.#child.signalCode === null && this.#child.pid !== undefined) {
      process.kill(this.#child.pid, 'SIGTERM');
      const killer = setTimeout(() => {
        if (this.#child.exitCode === null && this.#child.pid !== undefined) process.kill(this.#child.pid, 'SIGKILL');
      }, 10_000);
      await this.#exited;
      clearTimeout(killer);
    }
    this.#forgetInterrupt();
    await rm(this.dir, { recursive: true, force: true });
  }
}

describe('the shipped alert rules on a real Prometheus scraping a real cluster', { timeout: 400_000 }, () => {
  let cluster: LocalCluster | undefined;
  let prometheus: PrometheusServer | undefined;
  let leader = '';
  const running = (): { cluster: LocalCluster; prometheus: PrometheusServer } => ({
    cluster: cluster ?? assert.fail('the cluster did not start'),
    prometheus: prometheus ?? assert.fail('prometheus did not start'),
  });

  before(async () => {
    cluster = await startTestCluster(SCOPE, { nodes: 2, tags: { node2: { nofailover: true } } });
    ({ leader } = await waitHealthy(cluster, 90_000));
    assert.equal(leader, 'node1', 'node2 is nofailover: only node1 can lead');
    prometheus = await PrometheusServer.start(cluster.nodes.map((node) => `${node.host}:${node.apiPort}`));
  });

  after(async () => {
    try {
      await prometheus?.stop();
    } finally {
      await teardownCluster(cluster);
    }
  });

  it('scrapes both members: every metric name the rules and the dashboard use is there, with real values', async () => {
    const { cluster, prometheus } = running();
    await waitUntil(async () => (await prometheus.query('up == 1')).length === cluster.nodes.length, {
      timeoutMs: 30_000,
      intervalMs: 500,
      describe: 'both members scraped',
      lastState: () => prometheus.output,
    });
    // The backup age is exported by a leader with a backup: section only (backup-pgbackrest.test.ts checks it there).
    const uses = (await metricUses()).filter(
      ({ name }) => PENDING_METRICS[name] === undefined && name !== 'pgwarden_backup_last_completed_time_seconds',
    );
    const scraped = new Set(
      (await prometheus.query('count by (__name__) ({__name__=~"patroni_.+|pgwarden_.+"})')).map((sample) => sample.metric.__name__!),
    );
    assert.deepEqual(
      uses.filter(({ name }) => !scraped.has(name)),
      [],
      'names used but not scraped',
    );
    const one = async (expr: string): Promise<number> => {
      const samples = await prometheus.query(expr);
      assert.equal(samples.length, 1, `${expr}: ${JSON.stringify(samples)}`);
      return Number(samples[0]!.value[1]);
    };
    assert.equal(await one(`pgwarden_ttl_seconds{name="${leader}"}`), FAST_TIMING.ttl);
    const ratio = await one(`pgwarden_wal_filesystem_used_ratio{name="${leader}"}`);
    assert.ok(ratio > 0 && ratio < 1, `used ratio ${ratio}`);
    assert.ok((await one(`pgwarden_wal_filesystem_size_bytes{name="${leader}"}`)) > 0);
    // archive_mode is off in the test cluster: the archiver is read (counts 0, never archived) and says so.
    assert.equal(await one(`pgwarden_archive_enabled{name="${leader}"}`), 0);
    assert.equal(await one(`pgwarden_archive_failed_count{name="${leader}"}`), 0);
    assert.ok((await one(`pgwarden_replication_slot_retained_wal_bytes{name="${leader}",slot_name="node2"}`)) >= 0);
    // Every dashboard query runs on the real server (an error would throw), and the role panel shows both members.
    for (const { title, expr } of await dashboardQueries())
      if (title !== 'variable') await prometheus.query(expr.replaceAll('$scope', '.*'));
  });

  it("serves every Patroni 3.0.2 metric on the real leader and replica, with the members' real values", async () => {
    const { cluster } = running();
    const reference = async (role: 'leader' | 'replica'): Promise<Set<string>> =>
      new Set(Object.keys(parseMetrics(await readFile(new URL(`patroni-3.0.2/${role}-metrics.txt`, FIXTURES), 'utf8'))));
    const scrape = async (name: string): Promise<Record<string, MetricSample[]>> => {
      const node = cluster.nodes.find((each) => each.name === name) ?? assert.fail(name);
      const response = await fetch(`http://${node.host}:${node.apiPort}/metrics`, { signal: AbortSignal.timeout(5000) });
      return parseMetrics(await response.text());
    };
    // A committed transaction the replica replays: its replay timestamp is then a real one (0 before any).
    await sql(cluster, 'node1', 'CREATE TABLE IF NOT EXISTS metrics_probe (at timestamptz); INSERT INTO metrics_probe VALUES (now())');
    const wroteAtS = Date.now() / 1000;
    let replica = await scrape('node2');
    await waitUntil(
      async () => {
        replica = await scrape('node2');
        return valueIn(replica, 'patroni_xlog_replayed_timestamp') > 0;
      },
      { timeoutMs: 15_000, intervalMs: 200, describe: 'node2 replays the transaction' },
    );
    const primary = await scrape('node1');
    for (const [role, served] of [
      ['leader', primary],
      ['replica', replica],
    ] as const) {
      for (const name of await reference(role)) {
        const samples = served[name] ?? assert.fail(`${role}: ${name} is not served`);
        assert.equal(samples.length, 1, `${role}: ${name} once`);
        assert.equal(samples[0]!.labels.scope, SCOPE, `${role}: ${name} scope label`);
        assert.equal(samples[0]!.labels.name, role === 'leader' ? 'node1' : 'node2', `${role}: ${name} name label`);
      }
    }
    const nowS = Date.now() / 1000;
    for (const served of [primary, replica]) {
      assert.equal(valueIn(served, 'patroni_postgres_running'), 1);
      assert.ok(valueIn(served, 'patroni_postgres_server_version') >= 150000);
      assert.ok(valueIn(served, 'patroni_postgres_timeline') >= 1);
      const startedS = valueIn(served, 'patroni_postmaster_start_time');
      assert.ok(startedS > nowS - 3600 && startedS <= nowS, `postmaster started ${nowS - startedS} s ago`);
      assert.ok(Math.abs(nowS - valueIn(served, 'patroni_dcs_last_seen')) <= 2 * FAST_TIMING.ttl, 'DCS seen lately');
      assert.equal(valueIn(served, 'patroni_cluster_unlocked'), 0);
      assert.equal(valueIn(served, 'patroni_is_paused'), 0);
    }
    assert.deepEqual(
      ['patroni_master', 'patroni_primary', 'patroni_replica'].map((name) => [valueIn(primary, name), valueIn(replica, name)]),
      [
        [1, 0],
        [1, 0],
        [0, 1],
      ],
    );
    const written = valueIn(primary, 'patroni_xlog_location');
    assert.ok(written > 0 && valueIn(replica, 'patroni_xlog_location') === 0);
    assert.equal(valueIn(primary, 'patroni_xlog_received_location'), 0);
    const replayed = valueIn(replica, 'patroni_xlog_replayed_location');
    assert.ok(replayed > 0 && valueIn(replica, 'patroni_xlog_received_location') >= replayed);
    const replayedAtS = valueIn(replica, 'patroni_xlog_replayed_timestamp');
    assert.ok(Math.abs(replayedAtS - wroteAtS) < 10, `replayed a commit of ${replayedAtS}, written at ${wroteAtS}`);
    // pgwarden's own: every cycle counted by the rule that decided it.
    assert.ok(valueIn(primary, 'pgwarden_ha_decisions_total', { rule: 'leader' }) > 0, 'the leader decides by rule leader');
    assert.ok(valueIn(replica, 'pgwarden_ha_decisions_total', { rule: 'follow' }) > 0, 'the replica decides by rule follow');
    assert.ok(valueIn(primary, 'pgwarden_ha_actions_total', { action: 'renewLeader' }) > 0);
    // The leader's fence process holds a lock deadline within a ttl; the replica follows the leader's heartbeats.
    assert.equal(valueIn(primary, 'pgwarden_fence_connected'), 1);
    assert.equal(valueIn(primary, 'pgwarden_fence_armed'), 1);
    const killInS = valueIn(primary, 'pgwarden_fence_deadline_seconds');
    assert.ok(killInS > 0 && killInS <= FAST_TIMING.ttl, `fence deadline in ${killInS} s`);
    assert.equal(valueIn(replica, 'pgwarden_silent_leader_detector_enabled'), 1);
    const beatAgeS = valueIn(replica, 'pgwarden_leader_heartbeat_age_seconds');
    assert.ok(beatAgeS >= 0 && beatAgeS < FAST_TIMING.ttl, `heartbeat seen ${beatAgeS} s ago`);
    assert.equal(valueIn(replica, 'pgwarden_leader_silence_phase', { phase: 'beating' }), 1);
    assert.equal(primary.pgwarden_leader_heartbeat_age_seconds, undefined, 'the leader judges no beats of its own');
  });

  it('PgwardenNoLeader stays silent while node1 leads, and fires once node1 has crashed and nobody may take over', async () => {
    const { cluster, prometheus } = running();
    const startedAtS = Date.now() / 1000;
    // Rules have been evaluated for a while on healthy data: every member scraped and the leader seen as primary.
    await waitUntil(async () => (await prometheus.query(`patroni_primary{scope="${SCOPE}"} == 1`)).length === 1, {
      timeoutMs: 30_000,
      intervalMs: 500,
      describe: 'the leader seen as primary by Prometheus',
    });
    await waitUntil(() => Date.now() / 1000 - startedAtS >= 10, {
      timeoutMs: 15_000,
      intervalMs: 500,
      describe: '10 s of rule evaluations',
    });
    assert.deepEqual(await prometheus.alerts('PgwardenNoLeader'), [], 'no PgwardenNoLeader while node1 leads');
    // From when both members were scraped on: in Prometheus's first second one target may be scraped before the other,
    // and a rule evaluated then sees half a cluster (the shipped 1m `for` absorbs that; the test's 5s is checked after).
    const windowS = Math.floor(Date.now() / 1000 - startedAtS);
    assert.deepEqual(
      await prometheus.query(`max_over_time(ALERTS{alertname="PgwardenNoLeader"}[${windowS}s])`),
      [],
      'PgwardenNoLeader was never pending or firing before the fault',
    );

    const faultAtMs = Date.now();
    const postmaster = await cluster.postmasterPid(leader);
    cluster.killAgent(leader, 'SIGKILL');
    if (postmaster !== undefined) process.kill(postmaster, 'SIGKILL');

    let seen: unknown;
    const firing = await waitUntil(
      async () => {
        const alerts = await prometheus.alerts('PgwardenNoLeader');
        seen = { alerts, primary: await prometheus.query('patroni_primary'), unlocked: await prometheus.query('patroni_cluster_unlocked') };
        return alerts.find((alert) => alert.state === 'firing');
      },
      { timeoutMs: 90_000, intervalMs: 500, describe: 'PgwardenNoLeader firing', lastState: () => seen },
    );
    assert.equal(firing.labels.scope, SCOPE);
    assert.equal(firing.labels.severity, 'critical');
    const tookS = (Date.now() - faultAtMs) / 1000;
    process.stdout.write(
      `# PgwardenNoLeader fired ${tookS.toFixed(1)} s after the leader crashed (ttl ${FAST_TIMING.ttl} s, for ${TEST_FOR})\n`,
    );
    // Real: the lock leaves etcd (within its ttl) and nobody takes it; node2 is up and scraped, not primary, and the
    // alert keeps firing.
    await waitUntil(async () => (await cluster.view()).leader === undefined, {
      timeoutMs: 3 * FAST_TIMING.ttl * 1000,
      intervalMs: 250,
      describe: 'the leader key gone from etcd',
    });
    await assertStays(async () => (await cluster.view()).leader === undefined, {
      forMs: 2 * FAST_TIMING.ttl * 1000,
      intervalMs: 500,
      describe: 'no member takes the lock (node2 is nofailover)',
    });
    assert.equal((await prometheus.query(`patroni_primary{name="node2"} == 0`)).length, 1);
    assert.ok(
      (await prometheus.alerts('PgwardenNoLeader')).some((alert) => alert.state === 'firing'),
      'PgwardenNoLeader still firing',
    );
  });
});
