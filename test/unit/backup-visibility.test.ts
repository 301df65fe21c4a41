// Backups made visible (issue 16 point 7): the repository summary from pgbackrest info, pgBackRest's error from a log,
// a failing archive_command logged once per change, the GET /backup document, /metrics and `list`'s footer.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile, appendFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { MetricsExporter } from '../../src/api/metrics.js';
import { listCommand } from '../../src/cli/commands/list.js';
import { renderMemberTable } from '../../src/cli/render.js';
import { backupVisibility, formatAge, renderBackupFooter, type BackupVisibility } from '../../src/core/backup-visibility.js';
import { summarizeCluster } from '../../src/core/cluster-summary.js';
import type { ArchiverState } from '../../src/core/types.js';
import { ArchiveFailureWatch } from '../../src/postgres/archive-failure.js';
import { lastPgBackrestError, repositorySummary } from '../../src/postgres/pgbackrest.js';
import type { Log } from '../../src/util/log.js';
import type { RestClient } from '../../src/util/rest-client.js';
import { referenceView } from '../kit/reference-view.js';
import { agentSnapshot, pgState } from '../sim/builders.js';

/** pgbackrest info --output=json of a stanza with two backups (fields pgBackRest 2.45 prints, trimmed). */
const INFO = JSON.stringify([
  {
    name: 'demo',
    status: { code: 0, message: 'ok' },
    archive: [{ id: '15-1', min: '000000010000000000000003', max: '000000010000000000000009', database: { id: 1 } }],
    backup: [
      {
        label: '20261207-100000F',
        type: 'full',
        timestamp: { start: 1796637600, stop: 1796637630 },
        archive: { start: '000000010000000000000003', stop: '000000010000000000000003' },
        info: { size: 30_000_000 },
      },
      {
        label: '20261207-100000F_20261207-110000I',
        type: 'incr',
        timestamp: { start: 1796641200, stop: 1796641212 },
        info: { size: 31_000_000 },
      },
    ],
  },
]);

/** What pgBackRest 2.45 wrote to <log-path>/<stanza>-archive-push.log for a push to a stanza never created. */
const PGBACKREST_LOG = `-------------------PROCESS START-------------------
2026-12-07 11:25:17.392 P00   INFO: archive-push command begin 2.45: [/tmp/pg/pg_wal/000000010000000000000001] --config=/tmp/c.conf
2026-12-07 11:25:17.393 P00  ERROR: [103]: unable to find a valid repository:
                                    repo1: [FileMissingError] unable to load info file '/repo/archive/s/archive.info' or '/repo/archive/s/archive.info.copy':
                                    FileMissingError: unable to open missing file '/repo/archive/s/archive.info' for read
                                    HINT: archive.info cannot be opened but is required to push/get WAL segments.
                                    HINT: has a stanza-create been performed?
2026-12-07 11:25:17.393 P00   INFO: archive-push command end: aborted with exception [103]
`;

/** The same error on pgBackRest's stderr, as PostgreSQL's log has it, followed by PostgreSQL's own lines. */
const POSTGRES_LOG = `2026-12-07 11:30:00.001 UTC [812] LOG:  checkpoint complete
ERROR: [082]: WAL segment 000000010000000000000005 was not archived before the 60000ms timeout
       HINT: check the archive_command to ensure that all options are correct (especially --stanza).
2026-12-07 11:30:01.002 UTC [815] LOG:  archive command failed with exit code 82
2026-12-07 11:30:01.002 UTC [815] DETAIL:  The failed archive command was: pgbackrest --stanza=demo archive-push pg_wal/000000010000000000000005
`;

