// WAL archiving across failover, the pure rules (core/wal-archive.ts): when a new primary pushes its earlier timelines'
// WAL, that a rewind pushes the .ready WAL first, which files each step pushes, and the parsing of pgBackRest's answers.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decide } from '../../src/core/decide.js';
import type { Observation, WalArchiveObservation } from '../../src/core/types.js';
import {
  archiveMethodOf,
  archiveRetryDelayMs,
  catchUpFailureVerdict,
  MAX_CATCH_UP_FAILURES,
  previousTimelineSegments,
  readyWalFiles,
  segmentTimeline,
} from '../../src/core/wal-archive.js';
import { WalCatchUp } from '../../src/agent/wal-catch-up.js';
import { MetricsExporter } from '../../src/api/metrics.js';
import type { WalArchiveTool } from '../../src/core/ports.js';
import type { ArchivePushStep } from '../../src/core/wal-archive.js';
import { archiveCommandFor } from '../../src/postgres/wal-archive-push.js';
import { silentLog } from '../../src/util/log.js';
import { FakeClock } from '../kit/fake-clock.js';
import { foreignSystemProblem, isAlreadyArchived, isArchiveDuplicateMismatch } from '../../src/postgres/pgbackrest.js';
import { agentSnapshot, freshMemory, kinds, member, observe, pgState, primaryPg, view } from '../sim/builders.js';

const NOW = 100_000;
const PGBACKREST = { kind: 'pgbackrest' } as const;
const archive = (overrides: Partial<WalArchiveObservation> = {}): WalArchiveObservation => ({
  method: PGBACKREST,
  caughtUpTimeline: undefined,
  isRunning: false,
  retryNotBeforeMs: undefined,
  ...overrides,
});
/** node1 holds the lock and runs as primary on timeline 2 (just promoted). */
const promoted = (walArchive: WalArchiveObservation | undefined, timeline = 2): Observation =>
  observe({
    pg: primaryPg({ writeLsn: 5000n, timeline, slots: [] }),
    lock: { lastRenewSentAtMs: NOW - 2000 },
    ...(walArchive !== undefined ? { walArchive } : {}),
  });

describe('after a promotion, the new primary pushes the earlier timelines', () => {
  it('appends archivePreviousTimelines after the leader actions, with the timeline and method', () => {
    const decision = decide(promoted(archive()), freshMemory());
    assert.deepEqual(kinds(decision.actions), ['renewLeader', 'publishStatus', 'manageSlots', 'archivePreviousTimelines']);
    assert.deepEqual(decision.actions.at(-1), { kind: 'archivePreviousTimelines', timeline: 2, method: PGBACKREST });
  });

  it('does nothing without archiving, on timeline 1, once caught up, while running, or while backing off', () => {
    const none = (obs: Observation): void =>
      assert.ok(!kinds(decide(obs, freshMemory()).actions).includes('archivePreviousTimelines'), JSON.stringify(obs.walArchive));
    none(promoted(undefined));
    none(promoted(archive({ method: undefined })));
    none(promoted(archive(), 1));
    none(promoted(archive({ caughtUpTimeline: 2 })));
    none(promoted(archive({ isRunning: true })));
    none(promoted(archive({ retryNotBeforeMs: NOW + 1 })));
    // A later promotion (timeline 3) is due again; a backoff that has passed is too.
    assert.ok(kinds(decide(promoted(archive({ caughtUpTimeline: 2 }), 3), freshMemory()).actions).includes('archivePreviousTimelines'));
    assert.ok(kinds(decide(promoted(archive({ retryNotBeforeMs: NOW })), freshMemory()).actions).includes('archivePreviousTimelines'));
  });

  it('never on a replica, nor on a primary without the lock (it demotes instead)', () => {
    const replica = observe({
      name: 'node2',
      pg: pgState({ timeline: 2 }),
      walArchive: archive(),
      dcs: {
        kind: 'ok',
        view: view({ leaderName: 'node1', members: [member('node1', { timeline: 2 }), member('node2', { timeline: 2 })] }),
      },
    });
    assert.ok(!kinds(decide(replica, freshMemory()).actions).includes('archivePreviousTimelines'));
    const lockless = observe({ pg: primaryPg({ timeline: 2 }), walArchive: archive(), lock: { lastRenewSentAtMs: NOW - 60_000 } });
    const decision = decide(lockless, freshMemory());
    assert.ok(kinds(decision.actions).includes('demote'), decision.reason);
    assert.ok(!kinds(decision.actions).includes('archivePreviousTimelines'));
  });
});

