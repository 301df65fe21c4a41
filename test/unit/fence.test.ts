// The fence process's logic on a real Unix socket with a recorded stop: it enforces the newest deadline the agent
// sent, also after the agent is gone, and does nothing once disarmed.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { FenceClient } from '../../src/fence/fence-client.js';
import { startFenceServer, type FenceServer } from '../../src/fence/fence-server.js';
import {
  applyFenceMessage,
  formatFenceMessage,
  INITIAL_FENCE_STATE,
  isFenceDue,
  nextFenceCheckNs,
  nextFenceStep,
  parseFenceMessage,
} from '../../src/fence/fence-state.js';
import type { FenceOutcome } from '../../src/fence/stop-primary.js';
import { silentLog } from '../../src/util/log.js';
import { waitUntil } from '../../src/util/wait-until.js';

describe('fence state', () => {
  it('keeps the newest deadline, clears it on disarm, and parses only its own protocol', () => {
    const armed = applyFenceMessage(INITIAL_FENCE_STATE, { kind: 'arm', deadlineNs: 100n });
    assert.equal(isFenceDue(armed, 99n), false);
    assert.equal(isFenceDue(armed, 100n), true);
    const moved = applyFenceMessage(armed, { kind: 'arm', deadlineNs: 50n });
    assert.equal(moved.deadlineNs, 50n, 'the newest proof counts, also when it is shorter');
    assert.equal(isFenceDue(applyFenceMessage(moved, { kind: 'disarm' }), 1000n), false);
    assert.deepEqual(applyFenceMessage(moved, { kind: 'exit' }), {
      deadlineNs: undefined,
      freezeAtNs: undefined,
      isFrozen: false,
      isExiting: true,
    });
    assert.deepEqual(parseFenceMessage('{"kind":"arm","deadlineNs":"123"}'), { kind: 'arm', deadlineNs: 123n });
    for (const line of ['', 'arm', '{"kind":"arm","deadlineNs":12}', '{"kind":"arm","deadlineNs":"-1"}', '{"kind":"boom"}', 'null'])
      assert.equal(parseFenceMessage(line), undefined, line);
  });

  it('freezes from the freeze instant, thaws only on a newer proof, and kills at the deadline or on a disarm while frozen', () => {
    const armed = applyFenceMessage(INITIAL_FENCE_STATE, { kind: 'arm', deadlineNs: 1000n, freezeAtNs: 100n });
    assert.deepEqual(parseFenceMessage(formatFenceMessage({ kind: 'arm', deadlineNs: 1000n, freezeAtNs: 100n })), {
      kind: 'arm',
      deadlineNs: 1000n,
      freezeAtNs: 100n,
    });
    assert.equal(nextFenceStep(armed, 99n), 'none');
    assert.equal(nextFenceCheckNs(armed, 99n), 100n);
    assert.equal(nextFenceStep(armed, 100n), 'freeze');
    const frozen = { ...armed, isFrozen: true };
    assert.equal(nextFenceStep(frozen, 500n), 'none', 'stays frozen while no newer proof came');
    assert.equal(nextFenceCheckNs(frozen, 500n), 1000n, 'then looks again at the deadline');
    assert.equal(nextFenceStep(applyFenceMessage(frozen, { kind: 'arm', deadlineNs: 2000n, freezeAtNs: 600n }), 500n), 'thaw');
    assert.equal(nextFenceStep(applyFenceMessage(frozen, { kind: 'arm', deadlineNs: 2000n, freezeAtNs: 400n }), 500n), 'none');
    assert.equal(nextFenceStep(frozen, 1000n), 'kill');
    assert.equal(nextFenceStep(applyFenceMessage(frozen, { kind: 'disarm' }), 500n), 'kill');
    assert.equal(nextFenceStep(applyFenceMessage(INITIAL_FENCE_STATE, { kind: 'disarm' }), 500n), 'none');
  });
});

