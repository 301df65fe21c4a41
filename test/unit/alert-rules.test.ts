// The shipped Prometheus rules and Grafana dashboard (deploy/prometheus, deploy/grafana; issue 18 point 3): promtool
// accepts the rules and passes their unit tests (every alert fires on its fault and not on the near miss), the
// dashboard's queries parse, and every patroni_/pgwarden_ metric name either uses is rendered by the agent's or the
// proxy's /metrics (PENDING_METRICS may name one a rule uses before it exists; it is empty). Also the mapping of the
// figures the new metrics come from (pg_stat_archiver, statfs of pg_wal, pgbackrest info). Needs Debian's prometheus package
// (promtool), which scripts/ensure-deps.sh installs.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';
import type { AgentSnapshot } from '../../src/agent/snapshot.js';
import { MetricsExporter } from '../../src/api/metrics.js';
import { latestBackupStopEpochS } from '../../src/postgres/pgbackrest.js';
import { archiverFromRow } from '../../src/postgres/probe.js';
import { readWalDisk, WAL_DISK_MAX_AGE_MS, WalDiskReader, walDiskFromStatfs } from '../../src/postgres/wal-disk.js';
import { ProxyMetrics } from '../../src/proxy/proxy-metrics.js';
import {
  ALERTS,
  dashboardQueries,
  metricNamesIn,
  metricUses,
  PENDING_METRICS,
  RULE_TESTS_FILE,
  RULES_FILE,
  ruleExpressions,
} from '../kit/alert-files.js';
import { agentSnapshot, pgState } from '../sim/builders.js';

const run = promisify(execFile);

/** A snapshot in which every optional figure is known, so every metric the agent can render is rendered. */
function fullSnapshot(): AgentSnapshot {
  return agentSnapshot({
    pg: pgState({
      role: 'primary',
      writeLsn: 5000n,
      slots: [
        {
          name: 'node2',
          type: 'physical',
          database: undefined,
          plugin: undefined,
          isActive: true,
          restartLsn: 4000n,
          confirmedFlushLsn: undefined,
          retainedBytes: 1000,
          walStatus: 'reserved',
        },
      ],
      archiver: { mode: 'on', archivedCount: 7, failedCount: 1, lastArchivedEpochS: 1795370000, lastFailedEpochS: 1795360000 },
      walDisk: { sizeBytes: 10_000, availableBytes: 2_000, usedBytes: 7_000 },
      lastBackup: { stopEpochS: 1795300000 },
    }),
    dcsLastSeenEpochS: 1795370065,
    lastCycleAtMs: 1000,
  });
}

/** Metric names with a sample line in a text exposition. */
function sampledNames(text: string): Set<string> {
  const names = new Set<string>();
  for (const line of text.split('\n')) {
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)[{ ]/.exec(line);
    if (match !== null) names.add(match[1]!);
  }
  return names;
}

async function renderedNames(): Promise<Set<string>> {
  const agent = sampledNames(await new MetricsExporter().render(fullSnapshot()));
  const proxy = sampledNames(
    await new ProxyMetrics(
      () => [],
      () => 1,
    ).registry.metrics(),
  );
  return new Set([...agent, ...proxy]);
}

