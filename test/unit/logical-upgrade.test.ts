// The pure side of the logical major upgrade: the limits refused, the DDL check, the applied-everything proof, the
// sequence targets, the ignore_slots rule, and the proxy's view under a redirect (hold, switched, none).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  applyVerdict,
  logicalUpgradeRefusals,
  schemaChanges,
  sequenceTargets,
  UPGRADE_SLOT_RULE,
  withUpgradeSlotRule,
  type RedirectRecord,
  type SourceFacts,
  type TargetFacts,
} from '../../src/core/logical-upgrade.js';
import { decodeRedirect, encodeRedirect } from '../../src/dcs/codec.js';
import type { ClusterView } from '../../src/core/types.js';
import { redirectedView, ScopeRedirectSource, type RedirectableSource } from '../../src/proxy/scope-redirect.js';
import { silentLog } from '../../src/util/log.js';
import { member, view } from '../sim/builders.js';

function source(overrides: Partial<SourceFacts> = {}): SourceFacts {
  return {
    serverVersionNum: 150018,
    walLevel: 'logical',
    maxReplicationSlots: 10,
    usedReplicationSlots: 2,
    databases: [
      {
        name: 'app',
        oid: 16384,
        largeObjects: 0,
        fingerprint: 'f1',
        tables: [
          { schema: 'public', name: 'orders', persistence: 'p', replicaIdentity: 'd', hasPrimaryKey: true },
          { schema: 'public', name: 'log', persistence: 'p', replicaIdentity: 'f', hasPrimaryKey: false },
        ],
      },
    ],
    ...overrides,
  };
}

const emptyTarget: TargetFacts = { serverVersionNum: 170010, existingTables: [] };

