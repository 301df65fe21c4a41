// Deadlines under a parent signal: one listener on the parent however many deadlines follow it; a parent abort reaches
// every one with its reason; a deadline that runs out aborts with a TimeoutError and leaves the others alone.
import assert from 'node:assert/strict';
import { getEventListeners } from 'node:events';
import { describe, it } from 'node:test';
import { deadline, within } from '../../src/util/abort.js';

/** The abort reason; a deadline's own timer is unref'd, so a ref'd one keeps the test's event loop alive meanwhile. */
const aborted = (signal: AbortSignal): Promise<unknown> =>
  new Promise((resolve, reject) => {
    const guard = setTimeout(() => reject(new Error('not aborted within 5 s')), 5000);
    signal.addEventListener(
      'abort',
      () => {
        clearTimeout(guard);
        resolve(signal.reason);
      },
      { once: true },
    );
  });

describe('deadline', () => {
  it('puts one listener on the parent for any number of deadlines, and passes its abort to each', async () => {
    const parent = new AbortController();
    const children = Array.from({ length: 50 }, () => deadline(60_000, parent.signal));
    assert.equal(getEventListeners(parent.signal, 'abort').length, 1);
    const reason = new Error('agent stopping');
    parent.abort(reason);
    assert.ok(children.every((child) => child.aborted && child.reason === reason));
  });

  it('aborts with a TimeoutError when its time is up, and the siblings stay', async () => {
    const parent = new AbortController();
    const short = deadline(5, parent.signal);
    const long = deadline(60_000, parent.signal);
    const reason = await aborted(short);
    assert.equal((reason as DOMException).name, 'TimeoutError');
    assert.equal(long.aborted, false);
    assert.equal(getEventListeners(parent.signal, 'abort').length, 1);
    parent.abort();
    assert.equal(long.aborted, true);
  });

  it('is aborted at once under an aborted parent, and works without one', async () => {
    const parent = new AbortController();
    parent.abort(new Error('gone'));
    assert.equal(deadline(1000, parent.signal).aborted, true);
    const alone = deadline(5);
    assert.equal(((await aborted(alone)) as DOMException).name, 'TimeoutError');
  });
});

describe('within', () => {
  it('retires the deadline once the call is done: no abort fires later', async () => {
    const parent = new AbortController();
    const signal = deadline(5, parent.signal);
    assert.equal(await within(signal, async (given) => (given === signal ? 'same signal' : 'other')), 'same signal');
    const later = deadline(30);
    await aborted(later);
    assert.equal(signal.aborted, false);
    parent.abort(new Error('stop'));
    assert.equal(signal.aborted, false, 'a retired deadline no longer follows its parent');
  });

  it('leaves the deadline running while the call runs, and retires it after a failure too', async () => {
    const signal = deadline(5);
    const reason = await within(signal, (given) => aborted(given));
    assert.equal((reason as DOMException).name, 'TimeoutError');
    const failed = deadline(5);
    await assert.rejects(
      within(failed, () => Promise.reject(new Error('refused'))),
      /refused/,
    );
    await aborted(deadline(30));
    assert.equal(failed.aborted, false);
  });
});
