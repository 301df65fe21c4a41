// Point-in-time recovery (issue 16 point 5), the parts without processes: the target flags and their checks, the
// timeline that holds a target, pgBackRest's options, the in-place plan and its failure hints, the runner that applies
// it, the core's answer to the stop/restore commands and the REST handlers' refusals.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { handleRestore, handleStop } from '../../src/api/mutations.js';
import { backupSection, pgbackrestBootstrapOf, resolveBackup } from '../../src/config/backup.js';
import { autoConfWithout } from '../../src/postgres/conf-render.js';
import { applyRestorePlan } from '../../src/cli/commands/restore.js';
import { decide } from '../../src/core/decide.js';
import {
  describeRestoreStep,
  planInPlaceRestore,
  restoreFailureHint,
  restoreTargetProblem,
  type RestorePlan,
  type RestoreStep,
} from '../../src/core/restore-plan.js';
import {
  normalizeTargetTime,
  pgbackrestTargetOptions,
  restoreTargetOf,
  targetTimelineOf,
  type RestoreTarget,
} from '../../src/core/restore-target.js';
import type { HistoryEntry } from '../../src/core/types.js';
import { isPgwardenError } from '../../src/util/errors.js';
import { agentSnapshot, freshMemory, member, observe, pgState, primaryPg, view } from '../sim/builders.js';

const NOW = 100_000;

describe('restore target flags', () => {
  it('takes a time with a zone and gives it as UTC, keeping microseconds', () => {
    assert.equal(normalizeTargetTime('2026-12-07T10:15:30Z'), '2026-12-07 10:15:30+00');
    assert.equal(normalizeTargetTime('2026-12-07 11:15:30.123456+01'), '2026-12-07 10:15:30.123456+00');
    assert.equal(normalizeTargetTime('2026-12-07T05:45:30.5-04:30'), '2026-12-07 10:15:30.5+00');
    assert.equal(normalizeTargetTime('2026-12-07T10:15:30+0000'), '2026-12-07 10:15:30+00');
  });

  it('refuses a time without a zone, one that does not exist, and words', () => {
    for (const text of ['2026-12-07 10:15:30', 'yesterday', '2026-12-07', '10:15:30Z', ''])
      assert.match((normalizeTargetTime(text) as { problem: string }).problem, /is not a timestamp with a time zone/, text);
    for (const text of ['2026-02-30T10:00:00Z', '2026-13-01T10:00:00Z', '2026-12-07T24:00:00Z', '2026-12-07T10:60:00Z'])
      assert.match((normalizeTargetTime(text) as { problem: string }).problem, /is not a real date and time/, text);
  });

  it('wants exactly one target', () => {
    assert.match((restoreTargetOf({}) as { problem: string }).problem, /one of --target-time, --target-lsn, --target-name or --immediate/);
    assert.match(
      (restoreTargetOf({ targetTime: '2026-12-07T10:15:30Z', immediate: true }) as { problem: string }).problem,
      /give one recovery target, not --target-time and --immediate/,
    );
    assert.deepEqual(restoreTargetOf({ immediate: true }), { type: 'immediate' });
    assert.deepEqual(restoreTargetOf({ immediate: false, targetName: 'before-migration' }), { type: 'name', target: 'before-migration' });
  });

  it('checks LSNs and restore point names', () => {
    assert.deepEqual(restoreTargetOf({ targetLsn: '0/3000a60' }), { type: 'lsn', target: '0/3000A60' });
    for (const lsn of ['12', '0/', 'G/1', '0/123456789', '1/2/3'])
      assert.match((restoreTargetOf({ targetLsn: lsn }) as { problem: string }).problem, /is not an LSN/, lsn);
    for (const name of ['', "it's", 'a\\b', 'line\nbreak', 'x'.repeat(64)])
      assert.match((restoreTargetOf({ targetName: name }) as { problem: string }).problem, /is not a restore point name/, name);
    assert.deepEqual(restoreTargetOf({ targetName: 'x'.repeat(63) }), { type: 'name', target: 'x'.repeat(63) });
  });

  it("maps to pgBackRest's restore options, promoting at the target", () => {
    assert.deepEqual(pgbackrestTargetOptions({ type: 'time', target: '2026-12-07 10:15:30+00', timeline: 2 }), [
      '--type=time',
      '--target=2026-12-07 10:15:30+00',
      '--target-action=promote',
      '--target-timeline=2',
    ]);
    assert.deepEqual(pgbackrestTargetOptions({ type: 'lsn', target: '0/3000060' }), [
      '--type=lsn',
      '--target=0/3000060',
      '--target-action=promote',
      '--target-timeline=latest',
    ]);
    assert.deepEqual(pgbackrestTargetOptions({ type: 'immediate' }), [
      '--type=immediate',
      '--target-action=promote',
      '--target-timeline=current',
    ]);
  });
});

