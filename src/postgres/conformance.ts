// The behaviour every PgController must show, run against real PostgreSQL 15 and the in-memory fake: one story of
// three nodes (bootstrap, clone, slots, promotion, rejoin by rewind, divergent histories) whose steps build on each other.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { inspect } from 'node:util';
import type { PgController, Upstream } from '../core/ports.js';
import type { CustomBootstrap, ReplicaMethod, ReplicaMethodResult } from '../core/replica-methods.js';
import type { SlotStep, SlotStepResult } from '../core/slot-changes.js';
import { slotNameForMember } from '../core/slot-names.js';
import type { LocalPg } from '../core/types.js';
import { isPgwardenError, type ErrorCode } from '../util/errors.js';
import type { GucValue } from './conf-render.js';
import { isCleanShutdown } from './controldata.js';

export interface PgConformanceHarness {
  /** Three controllers of distinct nodes without data dirs; node i is the member upstreamOf(i).name. */
  readonly nodes: readonly PgController[];
  /** How the others reach node i; its name is the member name (application_name, slot name). */
  upstreamOf(index: number): Upstream;
  /** An upstream nothing answers at. */
  unreachable(): Upstream;
  /** Node i's postmaster dies without being asked to (SIGKILL for real); resolves once it is gone. */
  crash(index: number): Promise<void>;
  /** The fence's freeze of node i, a running primary (SIGSTOP of its postmaster for real), and its thaw. */
  freeze(index: number): Promise<void>;
  thaw(index: number): Promise<void>;
  /** Commits a little WAL on node i, a running primary. */
  write(index: number): Promise<void>;
  /** Lets `ms` of the nodes' time pass (a real sleep, or simulated time), so replication progresses. */
  pass(ms: number): Promise<void>;
  /** The parameters the nodes were created with (reconfigure replaces the whole set); wal_level must be logical. */
  readonly parameters: Readonly<Record<string, GucValue>>;
  /** A logical decoding output plugin the nodes have (test_decoding on PostgreSQL 15). */
  readonly logicalPlugin: string;
  cleanup(): Promise<void>;
}

export interface PgConformanceOptions {
  /** How long (in harness time) a wait for replication may take before the step fails. */
  readonly waitBudgetMs?: number;
  /** The whole story's deadline (node:test timeout). */
  readonly timeoutMs?: number;
}

const STEP_MS = 100;
const signal = (): AbortSignal => AbortSignal.timeout(120_000);

const rejectsWith = (code: ErrorCode) => (error: unknown) => {
  assert.ok(isPgwardenError(error, code), `expected a PgwardenError ${code}, got ${inspect(error)}`);
  return true;
};

const statuses = (results: readonly SlotStepResult[]): string[] => results.map((result) => result.status);

