// Patroni 4's quorum_commit and priority_failover acceptance scenarios (shared/docs/acceptance-scenarios.md), replayed
// on real processes: one 3-node cluster in quorum mode, then one 4-node cluster with failover priorities. Node names:
// the suite's postgres-N is nodeN+1 here; the scope is `batman`. pgwarden speaks Patroni 3.0.2 on the wire (role
// `master`, no `quorum` field in the sync key outside quorum mode: read as 0, as Patroni 4 reads a missing one) and
// quotes every standby name in synchronous_standby_names, the strict placeholder too (PostgreSQL reads both alike).
// Writes of the test use synchronous_commit=local, as the suite's own connections do.
//
// Steps not replayed because pgwarden differs (see the README's table):
// - quorum_commit 2: after a strict-mode failover Patroni 4 lists the old primary in synchronous_standby_names
//   (`ANY 1 ("postgres-0")`) and logs the WARNING "No active replication connections and synchronous_mode_strict is
//   requested"; pgwarden keeps the placeholder (`ANY 1 ("__patroni_strict_sync_replica_placeholder__")`, writes block
//   the same way), logs no such warning, and publishes the same sync key (leader, old primary as sync_standby, quorum 0).
// - priority_failover 2: Patroni's postgres-2 logs why it defers to postgres-3 within 5 s; pgwarden's node4 often holds
//   the lock before node3 evaluated the race at all, so the reason (Patroni's words) is checked on every race decision
//   node3 took, and the wording by the race rule's unit test.
// - priority_failover 3: the member key keeps only nofailover (failover_priority is dropped from the published tags);
//   Patroni 4 keeps both tags.
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import { parse, stringify } from 'yaml';
import type { LocalCluster } from '../../src/local/local-cluster.js';
import { STRICT_SYNC_PLACEHOLDER } from '../../src/core/sync-standby-names.js';
import type { MemberRecord } from '../../src/core/types.js';
import { waitUntil } from '../../src/util/wait-until.js';
import { assertStays } from '../kit/assert-stays.js';
import { agentLogTail, httpStatus, runCli, sql } from '../kit/cluster-kit.js';
import { startTestCluster, teardownCluster } from '../kit/fixtures.js';

const SCOPE = 'batman';
/** The suite's timeout_multiplier: its "after N seconds" bounds are doubled on this 2-core machine shared with other runs. */
const TIMEOUT_MULTIPLIER = 2;
/** A bound of the suite ("... after N seconds"), in milliseconds. */
const within = (seconds: number): number => seconds * 1000 * TIMEOUT_MULTIPLIER;

interface Reply {
  readonly status: number;
  readonly text: string;
}