describe('before pg_rewind, an old primary pushes its .ready WAL', () => {
  const oldPrimary = (walArchive: WalArchiveObservation | undefined): Observation =>
    observe({
      name: 'node1',
      pg: primaryPg({ isRunning: false, timeline: 1, writeLsn: undefined }),
      dcs: {
        kind: 'ok',
        view: view({ leaderName: 'node2', members: [member('node1'), member('node2', { role: 'master', timeline: 2 })] }),
      },
      ...(walArchive !== undefined ? { walArchive } : {}),
    });

  it('marks the rewind with the archive method when the member archives', () => {
    const decision = decide(oldPrimary(archive({ method: { kind: 'command', command: 'cp %p /arch/%f' } })), freshMemory());
    assert.deepEqual(decision.actions, [
      { kind: 'rewind', from: 'node2', archiveReadyFirst: { kind: 'command', command: 'cp %p /arch/%f' } },
    ]);
  });

  it('leaves the rewind as it was without archiving', () => {
    assert.deepEqual(decide(oldPrimary(archive({ method: undefined })), freshMemory()).actions, [{ kind: 'rewind', from: 'node2' }]);
    assert.deepEqual(decide(oldPrimary(undefined), freshMemory()).actions, [{ kind: 'rewind', from: 'node2' }]);
  });
});

