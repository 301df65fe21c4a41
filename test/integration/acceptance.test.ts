// Patroni's acceptance scenarios (shared/docs/acceptance-scenarios.md) not covered by the other system tests, replayed
// on one cluster of real processes in the order the behave features run them: a single node first (patroni_api 1-4,
// basic_replication 1), two members added (one with replicatefrom), then sync replication, failovers, switchovers
// under pause, a clonefrom member and a primary that cannot start. The scope is `batman` as in the suite; pgwarden
// speaks Patroni 3.0.2 on the wire (role `master`). Writes of the test use synchronous_commit=local, as the suite's own
// connections do, so a strict sync setting never blocks the test itself.
// Not replayed because pgwarden differs (see the README's table): basic_replication 8 (Patroni 4 keeps the old primary
// in synchronous_standby_names after a strict-mode failover).
import assert from 'node:assert/strict';
import { chown, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parse, stringify } from 'yaml';
import { fileURLToPath } from 'node:url';
import { pickFreePorts } from '../../src/local/free-port.js';
import type { LocalCluster } from '../../src/local/local-cluster.js';
import { resolveRunAs } from '../../src/postgres/controller.js';
import { STRICT_SYNC_PLACEHOLDER } from '../../src/core/sync-standby-names.js';
import type { MemberRecord } from '../../src/core/types.js';
import { waitUntil } from '../../src/util/wait-until.js';
import { assertStays } from '../kit/assert-stays.js';
import { agentLogTail, httpStatus, isWritable, runProgram, sql } from '../kit/cluster-kit.js';
import { startTestCluster, teardownCluster } from '../kit/fixtures.js';

const SCOPE = 'batman';
const AGENT_ENTRY = fileURLToPath(new URL('../../src/bin/agent.js', import.meta.url));
/** The suite's timeout_multiplier: its "after N seconds" bounds are doubled on this 2-core machine shared with other runs. */
const TIMEOUT_MULTIPLIER = 2;
/** A bound of the suite ("... after N seconds"), in milliseconds. */
const within = (seconds: number): number => seconds * 1000 * TIMEOUT_MULTIPLIER;

interface Reply {
  readonly status: number;
  readonly text: string;
}

async function run(command: string, args: readonly string[]): Promise<{ code: number; output: string }> {
  const { code, stdout, stderr } = await runProgram(command, args);
  return { code, output: stdout + stderr };
}