describe('the repository summary from pgbackrest info', () => {
  it('gives the newest backup, the count, the end of the oldest backup as the first recoverable point, and the archive range', () => {
    assert.deepEqual(repositorySummary(INFO, 'demo'), {
      backupCount: 2,
      newest: { label: '20261207-100000F_20261207-110000I', type: 'incr', stopEpochS: 1796641212, sizeBytes: 31_000_000 },
      recoverableFromEpochS: 1796637630,
      archiveMinWal: '000000010000000000000003',
      archiveMaxWal: '000000010000000000000009',
    });
  });

  it('says none for an empty stanza and throws pgBackRest\u2019s message for an unreadable repository', () => {
    const empty = JSON.stringify([{ name: 'demo', status: { code: 2, message: 'no valid backups' }, backup: [], archive: [] }]);
    assert.deepEqual(repositorySummary(empty, 'demo'), { backupCount: 0 });
    const broken = JSON.stringify([
      { name: 'demo', status: { code: 99, message: 'other' }, repo: [{ status: { code: 99, message: 'permission denied' } }] },
    ]);
    assert.throws(() => repositorySummary(broken, 'demo'), /permission denied/);
    assert.throws(() => repositorySummary('not json', 'demo'), /printed no JSON/);
  });
});

describe("pgBackRest's own error from a log", () => {
  it('reads its log file: the error and its continuation lines, without the HINTs', () => {
    assert.equal(
      lastPgBackrestError(PGBACKREST_LOG),
      "[103]: unable to find a valid repository: repo1: [FileMissingError] unable to load info file '/repo/archive/s/archive.info' or '/repo/archive/s/archive.info.copy': FileMissingError: unable to open missing file '/repo/archive/s/archive.info' for read",
    );
  });

  it("reads PostgreSQL's log (pgBackRest's stderr), the last error winning; none when there is none", () => {
    assert.equal(
      lastPgBackrestError(`ERROR: [055]: older\n${POSTGRES_LOG}`),
      '[082]: WAL segment 000000010000000000000005 was not archived before the 60000ms timeout',
    );
    assert.equal(lastPgBackrestError('2026-12-07 LOG:  all fine\n'), undefined);
    assert.ok(lastPgBackrestError(`ERROR: [082]: ${'x'.repeat(1000)}`)!.length <= 400);
  });
});

