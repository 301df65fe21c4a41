// Unsafe REST endpoints against the in-memory DCS: Patroni's validation answers, intents written, config merge and CAS, auth.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  handleConfigWrite,
  handleDeleteRestart,
  handleDeleteSwitchover,
  handleRestart,
  handleSwitchover,
  mergeConfigPatch,
  type MutationContext,
  type RestartScheduler,
} from '../../src/api/mutations.js';
import { startApiServer } from '../../src/api/server.js';
import { MemoryDcs, MemoryDcsStore } from '../../src/dcs/memory/memory-dcs.js';
import { silentLog } from '../../src/util/log.js';
import { FakeClock } from '../kit/fake-clock.js';
import { agentSnapshot, member, primaryPg } from '../sim/builders.js';

const WALL_NOW = Date.parse('2026-11-24T00:00:00Z');

async function cluster(members = [member('node1'), member('node2'), member('node3', { tags: { nofailover: true } })]) {
  const store = new MemoryDcsStore(new FakeClock());
  const handles = new Map(members.map((m) => [m.name, new MemoryDcs(store, { namespace: '/service', scope: 'batman', member: m.name })]));
  for (const m of members) await handles.get(m.name)!.touchMember(m, 30_000, AbortSignal.timeout(1000));
  await handles.get('node1')!.acquireLeader(30_000, AbortSignal.timeout(1000));
  await handles
    .get('node1')!
    .setConfig(
      { ttl: 30, loop_wait: 10, retry_timeout: 10, maximum_lag_on_failover: 1048576, postgresql: { parameters: { max_connections: 100 } } },
      undefined,
      AbortSignal.timeout(1000),
    );
  return { store, dcs: handles.get('node1')!, handles };
}

function context(dcs: MemoryDcs, overrides: Partial<MutationContext> = {}): MutationContext {
  const snapshot = agentSnapshot();
  let now = WALL_NOW;
  return { snapshot, dcs, wallNowMs: () => now, sleep: async (ms) => void (now += ms), nudge: () => undefined, ...overrides };
}