/** Registers the scenarios; `makeHarness` runs once, in `before`. */
export function runPgControllerConformance(
  backendName: string,
  makeHarness: () => Promise<PgConformanceHarness>,
  options: PgConformanceOptions = {},
): void {
  const budgetMs = options.waitBudgetMs ?? 30_000;

  describe(`PgController conformance: ${backendName}`, { timeout: options.timeoutMs ?? 600_000 }, () => {
    let harness: PgConformanceHarness;
    let a: PgController;
    let b: PgController;
    let c: PgController;
    const up = (index: number): Upstream => harness.upstreamOf(index);
    const name = (index: number): string => harness.upstreamOf(index).name;
    const probe = (node: PgController): Promise<LocalPg> => node.probe(signal());
    const physical = (slot: string): SlotStep => ({ kind: 'create', slot: { name: slot, type: 'physical' } });
    const logical = (slot: string): SlotStep => ({
      kind: 'create',
      slot: { name: slot, type: 'logical', database: 'postgres', plugin: harness.logicalPlugin },
    });
    const slotOf = (pg: LocalPg, slot: string) => pg.slots?.find((candidate) => candidate.name === slot);

    /** Waits (in harness time) until `isDone` holds for a fresh probe; fails with the last probe it saw. */
    async function eventually(node: PgController, what: string, isDone: (pg: LocalPg) => boolean): Promise<LocalPg> {
      for (let spentMs = 0; ; spentMs += STEP_MS) {
        const pg = await probe(node);
        if (isDone(pg)) return pg;
        if (spentMs >= budgetMs) assert.fail(`${what}: not so after ${budgetMs} ms; last probe: ${inspect(pg, { depth: 3 })}`);
        await harness.pass(STEP_MS);
      }
    }

    /** Writes on primary `index` and waits until `replica` has replayed it. */
    async function replicated(index: number, replica: PgController): Promise<LocalPg> {
      await harness.write(index);
      const target = (await probe(harness.nodes[index]!)).writeLsn;
      assert.ok(target !== undefined, `node ${name(index)} is a running primary`);
      return eventually(replica, `replica streams past ${target}`, (pg) => pg.isStreaming && (pg.replayedLsn ?? 0n) >= target);
    }

    before(async () => {
      harness = await makeHarness();
      [a, b, c] = harness.nodes as [PgController, PgController, PgController];
    });

    after(async () => {
      await harness?.cleanup();
    });

    it('initdb creates a stopped primary data dir, and refuses to run over one', async () => {
      assert.equal((await probe(a)).dataDir, 'missing');
      await a.initdb(signal());
      const pg = await probe(a);
      assert.deepEqual([pg.dataDir, pg.isRunning, pg.role, pg.timeline], ['initialized', false, 'primary', 1]);
      assert.match(pg.sysid ?? '', /^\d+$/);
      await assert.rejects(a.initdb(signal()), rejectsWith('PGW_PG_COMMAND_FAILED'));
    });

    it('startPrimary brings up a writable primary that probes with its identity', async () => {
      const stopped = await probe(a);
      await a.startPrimary(signal());
      const pg = await probe(a);
      assert.deepEqual([pg.isRunning, pg.role, pg.timeline, pg.sysid], [true, 'primary', 1, stopped.sysid]);
      assert.ok((pg.serverVersion ?? 0) >= 150000, `server version ${pg.serverVersion}`);
      assert.ok((pg.writeLsn ?? 0n) > 0n);
      assert.deepEqual([pg.upstream, pg.crashedAtMs, pg.synchronousStandbyNames, pg.slots], [undefined, undefined, '', []]);
      await harness.write(0);
      assert.ok(((await probe(a)).writeLsn ?? 0n) > (pg.writeLsn ?? 0n), 'a write moves the flush position');
      await assert.rejects(a.startPrimary(signal()), rejectsWith('PGW_PG_COMMAND_FAILED'));
    });

    it('stops fast (clean) and immediate (unclean); stopped, it probes from its data dir', async () => {
      await a.stop('fast', signal());
      let pg = await probe(a);
      assert.deepEqual(
        [pg.dataDir, pg.isRunning, pg.role, pg.timeline, pg.controlState],
        ['initialized', false, 'primary', 1, 'shut down'],
      );
      await a.stop('fast', signal());
      await a.startPrimary(signal());
      await a.stop('immediate', signal());
      pg = await probe(a);
      assert.deepEqual([pg.dataDir, pg.isRunning, pg.role], ['initialized', false, 'primary']);
      assert.equal(isCleanShutdown(pg.controlState), false, `an immediate stop is no clean shutdown (${pg.controlState})`);
      await a.startPrimary(signal());
      assert.equal((await probe(a)).isRunning, true, 'crash recovery at start');
      // A start issued while a stop is still in flight (the fence's stop, which nobody awaits) waits for it.
      const stopping = a.stop('immediate', signal());
      await a.startPrimary(signal());
      await stopping;
      assert.equal((await probe(a)).isRunning, true, 'the start waited for the stop in flight');
    });

    it('probes a postmaster the fence froze as frozen (not running) at once, and as running again once thawed', async () => {
      if (!(await probe(a)).isRunning) await a.startPrimary(signal());
      await harness.freeze(0);
      const startedAt = performance.now();
      const frozen = await probe(a);
      assert.deepEqual([frozen.isFrozen, frozen.isRunning], [true, false]);
      assert.ok(performance.now() - startedAt < 1000, 'the probe does not wait for a frozen server to answer');
      await harness.thaw(0);
      const thawed = await probe(a);
      assert.deepEqual([thawed.isFrozen ?? false, thawed.isRunning, thawed.role], [false, true, 'primary']);
    });

    it('tells onUnexpectedExit of a postmaster that died, never of a stop it was asked for', async () => {
      let exits = 0;
      a.onUnexpectedExit(() => exits++);
      await a.stop('fast', signal());
      await a.startPrimary(signal());
      assert.equal(exits, 0, 'a requested stop is expected');
      await harness.crash(0);
      for (let spentMs = 0; exits === 0; spentMs += STEP_MS) {
        if (spentMs >= budgetMs) assert.fail('onUnexpectedExit never fired');
        await harness.pass(STEP_MS);
      }
      const crashed = await probe(a);
      assert.equal(crashed.isRunning, false);
      assert.notEqual(crashed.crashedAtMs, undefined);
      await a.startPrimary(signal());
      assert.deepEqual([(await probe(a)).isRunning, (await probe(a)).crashedAtMs, exits], [true, undefined, 1]);
    });

    it('clones a replica with basebackup and startReplica; it streams, and walStatus agrees', async () => {
      // The replica streams through the physical slot named after it (its primary_slot_name).
      assert.deepEqual(statuses(await a.applySlotPlan([physical(slotNameForMember(name(1)))], signal())), ['ok']);
      await b.basebackup(up(0), signal());
      const copied = await probe(b);
      assert.deepEqual([copied.dataDir, copied.isRunning, copied.sysid], ['initialized', false, (await probe(a)).sysid]);
      assert.equal(copied.role, 'primary', "pg_control is the source's: a copy of a primary says 'in production' until it starts");
      await b.startReplica(up(0), signal());
      const pg = await replicated(0, b);
      assert.deepEqual([pg.role, pg.timeline, pg.upstream, pg.writeLsn], ['replica', 1, name(0), undefined]);
      assert.ok((pg.receivedLsn ?? 0n) >= (pg.replayedLsn ?? 0n));
      const replicaWal = await b.walStatus(signal());
      assert.equal(replicaWal?.isStreaming, true);
      assert.ok(replicaWal.receivedLsn !== undefined && replicaWal.replayedLsn !== undefined && replicaWal.writeLsn === undefined);
      const primary = await eventually(
        a,
        'the primary lists the standby',
        (pg) =>
          pg.replication.some((row) => row.application_name === name(1) && row.state === 'streaming') &&
          pg.standbyFlushLsn?.[name(1)] !== undefined,
      );
      assert.equal(slotOf(primary, slotNameForMember(name(1)))?.isActive, true, "the standby's slot is in use");
      const primaryWal = await a.walStatus(signal());
      assert.ok(primaryWal?.writeLsn !== undefined);
      assert.deepEqual(primaryWal.streamingStandbys, [name(1)]);
    });

    it('watchUpstream holds a session to the upstream until its postmaster dies; unavailable when nothing answers', async () => {
      assert.equal(await b.watchUpstream(harness.unreachable(), signal()), 'unavailable');
      const aborted = new AbortController();
      const abortedWatch = b.watchUpstream(up(0), aborted.signal);
      await harness.pass(STEP_MS);
      aborted.abort();
      assert.equal(await abortedWatch, 'aborted');
      let end: string | undefined;
      const watch = b.watchUpstream(up(0), signal()).then((result) => (end = result));
      await harness.pass(5 * STEP_MS);
      assert.equal(end, undefined, 'the watch stays open while the upstream runs');
      await harness.crash(0);
      assert.equal(await watch, 'closed');
      await a.startPrimary(signal());
      await replicated(0, b);
    });

    it('fails a basebackup from a source nothing answers at with PGW_PG_UNREACHABLE, leaving nothing to start', async () => {
      await assert.rejects(c.basebackup(harness.unreachable(), signal()), rejectsWith('PGW_PG_UNREACHABLE'));
      const pg = await probe(c);
      assert.notEqual(pg.dataDir, 'initialized');
      assert.equal(pg.isRunning, false);
      await assert.rejects(c.startPrimary(signal()), rejectsWith('PGW_PG_COMMAND_FAILED'));
      assert.equal(await c.walStatus(signal()), undefined, 'no WAL status without a server');
    });

    it('createReplica tries the methods in order and says how each went; when none works it rejects with every outcome', async () => {
      const failing: ReplicaMethod = { kind: 'command', name: 'failing', argv: ['/bin/false'], keepData: false };
      const basebackup: ReplicaMethod = { kind: 'basebackup', name: 'basebackup' };
      await assert.rejects(c.createReplica(up(0), [failing], signal()), (error: unknown) => {
        rejectsWith('PGW_PG_COMMAND_FAILED')(error);
        const methods = (error as { context: { methods?: readonly ReplicaMethodResult[] } }).context.methods;
        assert.deepEqual(
          methods?.map((result) => [result.method, result.outcome]),
          [['failing', 'failed']],
        );
        return true;
      });
      assert.notEqual((await probe(c)).dataDir, 'initialized', 'a failed method leaves nothing to start');
      const results = await c.createReplica(up(0), [failing, basebackup], signal());
      assert.deepEqual(
        results.map((result) => [result.method, result.outcome]),
        [
          ['failing', 'failed'],
          ['basebackup', 'ok'],
        ],
      );
      const copied = await probe(c);
      assert.deepEqual([copied.dataDir, copied.isRunning, copied.sysid], ['initialized', false, (await probe(a)).sysid]);
      await c.removeDataDir(signal());
    });

    it('bootstrapFrom refuses a data dir that holds a cluster, and a failing command leaves an empty data dir', async () => {
      const failing: CustomBootstrap = { name: 'restore', argv: ['/bin/false'], recoveryConf: undefined, keepExistingRecoveryConf: false };
      await assert.rejects(a.bootstrapFrom(failing, signal()), rejectsWith('PGW_PG_COMMAND_FAILED'));
      await assert.rejects(c.bootstrapFrom(failing, signal()), rejectsWith('PGW_PG_COMMAND_FAILED'));
      const pg = await probe(c);
      assert.deepEqual([pg.dataDir === 'initialized', pg.isRunning], [false, false]);
      await c.removeDataDir(signal());
    });

    it('sets synchronous_standby_names, persisted across a restart; it needs a running server', async () => {
      const value = `ANY 1 ("${name(1)}")`;
      await a.setSynchronousStandbyNames(value, signal());
      await eventually(a, 'the probe shows the setting', (pg) => pg.synchronousStandbyNames === value);
      await replicated(0, b);
      await a.stop('fast', signal());
      await a.startPrimary(signal());
      assert.equal((await probe(a)).synchronousStandbyNames, value, 'ALTER SYSTEM survives a restart');
      await a.setSynchronousStandbyNames('', signal());
      await eventually(a, 'the setting is cleared', (pg) => pg.synchronousStandbyNames === '');
      await assert.rejects(c.setSynchronousStandbyNames(value, signal()), rejectsWith('PGW_PG_QUERY_FAILED'));
    });

    it('applies slot steps one by one with a status for each; the probe shows the slots', async () => {
      const results = await a.applySlotPlan([physical('conf_physical'), logical('conf_logical'), physical('conf_physical')], signal());
      assert.deepEqual(statuses(results), ['ok', 'ok', 'failed'], inspect(results));
      const failed = results[2];
      assert.ok(failed?.status === 'failed' && failed.error.length > 0, 'a failed step says why');
      let pg = await probe(a);
      assert.deepEqual(
        [slotOf(pg, 'conf_physical')?.type, slotOf(pg, 'conf_physical')?.isActive, slotOf(pg, 'conf_physical')?.restartLsn !== undefined],
        ['physical', false, true],
      );
      const created = slotOf(pg, 'conf_logical');
      assert.deepEqual([created?.type, created?.database, created?.plugin], ['logical', 'postgres', harness.logicalPlugin]);
      assert.ok(created?.confirmedFlushLsn !== undefined);
      await harness.write(0);
      const target = (await probe(a)).writeLsn ?? 0n;
      const advanced = await a.applySlotPlan(
        [
          { kind: 'advance', slot: { name: 'conf_physical', type: 'physical' }, lsn: target },
          {
            kind: 'advance',
            slot: { name: 'conf_logical', type: 'logical', database: 'postgres', plugin: harness.logicalPlugin },
            lsn: target,
          },
        ],
        signal(),
      );
      assert.deepEqual(statuses(advanced), ['ok', 'ok'], inspect(advanced));
      pg = await probe(a);
      assert.equal(slotOf(pg, 'conf_physical')?.restartLsn, target);
      assert.ok((slotOf(pg, 'conf_logical')?.confirmedFlushLsn ?? 0n) >= target);
      const dropped = await a.applySlotPlan(
        [
          { kind: 'drop', slot: { name: 'conf_physical', type: 'physical' }, reason: 'unknown' },
          { kind: 'drop', slot: { name: 'conf_missing', type: 'physical' }, reason: 'unknown' },
          { kind: 'drop', slot: { name: 'conf_logical', type: 'logical' }, reason: 'unknown' },
        ],
        signal(),
      );
      assert.deepEqual(statuses(dropped), ['ok', 'failed', 'ok']);
      pg = await probe(a);
      assert.deepEqual([slotOf(pg, 'conf_physical'), slotOf(pg, 'conf_logical')], [undefined, undefined]);
      assert.deepEqual(
        statuses(await c.applySlotPlan([physical('conf_x')], signal())),
        ['failed'],
        'a stopped node fails every step, never rejects',
      );
    });

    it('on a replica creates and advances physical slots, but cannot create logical ones', async () => {
      const results = await b.applySlotPlan([physical('conf_copy'), logical('conf_logical_replica')], signal());
      assert.deepEqual(statuses(results), ['ok', 'failed'], inspect(results));
      const target = (await replicated(0, b)).replayedLsn ?? 0n;
      assert.ok((slotOf(await probe(b), 'conf_copy')?.restartLsn ?? 0n) <= target);
      assert.deepEqual(
        statuses(await b.applySlotPlan([{ kind: 'advance', slot: { name: 'conf_copy', type: 'physical' }, lsn: target }], signal())),
        ['ok'],
      );
      assert.equal(slotOf(await probe(b), 'conf_copy')?.restartLsn, target);
      assert.deepEqual(
        statuses(await b.applySlotPlan([{ kind: 'drop', slot: { name: 'conf_copy', type: 'physical' }, reason: 'unknown' }], signal())),
        ['ok'],
      );
    });

    it('copies a logical slot from the primary onto a replica (restarting it), and refuses one the primary lacks', async () => {
      assert.deepEqual(statuses(await a.applySlotPlan([logical('conf_cdc')], signal())), ['ok']);
      await b.copyLogicalSlots(up(0), ['conf_cdc'], signal());
      const pg = await eventually(b, 'the replica streams again', (pg) => pg.isRunning && pg.isStreaming);
      assert.deepEqual(
        [pg.role, slotOf(pg, 'conf_cdc')?.type, slotOf(pg, 'conf_cdc')?.plugin],
        ['replica', 'logical', harness.logicalPlugin],
      );
      await assert.rejects(b.copyLogicalSlots(up(0), ['conf_nope'], signal()), rejectsWith('PGW_PG_COMMAND_FAILED'));
      assert.equal((await probe(b)).isRunning, true, 'a refused copy leaves the replica running');
      await assert.rejects(b.copyLogicalSlots(harness.unreachable(), ['conf_cdc'], signal()), rejectsWith('PGW_PG_UNREACHABLE'));
      // The copy moves with the position the primary's consumers confirmed (status.slots), capped at the replay position.
      const target = (await replicated(0, b)).replayedLsn ?? 0n;
      const copy = { name: 'conf_cdc', type: 'logical' as const, database: 'postgres', plugin: harness.logicalPlugin };
      const advanced = await b.applySlotPlan([{ kind: 'advance', slot: copy, lsn: target }], signal());
      assert.deepEqual(statuses(advanced), ['ok'], inspect(advanced));
      assert.ok((slotOf(await probe(b), 'conf_cdc')?.confirmedFlushLsn ?? 0n) >= target);
      const drop: SlotStep = { kind: 'drop', slot: { name: 'conf_cdc', type: 'logical' }, reason: 'unknown' };
      assert.deepEqual(statuses(await b.applySlotPlan([drop], signal())), ['ok']);
      assert.deepEqual(statuses(await a.applySlotPlan([drop], signal())), ['ok']);
    });

    it('detachUpstream stops streaming and followUpstream resumes it', async () => {
      await b.detachUpstream(signal());
      const detached = await eventually(b, 'the replica stops streaming', (pg) => !pg.isStreaming);
      assert.deepEqual([detached.isRunning, detached.role, detached.upstream], [true, 'replica', undefined]);
      assert.equal((await b.walStatus(signal()))?.isStreaming, false);
      for (let spentMs = 0; ((await a.walStatus(signal()))?.streamingStandbys ?? []).length > 0; spentMs += STEP_MS) {
        if (spentMs >= budgetMs) assert.fail('the primary still lists the detached standby');
        await harness.pass(STEP_MS);
      }
      await b.followUpstream(up(0), signal());
      const following = await replicated(0, b);
      assert.equal(following.upstream, name(0));
    });

    it('reconfigure with a restart-only GUC leaves a pending restart that a restart clears', async () => {
      await a.reconfigure({ ...harness.parameters, shared_buffers: '24MB' }, signal());
      await eventually(a, 'pending_restart shows', (pg) => pg.isPendingRestart);
      await a.stop('fast', signal());
      await a.startPrimary(signal());
      assert.equal((await probe(a)).isPendingRestart, false);
    });

    it('promotes a replica to the next timeline; promote needs a running replica', async () => {
      // The replica stops following first, so the old primary writes WAL it never gets: their histories diverge.
      await b.detachUpstream(signal());
      await eventually(b, 'the replica stops streaming', (pg) => !pg.isStreaming);
      await harness.write(0);
      await harness.write(0);
      await a.stop('immediate', signal());
      await assert.rejects(a.promote(signal()), rejectsWith('PGW_PG_QUERY_FAILED'));
      await b.promote(signal());
      const pg = await probe(b);
      assert.deepEqual([pg.isRunning, pg.role, pg.timeline, pg.upstream], [true, 'primary', 2, undefined]);
      assert.ok(pg.writeLsn !== undefined);
      await assert.rejects(b.promote(signal()), rejectsWith('PGW_PG_QUERY_FAILED'));
      await b.checkpoint(signal());
      await harness.write(1);
    });

    it('rewind from a source nothing answers at fails with PGW_PG_UNREACHABLE and leaves the data dir', async () => {
      const before = await probe(a);
      await assert.rejects(a.rewind(harness.unreachable(), signal()), rejectsWith('PGW_PG_UNREACHABLE'));
      const pg = await probe(a);
      assert.deepEqual([pg.dataDir, pg.isRunning, pg.sysid, pg.timeline], ['initialized', false, before.sysid, 1]);
    });

    it('rewind refuses a source of another database system with PGW_PG_COMMAND_FAILED', async () => {
      await c.initdb(signal());
      await c.startPrimary(signal());
      assert.notEqual((await probe(c)).sysid, (await probe(a)).sysid, 'a second initdb is another system');
      await assert.rejects(a.rewind(up(2), signal()), rejectsWith('PGW_PG_COMMAND_FAILED'));
      assert.deepEqual([(await probe(a)).dataDir, (await probe(a)).timeline], ['initialized', 1]);
      await c.removeDataDir(signal());
    });

    it('rejoins the old primary by rewind onto the new one; it then streams on the new timeline', async () => {
      assert.deepEqual(statuses(await b.applySlotPlan([physical(slotNameForMember(name(0)))], signal())), ['ok']);
      await a.rewind(up(1), signal());
      const rewound = await probe(a);
      assert.deepEqual([rewound.dataDir, rewound.isRunning, rewound.role], ['initialized', false, 'replica']);
      await a.startReplica(up(1), signal());
      const pg = await replicated(1, a);
      assert.deepEqual([pg.role, pg.timeline, pg.upstream], ['replica', 2, name(1)]);
      assert.equal(await a.isHistoryDivergent(up(1), 2, signal()), false);
      assert.equal(await a.isHistoryDivergent(up(1), 1, signal()), false, 'timeline 1 has no history');
      assert.equal(await a.isHistoryDivergent(harness.unreachable(), 2, signal()), undefined, 'cannot tell without the upstream');
    });

    it('tells a history that diverged under the same timeline ID (two promotions cut short) from one that did not', async () => {
      assert.deepEqual(statuses(await b.applySlotPlan([physical(slotNameForMember(name(2)))], signal())), ['ok']);
      await c.basebackup(up(1), signal());
      await c.startReplica(up(1), signal());
      await replicated(1, c);
      await c.detachUpstream(signal());
      await eventually(c, 'the clone stops streaming', (pg) => !pg.isStreaming);
      await replicated(1, a);
      await b.stop('fast', signal());
      await a.promote(signal());
      await c.promote(signal());
      assert.deepEqual([(await probe(a)).timeline, (await probe(c)).timeline], [3, 3], 'each picks the next timeline it knows of');
      assert.equal(await a.isHistoryDivergent(up(2), 3, signal()), true);
      assert.equal(await c.isHistoryDivergent(up(0), 3, signal()), true);
      assert.equal(await c.isHistoryDivergent(up(0), 2, signal()), false, 'timeline 2 they share');
      assert.equal(await c.isHistoryDivergent(up(0), 4, signal()), undefined, 'no history file for a timeline never reached');
    });

    it('removeDataDir stops the node and leaves no data dir; a rewind then has nothing to work on', async () => {
      await c.removeDataDir(signal());
      const pg = await probe(c);
      assert.deepEqual([pg.dataDir, pg.isRunning, pg.role, pg.sysid], ['missing', false, undefined, undefined]);
      await assert.rejects(c.rewind(up(0), signal()), rejectsWith('PGW_PG_COMMAND_FAILED'));
    });
  });
}