describe('which archiving method, which files', () => {
  const PGBR = 'pgbackrest --config=/x.conf --stanza=demo archive-push %p';

  it('archiveMethodOf: archive_mode on/always with a command; pgBackRest when it is the backup section\u2019s', () => {
    assert.deepEqual(archiveMethodOf({ archive_mode: 'on', archive_command: PGBR }, PGBR), { kind: 'pgbackrest' });
    assert.deepEqual(archiveMethodOf({ archive_mode: true, archive_command: 'cp %p /a/%f' }, PGBR), {
      kind: 'command',
      command: 'cp %p /a/%f',
    });
    assert.deepEqual(archiveMethodOf({ archive_mode: 'always', archive_command: 'cp %p /a/%f' }, undefined), {
      kind: 'command',
      command: 'cp %p /a/%f',
    });
    assert.equal(archiveMethodOf({ archive_mode: 'off', archive_command: PGBR }, PGBR), undefined);
    assert.equal(archiveMethodOf({ archive_command: PGBR }, PGBR), undefined);
    assert.equal(archiveMethodOf({ archive_mode: 'on', archive_command: '  ' }, PGBR), undefined);
    assert.equal(archiveMethodOf({ archive_mode: 'on' }, PGBR), undefined);
  });

  it('previousTimelineSegments: complete segments of earlier timelines only, oldest first', () => {
    const files = [
      '000000020000000000000007',
      '000000010000000000000006',
      '000000010000000000000005',
      '000000010000000000000007.partial',
      '00000002.history',
      '000000010000000000000004.00000028.backup',
      'archive_status',
      'xlogtemp.123',
    ];
    assert.deepEqual(previousTimelineSegments(files, 2), ['000000010000000000000005', '000000010000000000000006']);
    assert.deepEqual(previousTimelineSegments(files, 3), [
      '000000010000000000000005',
      '000000010000000000000006',
      '000000020000000000000007',
    ]);
    assert.deepEqual(previousTimelineSegments(files, 1), []);
    assert.equal(segmentTimeline('0000000A0000000000000001'), 10);
    assert.equal(segmentTimeline('00000002.history'), undefined);
  });

  it('readyWalFiles: .ready entries, history files first, then segments in order', () => {
    assert.deepEqual(
      readyWalFiles([
        '000000010000000000000009.ready',
        '000000010000000000000008.ready',
        '000000010000000000000007.done',
        '00000002.history.ready',
        '000000010000000000000009.partial.ready',
      ]),
      ['00000002.history', '000000010000000000000008', '000000010000000000000009', '000000010000000000000009.partial'],
    );
    assert.deepEqual(readyWalFiles([]), []);
  });

  it('a failed catch-up is retried after 30 s, doubling, at most 10 min', () => {
    assert.deepEqual([1, 2, 3, 6, 20].map(archiveRetryDelayMs), [30_000, 60_000, 120_000, 600_000, 600_000]);
  });

  it('catchUpFailureVerdict: retries with the doubling pause from now, gives up at the 8th failure in a row', () => {
    assert.deepEqual(catchUpFailureVerdict(0, 5_000), { kind: 'retry', failuresInRow: 1, retryNotBeforeMs: 35_000 });
    assert.deepEqual(catchUpFailureVerdict(1, 5_000), { kind: 'retry', failuresInRow: 2, retryNotBeforeMs: 65_000 });
    assert.deepEqual(catchUpFailureVerdict(6, 0), { kind: 'retry', failuresInRow: 7, retryNotBeforeMs: 600_000 });
    assert.equal(MAX_CATCH_UP_FAILURES, 8);
    assert.deepEqual(catchUpFailureVerdict(7, 0), { kind: 'give-up', failuresInRow: 8 });
    assert.deepEqual(catchUpFailureVerdict(30, 0), { kind: 'give-up', failuresInRow: 31 });
    // A nonsense count (negative) is a first failure, not a retry without pause.
    assert.deepEqual(catchUpFailureVerdict(-3, 0), { kind: 'retry', failuresInRow: 1, retryNotBeforeMs: 30_000 });
  });

  it('archive_command gets %p, %f and %% as PostgreSQL fills them, quoted for sh', () => {
    assert.equal(
      archiveCommandFor('test ! -f /a/%f && cp %p /a/%f # 100%%', '/d/pg_wal/0001', '0001'),
      "test ! -f /a/'0001' && cp '/d/pg_wal/0001' /a/'0001' # 100%",
    );
    assert.equal(archiveCommandFor("cp %p '/a b'/%f", "/d/it's", 'f'), "cp '/d/it'\\''s' '/a b'/'f'");
  });
});

describe("pgBackRest's answers", () => {
  const settings = { repository: '/var/lib/pgbackrest', stanza: 'demo' };

  it('names both system identifiers of an archive-push or check mismatch, and what to do', () => {
    const output = `ERROR: [103]: unable to find a valid repository:
       repo1: [ArchiveMismatchError] PostgreSQL version 15, system-id 7716520344978550819 do not match repo1 stanza version 15, system-id 7716520341155749909
       HINT: are you archiving to the correct stanza?`;
    assert.equal(
      foreignSystemProblem(output, settings),
      'the pgBackRest repository /var/lib/pgbackrest (stanza demo) holds system identifier 7716520341155749909, this cluster is 7716520344978550819: use a new stanza (backup.stanza) or another repository (backup.repository) for this cluster; never point two clusters at one stanza',
    );
  });

  it("recognises stanza-create's [028] and ignores other failures", () => {
    const output =
      'ERROR: [028]: backup and archive info files exist but do not match the database\n       HINT: is this the correct stanza?';
    assert.match(foreignSystemProblem(output, settings) ?? '', /holds another database system than this cluster: use a new stanza/);
    assert.equal(foreignSystemProblem('ERROR: [041]: unable to open file: Permission denied', settings), undefined);
    assert.equal(foreignSystemProblem('', settings), undefined);
  });

  it('tells a different checksum (045) from the same checksum (a warning, exit 0)', () => {
    assert.ok(
      isArchiveDuplicateMismatch(
        "ERROR: [045]: WAL file '000000010000000000000001' already exists in the repo1 archive with a different checksum",
      ),
    );
    assert.ok(!isArchiveDuplicateMismatch('ERROR: [103]: unable to find a valid repository'));
    assert.ok(isAlreadyArchived("WARN: WAL file '000000010000000000000001' already exists in the repo1 archive with the same checksum"));
    assert.ok(!isAlreadyArchived(''));
  });
});