/** The suite's steps on one cluster (given lazily: it is started in a `before` hook). */
function steps(current: () => LocalCluster) {
  const request = async (name: string, method: string, path: string, body?: unknown): Promise<Reply> => {
    const node = current().node(name);
    const response = await fetch(`http://${node.host}:${node.apiPort}${path}`, {
      method,
      ...(body === undefined ? {} : { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } }),
      signal: AbortSignal.timeout(60_000),
    });
    return { status: response.status, text: await response.text() };
  };

  const patchConfig = async (name: string, patch: Record<string, unknown>): Promise<void> => {
    const reply = await request(name, 'PATCH', '/config', patch);
    assert.equal(reply.status, 200, reply.text);
  };

  const member = async (name: string): Promise<MemberRecord | undefined> =>
    (await current().view()).members.find((candidate) => candidate.name === name);

  const leaderName = async (): Promise<string | undefined> => (await current().view()).leader?.name;

  const waitLeader = (name: string, timeoutMs: number): Promise<unknown> =>
    waitUntil(async () => (await leaderName()) === name, {
      timeoutMs,
      describe: `${name} to hold the leader key`,
      lastState: () => agentLogTail(current(), name, /./, 5),
    });

  /** The suite's "role is the primary/secondary": pg_is_in_recovery() over SQL. */
  const isRole = async (name: string, role: 'primary' | 'secondary'): Promise<boolean> => {
    const rows = await sql<{ standby: boolean }>(current(), name, 'SELECT pg_is_in_recovery() AS standby');
    return rows[0]?.standby === (role === 'secondary');
  };

  const waitRole = (name: string, role: 'primary' | 'secondary', timeoutMs: number): Promise<unknown> =>
    waitUntil(() => isRole(name, role), {
      timeoutMs,
      intervalMs: 250,
      describe: `${name} to be a ${role}`,
      lastState: () => agentLogTail(current(), name, /./, 5),
    });

  /** A write that does not wait for synchronous standbys, as the suite's own connections (synchronous_commit local). */
  const write = (name: string, statement: string): Promise<unknown> =>
    sql(current(), name, `SET synchronous_commit TO local; ${statement}`);

  let tableCounter = 0;
  /** The suite's "replication works from A to B": a new table on A shows up on B. */
  const replicationWorks = async (from: string, to: string, timeoutMs: number): Promise<void> => {
    const table = `test_${Date.now()}_${tableCounter++}`;
    await write(from, `CREATE TABLE public.${table}()`);
    await waitUntil(async () => (await sql(current(), to, `SELECT 1 FROM public.${table}`).catch(() => undefined)) !== undefined, {
      timeoutMs,
      intervalMs: 250,
      describe: `table ${table} on ${to}`,
    });
  };

  const waitSsn = (name: string, expected: string, timeoutMs: number): Promise<unknown> => {
    let last: string | undefined;
    return waitUntil(
      async () => {
        last = (await sql<{ value: string }>(current(), name, "SELECT current_setting('synchronous_standby_names') AS value"))[0]?.value;
        return last === expected;
      },
      { timeoutMs, intervalMs: 250, describe: `synchronous_standby_names on ${name} = '${expected}'`, lastState: () => last },
    );
  };

  /** The suite's "sync key in DCS has key=value": sync_standby compared as a set of names, a missing quorum as 0. */
  const waitSync = (key: 'leader' | 'sync_standby' | 'quorum', value: string | number, timeoutMs: number): Promise<unknown> => {
    let last: unknown;
    return waitUntil(
      async () => {
        const sync = (await current().view()).sync;
        last = sync;
        if (sync === undefined) return false;
        if (key === 'leader') return sync.leader === value;
        if (key === 'quorum') return (sync.quorum ?? 0) === value;
        const names = (text: string): string => [...new Set(text.split(',').filter((name) => name !== ''))].sort().join(',');
        return names(sync.sync_standby ?? '') === names(String(value));
      },
      { timeoutMs, intervalMs: 250, describe: `the sync key with ${key}=${value}`, lastState: () => last },
    );
  };

  const waitStatus = (name: string, path: string, status: number, timeoutMs: number): Promise<unknown> =>
    waitUntil(async () => (await httpStatus(current(), name, path)) === status, {
      timeoutMs,
      intervalMs: 250,
      describe: `GET ${path} on ${name} to answer ${status}`,
    });

  const waitLog = (name: string, pattern: RegExp, timeoutMs: number): Promise<unknown> =>
    waitUntil(() => agentLogTail(current(), name, pattern, 1) !== '', {
      timeoutMs,
      intervalMs: 250,
      describe: `${String(pattern)} in the agent log of ${name}`,
      lastState: () => agentLogTail(current(), name, /./, 10),
    });

  const logLines = async (name: string): Promise<string[]> =>
    (await readFile(current().node(name).logFile, 'utf8')).split('\n').filter((line) => line !== '');

  const setTag = async (name: string, tag: string, value: unknown): Promise<void> => {
    const path = current().node(name).configPath;
    const config = parse(await readFile(path, 'utf8')) as Record<string, unknown>;
    config.tags = { ...(config.tags as Record<string, unknown>), [tag]: value };
    await writeFile(path, stringify(config), { mode: 0o600 });
  };

  return {
    request,
    patchConfig,
    member,
    leaderName,
    waitLeader,
    isRole,
    waitRole,
    write,
    replicationWorks,
    waitSsn,
    waitSync,
    waitStatus,
    waitLog,
    logLines,
    setTag,
  };
}