describe('the timeline that holds a target', () => {
  // Timeline 1 ended at 0/5000000 at 10:00, timeline 2 at 0/9000000 at 11:00; timeline 3 is the current one.
  const history: HistoryEntry[] = [
    [2, 0x9000000, 'no recovery target specified', '2026-12-07T11:00:00.000+00:00', 'node3'],
    [1, 0x5000000, 'no recovery target specified', '2026-12-07T10:00:00.000+00:00', 'node2'],
  ];
  const time = (text: string): RestoreTarget => ({ type: 'time', target: normalizeTargetTime(text) as string });

  it('is the first timeline that ended after the target, else the newest', () => {
    assert.equal(targetTimelineOf(time('2026-12-07T09:59:59Z'), history), 1);
    assert.equal(targetTimelineOf(time('2026-12-07T10:30:00Z'), history), 2);
    assert.equal(targetTimelineOf(time('2026-12-07T11:00:01Z'), history), 'latest');
    assert.equal(targetTimelineOf({ type: 'lsn', target: '0/4FFFFFF' }, history), 1);
    assert.equal(targetTimelineOf({ type: 'lsn', target: '0/5000000' }, history), 2);
    assert.equal(targetTimelineOf({ type: 'lsn', target: '0/9000001' }, history), 'latest');
    assert.equal(targetTimelineOf(time('2026-12-07T10:30:00Z'), []), 'latest');
  });

  it('after an in-place restore, a time on the abandoned timeline still leads there, a later one to the newest', () => {
    // Timeline 3 was left at 12:00 by a restore to 10:30 (timeline 4 branches from 2): its entry says timeline 3 ended.
    const restored: HistoryEntry[] = [
      ...history,
      [3, 0xb000000, 'pgwarden restore to time 2026-12-07 10:30:00+00 on timeline 2', '2026-12-07T12:00:00.000+00:00', 'node1'],
    ];
    assert.equal(targetTimelineOf(time('2026-12-07T10:30:00Z'), restored), 2);
    assert.equal(targetTimelineOf(time('2026-12-07T11:30:00Z'), restored), 3);
    assert.equal(targetTimelineOf(time('2026-12-07T12:00:01Z'), restored), 'latest');
  });

  it('is the backup’s own for immediate and the newest for a restore point', () => {
    assert.equal(targetTimelineOf({ type: 'immediate' }, history), 'current');
    assert.equal(targetTimelineOf({ type: 'name', target: 'x' }, history), 'latest');
  });
});

