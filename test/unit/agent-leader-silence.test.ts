// A replica's silent-leader monitor on the in-memory DCS and a fake clock: it calls the leader silent only after the
// fence window plus the margin, and only once etcd has answered it promptly for two beat intervals.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { LeaderSilenceMonitor } from '../../src/agent/leader-silence.js';
import { silencePhase } from '../../src/core/silent-leader.js';
import type { ClusterView } from '../../src/core/types.js';
import { MemoryDcs, MemoryDcsStore } from '../../src/dcs/memory/memory-dcs.js';
import { FakeClock } from '../kit/fake-clock.js';

const SETTINGS = { intervalMs: 250, fenceWindowMs: 1000, marginMs: 400, confirmMs: 500 };
const TTL_MS = 30_000;

/** Counts sleeps: a monitor with nothing to do must wait for the next cycle, not spin. */
class CountingClock extends FakeClock {
  sleeps = 0;
  override sleep(ms: number, signal?: AbortSignal): Promise<void> {
    this.sleeps++;
    return super.sleep(ms, signal);
  }
}

async function cluster(fenceMs = 1000): Promise<{
  clock: CountingClock;
  leader: MemoryDcs;
  replica: MemoryDcs;
  monitor: LeaderSilenceMonitor;
  silentAt: number[];
  step: (ms: number) => Promise<void>;
  stop: AbortController;
}> {
  const clock = new CountingClock();
  const store = new MemoryDcsStore(clock);
  const options = { namespace: '/service', scope: 'silence' };
  const leader = new MemoryDcs(store, { ...options, member: 'node1' });
  const replica = new MemoryDcs(store, { ...options, member: 'node2' });
  const signal = (): AbortSignal => AbortSignal.timeout(5000);
  assert.equal(await leader.acquireLeader(TTL_MS, signal()), true);
  assert.equal(await leader.beatHeartbeat(fenceMs, signal()), true);
  let view: ClusterView = await replica.loadCluster(signal());
  const silentAt: number[] = [];
  const monitor = new LeaderSilenceMonitor({
    dcs: replica,
    clock,
    context: () => ({ settings: SETTINGS, self: 'node2', leader: view.leader, isPaused: false, revision: view.revision }),
    onSilent: () => silentAt.push(clock.nowMs()),
    nextCycle: (stop) => clock.sleep(1000, stop).catch(() => undefined),
  });
  monitor.observeView(view);
  const stop = new AbortController();
  void monitor.run(stop.signal);
  /** Moves time in 10 ms steps, letting the monitor's promises settle between them. */
  const step = async (ms: number): Promise<void> => {
    for (let elapsed = 0; elapsed < ms; elapsed += 10) {
      clock.advance(10);
      for (let turn = 0; turn < 5; turn++) await new Promise((resolve) => setImmediate(resolve));
    }
    view = await replica.loadCluster(signal()).catch(() => view);
  };
  return { clock, leader, replica, monitor, silentAt, step, stop };
}

describe('silent-leader monitor', () => {
  it('never calls a beating leader silent, and calls a silent one silent after the window, the margin and two prompt reads', async () => {
    const { clock, leader, monitor, silentAt, step, stop } = await cluster();
    for (let beat = 0; beat < 12; beat++) {
      await step(250);
      assert.equal(await leader.beatHeartbeat(1000, AbortSignal.timeout(5000)), true);
    }
    assert.deepEqual(silentAt, [], 'a leader beating every interval is never silent');
    const lastBeatSeenAt = monitor.evidence()!.seenAtMs;
    await step(2000);
    assert.ok(silentAt.length > 0, 'silent once the leader stopped beating');
    assert.ok(silentAt[0]! - lastBeatSeenAt >= SETTINGS.fenceWindowMs + SETTINGS.marginMs, 'never inside window + margin');
    assert.equal(silencePhase(monitor.evidence()!, SETTINGS, clock.nowMs()), 'silent');
    stop.abort();
  });

  it('does not call the leader silent while etcd does not answer it (an election), and a beat after it resets everything', async () => {
    const { clock, leader, replica, monitor, silentAt, step, stop } = await cluster();
    replica.setReachable(false);
    await step(3000);
    assert.deepEqual(silentAt, [], 'no prompt answer from etcd, no verdict');
    assert.notEqual(silencePhase(monitor.evidence()!, SETTINGS, clock.nowMs()), 'silent');
    replica.setReachable(true);
    // etcd is back: the live leader beats within one interval, before two intervals of prompt reads have passed.
    await step(100);
    assert.equal(await leader.beatHeartbeat(1000, AbortSignal.timeout(5000)), true);
    await step(200);
    assert.deepEqual(silentAt, []);
    assert.equal(silencePhase(monitor.evidence()!, SETTINGS, clock.nowMs()), 'beating');
    stop.abort();
  });

  it('never judges a leader that announces no fence window, and does not spin meanwhile', async () => {
    const { clock, monitor, silentAt, step, stop } = await cluster(0);
    const sleepsBefore = clock.sleeps;
    await step(3000);
    assert.deepEqual(silentAt, [], 'no window announced: the ttl decides, not silence');
    assert.equal(monitor.evidence()?.beat.fenceMs, 0);
    assert.ok(clock.sleeps - sleepsBefore < 20, `the monitor slept ${clock.sleeps - sleepsBefore} times in 3 s`);
    stop.abort();
  });
});