describe("Patroni's quorum_commit scenarios", { timeout: 600_000 }, () => {
  let started: LocalCluster | undefined;
  const s = steps(() => started!);

  before(async () => {
    // postgres-0 starts alone; the others join when a scenario starts them.
    started = await startTestCluster(SCOPE, { nodes: 3, agents: ['node1'] });
  });

  after(async () => {
    await teardownCluster(started);
  });

  it('quorum_commit 1: quorum mode on a single node (quorum 0, empty), the lone former leader promotes after a restart, strict placeholder', async () => {
    const cluster = started!;
    await s.waitLeader('node1', within(10 + 20));
    await waitUntil(async () => ((await cluster.view()).initialize ?? '') !== '', {
      timeoutMs: within(15),
      describe: 'a non-empty initialize key',
    });
    await s.waitRole('node1', 'primary', within(10));
    await s.patchConfig('node1', { ttl: 20, synchronous_mode: 'quorum' });
    await s.waitSync('leader', 'node1', within(20));
    await s.waitSync('quorum', 0, within(2));
    await s.waitSsn('node1', '', within(2));
    await cluster.stopAgent('node1');
    await s.waitSync('leader', 'node1', within(2));
    cluster.startAgent('node1');
    await s.waitRole('node1', 'primary', within(10));
    await s.patchConfig('node1', { synchronous_mode_strict: true });
    await s.waitSsn('node1', `ANY 1 ("${STRICT_SYNC_PLACEHOLDER}")`, within(10));
  });

  it('quorum_commit 2: strict mode after a failover keeps the old primary as the sync standby (quorum 0)', async () => {
    const cluster = started!;
    cluster.startAgent('node2');
    // 10 s in the suite, counted once the member runs; here its clone is made meanwhile.
    await s.waitSync('sync_standby', 'node2', within(10 + 10));
    await s.waitSsn('node1', 'ANY 1 ("node2")', within(2));
    await cluster.stopAgent('node1');
    await s.waitRole('node2', 'primary', within(10));
    await s.waitSync('leader', 'node2', within(10));
    await s.waitSync('sync_standby', 'node1', within(10));
    await s.waitSync('quorum', 0, within(10));
    // Patroni 4: 'ANY 1 ("postgres-0")' and a WARNING; pgwarden waits on the placeholder instead (see the header).
    await s.waitSsn('node2', `ANY 1 ("${STRICT_SYNC_PLACEHOLDER}")`, within(10));
  });

  it('quorum_commit 3: three nodes, ANY 1 of two with quorum 1; synchronous_node_count 2 gives ANY 2 with quorum 0', async () => {
    const cluster = started!;
    cluster.startAgent('node1');
    cluster.startAgent('node3');
    // 10 s in the suite once both run; here node1 rejoins (rewind) and node3 is cloned meanwhile.
    await s.waitSync('sync_standby', 'node1,node3', within(10 + 20));
    await s.waitSync('quorum', 1, within(2));
    await s.waitSsn('node2', 'ANY 1 ("node1","node3")', within(2));
    await s.patchConfig('node2', { synchronous_node_count: 2 });
    await s.waitSync('quorum', 0, within(10));
    await s.waitSsn('node2', 'ANY 2 ("node1","node3")', within(2));
  });

  it('quorum_commit 4: from quorum to priority mode (one sync standby) and back to ANY 1 of two', async () => {
    const cluster = started!;
    await s.patchConfig('node2', { synchronous_mode: true, synchronous_node_count: 1 });
    await cluster.stopAgent('node1');
    await s.waitSsn('node2', '"node3"', within(10));
    await s.waitSync('sync_standby', 'node3', within(10));
    await s.waitSync('quorum', 0, within(2));
    await s.patchConfig('node2', { synchronous_mode: 'quorum' });
    cluster.startAgent('node1');
    await s.waitSsn('node2', 'ANY 1 ("node1","node3")', within(10));
    await s.waitSync('sync_standby', 'node1,node3', within(10));
    await s.waitSync('quorum', 1, within(2));
  });

  it('quorum_commit 5: `list` shows Quorum Standby members; GET /quorum answers 200 on both', async () => {
    const cluster = started!;
    const listed = await runCli(['-c', cluster.node('node1').configPath, 'list', SCOPE]);
    assert.equal(listed.code, 0, listed.stderr || listed.stdout);
    assert.match(listed.stdout, /Quorum Standby/);
    await s.waitStatus('node1', '/quorum', 200, within(3));
    await s.waitStatus('node3', '/quorum', 200, within(3));
  });

  it('quorum_commit 6: a nosync member leaves the voters and synchronous_standby_names; its /quorum answers 503', async () => {
    await s.setTag('node3', 'nosync', true);
    assert.equal((await s.request('node3', 'POST', '/reload')).status, 202);
    await s.waitSync('quorum', 0, within(10));
    await s.waitSync('sync_standby', 'node1', within(10));
    await s.waitSsn('node2', 'ANY 1 ("node1")', within(2));
    await s.waitStatus('node3', '/quorum', 503, within(10));
  });
});