describe('the in-place restore plan', () => {
  const target: RestoreTarget = { type: 'time', target: '2026-12-07 10:15:30+00', timeline: 2 };
  const cluster = view({ leaderName: 'node2', members: [member('node3'), member('node2', { role: 'primary' }), member('node1')] });

  it('pauses, stops the replicas, restores the leader, backs it up, re-clones the replicas from that and resumes', () => {
    const plan = planInPlaceRestore(cluster, target) as RestorePlan;
    assert.equal(plan.leader, 'node2');
    assert.deepEqual(plan.steps, [
      { kind: 'pause' },
      { kind: 'stop', member: 'node1' },
      { kind: 'stop', member: 'node3' },
      { kind: 'restore', member: 'node2', target },
      { kind: 'backup' },
      { kind: 'reinit', member: 'node1', from: 'node2' },
      { kind: 'reinit', member: 'node3', from: 'node2' },
      { kind: 'resume' },
    ]);
    assert.deepEqual(plan.steps.map(describeRestoreStep), [
      'pause the cluster (maintenance mode)',
      'stop PostgreSQL on node1',
      'stop PostgreSQL on node3',
      'restore node2 to time 2026-12-07 10:15:30+00 on timeline 2 and promote it',
      'take a full backup of the new timeline (on the leader)',
      're-clone node1 from node2',
      're-clone node3 from node2',
      'resume the cluster',
    ]);
  });

  it('leaves a cluster the operator had paused paused', () => {
    const paused = view({
      leaderName: 'node1',
      config: { ttl: 30, loop_wait: 10, retry_timeout: 10, maximum_lag_on_failover: 1048576, pause: true },
    });
    const plan = planInPlaceRestore(paused, target) as RestorePlan;
    assert.equal(
      plan.steps.some((step) => step.kind === 'resume'),
      false,
    );
    assert.equal(plan.steps[plan.steps.length - 1]?.kind, 'reinit');
  });

  it('is refused without a leader, which must hold the lock throughout', () => {
    assert.match((planInPlaceRestore(view({}), target) as { problem: string }).problem, /the cluster has no leader/);
  });

  it('says for each failed step where the cluster stands and how to go on', () => {
    const plan = planInPlaceRestore(cluster, target) as RestorePlan;
    const hint = (kind: RestoreStep['kind']): string =>
      restoreFailureHint(
        plan,
        plan.steps.find((step) => step.kind === kind)!,
      );
    assert.match(hint('pause'), /nothing was changed/);
    assert.match(hint('stop'), /node2 still runs as primary.*pgwarden restore again.*pgwarden resume/);
    assert.match(hint('restore'), /stays paused and node2 keeps the leader lock, so no other member becomes primary/);
    assert.match(
      hint('backup'),
      /re-clone them only from a backup of the new timeline: run pgwarden backup --type full --from primary --wait; pgwarden reinit node1 node3 --wait; pgwarden resume$/,
    );
    assert.match(hint('reinit'), /with a new full backup; then run: pgwarden reinit node1 node3 --wait; pgwarden resume$/);
    assert.match(hint('resume'), /run pgwarden resume$/);
  });

  it('refuses targets the repository cannot reach, before anything changes', () => {
    const stops = ['2026-12-07T09:00:00Z', '2026-12-07T08:00:00Z'];
    const now = Date.parse('2026-12-07T12:00:00Z');
    assert.match(restoreTargetProblem(target, [], now)!, /holds no backup/);
    assert.equal(restoreTargetProblem(target, stops, now), undefined);
    assert.match(
      restoreTargetProblem({ type: 'time', target: '2026-12-07 07:59:59+00' }, stops, now)!,
      /before the oldest backup ended \(2026-12-07T08:00:00.000Z\)/,
    );
    assert.match(restoreTargetProblem({ type: 'time', target: '2026-12-07 12:00:01+00' }, stops, now)!, /is in the future/);
    assert.equal(restoreTargetProblem({ type: 'lsn', target: '0/1' }, stops, now), undefined);
  });
});

describe('applying the plan', () => {
  const plan = planInPlaceRestore(view({ leaderName: 'node1' }), { type: 'immediate' }) as RestorePlan;

  it('runs every step in order and reports each', async () => {
    const ran: string[] = [];
    const lines: string[] = [];
    await applyRestorePlan(
      plan,
      async (step) => {
        ran.push(describeRestoreStep(step));
        return 'done';
      },
      (line) => lines.push(line),
    );
    assert.deepEqual(ran, plan.steps.map(describeRestoreStep));
    assert.equal(lines.length, plan.steps.length * 2);
    assert.equal(lines[1], '[1/8] pause the cluster (maintenance mode): ok (done)');
  });

  it('stops at the first failure with the step, the member and what to do', async () => {
    const ran: string[] = [];
    const lines: string[] = [];
    await assert.rejects(
      applyRestorePlan(
        plan,
        async (step) => {
          ran.push(step.kind);
          if (step.kind === 'reinit' && step.member === 'node2') throw new Error('node2 answered POST /reinitialize with 503');
          return 'done';
        },
        (line) => lines.push(line),
      ),
      (error: unknown) => {
        assert.ok(isPgwardenError(error));
        assert.match(
          error.message,
          /restore stopped at step 6\/8 \(re-clone node2 from node1\): node2 answered POST \/reinitialize with 503/,
        );
        assert.equal(error.context.member, 'node2');
        assert.match(
          String(error.context.hint),
          /node1 runs restored as primary, with a new full backup; then run: pgwarden reinit node2 node3 --wait/,
        );
        return true;
      },
    );
    assert.deepEqual(ran, ['pause', 'stop', 'stop', 'restore', 'backup', 'reinit']);
    assert.equal(lines[lines.length - 1], '[6/8] re-clone node2 from node1: FAILED');
  });
});

