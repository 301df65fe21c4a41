// Backups as commands (issue 16 point 4), the parts without processes: which member takes a backup, pgBackRest's
// command line from a standby, what `info` lists, the REST answers, the runner's lock and stop on a layout change, and
// backup.schedule (cron) with the leader's scheduler.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BackupRunner } from '../../src/agent/backup-runner.js';
import { BackupScheduler } from '../../src/agent/backup-scheduler.js';
import { backupSection } from '../../src/config/backup.js';
import { cronMatches, dueBackupType, parseCron, type CronSpec } from '../../src/core/backup-schedule.js';
import type { AgentSnapshot } from '../../src/agent/snapshot.js';
import { handlePostBackup, type BackupEndpoint } from '../../src/api/backup.js';
import { renderBackupRows } from '../../src/cli/commands/backup.js';
import { backupLayoutOf, backupRows, chooseBackupMember } from '../../src/core/backup-plan.js';
import type { BackupTool } from '../../src/core/ports.js';
import { MemoryDcs, MemoryDcsStore } from '../../src/dcs/memory/memory-dcs.js';
import { pgbackrestBackupArgv } from '../../src/postgres/pgbackrest.js';
import { silentLog } from '../../src/util/log.js';
import { FakeClock } from '../kit/fake-clock.js';
import { agentSnapshot, member, primaryPg, view } from '../sim/builders.js';

describe('chooseBackupMember', () => {
  const members = [
    member('node1', { role: 'primary' }),
    member('node2', { receive_lsn: 900, replication_state: 'streaming' }),
    member('node3', { receive_lsn: 950, replication_state: 'streaming' }),
  ];

  it('picks the streaming replica closest to the leader by default and for --from standby', () => {
    for (const from of [undefined, 'standby'] as const) {
      const chosen = chooseBackupMember(view({ leaderName: 'node1', members }), from);
      assert.ok('member' in chosen);
      assert.equal(chosen.member.name, 'node3');
      assert.equal(chosen.isStandby, true);
    }
  });

  it('skips replicas that do not stream, are not running or are tagged nobackup', () => {
    const others = [
      member('node1', { role: 'primary' }),
      member('node2', { replication_state: 'in archive recovery' }),
      member('node3', { state: 'starting' }),
      member('node4', { tags: { nobackup: true } }),
    ];
    const chosen = chooseBackupMember(view({ leaderName: 'node1', members: others }), undefined);
    assert.ok('member' in chosen);
    assert.equal(chosen.member.name, 'node1', 'no streaming standby: the leader');
    const refused = chooseBackupMember(view({ leaderName: 'node1', members: others }), 'standby');
    assert.ok('problem' in refused);
    assert.match(refused.problem, /no streaming standby.*--from primary/);
  });

  it('takes the leader for --from primary, and refuses without a leader', () => {
    const chosen = chooseBackupMember(view({ leaderName: 'node1', members }), 'primary');
    assert.ok('member' in chosen);
    assert.deepEqual([chosen.member.name, chosen.isStandby], ['node1', false]);
    assert.ok('problem' in chooseBackupMember(view({ members }), undefined));
  });
});

describe('pgBackRest backup command line', () => {
  const settings = { stanza: 'batman', repository: '/repo', configFile: '/pg/pgbackrest-node2.conf', workDir: '/pg/w', options: {} };
  it('on the primary: its config file alone', () => {
    assert.deepEqual(pgbackrestBackupArgv(settings, 'diff', undefined), [
      'pgbackrest',
      '--config=/pg/pgbackrest-node2.conf',
      '--stanza=batman',
      '--type=diff',
      'backup',
    ]);
  });
  it('from a standby: --backup-standby, pg1 the primary and pg2 this standby', () => {
    const primary = { dataDir: '/pg/node1/data', port: 5432, socketDir: '/pg/node1', user: 'postgres' };
    const self = { dataDir: '/pg/node2/data', port: 5433, socketDir: '/pg/node2', user: 'postgres' };
    assert.deepEqual(pgbackrestBackupArgv(settings, 'full', { primary, self }).slice(3), [
      '--type=full',
      '--backup-standby',
      '--pg1-path=/pg/node1/data',
      '--pg1-port=5432',
      '--pg1-socket-path=/pg/node1',
      '--pg1-user=postgres',
      '--pg2-path=/pg/node2/data',
      '--pg2-port=5433',
      '--pg2-socket-path=/pg/node2',
      '--pg2-user=postgres',
      'backup',
    ]);
  });
});

