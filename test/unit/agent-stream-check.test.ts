// The stream check on the in-memory PostgreSQL and a fake clock: a healthy replica is watched, not polled; its
// upstream's death is heard at once; an upstream that refuses the watch session is polled instead.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setImmediate as settle } from 'node:timers/promises';
import { Notifier } from '../../src/agent/notifier.js';
import { runStreamCheck, STREAM_CHECK_INTERVAL_MS, type StreamCheckView } from '../../src/agent/stream-check.js';
import type { PgController, Upstream } from '../../src/core/ports.js';
import type { LocalPg } from '../../src/core/types.js';
import { MemoryPgCluster } from '../../src/postgres/memory/memory-pg.js';
import type { Log } from '../../src/util/log.js';
import { mulberry32 } from '../../src/util/prng.js';
import { FakeClock } from '../kit/fake-clock.js';

const upstreamOf = (name: string): Upstream => ({ name, connUrl: `postgres://${name}:5432/postgres` });

/** Counts the calls made to each method of a controller. */
function counted(pg: PgController): { readonly pg: PgController; readonly calls: Map<string, number> } {
  const calls = new Map<string, number>();
  const proxy = new Proxy(pg, {
    get(target, property, receiver) {
      const value: unknown = Reflect.get(target, property, receiver);
      if (typeof value !== 'function' || typeof property !== 'string') return value;
      return (...args: unknown[]) => {
        calls.set(property, (calls.get(property) ?? 0) + 1);
        return (value as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
  return { pg: proxy, calls };
}

async function streamingPair() {
  const clock = new FakeClock(0);
  const cluster = new MemoryPgCluster({ clock, random: mulberry32(3) });
  const run = async (ms: number): Promise<void> => {
    for (let left = ms; left > 0; left -= 50) {
      clock.advance(Math.min(50, left));
      cluster.advance(Math.min(50, left));
      await settle();
    }
  };
  const within = async <T>(operation: Promise<T>): Promise<T> => {
    let done = false;
    const result = operation.finally(() => (done = true));
    for (let spent = 0; !done && spent < 10_000; spent += 50) await run(50);
    return result;
  };
  const [primary, replica] = [cluster.node('n1'), cluster.node('n2')];
  const signal = new AbortController().signal;
  await within(primary.initdb(signal));
  await within(primary.startPrimary(signal));
  await within(replica.basebackup(upstreamOf('n1'), signal));
  await within(replica.startReplica(upstreamOf('n1'), signal));
  await run(200);
  const pg: LocalPg = await replica.probe(signal);
  assert.equal(pg.isStreaming, true);
  return { clock, cluster, run, replica, pg };
}

function recordingLog(): { readonly log: Log; readonly warnings: string[] } {
  const warnings: string[] = [];
  const ignore = (): void => undefined;
  const log: Log = { debug: ignore, info: ignore, warn: (_fields, message) => void warnings.push(message), error: ignore };
  return { log, warnings };
}

describe('stream check', () => {
  it('watches a streaming replica without polling, and hears of the upstream postmaster dying at once', async () => {
    const { clock, cluster, run, replica, pg } = await streamingPair();
    const { pg: controller, calls } = counted(replica);
    const { log } = recordingLog();
    let lostAtMs: number | undefined;
    let view: StreamCheckView = { pg, isTaskRunning: false, isSyncMode: false, upstream: upstreamOf('n1') };
    const viewChanged = new Notifier();
    const stop = new AbortController();
    const running = runStreamCheck(
      {
        pg: controller,
        clock,
        log,
        view: () => view,
        viewChanged: (signal) => viewChanged.next(signal),
        onStreamLost: () => {
          lostAtMs = clock.nowMs();
          view = { ...view, pg: { ...pg, isStreaming: false } };
          viewChanged.fire();
        },
        onStandbysChanged: () => undefined,
      },
      stop.signal,
    );
    await run(10_000);
    assert.equal(calls.get('walStatus') ?? 0, 0, 'no polling while the watch session is open');
    assert.equal(calls.get('watchUpstream'), 1);
    const crashedAtMs = clock.nowMs();
    cluster.crash('n1');
    await run(500);
    assert.ok(lostAtMs !== undefined && lostAtMs - crashedAtMs <= 100, `stream loss heard ${String(lostAtMs)} vs crash ${crashedAtMs}`);
    await run(3000);
    assert.equal(clock.nextTimerAtMs(), undefined, 'no timer left: the check waits for the next cycle, not on a clock');
    stop.abort();
    await run(1000);
    await running;
  });

  it('polls every interval, with one warning, when the upstream refuses the watch session', async () => {
    const { clock, run, replica, pg } = await streamingPair();
    const { pg: controller, calls } = counted(replica);
    const refusing = new Proxy(controller, {
      get: (target, property, receiver) =>
        property === 'watchUpstream' ? async () => 'unavailable' : (Reflect.get(target, property, receiver) as unknown),
    });
    const { log, warnings } = recordingLog();
    const stop = new AbortController();
    const running = runStreamCheck(
      {
        pg: refusing,
        clock,
        log,
        view: () => ({ pg, isTaskRunning: false, isSyncMode: false, upstream: upstreamOf('n1') }),
        viewChanged: (signal) => new Notifier().next(signal),
        onStreamLost: () => assert.fail('the stream is fine'),
        onStandbysChanged: () => undefined,
      },
      stop.signal,
    );
    await run(10_000);
    const polls = calls.get('walStatus') ?? 0;
    assert.ok(polls >= 10_000 / STREAM_CHECK_INTERVAL_MS - 2 && polls <= 10_000 / STREAM_CHECK_INTERVAL_MS + 1, `${polls} polls`);
    assert.equal(warnings.length, 1, warnings.join('; '));
    stop.abort();
    await run(1000);
    await running;
  });
});