describe('the stop and restore commands in the core', () => {
  const target: RestoreTarget = { type: 'time', target: '2026-12-07 10:15:30+00', timeline: 2 };
  const leaderObs = (isPaused: boolean): Parameters<typeof observe>[0] => ({
    pg: primaryPg(),
    lock: { lastRenewSentAtMs: NOW - 1000 },
    isPaused,
    nowMs: NOW,
    command: { id: 1, kind: 'restore', target },
  });

  it('restores on the leader of a paused cluster, renewing its lock first, once', () => {
    const first = decide(observe(leaderObs(true)), freshMemory());
    // The members' slots are made again after the promotion: the restored data dir has none.
    assert.deepEqual(first.actions, [{ kind: 'renewLeader' }, { kind: 'restoreToTarget', target, memberSlots: ['node2', 'node3'] }]);
    assert.equal(
      decide(observe(leaderObs(true)), first.memory).actions.some((action) => action.kind === 'restoreToTarget'),
      false,
    );
  });

  it('refuses a restore unpaused, or on a member that is not the leader', () => {
    const unpaused = decide(observe(leaderObs(false)), freshMemory());
    assert.match(unpaused.reason, /restore refused: only in maintenance mode/);
    assert.equal(
      unpaused.actions.some((action) => action.kind === 'restoreToTarget'),
      false,
    );
    const replica = decide(observe({ name: 'node2', isPaused: true, command: { id: 1, kind: 'restore', target } }), freshMemory());
    assert.match(replica.reason, /restore refused: only the leader, holding the leader lock, restores in place/);
  });

  it('writes one history entry once the restored copy runs on its new timeline: the timeline the cluster left', () => {
    const onTimeline = (timeline: number, task: Parameters<typeof observe>[0] = {}): Parameters<typeof observe>[0] => ({
      ...leaderObs(true),
      pg: primaryPg({ timeline, writeLsn: 0x9000000n }),
      command: undefined,
      wallIso: '2026-12-07T12:00:00.000Z',
      ...task,
    });
    const restoring = decide(observe({ ...leaderObs(true), pg: primaryPg({ timeline: 3, writeLsn: 0x9000000n }) }), freshMemory());
    assert.deepEqual(restoring.memory.promotedFrom, {
      timeline: 3,
      lsn: 0x9000000n,
      reason: 'pgwarden restore to time 2026-12-07 10:15:30+00 on timeline 2',
    });
    // While the restore task runs, its PostgreSQL may still be the old primary for a moment: nothing is written.
    const running = decide(observe(onTimeline(3, { task: { kind: 'running', name: 'restore', startedAtMs: NOW - 10 } })), restoring.memory);
    assert.equal(
      running.actions.some((action) => action.kind === 'writeHistory'),
      false,
    );
    const restored = decide(
      observe(onTimeline(4, { task: { kind: 'done', name: 'restore', isOk: true, endedAtMs: NOW - 5 } })),
      running.memory,
    );
    const entries = restored.actions.flatMap((action) => (action.kind === 'writeHistory' ? [action.entry] : []));
    assert.deepEqual(entries, [
      [3, 0x9000000, 'pgwarden restore to time 2026-12-07 10:15:30+00 on timeline 2', '2026-12-07T12:00:00.000Z', 'node1'],
    ]);
    assert.equal(restored.memory.promotedFrom, undefined, 'once');
    // A promotion keeps PostgreSQL's reason.
    assert.deepEqual(
      decide(observe(onTimeline(5)), { ...freshMemory(), promotedFrom: { timeline: 4, lsn: 7n } }).actions.find(
        (action) => action.kind === 'writeHistory',
      ),
      { kind: 'writeHistory', entry: [4, 7, 'no recovery target specified', '2026-12-07T12:00:00.000Z', 'node1'] },
    );
  });

  it('stops PostgreSQL in maintenance mode only, and not twice', () => {
    assert.deepEqual(decide(observe({ name: 'node2', isPaused: true, command: { id: 1, kind: 'stop' } }), freshMemory()).actions, [
      { kind: 'stopPostgres' },
    ]);
    assert.match(
      decide(observe({ name: 'node2', isPaused: false, command: { id: 1, kind: 'stop' } }), freshMemory()).reason,
      /stop refused: only in maintenance mode/,
    );
    const stopped = decide(
      observe({ name: 'node2', isPaused: true, pg: pgState({ isRunning: false }), command: { id: 1, kind: 'stop' } }),
      freshMemory(),
    );
    assert.deepEqual(stopped.actions, []);
    assert.match(stopped.reason, /already stopped/);
  });
});