describe('the catch-up runner (agent/wal-catch-up.ts) and its metrics', () => {
  const tool = (outcomes: ArchivePushStep['outcome'][]): WalArchiveTool & { calls: number } => {
    const fake = {
      calls: 0,
      pushPreviousTimelines: async (): Promise<readonly ArchivePushStep[]> => {
        const outcome = outcomes[Math.min(fake.calls, outcomes.length - 1)]!;
        fake.calls++;
        return [
          {
            file: '000000010000000000000005',
            outcome,
            detail: outcome === 'failed' ? 'ERROR: [103]: unable to find a valid repository' : 'ok',
          },
        ];
      },
    };
    return fake;
  };

  it('a run that pushed everything (or found it equal) catches the timeline up', async () => {
    const catchUp = new WalCatchUp(tool(['already-archived']), new FakeClock(), silentLog);
    const run = catchUp.start(2, PGBACKREST);
    assert.equal(catchUp.observation(PGBACKREST).isRunning, true);
    await run;
    assert.deepEqual(catchUp.observation(PGBACKREST), {
      method: PGBACKREST,
      caughtUpTimeline: 2,
      isRunning: false,
      retryNotBeforeMs: undefined,
    });
  });

  it('a failed run backs off 30 s, then doubles; after 8 failures it gives up on that timeline', async () => {
    const clock = new FakeClock(0);
    const fake = tool(['failed']);
    const catchUp = new WalCatchUp(fake, clock, silentLog);
    await catchUp.start(2, PGBACKREST);
    assert.deepEqual(catchUp.observation(PGBACKREST), {
      method: PGBACKREST,
      caughtUpTimeline: undefined,
      isRunning: false,
      retryNotBeforeMs: 30_000,
    });
    assert.match(catchUp.status().lastError ?? '', /unable to find a valid repository/);
    await catchUp.start(2, PGBACKREST);
    assert.equal(catchUp.observation(PGBACKREST).retryNotBeforeMs, 60_000);
    for (let i = 0; i < 6; i++) await catchUp.start(2, PGBACKREST);
    assert.equal(fake.calls, 8);
    assert.equal(catchUp.observation(PGBACKREST).caughtUpTimeline, 2, 'given up: core stops asking');
  });

  it('a different content (045) is reported, not retried: pushing again cannot change the archive', async () => {
    const catchUp = new WalCatchUp(tool(['different-content']), new FakeClock(), silentLog);
    await catchUp.start(3, PGBACKREST);
    assert.equal(catchUp.observation(PGBACKREST).caughtUpTimeline, 3);
  });

  it('/metrics: the foreign-system flag and the count of 045 files, with a backup: section only', async () => {
    const text = await new MetricsExporter().render(
      agentSnapshot({ pg: primaryPg({ backupRepository: { isForeignSystem: true, differentContentFiles: 2 } }) }),
    );
    assert.match(text, /^pgwarden_backup_repository_foreign_system\{[^}]*\} 1$/m);
    assert.match(text, /^pgwarden_archive_different_content_files\{[^}]*\} 2$/m);
    const without = await new MetricsExporter().render(agentSnapshot({ pg: primaryPg() }));
    assert.doesNotMatch(without, /^pgwarden_backup_repository_foreign_system\{/m);
  });
});
