// waitUntil, the one bounded wait of the tests, the chaos runner and the local cluster: returns the first value that
// holds, and on timeout throws a PgwardenError naming what was awaited and the last state seen. Driven by a FakeClock.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isWaitTimeout, waitUntil } from '../../src/util/wait-until.js';
import { FakeClock } from '../kit/fake-clock.js';

/** Lets pending promise callbacks run, then moves the fake time on, until the wait settles. */
async function drive<T>(clock: FakeClock, wait: Promise<T>, stepMs: number, maxSteps = 1000): Promise<T> {
  let settled = false;
  const done = wait.finally(() => (settled = true));
  done.catch(() => undefined);
  for (let step = 0; step < maxSteps && !settled; step++) {
    await new Promise((resolve) => setImmediate(resolve));
    if (!settled) clock.advance(stepMs);
  }
  return done;
}

describe('waitUntil', () => {
  it('returns the first value that is not undefined, null or false, checking at once and then every interval', async () => {
    const clock = new FakeClock(0);
    const seenAt: number[] = [];
    const value = await drive(
      clock,
      waitUntil(
        () => {
          seenAt.push(clock.nowMs());
          return seenAt.length === 1 ? undefined : seenAt.length === 2 ? false : seenAt.length === 3 ? null : 'ready';
        },
        { timeoutMs: 10_000, intervalMs: 250, describe: 'readiness', clock },
      ),
      50,
    );
    assert.equal(value, 'ready');
    assert.deepEqual(seenAt, [0, 250, 500, 750]);
  });

  it('treats a throwing check as not yet and reports its error and the last state on timeout', async () => {
    const clock = new FakeClock(0);
    let calls = 0;
    const error = await drive(
      clock,
      waitUntil(
        () => {
          calls++;
          throw new Error(`connection refused (${calls})`);
        },
        { timeoutMs: 1000, intervalMs: 300, describe: 'node1 to accept connections', clock, context: { member: 'node1' } },
      ).then(
        () => assert.fail('must time out'),
        (caught: unknown) => caught,
      ),
      100,
    );
    assert.ok(isWaitTimeout(error));
    assert.equal(error.code, 'PGW_WAIT_TIMEOUT');
    assert.match(
      error.message,
      /^timed out after 1000 ms waiting for node1 to accept connections; last state: last check threw: connection refused \(5\)$/,
    );
    assert.equal(error.context.member, 'node1');
    assert.equal(error.context.checks, 5, 'at 0, 300, 600, 900 and one last check at the deadline');
  });

  it('reports the predicate value, or the lastState callback, that did not satisfy it', async () => {
    const clock = new FakeClock(0);
    const byValue = await drive(
      clock,
      waitUntil(() => false, { timeoutMs: 200, describe: 'x', clock }).catch((caught: unknown) => caught),
      100,
    );
    assert.match((byValue as Error).message, /last state: last check returned false$/);
    let leader = 'none';
    const byState = await drive(
      clock,
      waitUntil(
        () => {
          leader = 'node2 (starting)';
          return undefined;
        },
        { timeoutMs: 200, describe: 'a leader', clock, lastState: () => ({ leader }) },
      ).catch((caught: unknown) => caught),
      100,
    );
    assert.match((byState as Error).message, /last state: \{"leader":"node2 \(starting\)"\} \(last check returned undefined\)$/);
  });

  it('does not wait past the deadline for a check that hangs', async () => {
    const clock = new FakeClock(0);
    const error = await drive(
      clock,
      waitUntil(() => new Promise<never>(() => undefined), { timeoutMs: 500, describe: 'a hung probe', clock }).catch(
        (caught: unknown) => caught,
      ),
      100,
    );
    assert.ok(isWaitTimeout(error));
    assert.match(error.message, /no check finished in time/);
  });

  it('stops with the abort reason when its signal aborts', async () => {
    const controller = new AbortController();
    const wait = waitUntil(() => undefined, { timeoutMs: 60_000, intervalMs: 10, describe: 'never', signal: controller.signal });
    controller.abort(new Error('test over'));
    await assert.rejects(wait, /test over/);
  });
});