describe('POST /restore and POST /stop', () => {
  const runner = async (): Promise<{ isOk: boolean; message: string }> => ({ isOk: true, message: 'restore started' });
  const leaderSnapshot = agentSnapshot({ name: 'node1', isPaused: true, view: view({ leaderName: 'node1' }) });

  it('refuses bad bodies and targets with 400', async () => {
    for (const [body, message] of [
      [[], /must be a JSON object/],
      [{ type: 'xid', target: '1' }, /type must be one of time, lsn, name, immediate/],
      [{ type: 'time' }, /target must be a string for type time/],
      [{ type: 'time', target: 'soon' }, /is not a timestamp with a time zone/],
      [{ type: 'lsn', target: 'x' }, /is not an LSN/],
      [{ type: 'immediate', timeline: 0 }, /timeline must be a positive integer, "current" or "latest"/],
    ] as const) {
      const answer = await handleRestore(body, leaderSnapshot, runner);
      assert.equal(answer.status, 400, JSON.stringify(body));
      assert.match(String(answer.body), message);
    }
  });

  it('restores only on the leader of a paused cluster', async () => {
    const unpaused = await handleRestore({ type: 'immediate' }, { ...leaderSnapshot, isPaused: false }, runner);
    assert.equal(unpaused.status, 409);
    const replica = await handleRestore({ type: 'immediate' }, { ...leaderSnapshot, name: 'node2' }, runner);
    assert.equal(replica.status, 409);
    assert.match(String(replica.body), /on the leader only/);
    let given: unknown;
    const accepted = await handleRestore({ type: 'lsn', target: '0/3000060', timeline: 2 }, leaderSnapshot, async (kind, _ms, target) => {
      given = { kind, target };
      return { isOk: true, message: 'restore started' };
    });
    assert.equal(accepted.status, 202);
    assert.deepEqual(given, { kind: 'restore', target: { type: 'lsn', target: '0/3000060', timeline: 2 } });
  });

  it('stops only in maintenance mode', async () => {
    const unpaused = await handleStop({}, agentSnapshot({ isPaused: false }), runner);
    assert.equal(unpaused.status, 409);
    const stopped = await handleStop({}, agentSnapshot({ isPaused: true, pg: pgState({ isRunning: false }) }), runner);
    assert.equal(stopped.status, 200);
    assert.match(String(stopped.body), /already stopped/);
  });
});

describe('a new cluster from the repository (bootstrap.method: pgbackrest)', () => {
  const settings = resolveBackup(backupSection.parse({ repository: '/repo' }), 'demo-restored', 'node1', '/pg/node1/data');

  it('restores the old stanza to the target into the data dir and removes the restore settings after', () => {
    const method = pgbackrestBootstrapOf(
      { stanza: 'demo', target_time: '2026-12-07T10:15:30Z', target_timeline: 2 },
      settings,
      '/pg/node1/data',
    );
    assert.deepEqual(method.argv, [
      'pgbackrest',
      '--config=/pg/node1/pgbackrest-node1.conf',
      '--stanza=demo',
      '--pg1-path=/pg/node1/data',
      '--type=time',
      '--target=2026-12-07 10:15:30+00',
      '--target-action=promote',
      '--target-timeline=2',
      'restore',
    ]);
    assert.equal(method.keepExistingRecoveryConf, true);
    assert.equal(method.isRecoverySettingsRemoved, true);
    // No target: the end of the archive, of this cluster's own stanza by default.
    assert.deepEqual(pgbackrestBootstrapOf({}, settings, '/pg/node1/data').argv.slice(2), [
      '--stanza=demo-restored',
      '--pg1-path=/pg/node1/data',
      '--target-action=promote',
      'restore',
    ]);
  });

  it('names the bootstrap key of a bad target', () => {
    assert.throws(
      () => pgbackrestBootstrapOf({ target_time: 'noon' }, settings, '/d'),
      /bootstrap.pgbackrest: target_time "noon" is not a timestamp/,
    );
    assert.throws(
      () => pgbackrestBootstrapOf({ target_lsn: '1', immediate: true }, settings, '/d'),
      /give one recovery target, not target_lsn and immediate: true/,
    );
    assert.throws(
      () => pgbackrestBootstrapOf({ target_timeline: 'newest' }, settings, '/d'),
      /target_timeline must be a timeline number, current or latest/,
    );
    assert.throws(() => pgbackrestBootstrapOf({ stanza: 'a b' }, settings, '/d'), /stanza may contain letters/);
  });

  it("drops the restore's settings from postgresql.auto.conf and keeps the rest", () => {
    const text = [
      '# Do not edit this file manually!',
      'restore_command = \'pgbackrest --stanza=demo archive-get %f "%p"\'',
      "recovery_target_time = '2026-12-07 10:15:30+00'",
      "Recovery_Target_Action = 'promote'",
      "synchronous_standby_names = 'node2'",
      '',
    ].join('\n');
    assert.equal(
      autoConfWithout(text, ['restore_command', 'recovery_target_time', 'recovery_target_action']),
      ['# Do not edit this file manually!', "synchronous_standby_names = 'node2'", ''].join('\n'),
    );
  });
});
