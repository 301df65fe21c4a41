// The single task slot and the loop's wakeup: one task at a time, cancellation, nudges that are never lost.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { TaskSlot } from '../../src/agent/tasks.js';
import { Wakeup } from '../../src/agent/wakeup.js';
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
    const wakeup = new Wakeup();
    const startedAt = performance.now();
    setTimeout(() => wakeup.nudge(), 20);
    await wakeup.wait(5000);
    assert.ok(performance.now() - startedAt < 1000);
    wakeup.nudge();
    const again = performance.now();
    await wakeup.wait(5000);
    assert.ok(performance.now() - again < 50);
  });
});