describe('logical upgrade limits', () => {
  it('accepts tables with a primary key or replica identity full, logical wal_level, free slots, an empty newer target', () => {
    assert.deepEqual(logicalUpgradeRefusals(source(), emptyTarget), []);
  });

  it('names every violation: wal_level, slots, large objects, no key, unlogged, a non-empty or older target', () => {
    const facts = source({
      walLevel: 'replica',
      usedReplicationSlots: 9,
      databases: [
        {
          name: 'app',
          oid: 1,
          largeObjects: 2,
          fingerprint: 'x',
          tables: [
            { schema: 'public', name: 'bare', persistence: 'p', replicaIdentity: 'd', hasPrimaryKey: false },
            { schema: 'public', name: 'nothing', persistence: 'p', replicaIdentity: 'n', hasPrimaryKey: true },
            { schema: 's', name: 'scratch', persistence: 'u', replicaIdentity: 'd', hasPrimaryKey: true },
          ],
        },
      ],
    });
    const refusals = logicalUpgradeRefusals(facts, { serverVersionNum: 140010, existingTables: ['app.public.orders'] });
    const text = refusals.join('\n');
    assert.match(text, /wal_level is replica .* edit-config -p wal_level=logical/);
    assert.match(text, /1 free replication slot\(s\), the copy needs 3/);
    assert.match(text, /database app holds 2 large object\(s\)/);
    assert.match(text, /app\.public\.bare has no primary key nor replica identity/);
    assert.match(text, /app\.public\.nothing has no primary key nor replica identity/);
    assert.match(text, /app\.s\.scratch is unlogged/);
    assert.match(text, /older than the old one's/);
    assert.match(text, /the new cluster is not empty: it already has app\.public\.orders/);
    assert.equal(refusals.length, 8);
  });

  it('sees DDL during the copy as a changed, new or dropped database fingerprint', () => {
    const atStart = new Map([
      ['app', 'f1'],
      ['gone', 'g1'],
    ]);
    assert.deepEqual(
      schemaChanges(atStart, [
        { name: 'app', fingerprint: 'f1' },
        { name: 'gone', fingerprint: 'g1' },
      ]),
      [],
    );
    assert.deepEqual(
      schemaChanges(atStart, [
        { name: 'app', fingerprint: 'f2' },
        { name: 'fresh', fingerprint: 'h' },
      ]),
      [
        'the schema of database app changed after the copy began (DDL)',
        'database fresh was created after the copy began',
        'database gone was dropped after the copy began',
      ],
    );
  });
});

describe('logical upgrade cutover', () => {
  it('proves everything applied only when every table is copied and every subscription confirmed the fence position', () => {
    const fence = 0x3000000n;
    assert.deepEqual(applyVerdict([{ database: 'app', tablesNotReady: [], confirmedLsn: fence }], fence), { isApplied: true });
    const behind = applyVerdict([{ database: 'app', tablesNotReady: [], confirmedLsn: fence - 8n }], fence);
    assert.equal(behind.isApplied, false);
    assert.match(!behind.isApplied ? behind.waitingFor : '', /app: applied up to 0\/2FFFFF8, the old primary is at 0\/3000000/);
    const copying = applyVerdict([{ database: 'app', tablesNotReady: ['public.orders'], confirmedLsn: fence }], fence);
    assert.match(!copying.isApplied ? copying.waitingFor : '', /initial copy of 1 table\(s\) \(public\.orders\)/);
    assert.equal(applyVerdict([{ database: 'app', tablesNotReady: [], confirmedLsn: undefined }], fence).isApplied, false);
    assert.equal(applyVerdict([{ database: 'app', tablesNotReady: [], confirmedLsn: fence - 8n }], fence, 8n).isApplied, true);
  });

  it('sets each used sequence to its last value plus the margin, within its bounds; unused ones stay', () => {
    const targets = sequenceTargets(
      [
        { schema: 'public', name: 'up', lastValue: 50n, incrementBy: 1n, minValue: 1n, maxValue: 1000n },
        { schema: 'public', name: 'down', lastValue: -10n, incrementBy: -2n, minValue: -100n, maxValue: -1n },
        { schema: 'public', name: 'full', lastValue: 990n, incrementBy: 1n, minValue: 1n, maxValue: 1000n },
        { schema: 'public', name: 'unused', lastValue: undefined, incrementBy: 1n, minValue: 1n, maxValue: 1000n },
      ],
      100n,
    );
    assert.deepEqual(
      targets.map((target) => [target.name, target.value]),
      [
        ['up', 150n],
        ['down', -100n],
        ['full', 1000n],
      ],
    );
  });

  it("adds the ignore_slots rule once, keeps the operator's rules, and removes only its own", () => {
    const base = { ttl: 30, loop_wait: 10, retry_timeout: 10, maximum_lag_on_failover: 1, ignore_slots: [{ name: 'cdc' }] };
    const on = withUpgradeSlotRule(base, true)!;
    assert.deepEqual(on.ignore_slots, [{ name: 'cdc' }, UPGRADE_SLOT_RULE]);
    assert.equal(withUpgradeSlotRule(on, true), undefined);
    assert.deepEqual(withUpgradeSlotRule(on, false)!.ignore_slots, [{ name: 'cdc' }]);
    assert.equal(withUpgradeSlotRule(base, false), undefined);
  });

  it('round-trips the redirect record and refuses a value that is not one', () => {
    const record: RedirectRecord = { scope: 'green', phase: 'switched', since: '2026-01-01T00:00:00Z' };
    assert.deepEqual(decodeRedirect(encodeRedirect(record)), record);
    assert.equal(decodeRedirect('{"scope":"green","phase":"later"}'), undefined);
    assert.equal(decodeRedirect('{"phase":"hold"}'), undefined);
    assert.equal(decodeRedirect('not json'), undefined);
  });
});

describe('proxy under a redirect', () => {
  const blue = view({ leaderName: 'node1', revision: '100', members: [member('node1', { role: 'primary' })] });
  const green = view({ leaderName: 'node9', revision: '90', members: [member('node9', { role: 'primary' })] });

  it('routes by its own scope without a redirect, holds (no leader) under hold, follows the other scope once switched', () => {
    assert.equal(redirectedView(blue, undefined, undefined), blue);
    const held = redirectedView(blue, { scope: 'green', phase: 'hold', since: '' }, undefined);
    assert.equal(held.leader, undefined);
    assert.equal(held.members.length, 1);
    const switched = redirectedView(blue, { scope: 'green', phase: 'switched', since: '' }, green);
    assert.equal(switched.leader?.name, 'node9');
    assert.equal(switched.revision, '90', 'watched from the older revision of the two reads');
    // Switched but the other scope unreadable: hold rather than route to a fenced old primary.
    assert.equal(redirectedView(blue, { scope: 'green', phase: 'switched', since: '' }, undefined).leader, undefined);
  });

  it('reads and watches the other scope once switched, and its own scope always', async () => {
    let redirect: RedirectRecord | undefined;
    const watched: string[] = [];
    const fake = (current: ClusterView, name: string): RedirectableSource => ({
      loadCluster: () => Promise.resolve(current),
      readRedirect: () => Promise.resolve(redirect),
      watch: async (_from, signal) => {
        watched.push(name);
        if (name === 'green') return;
        await new Promise((resolve) => signal.addEventListener('abort', resolve, { once: true }));
      },
    });
    const opened: string[] = [];
    const scopes = new ScopeRedirectSource(
      fake(blue, 'blue'),
      (scope) => {
        opened.push(scope);
        return fake(green, scope);
      },
      silentLog,
    );
    assert.equal((await scopes.loadCluster(AbortSignal.timeout(1000))).leader?.name, 'node1');
    redirect = { scope: 'green', phase: 'hold', since: '' };
    assert.equal((await scopes.loadCluster(AbortSignal.timeout(1000))).leader, undefined);
    assert.deepEqual(opened, []);
    redirect = { scope: 'green', phase: 'switched', since: '' };
    assert.equal((await scopes.loadCluster(AbortSignal.timeout(1000))).leader?.name, 'node9');
    // The green watch returns at once (a change there): the watch ends though blue's is still open.
    await scopes.watch('90', AbortSignal.timeout(1000));
    assert.deepEqual(watched.sort(), ['blue', 'green']);
    assert.deepEqual(opened, ['green']);
  });
});