describe('fence process', () => {
  let dir: string;
  /** Every fence server a test started: their idle-exit timers would hold the file open for a minute after its tests. */
  const servers: FenceServer[] = [];
  const kept = (server: FenceServer | undefined): FenceServer | undefined => {
    if (server !== undefined) servers.push(server);
    return server;
  };
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pgw-fence-unit-'));
  });
  after(async () => {
    await Promise.all(servers.map((server) => server.close()));
    await rm(dir, { recursive: true, force: true });
  });

  /** A fence for `name` whose stops find nothing running. */
  const idleFence = async (name: string): ReturnType<typeof startFenceServer> =>
    kept(
      await startFenceServer({
        socketPath: join(dir, `${name}.sock`),
        dataDir: join(dir, name),
        nowNs: () => process.hrtime.bigint(),
        stopPrimary: async () => ({ kind: 'not-running' }),
        freezePrimary: async () => ({ kind: 'not-running' }),
        thaw: () => undefined,
        killFrozen: () => undefined,
        isAlive: () => true,
        log: () => undefined,
        idleExitMs: 60_000,
        onExit: () => undefined,
      }),
    );

  async function start(name: string): Promise<{
    server: FenceServer;
    stops: bigint[];
    client: FenceClient;
    exits: number[];
    events: string[];
  }> {
    const socketPath = join(dir, `${name}.sock`);
    const stops: bigint[] = [];
    const exits: number[] = [];
    const events: string[] = [];
    const server = await startFenceServer({
      socketPath,
      dataDir: join(dir, name),
      nowNs: () => process.hrtime.bigint(),
      stopPrimary: async (): Promise<FenceOutcome> => {
        stops.push(process.hrtime.bigint());
        return { kind: 'stopped', pid: 1, processes: 1 };
      },
      freezePrimary: async () => {
        events.push(`freeze@${Math.round(nowMs())}`);
        return { kind: 'frozen', pid: 10, pids: [10, 11] };
      },
      thaw: (pids) => events.push(`thaw ${pids.join(',')}`),
      killFrozen: (pids) => events.push(`kill ${pids.join(',')}`),
      isAlive: () => true,
      log: () => undefined,
      idleExitMs: 60_000,
      onExit: () => exits.push(1),
    });
    assert.ok(server !== undefined);
    kept(server);
    const client = new FenceClient({
      socketPath,
      startFence: () => assert.fail('the fence runs already'),
      toMonotonicNs: (deadlineMs) => BigInt(Math.round(deadlineMs * 1e6)),
      log: silentLog,
    });
    return { server, stops, client, exits, events };
  }

  const nowMs = (): number => Number(process.hrtime.bigint()) / 1e6;

  it('stops PostgreSQL at the deadline when no renewal moved it, also after the agent disconnected', async () => {
    const { server, stops, client } = await start('a');
    const deadline = nowMs() + 300;
    client.armUntil(deadline);
    await waitUntil(() => server.state().deadlineNs !== undefined, { timeoutMs: 2000, describe: 'the arm to arrive' });
    await client.close({ exit: false });
    await waitUntil(() => stops.length === 1, { timeoutMs: 3000, describe: 'the fence to fire' });
    assert.ok(Number(stops[0]!) / 1e6 >= deadline, 'never before the deadline');
    assert.ok(Number(stops[0]!) / 1e6 - deadline < 200, 'within 200 ms of the deadline');
    await server.close();
  });

  it('a renewal moves the deadline and a disarm cancels it', async () => {
    const { server, stops, client } = await start('b');
    client.armUntil(nowMs() + 200);
    const later = nowMs() + 600;
    client.armUntil(later);
    await waitUntil(() => stops.length === 1, { timeoutMs: 3000, describe: 'the fence to fire at the later deadline' });
    assert.ok(Number(stops[0]!) / 1e6 >= later);
    client.armUntil(nowMs() + 200);
    client.disarm();
    await waitUntil(() => server.state().deadlineNs === undefined, { timeoutMs: 2000, describe: 'the disarm to arrive' });
    // The cancelled deadline passes without a stop (bounded: the deadline plus a margin, then check).
    await waitUntil(() => nowMs() > later + 400, { timeoutMs: 2000, intervalMs: 20, describe: 'time to pass the cancelled deadline' });
    assert.equal(stops.length, 1);
    await client.close({ exit: false });
    await server.close();
  });

  it('freezes at the heartbeat window, thaws on a newer proof, and kills what it froze at the lock deadline', async () => {
    const { server, stops, client, events } = await start('f');
    const freezeAt = nowMs() + 150;
    client.armUntil(nowMs() + 60_000, freezeAt);
    await waitUntil(() => server.state().isFrozen, { timeoutMs: 2000, describe: 'the freeze' });
    assert.ok(Number(events[0]!.slice('freeze@'.length)) >= Math.floor(freezeAt), 'never before the window ends');
    client.armUntil(nowMs() + 60_000, nowMs() + 60_000);
    await waitUntil(() => !server.state().isFrozen, { timeoutMs: 2000, describe: 'the thaw' });
    assert.deepEqual(events.slice(1), ['thaw 10,11']);
    // Frozen again, then the lock deadline passes without a proof: killed, not thawed.
    client.armUntil(nowMs() + 300, nowMs());
    await waitUntil(() => events.length === 4, { timeoutMs: 3000, describe: 'a freeze and then the kill' });
    assert.match(events[2]!, /^freeze@/);
    assert.equal(events[3], 'kill 10,11');
    assert.equal(stops.length, 0, 'what was frozen is killed directly');
    assert.equal(server.state().isFrozen, false);
    await client.close({ exit: false });
    await server.close();
  });

  it('a disarm while frozen kills rather than thaws', async () => {
    const { server, client, events } = await start('g');
    client.armUntil(nowMs() + 60_000, nowMs());
    await waitUntil(() => server.state().isFrozen, { timeoutMs: 2000, describe: 'the freeze' });
    client.disarm();
    await waitUntil(() => events.length === 2, { timeoutMs: 2000, describe: 'the kill' });
    assert.equal(events[1], 'kill 10,11');
    await client.close({ exit: false });
    await server.close();
  });

  it('leaves when the agent stops cleanly, and a second fence does not take over a served socket', async () => {
    const { server, exits, client } = await start('c');
    const second = await idleFence('c');
    assert.equal(second, undefined);
    await client.close({ exit: true });
    await waitUntil(() => exits.length === 1, { timeoutMs: 2000, describe: 'the fence to exit' });
    assert.equal(server.state().isExiting, true);
  });

  it('the client starts the fence when none answers', async () => {
    const socketPath = join(dir, 'd.sock');
    let started: FenceServer | undefined;
    const client = new FenceClient({
      socketPath,
      startFence: () => {
        void idleFence('d').then((server) => (started = server));
      },
      toMonotonicNs: (deadlineMs) => BigInt(Math.round(deadlineMs * 1e6)),
      log: silentLog,
    });
    client.armUntil(nowMs() + 60_000);
    await waitUntil(() => started?.state().deadlineNs !== undefined, { timeoutMs: 3000, describe: 'the started fence to be armed' });
    await client.close({ exit: false });
    await started!.close();
  });

  it('does not start a fence process per renewal when none comes up: one series of attempts, then a pause', async () => {
    let starts = 0;
    const errors: string[] = [];
    const client = new FenceClient({
      socketPath: join(dir, 'never.sock'),
      startFence: () => starts++,
      toMonotonicNs: (deadlineMs) => BigInt(Math.round(deadlineMs * 1e6)),
      log: { ...silentLog, error: (_fields: unknown, message: string) => errors.push(message) },
    });
    client.armUntil(nowMs() + 60_000);
    await waitUntil(() => errors.length === 1, { timeoutMs: 5000, describe: 'the series of attempts to give up' });
    client.armUntil(nowMs() + 60_000);
    client.armUntil(nowMs() + 60_000);
    await waitUntil(() => nowMs() > 0, { timeoutMs: 100, describe: 'a turn of the event loop' });
    assert.equal(starts, 1, 'one start per series, none while pausing');
    assert.match(errors[0]!, /does not answer/);
    await client.close({ exit: false });
  });
});
