// The single task slot and the loop's wakeup: one task at a time, cancellation, nudges that are never lost.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { TaskSlot } from '../../src/agent/tasks.js';
import { Wakeup } from '../../src/agent/wakeup.js';
import { FakeClock } from '../kit/fake-clock.js';
import { SystemClock } from '../../src/util/clock.js';
import { silentLog } from '../../src/util/log.js';

describe('task slot', () => {
  it('runs one task at a time and records its outcome', async () => {
    let settled = 0;
    const slot = new TaskSlot(new SystemClock(), silentLog, () => settled++);
    let release!: () => void;
    assert.equal(
      slot.start('basebackup', () => new Promise<void>((resolve) => (release = resolve))),
      true,
    );
    assert.equal(
      slot.start('rewind', async () => undefined),
      false,
      'a second task is refused while one runs',
    );
    assert.equal(slot.state().kind, 'running');
    release();
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual({ ...slot.state(), endedAtMs: 0 }, { kind: 'done', name: 'basebackup', isOk: true, endedAtMs: 0 });
    assert.equal(settled, 1);
  });

  it('counts failures in a row per task, reset by a success of that task', async () => {
    const slot = new TaskSlot(new SystemClock(), silentLog, () => undefined);
    const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
    const failures = (): number | undefined => {
      const state = slot.state();
      return state.kind === 'done' && !state.isOk ? (state.failuresInRow ?? 1) : undefined;
    };
    for (const expected of [1, 2]) {
      slot.start('bootstrap', () => Promise.reject(new Error('ENOSPC')));
      await settle();
      assert.equal(failures(), expected);
      slot.start('abort-bootstrap', async () => undefined);
      await settle();
    }
    slot.start('bootstrap', async () => undefined);
    await settle();
    slot.start('bootstrap', () => Promise.reject(new Error('ENOSPC')));
    await settle();
    assert.equal(failures(), 1);
  });

  it('records a failure with its message', async () => {
    const slot = new TaskSlot(new SystemClock(), silentLog, () => undefined);
    slot.start('rewind', async () => {
      throw new Error('pg_rewind: source and target clusters are from different systems');
    });
    await new Promise((resolve) => setImmediate(resolve));
    const state = slot.state();
    assert.equal(
      state.kind === 'done' && !state.isOk ? state.error : '',
      'pg_rewind: source and target clusters are from different systems',
    );
  });

  it('cancels a running task through its signal', async () => {
    const slot = new TaskSlot(new SystemClock(), silentLog, () => undefined);
    let wasAborted = false;
    slot.start(
      'promote',
      (signal) =>
        new Promise<void>((_resolve, reject) =>
          signal.addEventListener('abort', () => {
            wasAborted = true;
            reject(new Error('aborted'));
          }),
        ),
    );
    await slot.cancel(1000);
    assert.equal(wasAborted, true);
    assert.equal(slot.isRunning(), false);
  });
});

describe('wakeup', () => {
  it('returns early on a nudge and remembers a nudge that came before the wait', async () => {
    const clock = new FakeClock();
    const wakeup = new Wakeup(clock);
    let isWoken = false;
    const waiting = wakeup.wait(5000).then(() => (isWoken = true));
    clock.advance(4999);
    await Promise.resolve();
    assert.equal(isWoken, false, 'not before its time');
    wakeup.nudge();
    await waiting;
    wakeup.nudge();
    let isWokenAgain = false;
    const again = wakeup.wait(5000).then(() => (isWokenAgain = true));
    await Promise.resolve();
    await again;
    assert.equal(isWokenAgain, true, 'a nudge before the wait ends the next wait at once, with no time passing');
  });

  it('wakes by itself when its time comes', async () => {
    const clock = new FakeClock();
    const wakeup = new Wakeup(clock);
    const waiting = wakeup.wait(1000);
    clock.advance(1000);
    await waiting;
  });
});