describe('POST /switchover and /failover', () => {
  it('answers Patroni validation errors without touching the DCS', async () => {
    const { dcs } = await cluster();
    const ctx = context(dcs);
    const cases: [string, 'switchover' | 'failover', unknown, number, RegExp][] = [
      ['empty', 'switchover', {}, 400, /only from a specific leader/],
      ['failover without candidate', 'failover', { candidate: '' }, 400, /only to a specific candidate/],
      // Patroni's acceptance test (patroni_api.feature): unknown keys do not hide the missing candidate.
      ['unknown key, no candidate', 'failover', { foo: 'bar' }, 400, /^Failover could be performed only to a specific candidate$/],
      ['same node', 'switchover', { leader: 'node1', candidate: 'node1' }, 400, /target and source are the same/],
      ['wrong leader', 'switchover', { leader: 'node2', candidate: 'node1' }, 412, /leader name does not match/],
      ['unknown candidate', 'switchover', { leader: 'node1', candidate: 'node9' }, 412, /candidate does not exists/],
      ['nofailover candidate', 'switchover', { leader: 'node1', candidate: 'node3' }, 412, /no good candidates have been found/],
      ['failover scheduled', 'failover', { candidate: 'node2', scheduled_at: '2026-11-24T01:00:00Z' }, 400, /can't be scheduled/],
      ['no timezone', 'switchover', { leader: 'node1', scheduled_at: '2026-11-24T01:00:00' }, 400, /Timezone information is mandatory/],
      ['in the past', 'switchover', { leader: 'node1', scheduled_at: '2026-11-23T01:00:00Z' }, 422, /in the past/],
      ['not a body', 'switchover', ['leader'], 400, /the switchover request body must be a JSON object/],
    ];
    for (const [name, kind, body, status, message] of cases) {
      const response = await handleSwitchover(kind, body, ctx);
      assert.equal(response.status, status, name);
      assert.match(response.body ?? '', message, name);
    }
    assert.equal((await dcs.loadCluster(AbortSignal.timeout(1000))).failover, undefined);
  });

  it('checks candidates live: unreachable or lagging ones are no good', async () => {
    const { dcs } = await cluster();
    const status =
      (walPosition: bigint | undefined, isReachable = true) =>
      async (m: { name: string }) => ({
        name: m.name,
        isReachable,
        role: 'replica' as const,
        isRunning: isReachable,
        walPosition,
        timeline: 1,
        tags: {},
      });
    const aheadLeader = { ...context(dcs).snapshot, pg: primaryPg({ writeLsn: 10n * 1048576n }) };
    const lagging = await handleSwitchover(
      'switchover',
      { leader: 'node1', candidate: 'node2' },
      context(dcs, { fetchPeerStatus: status(0n), snapshot: aheadLeader }),
    );
    assert.deepEqual([lagging.status, lagging.body], [412, 'switchover is not possible: no good candidates have been found']);
    const unreachable = await handleSwitchover(
      'switchover',
      { leader: 'node1', candidate: 'node2' },
      context(dcs, { fetchPeerStatus: status(undefined, false) }),
    );
    assert.equal(unreachable.status, 412);
    const scheduledOk = await handleSwitchover(
      'switchover',
      { leader: 'node1', candidate: 'node2', scheduled_at: '2026-11-24T01:00:00+00:00' },
      context(dcs, { fetchPeerStatus: status(1000n) }),
    );
    assert.equal(scheduledOk.status, 202);
  });

  it('refuses a switchover when the leader is alone', async () => {
    const { dcs } = await cluster([member('node1')]);
    const response = await handleSwitchover('switchover', { leader: 'node1' }, context(dcs));
    assert.deepEqual([response.status, response.body], [412, 'switchover is not possible: cluster does not have members except leader']);
  });

  it('writes a scheduled switchover (202) that DELETE removes', async () => {
    const { dcs } = await cluster();
    const response = await handleSwitchover(
      'switchover',
      { leader: 'node1', candidate: 'node2', scheduled_at: '2026-11-24T01:00:00+00:00' },
      context(dcs),
    );
    assert.deepEqual([response.status, response.body], [202, 'Switchover scheduled']);
    assert.deepEqual((await dcs.loadCluster(AbortSignal.timeout(1000))).failover, {
      leader: 'node1',
      member: 'node2',
      scheduled_at: '2026-11-24T01:00:00.000Z',
    });
    assert.equal((await handleDeleteSwitchover(context(dcs))).status, 200);
    assert.equal((await handleDeleteSwitchover(context(dcs))).status, 404);
  });

  it('reports success once the candidate holds the lock', async () => {
    const { dcs, handles } = await cluster();
    let step = 0;
    const ctx = context(dcs, {
      sleep: async () => {
        // The old leader releases, the candidate takes the lock: what the agents do on their own.
        if (++step === 3) {
          await dcs.releaseLeader(AbortSignal.timeout(1000));
          await handles.get('node2')!.acquireLeader(30_000, AbortSignal.timeout(1000));
        }
      },
    });
    const response = await handleSwitchover('switchover', { leader: 'node1', candidate: 'node2' }, ctx);
    assert.deepEqual([response.status, response.body], [200, 'Successfully switched over to "node2"']);
  });

  it('gives up with "status unknown" when nothing happens', async () => {
    const { dcs } = await cluster();
    let now = WALL_NOW;
    const response = await handleSwitchover(
      'switchover',
      { leader: 'node1' },
      context(dcs, { wallNowMs: () => now, sleep: async (ms) => void (now += ms * 50) }),
    );
    assert.equal(response.status, 503);
    assert.match(response.body ?? '', /status unknown after 20 seconds/);
  });
});

describe('bad parameters name the parameter at fault', () => {
  it('switchover and failover: leader, candidate, member, scheduled_at and unknown keys', async () => {
    const { dcs } = await cluster();
    const ctx = context(dcs);
    const cases: [string, 'switchover' | 'failover', unknown, number, string | RegExp][] = [
      ['leader not a string', 'switchover', { leader: 5 }, 400, 'leader should be a member name (a string), got 5'],
      ['leader missing', 'switchover', { candidate: 'node2' }, 400, 'Switchover could be performed only from a specific leader'],
      [
        'candidate not a string',
        'switchover',
        { leader: 'node1', candidate: ['node2'] },
        400,
        /^candidate should be a member name .*\["node2"\]/,
      ],
      ['member not a string', 'failover', { member: true }, 400, /^member should be a member name \(a string\), got true$/],
      ['candidate missing', 'failover', {}, 400, 'Failover could be performed only to a specific candidate'],
      [
        'candidate and member differ',
        'failover',
        { candidate: 'node2', member: 'node3' },
        400,
        /candidate and member name the target differently/,
      ],
      [
        'typo of candidate',
        'switchover',
        { leader: 'node1', candiate: 'node2' },
        400,
        /^Unknown parameter for the switchover: candiate \(known: leader, candidate, member, scheduled_at\)$/,
      ],
      [
        'wrong leader',
        'switchover',
        { leader: 'node2' },
        412,
        'leader name does not match: leader "node2" is not the leader (the leader is "node1")',
      ],
      [
        'unknown candidate',
        'switchover',
        { leader: 'node1', candidate: 'node9' },
        412,
        /^candidate does not exists: candidate "node9" is not a member of the cluster \(members: node1, node2, node3\)$/,
      ],
      ['unknown member', 'failover', { member: 'node9' }, 412, /^candidate does not exists: member "node9"/],
      ['same as leader via member', 'switchover', { leader: 'node1', member: 'node1' }, 400, /leader and member both name "node1"/],
      [
        'scheduled_at garbage',
        'switchover',
        { leader: 'node1', scheduled_at: 'tomorrow-ish' },
        422,
        /^scheduled_at: Unable to parse scheduled timestamp "tomorrow-ish"/,
      ],
      [
        'scheduled_at a number',
        'switchover',
        { leader: 'node1', scheduled_at: 1700000000 },
        422,
        /^scheduled_at: Unable to parse scheduled timestamp 1700000000/,
      ],
      [
        'scheduled_at no zone',
        'switchover',
        { leader: 'node1', scheduled_at: '2026-11-24T01:00:00' },
        400,
        /^scheduled_at: Timezone information is mandatory for the scheduled switchover/,
      ],
      [
        'scheduled_at past',
        'switchover',
        { leader: 'node1', scheduled_at: '2026-11-23T01:00:00Z' },
        422,
        /^scheduled_at: Cannot schedule switchover in the past/,
      ],
      [
        'scheduled failover',
        'failover',
        { candidate: 'node2', scheduled_at: '2026-11-24T01:00:00Z' },
        400,
        /^scheduled_at: Failover can't be scheduled/,
      ],
    ];
    for (const [name, kind, body, status, message] of cases) {
      const response = await handleSwitchover(kind, body, ctx);
      assert.equal(response.status, status, `${name}: ${response.body}`);
      if (typeof message === 'string') assert.equal(response.body, message, name);
      else assert.match(response.body ?? '', message, name);
    }
    const paused = context(dcs, { snapshot: { ...ctx.snapshot, isPaused: true } });
    const pausedSchedule = await handleSwitchover(
      'switchover',
      { leader: 'node1', candidate: 'node2', scheduled_at: '2026-11-24T01:00:00Z' },
      paused,
    );
    assert.deepEqual([pausedSchedule.status, pausedSchedule.body], [400, "scheduled_at: Can't schedule switchover in the paused state"]);
    assert.equal((await dcs.loadCluster(AbortSignal.timeout(1000))).failover, undefined, 'no bad request wrote an intent');
  });

  it('null leader/candidate (what patronictl sends for "no candidate") counts as absent', async () => {
    const { dcs } = await cluster();
    const response = await handleSwitchover(
      'switchover',
      { leader: 'node1', candidate: null, scheduled_at: '2026-11-24T01:00:00Z' },
      context(dcs),
    );
    assert.deepEqual([response.status, response.body], [202, 'Switchover scheduled']);
  });

  it('restart: schedule, restart_pending, role, postgres_version, timeout and unknown filters', async () => {
    const { dcs } = await cluster();
    const { snapshot } = context(dcs);
    const scheduler: RestartScheduler = { schedule: () => true, cancel: () => false };
    const neverRuns = async (): Promise<never> => assert.fail('a bad restart request must not run a restart');
    const cases: [string, unknown, number, string | RegExp][] = [
      ['not an object', 'now', 400, /^the restart request body must be a JSON object of filters/],
      ['schedule garbage', { schedule: 'at noon' }, 422, /^schedule: Unable to parse scheduled timestamp "at noon"/],
      [
        'schedule no zone',
        { schedule: '2026-11-24T02:00:00' },
        400,
        /^schedule: Timezone information is mandatory for the scheduled restart/,
      ],
      ['schedule past', { schedule: '2026-11-23T02:00:00Z' }, 422, /^schedule: Cannot schedule restart in the past/],
      ['schedule number', { schedule: 12 }, 422, /^schedule: Unable to parse scheduled timestamp 12/],
      [
        'schedule date only',
        { schedule: '2026-11-25' },
        400,
        /^schedule: Timezone information is mandatory for the scheduled restart \(got "2026-11-25"/,
      ],
      ['restart_pending garbage', { restart_pending: 'maybe' }, 400, 'restart_pending should be true or false (got "maybe")'],
      ['role garbage', { role: 'leader' }, 400, 'PostgreSQL role should be either primary or replica (role: got "leader")'],
      ['role number', { role: 1 }, 400, 'PostgreSQL role should be either primary or replica (role: got 1)'],
      ['postgres_version letters', { postgres_version: 'a.b.c' }, 400, 'postgres_version: Invalid PostgreSQL version: a.b.c'],
      [
        'postgres_version format',
        { postgres_version: '9.6' },
        400,
        'postgres_version: Invalid PostgreSQL version format: X.Y or X.Y.Z is accepted: 9.6',
      ],
      ['postgres_version number', { postgres_version: 15.4 }, 400, /^postgres_version: Invalid PostgreSQL version: 15.4 \(give a string/],
      ['timeout zero', { timeout: 0 }, 400, /^Timeout should be a positive number of seconds \(timeout: got 0;/],
      ['timeout garbage', { timeout: 'soon' }, 400, /^Timeout should be a positive number of seconds \(timeout: got "soon";/],
      ['timeout negative', { timeout: '-5min' }, 400, /timeout: got "-5min"/],
      [
        'unknown filter',
        { rolle: 'primary' },
        400,
        'Unknown filter for the scheduled restart: rolle (known: schedule, restart_pending, role, postgres_version, timeout)',
      ],
    ];
    for (const [name, body, status, message] of cases) {
      const response = await handleRestart(body, snapshot, neverRuns, scheduler, () => WALL_NOW);
      assert.equal(response.status, status, `${name}: ${response.body}`);
      if (typeof message === 'string') assert.equal(response.body, message, name);
      else assert.match(response.body ?? '', message, name);
    }
    const paused = await handleRestart(
      { schedule: '2026-11-24T02:00:00Z' },
      { ...snapshot, isPaused: true },
      neverRuns,
      scheduler,
      () => WALL_NOW,
    );
    assert.deepEqual([paused.status, paused.body], [500, "schedule: Can't schedule restart in the paused state"]);
  });

  it('restart: unmet filters say which filter did not match; good values run the restart with the timeout given', async () => {
    const { dcs } = await cluster();
    const { snapshot } = context(dcs);
    const neverRuns = async (): Promise<never> => assert.fail('an unmet filter must not run a restart');
    const unmet: [unknown, string][] = [
      [{ role: 'replica' }, 'restart conditions are not satisfied: role: this member is a primary, not a replica'],
      [{ restart_pending: true }, 'restart conditions are not satisfied: restart_pending: no restart is pending on this member'],
      [
        { postgres_version: '9.6.24' },
        /^restart conditions are not satisfied: postgres_version: the server version \d+ is not lower than 90624$/ as unknown as string,
      ],
    ];
    for (const [body, message] of unmet) {
      const response = await handleRestart(body, snapshot, neverRuns);
      assert.equal(response.status, 503);
      if (typeof message === 'string') assert.equal(response.body, message);
      else assert.match(response.body ?? '', message);
    }
    const timeouts: number[] = [];
    const runs = async (_kind: string, timeoutMs: number) => (timeouts.push(timeoutMs), { isOk: true, message: 'restarted successfully' });
    for (const body of [{ timeout: '5min', role: 'master', restart_pending: 'false', postgres_version: '99.1' }, { timeout: 30 }, {}])
      assert.equal((await handleRestart(body, snapshot, runs)).status, 200, JSON.stringify(body));
    assert.deepEqual(timeouts, [300_000, 30_000, 120_000]);
  });
});

describe('POST and DELETE /restart', () => {
  it('schedules one restart, refuses a second, deletes it, and validates filters', async () => {
    const { dcs } = await cluster();
    const { snapshot } = context(dcs);
    let scheduled: string | undefined;
    const scheduler: RestartScheduler = {
      schedule: (at) => (scheduled === undefined ? ((scheduled = at), true) : false),
      cancel: () => (scheduled !== undefined ? ((scheduled = undefined), true) : false),
    };
    const neverRuns = async (): Promise<never> => assert.fail('an immediate restart must not run here');
    const body = { schedule: '2026-11-24T02:00:00+00:00', role: 'primary' };
    assert.deepEqual(await handleRestart(body, snapshot, neverRuns, scheduler, () => WALL_NOW), {
      status: 202,
      body: 'Restart scheduled',
      contentType: 'text/plain',
    });
    assert.equal(scheduled, '2026-11-24T02:00:00.000Z');
    assert.equal((await handleRestart(body, snapshot, neverRuns, scheduler, () => WALL_NOW)).status, 409);
    assert.equal(handleDeleteRestart(scheduler).status, 200);
    assert.equal(handleDeleteRestart(scheduler).status, 404);
    assert.equal(
      (
        await handleRestart(
          { schedule: '2026-11-24T02:00:00+00:00' },
          { ...snapshot, isPaused: true },
          neverRuns,
          scheduler,
          () => WALL_NOW,
        )
      ).status,
      500,
    );
    assert.deepEqual(
      (await handleRestart({ frobnicate: 1 }, snapshot, neverRuns, scheduler)).body,
      'Unknown filter for the scheduled restart: frobnicate (known: schedule, restart_pending, role, postgres_version, timeout)',
    );
    assert.equal(
      (await handleRestart({ role: 'replica' }, snapshot, neverRuns, scheduler)).status,
      503,
      'the primary does not match role=replica',
    );
    assert.equal((await handleRestart({ restart_pending: true }, snapshot, neverRuns, scheduler)).status, 503, 'nothing is pending');
  });
});

describe('PATCH and PUT /config', () => {
  it('deep-merges with null deleting a key', () => {
    assert.deepEqual(
      mergeConfigPatch(
        { ttl: 30, postgresql: { parameters: { a: 1, b: 2 } } },
        { ttl: 20, postgresql: { parameters: { a: null, c: 3 } }, pause: true },
      ),
      { ttl: 20, postgresql: { parameters: { b: 2, c: 3 } }, pause: true },
    );
  });

  it('writes the merged config and rejects bodies that are not objects', async () => {
    const { dcs } = await cluster();
    const response = await handleConfigWrite('PATCH', { pause: true, postgresql: { parameters: { max_connections: null } } }, context(dcs));
    assert.equal(response.status, 200);
    const stored = (await dcs.loadCluster(AbortSignal.timeout(1000))).config;
    assert.equal(stored?.pause, true);
    assert.deepEqual(stored?.postgresql?.parameters, {});
    assert.equal((await handleConfigWrite('PATCH', 'pause', context(dcs))).status, 400);
    assert.equal(
      (await handleConfigWrite('PUT', { ttl: 20, loop_wait: 5, retry_timeout: 5, maximum_lag_on_failover: 1 }, context(dcs))).status,
      200,
    );
    assert.equal((await dcs.loadCluster(AbortSignal.timeout(1000))).config?.ttl, 20);
  });

  it('refuses a document read back from a redacted output, which would overwrite a secret with ******', async () => {
    const { dcs } = await cluster();
    const before = (await dcs.loadCluster(AbortSignal.timeout(1000))).configRevision;
    const echoed = await handleConfigWrite(
      'PATCH',
      { postgresql: { parameters: { primary_conninfo: 'host=a password=******' } } },
      context(dcs),
    );
    assert.equal(echoed.status, 400);
    assert.match(echoed.body ?? '', /^invalid configuration: postgresql\.parameters\.primary_conninfo holds the placeholder \*{6}/);
    assert.equal((await dcs.loadCluster(AbortSignal.timeout(1000))).configRevision, before);
  });

  it('refuses invalid timing (the rules of the config file and edit-config) with 400 and the message, and stores nothing', async () => {
    const { dcs } = await cluster();
    const before = (await dcs.loadCluster(AbortSignal.timeout(1000))).configRevision;
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ ttl: -1 }, /^invalid configuration: ttl: must be at least 2 \(got -1\)/],
      [{ loop_wait: 'abc' }, /^invalid configuration: loop_wait: must be a number of seconds \(got "abc"\)/],
      [{ ttl: 15 }, /loop_wait \+ 2\*retry_timeout \(10 \+ 2\*10 = 30\) must be <= ttl \(15\)/],
      [{ fence_window: 0.1 }, /fence_window: must be 0 \(detector off\) or at least 0\.5/],
      [{ heartbeat_interval: 'fast' }, /heartbeat_interval: must be a number of seconds/],
      [{ maximum_lag_on_failover: -5 }, /maximum_lag_on_failover: must be a number >= 0/],
    ];
    for (const [patch, message] of cases) {
      const response = await handleConfigWrite('PATCH', patch, context(dcs));
      assert.equal(response.status, 400, JSON.stringify(patch));
      assert.match(response.body ?? '', message);
    }
    const put = await handleConfigWrite('PUT', { ttl: 10, loop_wait: 5, retry_timeout: 5, maximum_lag_on_failover: 1 }, context(dcs));
    assert.equal(put.status, 400);
    assert.equal((await dcs.loadCluster(AbortSignal.timeout(1000))).configRevision, before, 'nothing stored');
    // A short ttl is pgwarden's on purpose (below Patroni's 20), as long as the rules hold.
    assert.equal((await handleConfigWrite('PATCH', { ttl: 10, loop_wait: 2, retry_timeout: 4 }, context(dcs))).status, 200);
  });

  it('refuses bad slot and synchronous settings with a message naming the entry, and stores nothing', async () => {
    const { dcs } = await cluster();
    const before = (await dcs.loadCluster(AbortSignal.timeout(1000))).configRevision;
    const badSlot = await handleConfigWrite('PATCH', { slots: { cdc: { type: 'logical', database: 'app' } } }, context(dcs));
    assert.equal(badSlot.status, 400);
    assert.match(badSlot.body ?? '', /slots\.cdc: a logical slot needs plugin/);
    const badMode = await handleConfigWrite('PATCH', { synchronous_mode: 'sometimes' }, context(dcs));
    assert.equal(badMode.status, 400);
    assert.match(badMode.body ?? '', /synchronous_mode must be/);
    assert.equal((await handleConfigWrite('PATCH', { synchronous_node_count: 0 }, context(dcs))).status, 400);
    assert.equal((await dcs.loadCluster(AbortSignal.timeout(1000))).configRevision, before);
    assert.equal(
      (
        await handleConfigWrite(
          'PATCH',
          { synchronous_mode: 'quorum', slots: { cdc: { type: 'logical', database: 'app', plugin: 'pgoutput' } } },
          context(dcs),
        )
      ).status,
      200,
    );
  });
});

/** A raw HTTP/1.1 request with no body and no Content-Length, as `curl -s -XPOST http://node:8008/restart` sends it. */
async function bodiless(
  port: number,
  method: string,
  path: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: string }> {
  const { connect } = await import('node:net');
  const socket = connect(port, '127.0.0.1');
  const lines = [
    `${method} ${path} HTTP/1.1`,
    'Host: 127.0.0.1',
    'Connection: close',
    ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`),
  ];
  socket.end(`${lines.join('\r\n')}\r\n\r\n`);
  const chunks: Buffer[] = [];
  for await (const chunk of socket) chunks.push(chunk as Buffer);
  const response = Buffer.concat(chunks).toString('utf8');
  const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(response)?.[1]);
  return { status, body: response.slice(response.indexOf('\r\n\r\n') + 4) };
}

describe('bodiless unsafe requests (Patroni documented curl calls)', () => {
  it('POST /restart, POST /reload, DELETE /switchover and DELETE /restart work without a body; auth and allowlist still apply', async () => {
    const { dcs } = await cluster();
    const base = context(dcs);
    await dcs.setFailover(
      { leader: 'node1', member: 'node2', scheduled_at: '2026-11-24T01:00:00.000Z' },
      undefined,
      AbortSignal.timeout(1000),
    );
    let reloads = 0;
    let restarts = 0;
    const options = {
      host: '127.0.0.1',
      port: 0,
      getSnapshot: () => base.snapshot,
      nowMs: () => 0,
      log: silentLog,
      dcs,
      reload: async () => void reloads++,
      runCommand: async () => (restarts++, { isOk: true, message: 'restarted successfully' }),
      restartScheduler: { schedule: () => true, cancel: () => false },
    };
    const server = await startApiServer({ ...options, authentication: { username: 'admin', password: 's3cret' } });
    const authorization = `Basic ${Buffer.from('admin:s3cret').toString('base64')}`;
    try {
      assert.deepEqual(await bodiless(server.port, 'POST', '/restart'), { status: 401, body: 'no auth header received' });
      assert.equal(restarts, 0, 'authentication is checked before anything runs');
      assert.deepEqual(await bodiless(server.port, 'POST', '/restart', { authorization }), { status: 200, body: 'restarted successfully' });
      assert.deepEqual(await bodiless(server.port, 'POST', '/reload', { authorization }), { status: 202, body: 'reload scheduled' });
      assert.deepEqual(await bodiless(server.port, 'DELETE', '/restart', { authorization }), {
        status: 404,
        body: 'no restarts are scheduled',
      });
      assert.deepEqual(await bodiless(server.port, 'DELETE', '/switchover', { authorization }), {
        status: 200,
        body: 'scheduled switchover deleted',
      });
      assert.deepEqual(await bodiless(server.port, 'POST', '/switchover', { authorization }), {
        status: 400,
        body: 'Switchover could be performed only from a specific leader',
      });
      assert.deepEqual([restarts, reloads], [1, 1]);
    } finally {
      await server.close();
    }
    const { Allowlist } = await import('../../src/api/allowlist.js');
    const denied = await startApiServer({
      ...options,
      allowlist: new Allowlist({ entries: ['10.9.9.9'], includeMembers: false, nowMs: () => 0 }),
    });
    try {
      assert.deepEqual(await bodiless(denied.port, 'POST', '/restart'), { status: 403, body: 'Access is denied' });
      assert.equal(restarts, 1, 'the allowlist refuses before the restart runs');
    } finally {
      await denied.close();
    }
  });
});

describe('the server guards unsafe methods', () => {
  it('requires basic auth when configured, answers 400 for bad bodies, keeps GETs open', async () => {
    const { dcs } = await cluster();
    const server = await startApiServer({
      host: '127.0.0.1',
      port: 0,
      getSnapshot: () => context(dcs).snapshot,
      nowMs: () => 0,
      log: silentLog,
      dcs,
      authentication: { username: 'admin', password: 's3cret' },
    });
    const base = `http://127.0.0.1:${server.port}`;
    try {
      const noAuth = await fetch(`${base}/config`, { method: 'PATCH', body: '{"pause":true}' });
      assert.deepEqual(
        [noAuth.status, await noAuth.text(), noAuth.headers.get('www-authenticate')],
        [401, 'no auth header received', 'Basic realm="Patroni"'],
      );
      const wrong = await fetch(`${base}/config`, {
        method: 'PATCH',
        body: '{"pause":true}',
        headers: { authorization: `Basic ${Buffer.from('admin:nope').toString('base64')}` },
      });
      assert.deepEqual([wrong.status, await wrong.text()], [401, 'not authenticated']);
      const authorization = `Basic ${Buffer.from('admin:s3cret').toString('base64')}`;
      const bad = await fetch(`${base}/config`, { method: 'PATCH', body: '{not json', headers: { authorization } });
      assert.equal(bad.status, 400);
      const ok = await fetch(`${base}/config`, { method: 'PATCH', body: '{"pause":true}', headers: { authorization } });
      assert.equal(ok.status, 200);
      assert.equal((await fetch(`${base}/patroni`)).status, 200);
      const metrics = await (await fetch(`${base}/metrics`)).text();
      assert.match(metrics, /^patroni_primary\{scope="batman",name="node1"\} 1$/m);
      assert.match(metrics, /^# TYPE patroni_postgres_running gauge$/m);
    } finally {
      await server.close();
    }
  });
});
