import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { LinuxWatchdogDevice } from '../../src/bin/linux-watchdog.js';
import { watchdogDeviceProblem, watchdogRefusal } from '../../src/config/watchdog.js';
import type { WatchdogDevice } from '../../src/core/ports.js';
import { WatchdogFeed, watchdogTimeoutSeconds } from '../../src/agent/watchdog-feed.js';
import type { Log } from '../../src/util/log.js';
import { PgwardenError } from '../../src/util/errors.js';

/** Records what the feed did to the device; `failOpen` makes activation fail as a missing driver would. */
function fakeDevice(failOpen = false): WatchdogDevice & { readonly calls: string[] } {
  const calls: string[] = [];
  return {
    path: '/dev/watchdog-test',
    calls,
    open(timeoutSeconds) {
      if (failOpen) throw new Error('open /dev/watchdog-test: No such file or directory');
      calls.push(`open ${timeoutSeconds}`);
      return timeoutSeconds;
    },
    keepalive: () => void calls.push('keepalive'),
    close: () => void calls.push('close'),
  };
}

function recordingLog(): Log & { readonly lines: string[] } {
  const lines: string[] = [];
  const record = (level: string) => (_fields: Record<string, unknown>, message: string) => void lines.push(`${level} ${message}`);
  return { lines, debug: record('debug'), info: record('info'), warn: record('warn'), error: record('error') };
}

const held = (ttlMs: number) => ({ lastRenewSentAtMs: 1000, ttlMs }) as const;

describe('watchdog', () => {
  it('timeout is ttl minus safety_margin, or half the ttl with -1 (Patroni)', () => {
    assert.equal(watchdogTimeoutSeconds(30_000, 5), 25);
    assert.equal(watchdogTimeoutSeconds(30_000, -1), 15);
  });

  it('is activated before an acquire, kept alive per renewal, re-armed on a new ttl and disabled when no longer leading', () => {
    const device = fakeDevice();
    const feed = new WatchdogFeed({ mode: 'automatic', device, safetyMarginSeconds: 5, log: recordingLog() });
    assert.equal(feed.vetoAcquire(30_000), undefined);
    feed.onLock(held(30_000));
    feed.afterCycle(true);
    feed.onLock(held(30_000));
    feed.onLock(held(20_000));
    feed.afterCycle(false);
    feed.onLock({ lastRenewSentAtMs: undefined });
    assert.deepEqual(device.calls, ['open 25', 'keepalive', 'keepalive', 'close', 'open 15', 'keepalive', 'close']);
  });

  it('a replica that renews nothing never opens the device; a primary that kept its lock gets it after a cycle', () => {
    const device = fakeDevice();
    const feed = new WatchdogFeed({ mode: 'automatic', device, safetyMarginSeconds: 5, log: recordingLog() });
    feed.afterCycle(false);
    feed.onLock(held(30_000));
    assert.deepEqual(device.calls, [], 'not leading in the last cycle: a renewal alone does not activate');
    feed.afterCycle(true);
    feed.onLock(held(30_000));
    assert.deepEqual(device.calls, ['open 25', 'keepalive']);
  });

  it('required: a failed activation vetoes the acquire, said once; automatic: logged once and the acquire goes on', () => {
    const log = recordingLog();
    const required = new WatchdogFeed({ mode: 'required', device: fakeDevice(true), safetyMarginSeconds: 5, log });
    assert.match(required.vetoAcquire(30_000) ?? '', /watchdog\.mode is required and .*No such file/);
    assert.match(required.vetoAcquire(30_000) ?? '', /required/);
    assert.equal(log.lines.filter((line) => line.startsWith('error watchdog:')).length, 1, log.lines.join('\n'));
    const automatic = new WatchdogFeed({ mode: 'automatic', device: fakeDevice(true), safetyMarginSeconds: 5, log });
    assert.equal(automatic.vetoAcquire(30_000), undefined);
    assert.ok(log.lines.some((line) => line.startsWith('warn watchdog:')));
    const absent: WatchdogDevice = {
      ...fakeDevice(),
      open: () => {
        throw new PgwardenError('PGW_WATCHDOG_ABSENT', 'watchdog device /dev/watchdog cannot be activated: no such file');
      },
    };
    const quiet = recordingLog();
    assert.equal(
      new WatchdogFeed({ mode: 'automatic', device: absent, safetyMarginSeconds: 5, log: quiet }).vetoAcquire(30_000),
      undefined,
    );
    assert.deepEqual(quiet.lines, ['info watchdog: watchdog device /dev/watchdog cannot be activated: no such file'], 'no device: info');
    const tooShort = new WatchdogFeed({ mode: 'required', device: fakeDevice(), safetyMarginSeconds: 5, log });
    assert.match(tooShort.vetoAcquire(5_000) ?? '', /under 1 s/);
  });

  it('automatic without a device: renewals do not try it again; the next acquire, a new ttl or a new leadership does', () => {
    let opens = 0;
    const absent: WatchdogDevice = {
      ...fakeDevice(),
      open: () => {
        opens += 1;
        throw new PgwardenError('PGW_WATCHDOG_ABSENT', 'watchdog device /dev/watchdog cannot be activated: no such file');
      },
    };
    const feed = new WatchdogFeed({ mode: 'automatic', device: absent, safetyMarginSeconds: 5, log: recordingLog() });
    assert.equal(feed.vetoAcquire(30_000), undefined);
    feed.afterCycle(true);
    for (let renewal = 0; renewal < 5; renewal++) feed.onLock(held(30_000));
    assert.equal(opens, 1, 'renewals under the same ttl leave the absent device alone');
    feed.onLock(held(20_000));
    assert.equal(opens, 2, 'a new ttl asks for another timeout: tried again');
    assert.equal(feed.vetoAcquire(20_000), undefined);
    assert.equal(opens, 3, 'an acquire always tries');
    feed.afterCycle(false);
    feed.afterCycle(true);
    feed.onLock(held(20_000));
    assert.equal(opens, 4, 'a new leadership tries again');
  });

  it('the Linux device refuses what is not a watchdog, and a missing one, with the path and the cause', () => {
    assert.throws(
      () => new LinuxWatchdogDevice('/dev/null').open(25),
      /watchdog device \/dev\/null cannot be activated: it is not a watchdog device/,
    );
    assert.throws(
      () => new LinuxWatchdogDevice('/nonexistent/watchdog').open(25),
      /\/nonexistent\/watchdog cannot be activated: .*No such file/,
    );
  });

  it('required without a usable device: never leader, with the reason; with one: eligible', () => {
    assert.match(watchdogDeviceProblem('/nonexistent/watchdog') ?? '', /does not exist/);
    assert.match(watchdogRefusal({ mode: 'required', device: '/nonexistent/watchdog' }) ?? '', /never becomes leader/);
    assert.equal(
      watchdogRefusal({ mode: 'required' }, () => undefined),
      undefined,
    );
    assert.equal(watchdogRefusal({ mode: 'automatic', device: '/nonexistent/watchdog' }), undefined);
  });
});
