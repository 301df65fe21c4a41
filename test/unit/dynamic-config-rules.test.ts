// One validation of the dynamic config for every path: the rules and messages, edit-config refusing before any write,
// and the effective timing (with what is used instead) for a value another tool wrote into the DCS.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { editConfigCommand, type ControlContext } from '../../src/cli/commands/control.js';
import { checkDynamicConfig } from '../../src/core/dynamic-config-rules.js';
import { deriveTiming } from '../../src/core/timing-rules.js';
import type { RestClient } from '../../src/util/rest-client.js';
import { view } from '../sim/builders.js';

const BASE = { ttl: 30, loop_wait: 10, retry_timeout: 10, maximum_lag_on_failover: 1048576 };

describe('checkDynamicConfig', () => {
  const cases: [string, Record<string, unknown>, RegExp][] = [
    ['negative ttl', { ttl: -1 }, /^ttl: must be at least 2 \(got -1\)$/],
    ['ttl as text', { ttl: 'abc' }, /^ttl: must be a number of seconds \(got "abc"\)$/],
    ['loop_wait as text', { loop_wait: 'abc' }, /^loop_wait: must be a number of seconds \(got "abc"\)$/],
    ['numeric string', { retry_timeout: '10' }, /^retry_timeout: must be a number of seconds \(got "10"\)$/],
    ['loop_wait zero', { loop_wait: 0 }, /^loop_wait: must be at least 1 \(got 0\)$/],
    [
      'ttl too short for loop_wait + 2*retry_timeout',
      { ttl: 20 },
      /^loop_wait: loop_wait \+ 2\*retry_timeout \(10 \+ 2\*10 = 30\) must be <= ttl \(20\)/,
    ],
    ['fence_window too small', { fence_window: 0.2 }, /^fence_window: must be 0 \(detector off\) or at least 0\.5 \(got 0\.2\)$/],
    ['heartbeat_interval too slow', { fence_window: 1, heartbeat_interval: 0.5 }, /^heartbeat_interval: at least three beats/],
    ['silence_margin too small', { silence_margin: 0.01 }, /^silence_margin: must be at least 0\.2/],
    ['silence_margin as text', { silence_margin: 'x' }, /^silence_margin: must be a number of seconds \(got "x"\)$/],
    ['negative lag', { maximum_lag_on_failover: -1 }, /^maximum_lag_on_failover: must be a number >= 0 \(got -1\)$/],
    ['primary_start_timeout as text', { primary_start_timeout: 'soon' }, /^primary_start_timeout: must be a number >= 0/],
    ['synchronous_mode', { synchronous_mode: 'sometimes' }, /^synchronous_mode must be true, false or "quorum"/],
    ['synchronous_node_count', { synchronous_node_count: 0 }, /^synchronous_node_count must be an integer >= 1/],
  ];
  for (const [name, change, message] of cases) {
    it(`refuses ${name}`, () => {
      const problems = checkDynamicConfig({ ...BASE, ...change });
      assert.ok(problems.length >= 1);
      assert.match(problems[0]!, message, problems.join('\n'));
    });
  }

  it('accepts Patroni defaults, a short ttl that keeps the rule, and the detector off', () => {
    assert.deepEqual(checkDynamicConfig(BASE), []);
    assert.deepEqual(checkDynamicConfig({ ttl: 5, loop_wait: 1, retry_timeout: 2 }), []);
    assert.deepEqual(checkDynamicConfig({ ...BASE, fence_window: 0 }), []);
    assert.deepEqual(checkDynamicConfig({ ...BASE, maximum_lag_on_syncnode: -1 }), []);
  });
});

describe('deriveTiming of an invalid DCS value', () => {
  it('names the key, the bad value and the timing used instead', () => {
    const { timing, adjustments } = deriveTiming({ ...BASE, loop_wait: 'abc' });
    assert.equal(timing.loopWaitMs, 10_000);
    assert.deepEqual(adjustments, [
      'invalid timing (loop_wait: must be a number of seconds (got "abc")): using ttl=30 loop_wait=10 retry_timeout=10 instead',
    ]);
    const negative = deriveTiming({ ...BASE, ttl: -1 });
    assert.match(negative.adjustments.join(), /ttl: must be at least 2 \(got -1\).*using ttl=\d+ loop_wait=\d+ retry_timeout=\d+ instead/);
    assert.deepEqual(deriveTiming(BASE).adjustments, []);
  });
});

describe('pgwarden edit-config', () => {
  const untouchable = new Proxy(
    {},
    {
      get: () => {
        throw new Error('the REST API must not be called for an invalid change');
      },
    },
  ) as RestClient;
  const context = (): ControlContext => ({
    scope: 'batman',
    view: { ...view({ leaderName: 'node1' }), config: { ...BASE } },
    rest: untouchable,
    out: () => undefined,
    isForced: true,
  });
  const readFile = (): Promise<string> => Promise.resolve('ttl: -3\n');

  it('refuses an invalid --set, --apply or --replace before any write, with the message', async () => {
    await assert.rejects(
      editConfigCommand({ set: ['ttl=-1'], pg: [], readFile }, context()),
      /invalid configuration: ttl: must be at least 2 \(got -1\)/,
    );
    await assert.rejects(
      editConfigCommand({ set: ['loop_wait=abc'], pg: [], readFile }, context()),
      /loop_wait: must be a number of seconds \(got "abc"\)/,
    );
    await assert.rejects(editConfigCommand({ set: ['ttl=15'], pg: [], readFile }, context()), /must be <= ttl \(15\)/);
    await assert.rejects(editConfigCommand({ set: [], pg: [], apply: 'x.yml', readFile }, context()), /ttl: must be at least 2 \(got -3\)/);
    await assert.rejects(
      editConfigCommand({ set: [], pg: [], replace: 'x.yml', readFile }, context()),
      /ttl: must be at least 2 \(got -3\)/,
    );
    await assert.rejects(
      editConfigCommand(
        { set: [], pg: [], readFile, edit: () => Promise.resolve('ttl: 30\nloop_wait: 10\nretry_timeout: 40\n') },
        context(),
      ),
      /loop_wait \+ 2\*retry_timeout/,
    );
  });
});