describe('backupRows (pgbackrest info --output=json)', () => {
  const info = [
    {
      name: 'batman',
      status: { code: 0, message: 'ok' },
      backup: [
        {
          label: '20261207-051500F',
          type: 'full',
          timestamp: { start: 1796620500, stop: 1796620510 },
          info: { size: 25_000_000, delta: 25_000_000, repository: { size: 3_000_000, delta: 3_000_000 } },
          archive: { start: '000000010000000000000004', stop: '000000010000000000000004' },
          prior: null,
          error: false,
        },
        {
          label: '20261207-051500F_20261207-052000I',
          type: 'incr',
          timestamp: { start: 1796620800, stop: 1796620802 },
          info: { size: 25_000_000, delta: 10_000, repository: { size: 3_000_000, delta: 2_000 } },
          archive: { start: '000000010000000000000006', stop: '000000010000000000000006' },
          prior: '20261207-051500F',
        },
      ],
    },
  ];
  it('lists label, type, times, sizes and the WAL range, oldest first', () => {
    const rows = backupRows(info, 'batman');
    assert.deepEqual(
      rows.map((row) => [row.label, row.type, row.start, row.walStart, row.sizeBytes, row.repoSizeBytes, row.prior]),
      [
        ['20261207-051500F', 'full', '2026-12-07T05:15:00Z', '000000010000000000000004', 25_000_000, 3_000_000, undefined],
        [
          '20261207-051500F_20261207-052000I',
          'incr',
          '2026-12-07T05:20:00Z',
          '000000010000000000000006',
          25_000_000,
          2_000,
          '20261207-051500F',
        ],
      ],
    );
    assert.deepEqual(backupRows(info, 'other'), []);
    assert.deepEqual(backupRows('garbage', 'batman'), []);
    const table = renderBackupRows(rows, 'pretty');
    assert.match(table, /\| 20261207-051500F +\| full +\| 2026-12-07T05:15:00Z/);
    assert.match(table, /23\.8 MB/);
  });
});

describe('POST /backup', () => {
  const record = { member: 'node2', type: 'full' as const, started: '2026-12-07T05:15:00Z' };
  const endpoint = (start: BackupEndpoint['start']): BackupEndpoint => ({
    start,
    status: () => ({ running: null, last: null }),
    readLock: async () => undefined,
    info: async () => '[]',
  });
  it('answers 202 with an id when started, 409 naming who runs one, 400 for a bad type, 501 without a backup section', async () => {
    const started = await handlePostBackup(
      { type: 'full' },
      endpoint(async () => ({ kind: 'started', record, fromStandby: true })),
    );
    assert.equal(started.status, 202);
    assert.deepEqual(JSON.parse(started.body!), { id: 'node2@2026-12-07T05:15:00Z', ...record, from: 'standby' });
    const busy = await handlePostBackup(
      {},
      endpoint(async () => ({ kind: 'busy', holder: record })),
    );
    assert.equal(busy.status, 409);
    assert.match(busy.body!, /already running on node2/);
    assert.equal(
      (
        await handlePostBackup(
          { type: 'weekly' },
          endpoint(async () => assert.fail()),
        )
      ).status,
      400,
    );
    assert.equal(
      (
        await handlePostBackup(
          { tpye: 'full' },
          endpoint(async () => assert.fail()),
        )
      ).status,
      400,
    );
    assert.equal((await handlePostBackup({ type: 'full' }, undefined)).status, 501);
  });
});