describe("Patroni's priority_failover scenarios", { timeout: 600_000 }, () => {
  let started: LocalCluster | undefined;
  const s = steps(() => started!);
  /** Only the tag the step configures: LocalCluster's defaults (nofailover: false ...) would contradict a priority of 0. */
  const onlyPriority = (priority: number): Record<string, unknown> => ({
    nofailover: undefined,
    noloadbalance: undefined,
    clonefrom: undefined,
    nosync: undefined,
    failover_priority: priority,
  });

  before(async () => {
    started = await startTestCluster(SCOPE, {
      nodes: 4,
      agents: ['node1', 'node2'],
      tags: { node1: onlyPriority(1), node2: onlyPriority(0), node3: onlyPriority(1), node4: onlyPriority(2) },
    });
  });

  after(async () => {
    await teardownCluster(started);
  });

  it('priority_failover 1: a member with failover_priority 0 never takes over; the stopped primary comes back as primary', async () => {
    const cluster = started!;
    await s.waitLeader('node1', within(10 + 20));
    await s.waitRole('node1', 'primary', within(10));
    // 20 s in the suite once both run; here node2 is cloned meanwhile.
    await s.replicationWorks('node1', 'node2', within(20 + 10));
    await cluster.stopAgent('node1');
    await s.waitLog('node2', /following a different leader because I am not allowed to promote/, within(5));
    await s.waitRole('node2', 'secondary', within(10));
    // The suite checks the role once; node2 must not take over meanwhile, not even once the leader key is gone.
    await assertStays(async () => (await s.leaderName()) === undefined && (await s.isRole('node2', 'secondary')), {
      forMs: 5_000,
      intervalMs: 250,
      describe: 'no leader and node2 still a secondary while node1 is stopped',
    });
    cluster.startAgent('node1');
    await s.waitRole('node1', 'primary', within(10));
  });

  it('priority_failover 2: with equal WAL the member with the higher failover_priority takes over', async () => {
    const cluster = started!;
    cluster.startAgent('node3');
    cluster.startAgent('node4');
    await s.replicationWorks('node1', 'node3', within(20 + 10));
    await s.replicationWorks('node1', 'node4', within(20 + 10));
    const mark = (await s.logLines('node3')).length;
    await cluster.stopAgent('node1');
    await s.waitRole('node4', 'primary', within(10));
    await s.waitLog('node3', /following a leader \(node4\)/, within(5));
    // Patroni's node3 logs why it defers once it evaluates the race. pgwarden's node4 often holds the lock before node3
    // evaluated it at all (node3 then just follows): so every race decision node3 took must defer with Patroni's
    // reason, and none may try for the lock; the wording itself is pinned by the unit test of the race rule.
    const race = (await s.logLines('node3')).slice(mark).filter((line) => /not the healthiest node|acquiring the leader lock/.test(line));
    for (const line of race)
      assert.match(
        line,
        /node4 has equally tolerable WAL position and priority 2, while this node has priority 1|Wal position of node4 is ahead of my wal position/,
      );
  });

  it('priority_failover 3: nofailover wins over failover_priority: failover to it is refused (412); nofailover false allows it', async () => {
    await s.setTag('node3', 'nofailover', true);
    assert.equal((await s.request('node3', 'POST', '/reload')).status, 202);
    // Patroni 4 also publishes failover_priority next to nofailover (see the header).
    await waitUntil(async () => (await s.member('node3'))?.tags?.nofailover === true, {
      timeoutMs: within(10),
      describe: 'members/node3 with nofailover',
    });
    // The conflict is warned about on the reload too, with nofailover winning.
    await s.waitLog('node3', /contradict each other; using nofailover/, within(5));
    assert.deepEqual(await s.request('node3', 'POST', '/failover', { candidate: 'node3' }), {
      status: 412,
      text: 'failover is not possible: no good candidates have been found',
    });
    await s.setTag('node2', 'nofailover', false);
    assert.equal((await s.request('node2', 'POST', '/reload')).status, 202);
    // pgwarden publishes the winner alone (Patroni 4: failover_priority 0 next to nofailover false): the reload is in.
    await waitUntil(async () => (await s.member('node2'))?.tags?.failover_priority === undefined, {
      timeoutMs: within(10),
      describe: 'members/node2 reloaded with nofailover false winning over failover_priority 0',
    });
    const failover = await s.request('node2', 'POST', '/failover', { candidate: 'node2' });
    assert.equal(failover.status, 200, failover.text);
    await s.waitRole('node2', 'primary', within(10));
  });
});