function recorder(): { log: Log; lines: { level: string; message: string; fields: Record<string, unknown> }[] } {
  const lines: { level: string; message: string; fields: Record<string, unknown> }[] = [];
  const at =
    (level: string) =>
    (fields: Record<string, unknown>, message: string): void =>
      void lines.push({ level, message, fields });
  return { log: { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') }, lines };
}

const archiver = (overrides: Partial<ArchiverState>): ArchiverState => ({
  mode: 'on',
  archivedCount: 10,
  failedCount: 0,
  lastArchivedEpochS: 1000,
  lastFailedEpochS: undefined,
  lastArchivedWal: '000000010000000000000004',
  ...overrides,
});

describe('a failing archive_command is logged once per change', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pgw-archive-failure-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('logs the first failure with pgBackRest\u2019s message, not each retry or segment, then a change, then recovery', async () => {
    const pgLog = join(dir, 'postgresql.log');
    const ownLog = join(dir, 'demo-archive-push.log');
    await writeFile(pgLog, POSTGRES_LOG);
    const { log, lines } = recorder();
    const watch = new ArchiveFailureWatch(log, [pgLog, ownLog]);

    assert.deepEqual(await watch.observe(archiver({})), archiver({}));
    assert.equal(lines.length, 0, 'nothing while archiving works');

    const failing = archiver({ failedCount: 1, lastFailedEpochS: 1010, lastFailedWal: '000000010000000000000005' });
    const seen = await watch.observe(failing);
    assert.equal(seen?.failureMessage, '[082]: WAL segment 000000010000000000000005 was not archived before the 60000ms timeout');
    assert.equal(lines.length, 1);
    assert.equal(lines[0]!.level, 'error');
    assert.match(lines[0]!.message, /WAL archiving fails \(000000010000000000000005\): \[082\]: WAL segment/);

    // PostgreSQL retries the same segment, and then (same error) the next one: still one line.
    await watch.observe({ ...failing, failedCount: 2, lastFailedEpochS: 1020 });
    await appendFile(pgLog, 'ERROR: [082]: WAL segment 000000010000000000000006 was not archived before the 60000ms timeout\n');
    await watch.observe({ ...failing, failedCount: 3, lastFailedEpochS: 1030, lastFailedWal: '000000010000000000000006' });
    assert.equal(lines.length, 1, lines.map((line) => line.message).join('\n'));

    // Another error: logged once more.
    await appendFile(pgLog, 'ERROR: [104]: archive-push command encountered error(s): repo1: permission denied\n');
    await watch.observe({ ...failing, failedCount: 4, lastFailedEpochS: 1040 });
    assert.equal(lines.length, 2);
    assert.match(lines[1]!.message, /\[104\]: archive-push command encountered error\(s\): repo1: permission denied/);

    // Archived again: one info line, and a later failure is logged anew.
    await watch.observe(archiver({ failedCount: 4, lastFailedEpochS: 1040, lastArchivedEpochS: 1050 }));
    assert.equal(lines.length, 3);
    assert.equal(lines[2]!.level, 'info');
    assert.match(lines[2]!.message, /WAL archiving works again/);
    await watch.observe(archiver({ failedCount: 5, lastFailedEpochS: 1060, lastArchivedEpochS: 1050 }));
    assert.equal(lines.length, 4);
  });

  it('without any log to read, says where to look, once', async () => {
    const { log, lines } = recorder();
    const watch = new ArchiveFailureWatch(log, [join(dir, 'missing.log')]);
    const failing = archiver({ failedCount: 1, lastFailedEpochS: 1010, lastFailedWal: '000000010000000000000005' });
    assert.equal((await watch.observe(failing))?.failureMessage, undefined);
    await watch.observe({ ...failing, lastFailedEpochS: 1020 });
    assert.equal(lines.length, 1);
    assert.match(lines[0]!.message, /left no error in its log; see PostgreSQL/);
  });
});

const NOW = 1796641212 + 300;

function primaryPg(archiverState: ArchiverState): ReturnType<typeof pgState> {
  return pgState({
    role: 'primary',
    archiver: archiverState,
    lastBackup: {
      stopEpochS: 1796641212,
      label: '20261207-100000F_20261207-110000I',
      type: 'incr',
      sizeBytes: 31_000_000,
      backupCount: 2,
      recoverableFromEpochS: 1796637630,
      archiveMinWal: '000000010000000000000003',
    },
  });
}

describe('GET /backup, /metrics and the list footer', () => {
  const healthy = archiver({
    lastArchivedEpochS: NOW - 12,
    lastArchivedWal: '000000010000000000000009',
    failedCount: 1,
    lastFailedEpochS: 900,
  });

  it('builds the GET /backup document with times in ISO and ages in seconds', () => {
    assert.deepEqual(backupVisibility(primaryPg(healthy), NOW), {
      repository: {
        last: {
          label: '20261207-100000F_20261207-110000I',
          type: 'incr',
          finished: '2026-12-07T11:00:12.000Z',
          ageS: 300,
          sizeBytes: 31_000_000,
        },
        count: 2,
        recoverableFrom: '2026-12-07T10:00:30.000Z',
        archiveMinWal: '000000010000000000000003',
      },
      archive: {
        mode: 'on',
        lastArchivedWal: '000000010000000000000009',
        lastArchived: new Date((NOW - 12) * 1000).toISOString(),
        lastArchivedAgeS: 12,
        failedCount: 1,
        lastFailedWal: null,
        lastFailed: new Date(900 * 1000).toISOString(),
        isFailing: false,
        failure: null,
      },
    });
    assert.deepEqual(backupVisibility(pgState({ isRunning: false, role: undefined }), NOW), { repository: null, archive: null });
  });

  it('renders the footer: last backup and age, first recoverable point, archive lag; FAILING with pgBackRest\u2019s words', () => {
    assert.deepEqual(renderBackupFooter(backupVisibility(primaryPg(healthy), NOW)), [
      ' Backups: last incr 20261207-100000F_20261207-110000I finished 2026-12-07 11:00:12 UTC (5m0s ago); 2 in the repository; recoverable from 2026-12-07 10:00:30 UTC',
      ' WAL archive: last 000000010000000000000009 archived 12s ago; 1 failed attempts since the statistics reset',
    ]);
    const failing = archiver({
      lastArchivedEpochS: NOW - 4000,
      lastArchivedWal: '000000010000000000000009',
      failedCount: 7,
      lastFailedEpochS: 1796641500,
      lastFailedWal: '00000001000000000000000A',
      failureMessage: '[103]: unable to find a valid repository',
    });
    assert.deepEqual(renderBackupFooter(backupVisibility(primaryPg(failing), NOW)).slice(1), [
      ' WAL archive: FAILING on 00000001000000000000000A since 2026-12-07 11:05:00 UTC (7 failed attempts; last 000000010000000000000009 archived 1h6m ago): [103]: unable to find a valid repository',
    ]);
    const none: BackupVisibility = { repository: { last: null, count: 0, recoverableFrom: null, archiveMinWal: null }, archive: null };
    assert.deepEqual(renderBackupFooter(none), [' Backups: none in the repository yet']);
    assert.deepEqual(renderBackupFooter({ repository: null, archive: null }), []);
    assert.deepEqual([formatAge(59), formatAge(75), formatAge(7260), formatAge(90_000)], ['59s', '1m15s', '2h1m', '1d1h']);
  });

  it('exports the ages, the count, the first recoverable time and whether archiving fails in /metrics', async () => {
    const failing = archiver({ lastArchivedEpochS: 1000, failedCount: 3, lastFailedEpochS: 2000 });
    const text = await new MetricsExporter().render(agentSnapshot({ pg: primaryPg(failing) }));
    const value = (name: string): string | undefined => new RegExp(`^${name}\\{[^}]*\\} (\\S+)$`, 'm').exec(text)?.[1];
    assert.equal(value('pgwarden_backup_count'), '2');
    assert.equal(value('pgwarden_backup_first_recoverable_time_seconds'), '1796637630');
    assert.equal(value('pgwarden_archive_failing'), '1');
    const age = Number(value('pgwarden_backup_last_completed_age_seconds'));
    assert.ok(Math.abs(age - (Date.now() / 1000 - 1796641212)) < 5, `backup age ${age}`);
    assert.ok(Number(value('pgwarden_archive_last_archived_age_seconds')) > 1e9);
    const fine = await new MetricsExporter().render(agentSnapshot({ pg: primaryPg(healthy) }));
    assert.match(fine, /^pgwarden_archive_failing\{[^}]*\} 0$/m);
    const replica = await new MetricsExporter().render(agentSnapshot({ pg: pgState({ role: 'replica' }) }));
    assert.doesNotMatch(replica, /^pgwarden_backup_count\{/m);
  });

  it("appends the leader's footer to list's pretty table, and leaves the table exactly as it was without backups", async () => {
    const view = referenceView();
    const table = renderMemberTable('bench', summarizeCluster(view), 'pretty');
    const restAnswering = (status: number, body: unknown): RestClient & { paths: string[] } => {
      const paths: string[] = [];
      return {
        paths,
        credentialsKey: undefined,
        close: () => undefined,
        request: () => Promise.reject(new Error('unused')),
        callMember: (apiUrl: string, path: string) => {
          paths.push(`${apiUrl} ${path}`);
          return Promise.resolve({ status, text: JSON.stringify(body), headers: {} } as never);
        },
      };
    };
    const run = async (rest: RestClient | undefined, format: 'pretty' | 'json' = 'pretty'): Promise<string> => {
      const out: string[] = [];
      await listCommand({
        configPath: 'x.yml',
        format,
        loadCluster: () => Promise.resolve({ scope: 'bench', view, rest }),
        out: (text) => out.push(text),
      });
      return out.join('\n');
    };
    const withBackups = restAnswering(200, { running: null, ...backupVisibility(primaryPg(healthy), NOW) });
    const text = await run(withBackups);
    assert.ok(text.startsWith(`${table}\n Backups: last incr`), text);
    assert.match(text, /\n WAL archive: last 000000010000000000000009 archived 12s ago/);
    assert.deepEqual(withBackups.paths, [`${view.members.find((member) => member.name === view.leader?.name)!.api_url} /backup`]);
    assert.equal(await run(restAnswering(501, { error: 'no backup: section is configured on this member' })), table);
    const down: RestClient = { ...restAnswering(200, {}), callMember: () => Promise.reject(new Error('ECONNREFUSED')) };
    assert.equal(await run(down), table);
    assert.equal(await run(undefined), table);
    assert.equal(await run(withBackups, 'json'), renderMemberTable('bench', summarizeCluster(view), 'json'));
  });
});
