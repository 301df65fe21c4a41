// The in-memory PgController passes the conformance suite real PostgreSQL passes, on a clock that runs itself; then
// what only the fake has: the simulator's physics, fault hooks, aborts and inspection.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setImmediate as settle } from 'node:timers/promises';
import type { Clock, Upstream } from '../../src/core/ports.js';
import { runPgControllerConformance } from '../../src/postgres/conformance.js';
import { MemoryPgCluster } from '../../src/postgres/memory/memory-pg.js';
import { isPgwardenError } from '../../src/util/errors.js';
import { mulberry32 } from '../../src/util/prng.js';
import { FakeClock } from '../kit/fake-clock.js';

/** Time moves when someone sleeps: a sleep of n ms advances the clock n ms and resolves on the next turn. */
class SelfRunningClock implements Clock {
  #nowMs = 0;

  nowMs(): number {
    return this.#nowMs;
  }

  wallIso(): string {
    return new Date(Date.UTC(2026, 10, 24) + this.#nowMs).toISOString();
  }

  async sleep(ms: number, signal?: AbortSignal): Promise<void> {
    signal?.throwIfAborted();
    this.#nowMs += Math.max(0, ms);
    await settle();
    signal?.throwIfAborted();
  }

  deadline(_ms: number, parent?: AbortSignal): AbortSignal {
    // Time only moves inside sleeps here, so a deadline never expires on its own: only the parent can abort it.
    return parent ?? new AbortController().signal;
  }

  setTimer(_ms: number, _fire: () => void): () => void {
    throw new Error('SelfRunningClock has no timers: the fake controller never sets one');
  }

  advance(ms: number): void {
    this.#nowMs += ms;
  }
}

const PARAMETERS = { wal_level: 'logical', max_connections: 20 };
const NAMES = ['pg0', 'pg1', 'pg2'];
const upstreamOf = (name: string): Upstream => ({ name, connUrl: `postgres://${name}:5432/postgres` });

runPgControllerConformance('memory', async () => {
  const clock = new SelfRunningClock();
  const cluster = new MemoryPgCluster({ clock, random: mulberry32(7) });
  return {
    nodes: NAMES.map((name) => cluster.node(name, { parameters: PARAMETERS })),
    upstreamOf: (index) => upstreamOf(NAMES[index]!),
    unreachable: () => upstreamOf('nowhere'),
    crash: async (index) => cluster.crash(NAMES[index]!),
    freeze: async (index) => void cluster.freeze(NAMES[index]!),
    thaw: async (index) => cluster.thaw(NAMES[index]!),
    write: async (index) => cluster.write(NAMES[index]!),
    pass: async (ms) => {
      for (let left = ms; left > 0; left -= 100) {
        const step = Math.min(100, left);
        clock.advance(step);
        cluster.advance(step);
      }
      await settle();
    },
    parameters: PARAMETERS,
    logicalPlugin: 'test_decoding',
    cleanup: async () => undefined,
  };
});

/** A cluster on the simulator's kind of clock: time moves only when the test says, in steps of at most 100 ms. */
function simulated(options: { timelineIds?: 'per-node' | 'cluster-unique' } = {}) {
  const clock = new FakeClock(0);
  const cluster = new MemoryPgCluster({ clock, random: mulberry32(42), ...options });
  const run = async (ms: number): Promise<void> => {
    for (let left = ms; left > 0; left -= 100) {
      const step = Math.min(100, left);
      clock.advance(step);
      cluster.advance(step);
      await settle();
    }
  };
  const signal = (): AbortSignal => new AbortController().signal;
  return { clock, cluster, run, signal };
}

/** Starts `operation` and runs simulated time until it settles (or `limitMs` passes); returns its outcome. */
async function within<T>(
  run: (ms: number) => Promise<void>,
  limitMs: number,
  operation: Promise<T>,
): Promise<{ value?: T; error?: unknown; elapsedMs: number }> {
  let outcome: { value?: T; error?: unknown } | undefined;
  operation.then(
    (value) => (outcome = { value }),
    (error: unknown) => (outcome = { error }),
  );
  let elapsedMs = 0;
  while (outcome === undefined && elapsedMs < limitMs) {
    await run(100);
    elapsedMs += 100;
  }
  assert.ok(outcome !== undefined, `still running after ${limitMs} ms`);
  return { ...outcome, elapsedMs };
}

describe('MemoryPgCluster under simulated time', () => {
  it("takes the simulator's durations: initdb 1500 ms, start 300, basebackup 1000, promote 60", async () => {
    const { cluster, run, signal } = simulated();
    const [primary, replica] = [cluster.node('n1'), cluster.node('n2')];
    assert.equal((await within(run, 5000, primary.initdb(signal()))).elapsedMs, 1500);
    assert.equal((await within(run, 5000, primary.startPrimary(signal()))).elapsedMs, 300);
    assert.equal((await within(run, 5000, replica.basebackup(upstreamOf('n1'), signal()))).elapsedMs, 1000);
    assert.equal((await within(run, 5000, replica.startReplica(upstreamOf('n1'), signal()))).elapsedMs, 300);
    await run(500);
    assert.equal(cluster.streamingSource('n2'), 'n1');
    assert.deepEqual(cluster.standbysOf('n1'), ['n2']);
    await primary.stop('fast', signal());
    assert.ok((await within(run, 1000, replica.promote(signal()))).elapsedMs <= 100);
    assert.deepEqual([cluster.inspect('n2').role, cluster.inspect('n2').timeline], ['primary', 2]);
  });

  it('writes on primaries and lets streaming replicas trail by less than 40 bytes on the same timeline', async () => {
    const { cluster, run, signal } = simulated();
    const [primary, replica] = [cluster.node('n1'), cluster.node('n2')];
    await within(run, 5000, primary.initdb(signal()));
    await within(run, 5000, primary.startPrimary(signal()));
    await within(run, 5000, replica.basebackup(upstreamOf('n1'), signal()));
    await within(run, 5000, replica.startReplica(upstreamOf('n1'), signal()));
    const before = cluster.inspect('n1').lsn;
    await run(1000);
    const [written, trailing] = [cluster.inspect('n1').lsn, cluster.inspect('n2').lsn];
    assert.equal(written, before + 1000n, 'a primary writes one byte per millisecond');
    assert.ok(written - trailing >= 0n && written - trailing < 40n, `lag ${written - trailing}`);
    const pg = await replica.probe(signal());
    assert.deepEqual([pg.isStreaming, pg.replayedLsn, pg.upstream], [true, trailing, 'n1']);
  });

  it('follows the new primary across its timeline switch when the replica is not ahead of the fork', async () => {
    const { cluster, run, signal } = simulated();
    const [n1, n2, n3] = [cluster.node('n1'), cluster.node('n2'), cluster.node('n3')];
    await within(run, 5000, n1.initdb(signal()));
    await within(run, 5000, n1.startPrimary(signal()));
    for (const replica of [n2, n3]) {
      await within(run, 5000, replica.basebackup(upstreamOf('n1'), signal()));
      await within(run, 5000, replica.startReplica(upstreamOf('n1'), signal()));
    }
    await run(500);
    await n1.stop('immediate', signal());
    await run(200);
    // n3 is at or behind n2 (both stopped receiving at the same time): it can follow n2's new timeline.
    const behind = cluster.inspect('n3').lsn <= cluster.inspect('n2').lsn ? 'n3' : 'n2';
    const ahead = behind === 'n3' ? 'n2' : 'n3';
    await within(run, 1000, cluster.node(ahead).promote(signal()));
    await cluster.node(behind).followUpstream(upstreamOf(ahead), signal());
    await run(300);
    assert.equal(cluster.streamingSource(behind), ahead);
    assert.equal(cluster.inspect(behind).timeline, 2);
    assert.deepEqual([...cluster.inspect(behind).forks.keys()], [1]);
  });

  it('never lets a replica ahead of the fork follow the new timeline (it needs a rewind)', async () => {
    const { cluster, run, signal } = simulated();
    const [n1, n2] = [cluster.node('n1'), cluster.node('n2')];
    await within(run, 5000, n1.initdb(signal()));
    await within(run, 5000, n1.startPrimary(signal()));
    await within(run, 5000, n2.basebackup(upstreamOf('n1'), signal()));
    await within(run, 5000, n2.startReplica(upstreamOf('n1'), signal()));
    await n2.detachUpstream(signal());
    await run(500);
    await n1.stop('fast', signal());
    await within(run, 1000, n2.promote(signal()));
    await within(run, 1000, n1.startReplica(upstreamOf('n2'), signal()));
    await run(500);
    assert.equal(cluster.streamingSource('n1'), undefined, 'n1 wrote past the point n2 left timeline 1');
    assert.equal((await n1.probe(signal())).isStreaming, false);
  });

  it('gives every promotion a new timeline in cluster-unique mode', async () => {
    const { cluster, run, signal } = simulated({ timelineIds: 'cluster-unique' });
    const [n1, n2, n3] = [cluster.node('n1'), cluster.node('n2'), cluster.node('n3')];
    await within(run, 5000, n1.initdb(signal()));
    await within(run, 5000, n1.startPrimary(signal()));
    for (const replica of [n2, n3]) {
      await within(run, 5000, replica.basebackup(upstreamOf('n1'), signal()));
      await within(run, 5000, replica.startReplica(upstreamOf('n1'), signal()));
    }
    await n1.stop('fast', signal());
    await within(run, 1000, n2.promote(signal()));
    await within(run, 1000, n3.promote(signal()));
    assert.deepEqual([cluster.inspect('n2').timeline, cluster.inspect('n3').timeline], [2, 3]);
  });

  it('an abort rejects with the reason at once and leaves a consistent state', async () => {
    const { cluster, run, signal } = simulated();
    const n1 = cluster.node('n1');
    const controller = new AbortController();
    const initdb = n1.initdb(controller.signal).catch((error: unknown) => error);
    await run(200);
    controller.abort(new Error('demoting'));
    assert.equal(((await initdb) as Error).message, 'demoting', 'rejected with the reason, before the 1500 ms are up');
    assert.equal(cluster.inspect('n1').dataDir, 'empty', 'an interrupted initdb leaves nothing to start');
    await within(run, 5000, n1.initdb(signal()));
    await within(run, 5000, n1.startPrimary(signal()));
    const n2 = cluster.node('n2');
    await within(run, 5000, n2.basebackup(upstreamOf('n1'), signal()));
    await within(run, 5000, n2.startReplica(upstreamOf('n1'), signal()));
    // Promotion, once signalled, finishes even when the caller stops waiting (as pg_promote does).
    const promoting = new AbortController();
    const promote = n2.promote(promoting.signal).catch((error: unknown) => error);
    promoting.abort(new Error('cancelled'));
    assert.equal(((await promote) as Error).message, 'cancelled');
    assert.equal(cluster.inspect('n2').role, 'replica');
    await run(100);
    assert.equal(cluster.inspect('n2').role, 'primary');
  });

  it('a stop ends a start in flight, and a promotion survives its agent only with the postmaster', async () => {
    const { cluster, run, signal } = simulated();
    const [n1, n2] = [cluster.node('n1'), cluster.node('n2')];
    await within(run, 5000, n1.initdb(signal()));
    const starting = within(run, 5000, n1.startPrimary(signal()));
    await n1.stop('fast', signal());
    assert.ok(isPgwardenError((await starting).error, 'PGW_PG_COMMAND_FAILED'));
    assert.equal(cluster.inspect('n1').isRunning, false);
    await within(run, 5000, n1.startPrimary(signal()));
    await within(run, 5000, n2.basebackup(upstreamOf('n1'), signal()));
    await within(run, 5000, n2.startReplica(upstreamOf('n1'), signal()));
    void n2.promote(signal()).catch(() => undefined);
    cluster.kill('n2', { keepPostmaster: true });
    await run(100);
    assert.equal(cluster.inspect('n2').role, 'primary', 'pg_promote was signalled: the startup process finishes it');
    await n1.stop('fast', signal());
    await within(run, 5000, n1.startReplica(upstreamOf('n2'), signal()));
    void cluster
      .node('n1')
      .promote(signal())
      .catch(() => undefined);
    cluster.kill('n1');
    await run(100);
    assert.deepEqual(
      [cluster.inspect('n1').isRunning, cluster.inspect('n1').role],
      [false, 'replica'],
      'the postmaster died with its agent',
    );
  });

  it('crash() tells the agent; kill() tells nobody, and the next controller is a new agent', async () => {
    const { cluster, run, signal } = simulated();
    const n1 = cluster.node('n1');
    await within(run, 5000, n1.initdb(signal()));
    await within(run, 5000, n1.startPrimary(signal()));
    let exits = 0;
    n1.onUnexpectedExit(() => exits++);
    cluster.crash('n1');
    assert.equal(exits, 1);
    const crashed = await n1.probe(signal());
    assert.deepEqual([crashed.isRunning, crashed.crashedAtMs, crashed.controlState], [false, 1800, 'in production']);
    await within(run, 5000, n1.startPrimary(signal()));
    const starting = within(run, 5000, cluster.node('n2').initdb(signal()));
    cluster.kill('n2');
    assert.match(String((await starting).error), /killed/);
    cluster.kill('n1');
    assert.equal(exits, 1);
    await assert.rejects(n1.startPrimary(signal()), /killed/, "a dead agent's controller does nothing more");
    await assert.rejects(n1.probe(signal()), /killed/);
    assert.equal(cluster.inspect('n1').isRunning, false);
    assert.notEqual(cluster.node('n1'), n1, 'a new agent process');
    assert.equal((await cluster.node('n1').probe(signal())).crashedAtMs, undefined, 'a new agent knows of no crash');
    await within(run, 5000, cluster.node('n1').startPrimary(signal()));
    cluster.kill('n1', { keepPostmaster: true });
    assert.equal(cluster.inspect('n1').isRunning, true, 'the postmaster outlives its agent');
  });

  it('failNext makes one call fail as a real failure would', async () => {
    const { cluster, run, signal } = simulated();
    const n1 = cluster.node('n1');
    cluster.failNext('n1', 'initdb', new Error('disk full'));
    const failed = await within(run, 5000, n1.initdb(signal()));
    assert.equal((failed.error as Error).message, 'disk full');
    assert.equal(failed.elapsedMs, 1500, 'a long operation fails at its end');
    assert.equal(cluster.inspect('n1').dataDir, 'empty');
    await within(run, 5000, n1.initdb(signal()));
    await within(run, 5000, n1.startPrimary(signal()));
    cluster.failNext('n1', 'applySlotPlan', new Error('out of slots'));
    const results = await n1.applySlotPlan([{ kind: 'create', slot: { name: 'x', type: 'physical' } }], signal());
    assert.deepEqual(results, [
      { step: { kind: 'create', slot: { name: 'x', type: 'physical' } }, status: 'failed', error: 'out of slots' },
    ]);
    cluster.failNext('n1', 'probe', new Error('probe timeout'));
    await assert.rejects(n1.probe(signal()), /probe timeout/);
    assert.equal((await n1.probe(signal())).isRunning, true, 'only the next call fails');
  });

  it('fails like the real controller: promote of a stopped node, basebackup from a stopped one', async () => {
    const { cluster, run, signal } = simulated();
    const [n1, n2] = [cluster.node('n1'), cluster.node('n2')];
    await within(run, 5000, n1.initdb(signal()));
    await assert.rejects(n1.promote(signal()), (error: unknown) => isPgwardenError(error, 'PGW_PG_QUERY_FAILED'));
    const clone = await within(run, 5000, n2.basebackup(upstreamOf('n1'), signal()));
    assert.ok(isPgwardenError(clone.error, 'PGW_PG_UNREACHABLE'));
    // A conn_url host names the node when the upstream name does not.
    await within(run, 5000, n1.startPrimary(signal()));
    await within(run, 5000, n2.basebackup({ name: 'leader', connUrl: 'postgres://n1:5432/postgres' }, signal()));
    assert.equal(cluster.inspect('n2').dataDir, 'initialized');
  });
});