describe("Patroni's acceptance scenarios on one cluster", { timeout: 600_000 }, () => {
  let scriptDir: string;
  let started: LocalCluster | undefined;
  let cluster: LocalCluster;
  /** Every agent PID each member had: the callback script logs its parent, the agent that called it. */
  const agentPids = new Map<string, Set<number>>();

  const startAgent = (name: string): void => {
    const pid = cluster.startAgent(name);
    const pids = agentPids.get(name) ?? new Set<number>();
    pids.add(pid);
    agentPids.set(name, pids);
  };

  const request = async (name: string, method: string, path: string, body?: unknown): Promise<Reply> => {
    const node = cluster.node(name);
    const response = await fetch(`http://${node.host}:${node.apiPort}${path}`, {
      method,
      ...(body === undefined ? {} : { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } }),
      signal: AbortSignal.timeout(60_000),
    });
    return { status: response.status, text: await response.text() };
  };

  const patroniStatus = async (name: string): Promise<Record<string, unknown>> =>
    JSON.parse((await request(name, 'GET', '/patroni')).text) as Record<string, unknown>;

  const patchConfig = async (name: string, patch: Record<string, unknown>): Promise<void> => {
    const reply = await request(name, 'PATCH', '/config', patch);
    assert.equal(reply.status, 200, reply.text);
  };

  const patronictl = (...args: string[]): Promise<{ code: number; output: string }> =>
    run('patronictl', ['-c', cluster.node('node1').configPath, ...args]);

  const member = async (name: string): Promise<MemberRecord | undefined> =>
    (await cluster.view()).members.find((candidate) => candidate.name === name);

  const leaderName = async (): Promise<string | undefined> => (await cluster.view()).leader?.name;

  /** The suite's "X is a leader after N seconds": the DCS leader key. */
  const waitLeader = (name: string, timeoutMs: number): Promise<unknown> =>
    waitUntil(async () => (await leaderName()) === name, {
      timeoutMs,
      describe: `${name} to hold the leader key`,
      lastState: () => agentLogTail(cluster, name, /./, 5),
    });

  /** The suite's "role is the primary/secondary": pg_is_in_recovery() over SQL. */
  const waitRole = (name: string, role: 'primary' | 'secondary', timeoutMs: number): Promise<unknown> =>
    waitUntil(
      async () => {
        const rows = await sql<{ standby: boolean }>(cluster, name, 'SELECT pg_is_in_recovery() AS standby');
        return rows[0]?.standby === (role === 'secondary');
      },
      { timeoutMs, intervalMs: 250, describe: `${name} to be a ${role}` },
    );

  /** A write that does not wait for synchronous standbys, as the suite's own connections (synchronous_commit local). */
  const write = (name: string, statement: string): Promise<unknown> => sql(cluster, name, `SET synchronous_commit TO local; ${statement}`);

  const waitTable = (name: string, table: string, timeoutMs: number): Promise<unknown> =>
    waitUntil(async () => (await sql(cluster, name, `SELECT 1 FROM public.${table}`).catch(() => undefined)) !== undefined, {
      timeoutMs,
      intervalMs: 250,
      describe: `table ${table} on ${name}`,
    });

  let tableCounter = 0;
  /** The suite's "replication works from A to B": a new table on A shows up on B. */
  const replicationWorks = async (from: string, to: string, timeoutMs: number): Promise<void> => {
    const table = `test_${Date.now()}_${tableCounter++}`;
    await write(from, `CREATE TABLE public.${table}()`);
    await waitTable(to, table, timeoutMs);
  };

  const ssn = async (name: string): Promise<string | undefined> =>
    (await sql<{ value: string }>(cluster, name, "SELECT current_setting('synchronous_standby_names') AS value"))[0]?.value;

  const waitSsn = (name: string, expected: string, timeoutMs: number): Promise<unknown> => {
    let last: string | undefined;
    return waitUntil(
      async () => {
        last = await ssn(name);
        return last === expected;
      },
      { timeoutMs, intervalMs: 250, describe: `synchronous_standby_names on ${name} = '${expected}'`, lastState: () => last },
    );
  };

  /** The suite's "sync key in DCS has key=value": sync_standby compared as a set of names. */
  const waitSync = (key: 'leader' | 'sync_standby', value: string, timeoutMs: number): Promise<unknown> => {
    let last: unknown;
    return waitUntil(
      async () => {
        const sync = (await cluster.view()).sync;
        last = sync;
        const actual = sync?.[key] ?? '';
        if (key === 'leader') return actual === value;
        return [...new Set(actual.split(','))].sort().join(',') === [...new Set(value.split(','))].sort().join(',');
      },
      { timeoutMs, intervalMs: 250, describe: `the sync key with ${key}=${value}`, lastState: () => last },
    );
  };

  const waitMemberState = (name: string, state: string, timeoutMs: number): Promise<unknown> =>
    waitUntil(async () => (await member(name))?.state === state, { timeoutMs, describe: `members/${name} with state=${state}` });

  const waitStatus = (name: string, path: string, status: number, timeoutMs: number): Promise<unknown> =>
    waitUntil(async () => (await httpStatus(cluster, name, path)) === status, {
      timeoutMs,
      intervalMs: 250,
      describe: `GET ${path} on ${name} to answer ${status}`,
    });

  /**
   * After a switchover the health checks flip: /primary on the new primary only, /replica on the old one only (it
   * must stream from the new leader, not only run as a replica: a cycle after it rejoined).
   */
  const waitHealthFlipped = async (primary: string, replica: string): Promise<void> => {
    await waitStatus(replica, '/primary', 503, within(5));
    await waitStatus(primary, '/replica', 503, within(5));
    await waitStatus(primary, '/primary', 200, within(5));
    await waitStatus(replica, '/replica', 200, within(5));
  };

  const callbackLog = async (): Promise<string[]> =>
    (await readFile(join(scriptDir, 'callbacks.log'), 'utf8').catch(() => '')).split('\n').filter((line) => line !== '');

  /** Where the callback log ends now: a wait for a callback looks only at what is written after this. */
  const callbackMark = async (): Promise<number> => (await callbackLog()).length;

  const waitCallback = (name: string, line: string, since: number, timeoutMs: number): Promise<unknown> => {
    let seen: string[] = [];
    return waitUntil(
      async () => {
        const pids = agentPids.get(name) ?? new Set<number>();
        seen = (await callbackLog())
          .slice(since)
          .map((entry) => entry.split(' '))
          .filter(([pid]) => pids.has(Number(pid)))
          .map((parts) => parts.slice(1).join(' '));
        return seen.includes(line);
      },
      { timeoutMs, describe: `"${line}" in the callback log of ${name}`, lastState: () => seen },
    );
  };

  const editLocalConfig = async (name: string, edit: (config: Record<string, unknown>) => void): Promise<void> => {
    const path = cluster.node(name).configPath;
    const config = parse(await readFile(path, 'utf8')) as Record<string, unknown>;
    edit(config);
    await writeFile(path, stringify(config), { mode: 0o600 });
  };

  const setTag = (name: string, tag: string, value: unknown): Promise<void> =>
    editLocalConfig(name, (config) => {
      config.tags = { ...(config.tags as Record<string, unknown>), [tag]: value };
    });

  before(async () => {
    scriptDir = await mkdtemp(join(tmpdir(), 'pgw-accept-callbacks-'));
    await writeFile(join(scriptDir, 'callback.sh'), `#!/bin/sh\necho "$PPID $1 $2 $3" >> ${join(scriptDir, 'callbacks.log')}\n`, {
      mode: 0o755,
    });
    // postgres-0 starts alone; the others join when a scenario starts them (node3 as the suite's replicatefrom member).
    started = await startTestCluster(SCOPE, {
      nodes: 4,
      agents: ['node1'],
      tags: { node3: { replicatefrom: 'node1' }, node4: { replicatefrom: 'node1' } },
      callbacks: { on_role_change: join(scriptDir, 'callback.sh') },
    });
    cluster = started;
    agentPids.set('node1', new Set([cluster.node('node1').agentPid!]));
  });

  after(async () => {
    await teardownCluster(started);
    await rm(scriptDir, { recursive: true, force: true });
  });

  it('patroni_api 1: a stand-alone leader answers the health checks and refuses reinitialize, switchover and failover', async () => {
    // 10 s in the suite after start; here the cluster start (etcd, initdb) is counted too. Patroni takes the leader key
    // once the bootstrap is done, pgwarden already before initdb: the same moment here is the key plus a running member.
    await waitLeader('node1', within(10 + 20));
    await waitMemberState('node1', 'running', within(10));
    await waitRole('node1', 'primary', within(10));
    const root = await request('node1', 'GET', '/');
    assert.equal(root.status, 200, root.text);
    const document = JSON.parse(root.text) as Record<string, unknown>;
    assert.equal(document.state, 'running');
    assert.equal(document.role, 'master');
    assert.equal(await httpStatus(cluster, 'node1', '/standby_leader'), 503);
    assert.equal(await httpStatus(cluster, 'node1', '/health'), 200);
    assert.equal(await httpStatus(cluster, 'node1', '/replica'), 503);
    assert.deepEqual(await request('node1', 'POST', '/reinitialize', { force: true }), {
      status: 503,
      text: 'I am the leader, can not reinitialize',
    });
    const switchover = await patronictl('switchover', SCOPE, '--primary', 'node1', '--force');
    assert.equal(switchover.code, 1, switchover.output);
    assert.match(switchover.output, /Error: No candidates found to switchover to/);
    assert.deepEqual(await request('node1', 'POST', '/switchover', { leader: 'node1' }), {
      status: 412,
      text: 'switchover is not possible: cluster does not have members except leader',
    });
    assert.equal((await request('node1', 'POST', '/failover')).status, 400);
    assert.deepEqual(await request('node1', 'POST', '/failover', { foo: 'bar' }), {
      status: 400,
      text: 'Failover could be performed only to a specific candidate',
    });
  });

  it('patroni_api 2: a tag added to the local config is reloaded by POST /reload (202)', async () => {
    await setTag('node1', 'new_tag', 'new_value');
    assert.equal((await request('node1', 'POST', '/reload')).status, 202);
    await waitUntil(async () => ((await patroniStatus('node1')).tags as Record<string, unknown> | undefined)?.new_tag === 'new_value', {
      timeoutMs: within(10),
      intervalMs: 100,
      describe: 'the new tag in /patroni',
    });
  });

  it('patroni_api 3: PATCH /config with ttl and max_connections flags pending_restart; /config and the new tag are served', async () => {
    await patchConfig('node1', { ttl: 20, postgresql: { parameters: { max_connections: '101' } } });
    await waitUntil(async () => (await patroniStatus('node1')).pending_restart === true, {
      timeoutMs: within(11),
      intervalMs: 250,
      describe: 'pending_restart in /patroni',
    });
    const config = await request('node1', 'GET', '/config');
    assert.equal(config.status, 200);
    assert.equal((JSON.parse(config.text) as { ttl?: unknown }).ttl, 20);
    const status = await request('node1', 'GET', '/patroni');
    assert.equal(status.status, 200);
    assert.deepEqual((JSON.parse(status.text) as { tags?: unknown }).tags, { new_tag: 'new_value' });
  });

  it('patroni_api 4: edit-config -p shows the diff; a restart scheduled for replicas skips the primary, one for restart_pending runs', async () => {
    const edited = await patronictl('edit-config', '-p', 'superuser_reserved_connections=6', '--force', SCOPE);
    assert.equal(edited.code, 0, edited.output);
    assert.match(edited.output, /^\+ {4}superuser_reserved_connections: 6$/m);
    await waitUntil(
      async () =>
        (await patroniStatus('node1')).pending_restart === true &&
        (
          await sql<{ value: string }>(
            cluster,
            'node1',
            "SELECT setting AS value FROM pg_settings WHERE name = 'superuser_reserved_connections' AND pending_restart",
          )
        ).length === 1,
      { timeoutMs: within(5), intervalMs: 250, describe: 'superuser_reserved_connections pending a restart' },
    );
    const postmaster = await cluster.postmasterPid('node1');
    const inSeconds = (seconds: number): string => new Date(Date.now() + seconds * 1000).toISOString();
    const forReplicas = await request('node1', 'POST', '/restart', { role: 'replica', schedule: inSeconds(5) });
    assert.equal(forReplicas.status, 202, forReplicas.text);
    // The suite sleeps 8 s (the schedule is due after 5): the primary is not restarted and its restart stays pending.
    await assertStays(
      async () => (await cluster.postmasterPid('node1')) === postmaster && (await patroniStatus('node1')).pending_restart === true,
      {
        forMs: 8_000,
        intervalMs: 250,
        describe: 'node1 not restarted by a restart scheduled for replicas, still pending_restart',
      },
    );
    const pending = await request('node1', 'POST', '/restart', { restart_pending: 'True', schedule: inSeconds(5) });
    assert.equal(pending.status, 202, pending.text);
    await waitUntil(async () => (await patroniStatus('node1')).pending_restart === undefined, {
      timeoutMs: within(10),
      intervalMs: 250,
      describe: 'pending_restart gone after the scheduled restart',
    });
    assert.notEqual(await cluster.postmasterPid('node1'), postmaster, 'PostgreSQL was restarted');
    await waitRole('node1', 'primary', within(10));
  });

  it('basic_replication 1: sync mode on a single node (empty, then the strict placeholder), then two members replicate', async () => {
    await waitUntil(async () => ((await cluster.view()).initialize ?? '') !== '', {
      timeoutMs: within(15),
      describe: 'a non-empty initialize key',
    });
    await patchConfig('node1', { ttl: 20, synchronous_mode: true });
    await waitSync('leader', 'node1', within(20));
    await waitSsn('node1', '', within(2));
    await patchConfig('node1', { synchronous_mode_strict: true });
    // pgwarden quotes every standby name, the placeholder too (Patroni 4 writes it bare): PostgreSQL reads both alike.
    await waitSsn('node1', `"${STRICT_SYNC_PLACEHOLDER}"`, within(10));
    startAgent('node2');
    startAgent('node3'); // tags.replicatefrom: node1
    await write('node1', 'CREATE TABLE public.foo()');
    // 20 s in the suite, counted once the members run; here their clones are made meanwhile.
    await waitTable('node2', 'foo', within(20 + 10));
    await waitTable('node3', 'foo', within(20 + 10));
  });

  it('basic_replication 4: synchronous_node_count 2 makes both members sync; with 1, a stopped sync standby is replaced', async () => {
    await patchConfig('node1', { synchronous_node_count: 2, synchronous_mode_strict: null });
    await waitSync('sync_standby', 'node2,node3', within(10));
    await waitStatus('node3', '/sync', 200, within(3));
    await waitStatus('node2', '/sync', 200, within(3));
    await patchConfig('node1', { synchronous_node_count: 1 });
    await cluster.stopAgent('node2');
    await waitSync('sync_standby', 'node3', within(10));
    startAgent('node2');
    await waitMemberState('node2', 'running', within(10));
    await waitStatus('node3', '/sync', 200, within(3));
    await waitStatus('node2', '/async', 200, within(3));
  });

  it('basic_replication 5: the sync standby takes over from a leader stopped under pause once resumed', async () => {
    const callbacksBefore = await callbackMark();
    const paused = await patronictl('pause', SCOPE, '--wait');
    assert.equal(paused.code, 0, paused.output);
    // Under pause the agent stops alone: its PostgreSQL keeps running and the leader key expires after ttl (20 s).
    await cluster.stopAgent('node1');
    const resumed = await patronictl('resume', SCOPE);
    assert.equal(resumed.code, 0, resumed.output);
    await waitRole('node3', 'primary', within(24));
    await waitUntil(async () => (await request('node3', 'GET', '/history')).text.includes('recovery'), {
      timeoutMs: within(10),
      describe: '/history on node3 mentioning the recovery',
    });
    await waitCallback('node3', `on_role_change master ${SCOPE}`, callbacksBefore, within(10));
    await patchConfig('node3', { synchronous_mode: null, master_start_timeout: 0 });
    await write('node3', 'CREATE TABLE public.bar()');
    await waitTable('node2', 'bar', within(20));
    await waitUntil(async () => (await request('node3', 'GET', '/config')).text.includes('master_start_timeout'), {
      timeoutMs: within(10),
      describe: 'master_start_timeout in /config',
    });
  });

  it('basic_replication 6: the former primary with a local-only write rejoins as a secondary (pg_rewind)', async () => {
    await write('node1', 'CREATE TABLE public.splitbrain()');
    startAgent('node1');
    await waitRole('node1', 'secondary', within(20));
    await write('node3', 'CREATE TABLE public.buz()');
    await waitTable('node1', 'buz', within(20));
    // The local-only write was rewound away: node1 now has node3's history.
    assert.deepEqual(await sql(cluster, 'node1', "SELECT 1 FROM pg_class WHERE relname = 'splitbrain'"), []);
  });

  it("basic_replication 7: a second agent with a running member's name refuses to start, and changes nothing", async () => {
    const before = await cluster.view();
    const [apiPort, pgPort] = (await pickFreePorts(2)) as [number, number];
    const dir = await mkdtemp(join(tmpdir(), 'pgw-duplicate-'));
    try {
      const config = parse(await readFile(cluster.node('node1').configPath, 'utf8')) as Record<string, Record<string, unknown>>;
      const duplicate = {
        ...config,
        restapi: { ...config.restapi, listen: `127.0.0.1:${apiPort}`, connect_address: `127.0.0.1:${apiPort}` },
        postgresql: {
          ...config.postgresql,
          listen: `127.0.0.1:${pgPort}`,
          connect_address: `127.0.0.1:${pgPort}`,
          data_dir: join(dir, 'data'),
        },
      };
      await writeFile(join(dir, 'duplicate.yml'), stringify(duplicate), { mode: 0o600 });
      const startedAt = performance.now();
      const result = await run(process.execPath, [AGENT_ENTRY, join(dir, 'duplicate.yml')]);
      assert.equal(result.code, 1, result.output);
      assert.match(result.output, /already a node named 'node1' running/);
      assert.ok(performance.now() - startedAt < within(5), `refused within ${within(5)} ms`);
      const after = await cluster.view();
      assert.equal(after.leader?.name, before.leader?.name);
      assert.equal(after.leader?.modRevision, before.leader?.modRevision, 'the leader key was not touched');
      assert.equal(after.initialize, before.initialize);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('patroni_api 6: a switchover under pause moves the leader and flips the health checks', async () => {
    const paused = await patronictl('pause', SCOPE, '--wait');
    assert.equal(paused.code, 0, paused.output);
    const reply = await request('node3', 'POST', '/switchover', { leader: 'node3', candidate: 'node1' });
    assert.equal(reply.status, 200, reply.text);
    await waitLeader('node1', within(5));
    await waitRole('node1', 'primary', within(10));
    await waitRole('node3', 'secondary', within(10));
    await replicationWorks('node1', 'node3', within(20));
    await waitMemberState('node3', 'running', within(10));
    await waitHealthFlipped('node1', 'node3');
  });

  it('patroni_api 7: a scheduled switchover is refused under pause and runs when due after resume', async () => {
    const at = (): string => new Date(Date.now() + 10_000).toISOString();
    const refused = await patronictl('switchover', SCOPE, '--primary', 'node1', '--candidate', 'node3', '--scheduled', at(), '--force');
    assert.equal(refused.code, 1, refused.output);
    assert.match(refused.output, /Can't schedule switchover in the paused state/);
    const resumed = await patronictl('resume', SCOPE);
    assert.equal(resumed.code, 0, resumed.output);
    const scheduled = await patronictl('switchover', SCOPE, '--primary', 'node1', '--candidate', 'node3', '--scheduled', at(), '--force');
    assert.equal(scheduled.code, 0, scheduled.output);
    await waitLeader('node3', within(20));
    await waitRole('node3', 'primary', within(10));
    await waitRole('node1', 'secondary', within(10));
    await replicationWorks('node3', 'node1', within(25));
    await waitMemberState('node1', 'running', within(10));
    await waitHealthFlipped('node3', 'node1');
  });

  it('cascading_replication 1: a new member clones from the clonefrom member, not the leader', async () => {
    const leader = (await leaderName())!;
    await setTag('node1', 'clonefrom', true);
    assert.equal((await request('node1', 'POST', '/reload')).status, 202);
    await waitUntil(async () => (await member('node1'))?.tags?.clonefrom === true, {
      timeoutMs: within(10),
      describe: 'clonefrom in members/node1',
    });
    await replicationWorks(leader, 'node1', within(20));
    // A label in each data dir, written after both were cloned: the new member's copy tells where it was cloned from.
    const runAs = resolveRunAs();
    for (const name of [leader, 'node1']) {
      const label = join(cluster.node(name).dataDir, 'label');
      await writeFile(label, name);
      if (runAs !== undefined) await chown(label, runAs.uid, runAs.gid);
    }
    await waitMemberState('node1', 'running', within(12));
    startAgent('node4'); // tags.replicatefrom: node1
    // 30 s in the suite, the clone included.
    await replicationWorks(leader, 'node4', within(30));
    assert.equal(await readFile(join(cluster.node('node4').dataDir, 'label'), 'utf8'), 'node1');
  });

  it('recovery 3: a primary whose PostgreSQL cannot start releases the lock and reports demoted', async () => {
    const leader = (await leaderName())!;
    await patchConfig(leader, { master_start_timeout: null });
    const replicas = cluster.nodes.map((node) => node.name).filter((name) => name !== leader && agentPids.has(name));
    for (const name of replicas) await waitRole(name, 'secondary', within(10));
    const callbacksBefore = await callbackMark();
    await writeFile(join(cluster.node(leader).dataDir, 'postgresql.auto.conf'), 'foo=bar');
    await cluster.killPostmaster(leader, 'SIGQUIT');
    await waitUntil(
      async () => {
        const current = await leaderName();
        return current !== undefined && current !== leader;
      },
      {
        timeoutMs: within(10),
        describe: `another member leading after ${leader} failed to start`,
        lastState: () => agentLogTail(cluster, leader, /./, 10),
      },
    );
    await waitCallback(leader, `on_role_change demoted ${SCOPE}`, callbacksBefore, within(10));
    // It gave the lock up because its start failed (not because master_start_timeout was still 0), as in the scenario.
    const reasons = agentLogTail(cluster, leader, /trying and failing to start postgres|Failing over \(primary_start_timeout is 0\)/);
    assert.match(reasons, /removed leader key after trying and failing to start postgres/);
    assert.doesNotMatch(reasons, /primary_start_timeout is 0/);
    assert.equal(await isWritable(cluster, leader), false);
  });
});
