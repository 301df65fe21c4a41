import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { kernelTableName, NO_GENERATION, parseCounters, planKernelRoute, renderRoute, renderTable } from '../../src/proxy/kernel-rules.js';
import type { PrimaryRoute } from '../../src/proxy/routing.js';

const listener = { table: 'pgwarden_demo_5000', host: '127.0.0.1', port: 5000 };
const up = { isStopping: false, isUnreachable: () => false };
const stopping = { isStopping: true, isUnreachable: () => false };
const routeTo = (member: string, host: string, revision: number): PrimaryRoute => ({
  kind: 'route',
  backend: { member, host, port: 5432 },
  leader: `${member}@${revision}`,
});

describe('kernel data path plan', () => {
  it('routes a confirmed IPv4 lock holder under one mark, and gives a new holder a new mark', () => {
    const first = planKernelRoute(routeTo('node1', '10.0.0.1', 7), NO_GENERATION, 0x50000001, up);
    assert.deepEqual(first.route, { target: { host: '10.0.0.1', port: 5432 }, generation: 0x50000001, liveGenerations: [0x50000001] });
    const renewed = planKernelRoute(routeTo('node1', '10.0.0.1', 7), first.generation, 0x50000002, up);
    assert.equal(renewed.route.generation, 0x50000001, 'renewing keeps the mark, so open flows live on');
    const relocked = planKernelRoute(routeTo('node1', '10.0.0.1', 9), first.generation, 0x50000002, up);
    assert.deepEqual(relocked.route.liveGenerations, [0x50000002], 'the same member after losing the lock cuts its older flows');
    const failedOver = planKernelRoute(routeTo('node2', '10.0.0.2', 11), relocked.generation, 0x50000003, up);
    assert.deepEqual(failedOver.route.liveGenerations, [0x50000003]);
    assert.equal(failedOver.route.target?.host, '10.0.0.2');
  });

  it('cuts every kernel flow when holding, except flows to the holder during a planned switchover', () => {
    const routed = planKernelRoute(routeTo('node1', '10.0.0.1', 7), NO_GENERATION, 0x50000001, up).generation;
    assert.deepEqual(planKernelRoute({ kind: 'hold', reason: 'no leader key' }, routed, 0x50000002, up).route, { liveGenerations: [] });
    assert.deepEqual(planKernelRoute({ kind: 'hold', reason: 'switchover', keep: 'node1' }, routed, 0x50000002, up).route, {
      liveGenerations: [0x50000001],
    });
    assert.deepEqual(planKernelRoute({ kind: 'hold', reason: 'switchover', keep: 'node2' }, routed, 0x50000002, up).route, {
      liveGenerations: [],
    });
  });

  it('withdraws the route, keeping open flows, while the lock holder refuses connections', () => {
    const routed = planKernelRoute(routeTo('node1', '10.0.0.1', 7), NO_GENERATION, 0x50000001, up).generation;
    const down = planKernelRoute(routeTo('node1', '10.0.0.1', 7), routed, 0x50000002, {
      isStopping: false,
      isUnreachable: (backend) => backend.host === '10.0.0.1',
    });
    assert.deepEqual(down.route, { liveGenerations: [0x50000001] });
    assert.equal(
      planKernelRoute(routeTo('node1', '10.0.0.1', 7), down.generation, 0x50000002, up).route.target?.host,
      '10.0.0.1',
      'back once it answers again',
    );
  });

  it('leaves host-name backends to the proxy, and routes nothing new while stopping', () => {
    const named = planKernelRoute(
      { kind: 'route', backend: { member: 'node1', host: 'db1.example', port: 5432 }, leader: 'node1@7' },
      NO_GENERATION,
      0x50000001,
      up,
    );
    assert.deepEqual(named.route, { liveGenerations: [] });
    const routed = planKernelRoute(routeTo('node1', '10.0.0.1', 7), NO_GENERATION, 0x50000001, up).generation;
    assert.deepEqual(planKernelRoute(routeTo('node1', '10.0.0.1', 7), routed, 0x50000002, stopping).route, {
      liveGenerations: [0x50000001],
    });
  });
});

describe('kernel data path rules', () => {
  it('renders one replacing table that DNATs only the listener and resets stale flows on every hook', () => {
    const text = renderTable(listener);
    assert.match(text, /^table ip pgwarden_demo_5000 \{\}\ndelete table ip pgwarden_demo_5000\n/);
    assert.match(
      text,
      /hook output priority -100; ip daddr 127\.0\.0\.1 tcp dport 5000 ct mark set tcp dport map @generation counter dnat ip to tcp dport map @route;/,
    );
    for (const hook of ['output', 'input', 'forward']) {
      assert.match(
        text,
        new RegExp(
          `hook ${hook} priority 0; [^\\n]*ct original proto-dst 5000 ct status dnat ct direction reply tcp flags & rst == rst ct status & assured == 0 counter drop;`,
        ),
        `${hook}: a refused connect is hidden`,
      );
      assert.match(
        text,
        new RegExp(
          `hook ${hook} priority 0; [^\\n]*meta l4proto tcp ct original ip daddr 127\\.0\\.0\\.1 ct original proto-dst 5000 ct status dnat ct mark != @live tcp flags & rst == 0 counter reject with tcp reset;`,
        ),
        `${hook}: stale flows are reset`,
      );
    }
    assert.match(renderTable({ ...listener, host: '0.0.0.0' }), /fib daddr type local tcp dport 5000/);
  });

  it('replaces every element in one batch, each with the lease as its timeout', () => {
    const text = renderRoute(
      listener,
      { target: { host: '10.0.0.2', port: 5433 }, generation: 0x50000002, liveGenerations: [0x50000001] },
      2000,
    );
    assert.deepEqual(text.trim().split('\n'), [
      'flush map ip pgwarden_demo_5000 route',
      'flush map ip pgwarden_demo_5000 generation',
      'flush set ip pgwarden_demo_5000 live',
      'add element ip pgwarden_demo_5000 route { 5000 timeout 2000ms : 10.0.0.2 . 5433 }',
      'add element ip pgwarden_demo_5000 generation { 5000 timeout 2000ms : 0x50000002 }',
      'add element ip pgwarden_demo_5000 live { 0x50000001 timeout 2000ms, 0x50000002 timeout 2000ms }',
    ]);
    assert.equal(renderRoute(listener, { liveGenerations: [] }, 2000).trim().split('\n').length, 3, 'no route: only the flushes');
    assert.throws(
      () => renderRoute(listener, { target: { host: 'db1', port: 1 }, generation: 1, liveGenerations: [] }, 2000),
      /not an IPv4 address/,
    );
  });

  it('names tables safely and sums rule counters', () => {
    assert.equal(kernelTableName('my-cluster.prod', 5000), 'pgwarden_my_cluster_prod_5000');
    const json = JSON.stringify({
      nftables: [
        { metainfo: {} },
        { rule: { chain: 'nat_output', expr: [{ counter: { packets: 3, bytes: 180 } }] } },
        { rule: { chain: 'nat_prerouting', expr: [{ counter: { packets: 2, bytes: 120 } }] } },
        { rule: { chain: 'filter_output', expr: [{ counter: { packets: 4, bytes: 200 } }] } },
        { rule: { chain: 'filter_forward', expr: [{ counter: { packets: 1, bytes: 60 } }, { reject: {} }] } },
        { rule: { chain: 'filter_output', expr: [{ counter: { packets: 2, bytes: 80 } }, { drop: null }] } },
      ],
    });
    assert.deepEqual(parseCounters(json), { routed: 5, resets: 5, refusalsHidden: 2 });
  });
});