describe('deploy/prometheus alert rules', () => {
  it('promtool check rules accepts the file, and it holds every alert of issue 18 with a severity, summary and runbook', async () => {
    const { stdout } = await run('promtool', ['check', 'rules', RULES_FILE]);
    assert.match(stdout, new RegExp(`SUCCESS: ${ALERTS.length} rules found`));
    const text = await readFile(RULES_FILE, 'utf8');
    const blocks = text.split(/\n(?=[ \t]*- alert: )/).slice(1);
    assert.deepEqual(
      blocks.map((block) => /- alert: (\S+)/.exec(block)![1]),
      ALERTS,
    );
    for (const block of blocks) {
      const name = /- alert: (\S+)/.exec(block)![1]!;
      assert.match(block, /\n\s+severity: (critical|warning|info)\n/, `${name}: severity`);
      assert.match(block, /\n\s+summary: \S/, `${name}: summary`);
      assert.match(block, /\n\s+runbook: (['"])[^\n]{40,}\1\n/, `${name}: a one-line runbook`);
    }
  });

  it('promtool test rules passes, with a test of every alert (firing and silent)', async () => {
    const { stdout } = await run('promtool', ['test', 'rules', RULE_TESTS_FILE]);
    assert.match(stdout, /SUCCESS/);
    const tests = await readFile(RULE_TESTS_FILE, 'utf8');
    for (const alert of ALERTS) {
      const evaluations = [...tests.matchAll(new RegExp(`alertname: ${alert}\\n\\s+exp_alerts:( \\[\\])?`, 'g'))];
      assert.ok(
        evaluations.some((match) => match[1] === undefined),
        `${alert} has a test where it fires`,
      );
      assert.ok(
        evaluations.some((match) => match[1] !== undefined),
        `${alert} has a test where it stays silent`,
      );
    }
  });

  it('every metric name the rules and the dashboard use is rendered by /metrics (agent or proxy), or listed as pending', async () => {
    const rendered = await renderedNames();
    assert.deepEqual([...(await ruleExpressions()).keys()], ALERTS);
    const uses = await metricUses();
    assert.ok(uses.length > 40, `found ${uses.length} uses`);
    const missing = uses.filter(({ name }) => !rendered.has(name) && PENDING_METRICS[name] === undefined);
    assert.deepEqual(missing, [], 'names no /metrics renders');
    // A pending name that is rendered by now should leave the list (and its rule be tested on a cluster).
    for (const name of Object.keys(PENDING_METRICS))
      assert.ok(!rendered.has(name), `${name} is rendered now: drop it from PENDING_METRICS`);
    for (const name of Object.keys(PENDING_METRICS))
      assert.ok(
        uses.some((use) => use.name === name),
        `${name} is still used`,
      );
  });

  it('the tokenizer finds metric names, not label names or functions', () => {
    assert.deepEqual(
      metricNamesIn(
        'max by (scope) (patroni_xlog_location{scope=~"$scope"}) - on (scope) group_right patroni_xlog_replayed_location and on (scope, name) (pgwarden_lock_held == 1)',
      ),
      ['patroni_xlog_location', 'patroni_xlog_replayed_location', 'pgwarden_lock_held'],
    );
  });

  it("the dashboard is valid JSON whose every query parses (promtool checks them as recording rules, $scope as '.*')", async () => {
    const expressions = await dashboardQueries();
    assert.ok(expressions.length >= 20, `${expressions.length} queries`);
    const queries = expressions.filter(({ title }) => title !== 'variable');
    const dir = await mkdtemp(join(tmpdir(), 'pgwarden-dashboard-'));
    try {
      const file = join(dir, 'dashboard-queries.yml');
      const rules = queries.map(
        ({ expr }, index) => `      - record: dashboard:query_${index}\n        expr: ${JSON.stringify(expr.replaceAll('$scope', '.*'))}\n`,
      );
      await writeFile(file, `groups:\n  - name: dashboard\n    rules:\n${rules.join('')}`);
      const { stdout } = await run('promtool', ['check', 'rules', file]);
      assert.match(stdout, new RegExp(`SUCCESS: ${queries.length} rules found`));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('the metrics the rules need', () => {
  it('renders ttl, the pg_wal file system and pg_stat_archiver from the snapshot, each with its real value', async () => {
    const text = await new MetricsExporter().render(fullSnapshot());
    const value = (name: string): string | undefined => new RegExp(`^${name}\\{[^}]*\\} (\\S+)$`, 'm').exec(text)?.[1];
    assert.equal(value('pgwarden_ttl_seconds'), '30');
    assert.equal(value('pgwarden_wal_filesystem_size_bytes'), '10000');
    assert.equal(value('pgwarden_wal_filesystem_available_bytes'), '2000');
    assert.equal(value('pgwarden_wal_filesystem_used_ratio'), String(7000 / 9000));
    assert.equal(value('pgwarden_archive_enabled'), '1');
    assert.equal(value('pgwarden_archive_archived_count'), '7');
    assert.equal(value('pgwarden_archive_failed_count'), '1');
    assert.equal(value('pgwarden_archive_last_archived_time_seconds'), '1795370000');
    assert.equal(value('pgwarden_archive_last_failed_time_seconds'), '1795360000');
    assert.equal(value('pgwarden_backup_last_completed_time_seconds'), '1795300000');
  });

  it('leaves a sample out while its figure is unknown (PostgreSQL down, no pg_wal), keeping HELP and TYPE', async () => {
    const down = { ...fullSnapshot(), pg: pgState({ isRunning: false, role: undefined }) };
    const text = await new MetricsExporter().render(down);
    for (const name of [
      'pgwarden_wal_filesystem_used_ratio',
      'pgwarden_archive_enabled',
      'pgwarden_archive_last_archived_time_seconds',
      'pgwarden_backup_last_completed_time_seconds',
    ]) {
      assert.doesNotMatch(text, new RegExp(`^${name}\\{`, 'm'), name);
      assert.match(text, new RegExp(`^# TYPE ${name} gauge$`, 'm'), name);
    }
    assert.match(text, /^pgwarden_ttl_seconds\{[^}]*\} 30$/m);
  });

  it('maps pg_stat_archiver: counts, epoch times (numeric strings too), none yet as undefined (rendered 0), archive_mode off', async () => {
    assert.deepEqual(
      archiverFromRow('on', {
        archived_count: 3,
        failed_count: 0,
        last_archived: '1795370000.123456' as unknown as number,
        last_failed: null,
      }),
      {
        mode: 'on',
        archivedCount: 3,
        failedCount: 0,
        lastArchivedEpochS: 1795370000.123456,
        lastFailedEpochS: undefined,
      },
    );
    const off = archiverFromRow('off', { archived_count: 0, failed_count: 0, last_archived: null, last_failed: null });
    const text = await new MetricsExporter().render({ ...fullSnapshot(), pg: { ...fullSnapshot().pg, archiver: off } });
    assert.match(text, /^pgwarden_archive_enabled\{[^}]*\} 0$/m);
    assert.match(text, /^pgwarden_archive_last_archived_time_seconds\{[^}]*\} 0$/m);
  });

  it("reads the newest backup's stop time from pgbackrest info JSON: the latest of several, none, an unreadable repository", () => {
    const info = (backups: readonly { label: string; stop: number }[], code = backups.length === 0 ? 2 : 0): string =>
      JSON.stringify([
        {
          name: 'batman',
          status: { code, message: code === 0 ? 'ok' : code === 2 ? 'no valid backups' : 'other' },
          repo: [{ key: 1, status: { code, message: 'x' } }],
          backup: backups.map(({ label, stop }) => ({ label, type: 'full', timestamp: { start: stop - 60, stop } })),
        },
      ]);
    assert.equal(
      latestBackupStopEpochS(
        info([
          { label: '20261207-050000F', stop: 1795300000 },
          { label: '20261207-060000F_20261207-061000I', stop: 1795303600 },
        ]),
        'batman',
      ),
      1795303600,
    );
    assert.equal(latestBackupStopEpochS(info([]), 'batman'), undefined);
    assert.equal(latestBackupStopEpochS(info([{ label: 'x', stop: 5 }]), 'other-stanza'), undefined);
    assert.throws(() => latestBackupStopEpochS(info([], 99), 'batman'), /status 99/);
  });

  it('reads the pg_wal file system as df does (statfs of a real directory), undefined without pg_wal', async () => {
    assert.deepEqual(walDiskFromStatfs({ bsize: 4096, blocks: 100, bfree: 30, bavail: 20 }), {
      sizeBytes: 409_600,
      availableBytes: 81_920,
      usedBytes: 286_720,
    });
    const dir = await mkdtemp(join(tmpdir(), 'pgwarden-waldisk-'));
    try {
      assert.equal(await readWalDisk(dir), undefined);
      await mkdir(join(dir, 'pg_wal'));
      const disk = await readWalDisk(dir);
      assert.ok(
        disk !== undefined && disk.sizeBytes > 0 && disk.usedBytes >= 0 && disk.availableBytes <= disk.sizeBytes,
        JSON.stringify(disk),
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('probes reuse a WAL disk reading for WAL_DISK_MAX_AGE_MS, and read again once pg_wal appears', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'pgwarden-waldisk-'));
    try {
      const reader = new WalDiskReader(dir);
      assert.equal(await reader.read(0), undefined);
      await mkdir(join(dir, 'pg_wal'));
      const first = await reader.read(1);
      assert.ok(first !== undefined, 'a missing pg_wal is not remembered: the next probe reads again');
      await rm(join(dir, 'pg_wal'), { recursive: true });
      assert.equal(await reader.read(1 + WAL_DISK_MAX_AGE_MS - 1), first, 'within the age: the same reading');
      assert.equal(await reader.read(1 + WAL_DISK_MAX_AGE_MS), undefined, 'past the age: read again');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