describe('BackupRunner', () => {
  /** A pgBackRest that runs until `finish` is called or its signal aborts. */
  function fakeTool(): BackupTool & { finish: () => void; aborted: () => boolean; calls: unknown[] } {
    let finish = (): void => undefined;
    let isAborted = false;
    const calls: unknown[] = [];
    return {
      calls,
      finish: () => finish(),
      aborted: () => isAborted,
      runBackup: (type, primary, signal) => {
        calls.push({ type, primary: primary?.name });
        return new Promise((resolve, reject) => {
          finish = () => resolve({ label: '20261207-051500F', sizeBytes: 1000 });
          signal.addEventListener('abort', () => {
            isAborted = true;
            reject(signal.reason as Error);
          });
        });
      },
      backupInfo: async () => '[]',
    };
  }

  const replicaSnapshot = (overrides: Partial<AgentSnapshot> = {}): AgentSnapshot =>
    agentSnapshot({
      name: 'node2',
      isLeaderWithLock: false,
      pg: primaryPg({ role: 'replica', isStreaming: true }),
      view: view({ leaderName: 'node1' }),
      ...overrides,
    });

  const settle = async (clock: FakeClock, ms: number): Promise<void> => {
    for (let step = 0; step < ms / 100; step++) {
      clock.advance(100);
      await new Promise((resolve) => setImmediate(resolve));
    }
  };

  it('takes the lock, runs from the standby against the leader, releases the lock when done; a second start is busy', async () => {
    const clock = new FakeClock();
    const store = new MemoryDcsStore(clock);
    const dcs = (name: string): MemoryDcs => new MemoryDcs(store, { namespace: '/service', scope: 'batman', member: name });
    const tool = fakeTool();
    const snapshot = replicaSnapshot();
    const runner = new BackupRunner({ name: 'node2', locks: dcs('node2'), tool, clock, log: silentLog, getSnapshot: () => snapshot });
    const started = await runner.start('full');
    assert.equal(started.kind, 'started');
    assert.deepEqual(tool.calls, [{ type: 'full', primary: 'node1' }]);
    const other = new BackupRunner({
      name: 'node3',
      locks: dcs('node3'),
      tool: fakeTool(),
      clock,
      log: silentLog,
      getSnapshot: () => snapshot,
    });
    const busy = await other.start('incr');
    assert.equal(busy.kind, 'busy');
    assert.equal(busy.kind === 'busy' ? busy.holder.member : '', 'node2');
    tool.finish();
    await settle(clock, 200);
    assert.equal(runner.status().running, null);
    assert.equal((runner.status().last as { outcome: string } | null)?.outcome, 'ok');
    assert.equal(await dcs('node3').readBackupLock(AbortSignal.timeout(1000)), undefined, 'the lock is released');
  });

  it('stops pgBackRest and releases the lock when the leader changes mid-backup (a switchover)', async () => {
    const clock = new FakeClock();
    const store = new MemoryDcsStore(clock);
    const locks = new MemoryDcs(store, { namespace: '/service', scope: 'batman', member: 'node2' });
    const tool = fakeTool();
    let snapshot = replicaSnapshot();
    const runner = new BackupRunner({ name: 'node2', locks, tool, clock, log: silentLog, getSnapshot: () => snapshot });
    assert.equal((await runner.start('diff')).kind, 'started');
    await settle(clock, 2000);
    assert.equal(tool.aborted(), false, 'the same layout: it goes on');
    snapshot = replicaSnapshot({ view: view({ leaderName: 'node3' }) });
    await settle(clock, 1500);
    assert.equal(tool.aborted(), true);
    const last = runner.status().last as { outcome: string; detail: string } | null;
    assert.equal(last?.outcome, 'stopped');
    assert.match(last?.detail ?? '', /replica@node1 -> replica@node3/);
    assert.equal(await locks.readBackupLock(AbortSignal.timeout(1000)), undefined);
  });

  it('refuses on a replica that does not stream and on a primary without the lock', async () => {
    const clock = new FakeClock();
    const locks = new MemoryDcs(new MemoryDcsStore(clock), { namespace: '/service', scope: 'batman', member: 'node2' });
    const refuse = async (snapshot: AgentSnapshot): Promise<string> => {
      const result = await new BackupRunner({
        name: 'node2',
        locks,
        tool: fakeTool(),
        clock,
        log: silentLog,
        getSnapshot: () => snapshot,
      }).start('full');
      return result.kind === 'refused' ? result.reason : result.kind;
    };
    assert.match(await refuse(replicaSnapshot({ pg: primaryPg({ role: 'replica', isStreaming: false }) })), /not streaming/);
    assert.match(await refuse(agentSnapshot({ name: 'node2', isLeaderWithLock: false })), /without the leader lock/);
    assert.equal(backupLayoutOf('replica', 'node1'), 'replica@node1');
  });
});

describe('backup.schedule (cron, UTC)', () => {
  const at = (iso: string): number => Date.parse(iso);
  const spec = (expression: string): CronSpec => {
    const parsed = parseCron(expression);
    assert.notEqual(typeof parsed, 'string', typeof parsed === 'string' ? parsed : expression);
    return parsed as CronSpec;
  };

  it('parses fields, lists, ranges, steps and macros; refuses what is not cron', () => {
    assert.equal(cronMatches(spec('30 2 * * *'), at('2026-12-07T02:30:00Z')), true);
    assert.equal(cronMatches(spec('30 2 * * *'), at('2026-12-07T02:31:00Z')), false);
    assert.equal(cronMatches(spec('*/15 * * * *'), at('2026-12-07T05:45:00Z')), true);
    assert.equal(cronMatches(spec('0 9-17 * * 1-5'), at('2026-12-07T12:00:00Z')), true, 'a Monday');
    assert.equal(cronMatches(spec('0 9-17 * * 1-5'), at('2026-12-06T12:00:00Z')), false, 'a Sunday');
    assert.equal(cronMatches(spec('0 0 * * 7'), at('2026-12-06T00:00:00Z')), true, '7 is Sunday too');
    assert.equal(cronMatches(spec('@daily'), at('2026-12-07T00:00:00Z')), true);
    assert.equal(cronMatches(spec('0 0 1 * 1'), at('2026-12-07T00:00:00Z')), true, 'day of month or weekday');
    assert.match(parseCron('daily 02:00') as string, /five fields/);
    assert.match(parseCron('61 * * * *') as string, /minute "61" is out of range/);
    assert.match(parseCron('0 0 * * mon') as string, /day of week "mon"/);
  });

  it('says which backup fell due between two looks; full wins over diff and incr due at once', () => {
    const schedules = [
      { type: 'full' as const, spec: spec('0 2 * * 0') },
      { type: 'incr' as const, spec: spec('0 * * * *') },
    ];
    assert.equal(dueBackupType(schedules, at('2026-12-07T04:59:30Z'), at('2026-12-07T05:00:10Z')), 'incr');
    assert.equal(dueBackupType(schedules, at('2026-12-07T05:00:10Z'), at('2026-12-07T05:00:25Z')), undefined, 'once per minute');
    assert.equal(dueBackupType(schedules, at('2026-12-06T01:59:50Z'), at('2026-12-06T02:00:05Z')), 'full', 'Sunday 02:00');
  });

  it('config: a string is the full backups\u2019 schedule; a bad expression is a config error', () => {
    assert.equal(backupSection.safeParse({ repository: '/r', schedule: '0 2 * * *' }).success, true);
    assert.equal(backupSection.safeParse({ repository: '/r', schedule: { full: '0 2 * * 0', incr: '@hourly' } }).success, true);
    const bad = backupSection.safeParse({ repository: '/r', schedule: { full: 'sometimes' } });
    assert.equal(bad.success, false);
    assert.match(JSON.stringify(bad.error?.issues), /backup.schedule: \\"sometimes\\" is not a cron expression/);
    assert.equal(backupSection.safeParse({ repository: '/r', schedule: { weekly: '@weekly' } }).success, false);
  });
});

describe('BackupScheduler (the leader starts scheduled backups)', () => {
  it('starts a due backup on the streaming standby, only while leading, and falls back to itself when the standby refuses', async () => {
    let wall = Date.parse('2026-12-07T04:59:50Z');
    const clock = new FakeClock();
    const wallClock = Object.assign(Object.create(clock) as FakeClock, { wallIso: () => new Date(wall).toISOString() });
    const members = [member('node1', { role: 'primary' }), member('node2', { replication_state: 'streaming' })];
    let snapshot = agentSnapshot({ view: view({ leaderName: 'node1', members }) });
    const calls: string[] = [];
    let answer = 202;
    const scheduler = new BackupScheduler({
      schedules: [{ type: 'incr', spec: parseCron('0 * * * *') as CronSpec }],
      clock: wallClock,
      log: silentLog,
      getSnapshot: () => snapshot,
      startOn: async (target, type) => {
        calls.push(`${type}@${target.name}`);
        return { status: target.name === 'node2' ? answer : 202, text: '' };
      },
    });
    assert.equal(await scheduler.tick(), undefined, 'the first look only sets the clock');
    wall += 20_000;
    assert.equal(await scheduler.tick(), 'incr');
    assert.deepEqual(calls, ['incr@node2']);
    // Not leading: nothing, and the next leader does not make up the missed run.
    snapshot = agentSnapshot({ isLeaderWithLock: false, view: view({ leaderName: 'node1', members }) });
    wall += 3600_000;
    assert.equal(await scheduler.tick(), undefined);
    snapshot = agentSnapshot({ view: view({ leaderName: 'node1', members }) });
    assert.equal(await scheduler.tick(), undefined);
    answer = 503;
    wall += 3600_000;
    assert.equal(await scheduler.tick(), 'incr');
    assert.deepEqual(calls, ['incr@node2', 'incr@node2', 'incr@node1']);
  });
});
