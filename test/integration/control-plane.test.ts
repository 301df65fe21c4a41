// System test of the control plane on real processes: the pgwarden CLI drives switchover and maintenance mode over REST and etcd.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parse, stringify } from 'yaml';
import { pickFreePorts } from '../../src/local/free-port.js';
import type { LocalCluster } from '../../src/local/local-cluster.js';
import { isAlive, killPid, spawnManaged } from '../../src/local/process.js';
import { waitUntil } from '../../src/util/wait-until.js';
import { assertStays } from '../kit/assert-stays.js';
import { agentLogTail, httpStatus, isWritable, runCli, sql, waitHealthy } from '../kit/cluster-kit.js';
import { FAST_TIMING, startTestCluster, teardownCluster } from '../kit/fixtures.js';

const AGENT_ENTRY = fileURLToPath(new URL('../../src/bin/agent.js', import.meta.url));

const cli = (args: readonly string[]): ReturnType<typeof runCli> => runCli(args);

describe('control plane on a 3-node cluster', { timeout: 400_000 }, () => {
  // The callback script lives outside the cluster's directory: it exists before the cluster does.
  let scriptDir: string;
  let cluster: LocalCluster;
  let config: string[];
  let startedCluster: LocalCluster | undefined;

  before(async () => {
    scriptDir = await mkdtemp(join(tmpdir(), 'pgw-control-callbacks-'));
    // The callback logs its parent (the agent) so the test can tell which member called it.
    await writeFile(join(scriptDir, 'callback.sh'), `#!/bin/sh\necho "$PPID $1 $2 $3" >> ${join(scriptDir, 'callbacks.log')}\n`, {
      mode: 0o755,
    });
    const script = join(scriptDir, 'callback.sh');
    // A configuration written for PostgreSQL 12: wal_keep_segments (renamed in 13) and stats_temp_directory (gone in 15).
    startedCluster = await startTestCluster('ctl', {
      callbacks: { on_role_change: script, on_start: script, on_restart: script },
      bootstrapParameters: { wal_keep_segments: 100 },
      parameters: { stats_temp_directory: 'pg_stat_tmp' },
    });
    cluster = startedCluster;
    config = ['-c', cluster.node('node1').configPath];
  });

  after(async () => {
    await teardownCluster(startedCluster);
    await rm(scriptDir, { recursive: true, force: true });
  });

  it('switches over to a named candidate without losing a committed row', async () => {
    const { leader, replicas } = await waitHealthy(cluster, 90_000);
    const candidate = replicas[0]!;
    await sql(cluster, leader, 'CREATE TABLE ctl_rows (id int primary key)');
    await sql(cluster, leader, 'INSERT INTO ctl_rows SELECT generate_series(1, 100)');
    // hot_standby_feedback (on by default) leaves an xmin on the leader's member slots.
    const slotXmins = async (name: string): Promise<string[]> =>
      (
        await sql<{ xmin: string | null }>(
          cluster,
          name,
          "SELECT xmin::text AS xmin FROM pg_replication_slots WHERE slot_type = 'physical'",
        )
      )
        .map((row) => row.xmin)
        .filter((xmin): xmin is string => xmin !== null);
    await waitUntil(async () => (await slotXmins(leader)).length > 0, {
      timeoutMs: 20_000,
      describe: `an xmin on ${leader}'s member slots`,
    });
    const refused = await cli([...config, 'switchover', '--candidate', candidate]);
    assert.equal(refused.code, 1, 'no --force: refused');
    assert.match(refused.stderr, /^Error: .*--force/m);
    const result = await cli([...config, 'switchover', '--candidate', candidate, '--force']);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, new RegExp(`Successfully switched over to "${candidate}"`));
    // The API answers once the candidate holds the lock; promotion follows within its next cycle.
    await waitUntil(() => isWritable(cluster, candidate), { timeoutMs: 15_000, intervalMs: 50, describe: `${candidate} writable` });
    const healthy = await waitHealthy(cluster, 60_000);
    assert.equal(healthy.leader, candidate);
    const rows = await sql<{ count: string }>(cluster, candidate, 'SELECT count(*) FROM ctl_rows');
    assert.equal(rows[0]?.count, '100');
    await waitUntil(async () => (await httpStatus(cluster, leader, '/replica')) === 200, {
      timeoutMs: 15_000,
      describe: `the old leader ${leader} to serve as a replica`,
    });
    // On the old leader, now a replica, no copy of a member slot keeps the xmin it had as primary.
    await waitUntil(async () => (await slotXmins(leader)).length === 0, {
      timeoutMs: 20_000,
      describe: `member slots on ${leader} recreated without xmin`,
    });
    let lines: string[] = [];
    await waitUntil(
      async () => {
        lines = (await readFile(join(scriptDir, 'callbacks.log'), 'utf8').catch(() => '')).split('\n');
        const of = (name: string): string[] =>
          lines.filter((line) => line.startsWith(`${cluster.node(name).agentPid ?? 0} `)).map((line) => line.split(' ').slice(1).join(' '));
        return of(candidate).includes('on_role_change master ctl') && of(leader).includes('on_role_change demoted ctl');
      },
      { timeoutMs: 10_000, describe: 'on_role_change callbacks of both members', lastState: () => lines },
    );
    const history = await cli([...config, 'history']);
    assert.match(history.stdout, new RegExp(`\\|\\s+1 \\|.*\\| ${candidate}\\s+\\|`));
  });

  it('runs a PostgreSQL 12 era configuration on 15: wal_keep_segments as wal_keep_size, stats_temp_directory dropped, both logged', async () => {
    await waitHealthy(cluster, 90_000);
    for (const node of cluster.nodes) {
      const rows = await sql<{ wal_keep_size: string }>(cluster, node.name, 'SHOW wal_keep_size');
      assert.equal(rows[0]?.wal_keep_size, '1600MB', node.name);
      assert.match(
        agentLogTail(cluster, node.name, /wal_keep_segments written as wal_keep_size = 1600MB: renamed in PostgreSQL 13/),
        /wal_keep_size/,
      );
      assert.match(agentLogTail(cluster, node.name, /stats_temp_directory not written: removed in PostgreSQL 15/), /stats_temp_directory/);
    }
  });

  it('rejects impossible switchovers with 412 and changes nothing', async () => {
    const view = await cluster.view();
    const leader = view.leader!.name;
    const response = await fetch(`http://127.0.0.1:${cluster.node(leader).apiPort}/switchover`, {
      method: 'POST',
      body: JSON.stringify({ leader, candidate: 'nobody' }),
    });
    assert.equal(response.status, 412);
    assert.match(await response.text(), /^candidate does not exists: candidate "nobody" is not a member of the cluster/);
    const garbage = await fetch(`http://127.0.0.1:${cluster.node(leader).apiPort}/switchover`, { method: 'POST', body: '{oops' });
    assert.equal(garbage.status, 400);
    assert.equal((await cluster.view()).leader?.name, leader);
  });

  it('in maintenance mode starts a stopped member on restart, and an agent stopped under pause leaves PostgreSQL running', async () => {
    const { leader, replicas } = await waitHealthy(cluster, 60_000);
    const replica = replicas[0]!;
    assert.equal((await cli([...config, 'pause', '--wait'])).code, 0);
    try {
      await cluster.killPostmaster(replica, 'SIGKILL');
      await waitUntil(
        async () => ['crashed', 'stopped'].includes((await cluster.view()).members.find((m) => m.name === replica)?.state ?? ''),
        {
          timeoutMs: 15_000,
          describe: `the crash of ${replica} in its member key`,
        },
      );
      const restarted = await cli([...config, 'restart', 'ctl', replica, '--force']); // patronictl's form: cluster first
      assert.equal(restarted.code, 0, restarted.stderr);
      assert.match(restarted.stdout, /Success: restart on member/);
      await waitUntil(async () => (await httpStatus(cluster, replica, '/replica')) === 200, {
        timeoutMs: 30_000,
        describe: `${replica} running again after the restart under pause`,
      });
      // The leader's agent stops (SIGTERM): under pause its PostgreSQL keeps running and keeps the lock.
      const postmaster = await cluster.postmasterPid(leader);
      await cluster.stopAgent(leader);
      assert.ok(postmaster !== undefined && (await cluster.postmasterPid(leader)) === postmaster, 'the primary is still running');
      assert.match(agentLogTail(cluster, leader, /not shut down because of running in maintenance mode/), /maintenance mode/);
      assert.equal(await isWritable(cluster, leader), true);
      cluster.startAgent(leader);
      await waitUntil(async () => (await httpStatus(cluster, leader, '/primary')) === 200, {
        timeoutMs: 30_000,
        describe: 'the leader agent back',
      });
    } finally {
      await cli([...config, 'resume', '--wait']);
    }
    await waitHealthy(cluster, 60_000);
  });

  it('in maintenance mode does not restart a crashed replica, and does after resume', async () => {
    const view = await cluster.view();
    const replica = view.members.find((member) => member.name !== view.leader?.name)!.name;
    const paused = await cli([...config, 'pause', '--wait']);
    assert.equal(paused.code, 0, paused.stderr);
    assert.match((await cli([...config, 'list'])).stdout, / Maintenance mode: on/);
    await cluster.killPostmaster(replica, 'SIGKILL');
    // The agent has seen the crash once its member key says so; a paused agent decided then to leave it alone.
    let state: string | undefined;
    await waitUntil(
      async () => {
        state = (await cluster.view()).members.find((member) => member.name === replica)?.state;
        return state === 'crashed' || state === 'stopped';
      },
      { timeoutMs: 15_000, describe: `the member key of ${replica} to show its crash`, lastState: () => state },
    );
    // And it keeps leaving it alone over the next cycles.
    await assertStays(async () => (await cluster.postmasterPid(replica)) === undefined, {
      forMs: 3 * FAST_TIMING.loop_wait * 1000,
      intervalMs: 200,
      describe: `paused: no postmaster on ${replica} after its crash`,
    });
    const resumed = await cli([...config, 'resume', '--wait']);
    assert.equal(resumed.code, 0, resumed.stderr);
    await waitUntil(async () => (await httpStatus(cluster, replica, '/replica')) === 200, {
      timeoutMs: 30_000,
      intervalMs: 200,
      describe: `${replica} restarted after resume`,
    });
  });

  it('applies dynamic PostgreSQL parameters by reload, and flags restart-only ones as pending_restart', async () => {
    const edited = await cli([...config, 'edit-config', '--pg', 'work_mem=12MB', '--pg', 'max_connections=101', '--force']);
    assert.equal(edited.code, 0, edited.stderr);
    assert.match(edited.stdout, /\+\s+work_mem: 12MB/);
    for (const node of cluster.nodes) {
      await waitUntil(async () => (await sql<{ work_mem: string }>(cluster, node.name, 'SHOW work_mem'))[0]?.work_mem === '12MB', {
        timeoutMs: 20_000,
        intervalMs: 200,
        describe: `work_mem reloaded on ${node.name}`,
      });
      const status = await waitUntil(
        async () => {
          const document = (await (await fetch(`http://127.0.0.1:${node.apiPort}/patroni`)).json()) as { pending_restart?: boolean };
          return document.pending_restart === true ? document : undefined;
        },
        { timeoutMs: 20_000, intervalMs: 200, describe: `pending_restart on ${node.name}` },
      );
      assert.equal(status.pending_restart, true);
    }
    assert.match((await cli([...config, 'list'])).stdout, /Pending restart/);
  });

  it('restarts members and re-clones a replica on request', async () => {
    const { leader, replicas } = await waitHealthy(cluster, 60_000);
    const replica = replicas[0]!;
    const beforeReplica = await cluster.postmasterPid(replica);
    const beforeLeader = await cluster.postmasterPid(leader);
    const restarted = await cli([...config, 'restart', replica, leader, '--force']);
    assert.equal(restarted.code, 0, restarted.stdout + restarted.stderr);
    assert.match(restarted.stdout, new RegExp(`Success: restart on member ${replica}`));
    assert.match(restarted.stdout, new RegExp(`Success: restart on member ${leader}`));
    assert.notEqual(await cluster.postmasterPid(replica), beforeReplica);
    assert.notEqual(await cluster.postmasterPid(leader), beforeLeader);
    assert.equal((await waitHealthy(cluster, 60_000)).leader, leader, 'a restart is not a failover');
    const refused = await fetch(`http://127.0.0.1:${cluster.node(leader).apiPort}/reinitialize`, { method: 'POST', body: '{}' });
    assert.deepEqual([refused.status, await refused.text()], [503, 'I am the leader, can not reinitialize']);
    await sql(cluster, leader, 'CREATE TABLE reinit_marker (id int)');
    const reinit = await cli([...config, 'reinit', replica, '--force', '--wait']);
    assert.equal(reinit.code, 0, reinit.stdout + reinit.stderr);
    assert.match(reinit.stdout, new RegExp(`Reinitialize is completed on: ${replica}`));
    await waitHealthy(cluster, 60_000);
    await waitUntil(async () => (await sql(cluster, replica, "SELECT 1 FROM pg_class WHERE relname = 'reinit_marker'")).length === 1, {
      timeoutMs: 20_000,
      intervalMs: 200,
      describe: `the marker table on the re-cloned ${replica}`,
    });
  });

  it('runs a scheduled restart when it is due, and shows it until then', async () => {
    const { replicas } = await waitHealthy(cluster, 60_000);
    const replica = replicas[0]!;
    const before = await cluster.postmasterPid(replica);
    const at = new Date(Date.now() + 4000).toISOString();
    const scheduled = await cli([...config, 'restart', replica, '--scheduled', at, '--force']);
    assert.equal(scheduled.code, 0, scheduled.stdout + scheduled.stderr);
    assert.match(scheduled.stdout, new RegExp(`Success: restart scheduled on member ${replica}`));
    const scheduledRestart = async (): Promise<unknown> =>
      (await cluster.view()).members.find((member) => member.name === replica)?.scheduled_restart;
    await waitUntil(async () => (await scheduledRestart()) !== undefined, {
      timeoutMs: 10_000,
      describe: 'the schedule in the member key',
    });
    assert.match((await cli([...config, 'list', '-e'])).stdout, /Scheduled restart/);
    await waitUntil(
      async () => {
        const pid = await cluster.postmasterPid(replica);
        return pid !== undefined && pid !== before;
      },
      { timeoutMs: 30_000, intervalMs: 200, describe: `the scheduled restart of ${replica} to happen` },
    );
    await waitUntil(async () => (await scheduledRestart()) === undefined, { timeoutMs: 10_000, describe: 'the schedule to be cleared' });
  });

  it('reloads the local config (tags) on POST /reload', async () => {
    const view = await cluster.view();
    const replica = view.members.find((member) => member.name !== view.leader?.name)!.name;
    const node = cluster.node(replica);
    const local = parse(await readFile(node.configPath, 'utf8')) as { tags: Record<string, unknown> };
    local.tags.zone = 'eu1';
    await writeFile(node.configPath, stringify(local));
    const response = await fetch(`http://127.0.0.1:${node.apiPort}/reload`, { method: 'POST', body: '{}' });
    assert.deepEqual([response.status, await response.text()], [202, 'reload scheduled']);
    await waitUntil(async () => (await httpStatus(cluster, replica, '/replica?tag_zone=eu1')) === 200, {
      timeoutMs: 10_000,
      describe: 'the new tag to be served',
    });
    await waitUntil(async () => (await cluster.view()).members.find((member) => member.name === replica)?.tags?.zone === 'eu1', {
      timeoutMs: 10_000,
      describe: 'the new tag in the member key',
    });
  });

  it('runs SQL on the leader or a replica with query', async () => {
    const onLeader = await cli([...config, 'query', '-c', 'SELECT pg_is_in_recovery() AS standby, 40 + 2 AS answer']);
    assert.equal(onLeader.code, 0, onLeader.stderr);
    assert.equal(onLeader.stdout.trim(), 'standby\tanswer\nf\t42');
    const asJson = await cli([...config, 'query', '--format', 'json', '-c', 'SELECT 40 + 2 AS answer']);
    assert.deepEqual(JSON.parse(asJson.stdout), [{ answer: '42' }]);
    const onReplica = await cli([...config, 'query', '-r', 'replica', '-c', 'SELECT pg_is_in_recovery()']);
    assert.equal(onReplica.stdout.trim().split('\n')[1], 't');
    const failing = await cli([...config, 'query', '-c', 'SELECT nosuch']);
    assert.equal(failing.code, 1);
    assert.match(failing.stderr, /^Error: query on node\d failed: ERROR: +column "nosuch" does not exist/);
  });

  it('takes PATRONI_* variables over the file, and runs an agent configured by the environment alone', async () => {
    const { leader } = await waitHealthy(cluster, 60_000);
    const member = cluster.nodes.find((node) => node.name !== leader)!.name;
    const api = `http://127.0.0.1:${cluster.node(member).apiPort}`;
    const restartOn = async (environment: Record<string, string>, withoutConfigFile: boolean): Promise<void> => {
      // SIGKILL leaves PostgreSQL running: the new agent adopts it.
      cluster.killAgent(member);
      await waitUntil(async () => (await fetch(`${api}/liveness`).catch(() => undefined)) === undefined, {
        timeoutMs: 10_000,
        describe: 'the old agent gone',
      });
      cluster.startAgent(member, { environment, withoutConfigFile });
      await waitUntil(async () => (await fetch(`${api}/replica`).catch(() => undefined))?.status === 200, {
        timeoutMs: 60_000,
        describe: `${member} serving as a replica again`,
        lastState: () => agentLogTail(cluster, member, /./, 12),
      });
    };
    // Over the file: REST API credentials from the environment protect the mutating endpoints.
    await restartOn({ PATRONI_RESTAPI_USERNAME: 'ops', PATRONI_RESTAPI_PASSWORD: 'env-secret' }, false);
    assert.equal((await fetch(`${api}/reload`, { method: 'POST' })).status, 401);
    const authorized = await fetch(`${api}/reload`, {
      method: 'POST',
      headers: { authorization: `Basic ${Buffer.from('ops:env-secret').toString('base64')}` },
    });
    assert.ok(authorized.status < 300, `authorized reload: ${authorized.status}`);
    assert.match(agentLogTail(cluster, member, /configuration from the environment/), /PATRONI_RESTAPI_PASSWORD/);
    // No file at all: the whole document in PATRONI_CONFIGURATION, the member name from PATRONI_NAME.
    const document = await readFile(cluster.node(member).configPath, 'utf8');
    await restartOn(
      { PATRONI_CONFIGURATION: document.replace(/^name: .*$/m, 'name: placeholder'), PATRONI_NAME: member, PATRONI_LOG_TYPE: 'plain' },
      true,
    );
    assert.match(agentLogTail(cluster, member, /configuration from the environment, over PATRONI_CONFIGURATION/), /PATRONI_NAME/);
    // log.type plain (here from PATRONI_LOG_TYPE): Patroni's line layout, which log greps and alerts match.
    await waitUntil(
      () =>
        /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO: no action\. I am \(node\d\), a secondary, and following a leader \(node\d\)/m.test(
          agentLogTail(cluster, member, /INFO: no action/),
        ),
      { timeoutMs: 15_000, describe: 'a plain Patroni-style log line', lastState: () => agentLogTail(cluster, member, /./, 5) },
    );
    // The member key is written under PATRONI_NAME (not the document's name) and streams again.
    const healthy = await waitHealthy(cluster, 60_000);
    assert.equal(healthy.leader, leader);
    await restartOn({}, false);
  });

  it('with primary_start_timeout 0 fails a crashed primary over to a replica instead of restarting it', async () => {
    await waitHealthy(cluster, 60_000);
    const leader = (await cluster.view()).leader!.name;
    const patch = (name: string, body: unknown): Promise<Response> =>
      fetch(`http://127.0.0.1:${cluster.node(name).apiPort}/config`, { method: 'PATCH', body: JSON.stringify(body) });
    assert.equal((await patch(leader, { primary_start_timeout: 0 })).status, 200);
    // The leader acts on the new value from its next cycle on: wait until its member key was written after the change.
    const changedAt = Date.now();
    await waitUntil(async () => (await cluster.view()).config?.primary_start_timeout === 0, { timeoutMs: 10_000, describe: 'the config' });
    await waitUntil(async () => Date.now() - changedAt > 2 * FAST_TIMING.loop_wait * 1000, { timeoutMs: 10_000, describe: 'two cycles' });
    await cluster.killPostmaster(leader);
    // Two paths, both primary_start_timeout 0: the crash seen with a replica ready to take over, or (a replica momentarily
    // not a candidate, seen in CI under load) a start as primary begun and given up at once when the next cycle finds one.
    const handingOver = /Failing over \(primary_start_timeout is 0\)|primary start has timed out: failing over to a replica/;
    await waitUntil(async () => handingOver.test(agentLogTail(cluster, leader, handingOver)), {
      timeoutMs: 20_000,
      describe: `${leader} giving the lock up after the crash`,
      lastState: () => agentLogTail(cluster, leader, /"actions"|postmaster|task/, 25),
    });
    const next = await waitUntil(
      async () => {
        const current = (await cluster.view()).leader?.name;
        return current !== undefined && current !== leader && (await isWritable(cluster, current)) ? current : undefined;
      },
      { timeoutMs: 30_000, describe: 'a replica promoted in place of the crashed primary' },
    );
    const healthy = await waitHealthy(cluster, 90_000);
    assert.equal(healthy.leader, next);
    assert.ok(healthy.replicas.includes(leader), `${leader} rejoined as a replica`);
    assert.equal((await patch(next, { primary_start_timeout: null })).status, 200);
  });

  it('does not turn a failing bootstrap.method into initdb: a new cluster is not created, and the log says why', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'pgw-method-'));
    // The postgres user must reach the data dir below it (the agent refuses a data dir it cannot reach, at start).
    await chmod(dir, 0o711);
    const [apiPort, pgPort] = await pickFreePorts(2);
    const config = parse(await readFile(cluster.node('node1').configPath, 'utf8')) as Record<string, Record<string, unknown>>;
    const configPath = join(dir, 'pgwarden.yml');
    await writeFile(
      configPath,
      stringify({
        ...config,
        scope: 'ctl-method',
        name: 'lonely',
        restapi: { listen: `127.0.0.1:${apiPort}`, connect_address: `127.0.0.1:${apiPort}` },
        bootstrap: { ...config.bootstrap, method: 'pgbackrest', pgbackrest: { command: 'true' } },
        postgresql: {
          ...config.postgresql,
          listen: `127.0.0.1:${pgPort}`,
          connect_address: `127.0.0.1:${pgPort}`,
          data_dir: join(dir, 'data'),
          pgpass: join(dir, 'pgpass'),
        },
      }),
      { mode: 0o600 },
    );
    const logFile = join(dir, 'agent.log');
    const agent = spawnManaged({ command: process.execPath, args: [AGENT_ENTRY, configPath], logFile });
    try {
      // `true` exits 0 without making a cluster: the bootstrap fails and is retried, never replaced by initdb.
      const refusal = /bootstrap\.method pgbackrest exited 0 but left no cluster/;
      await waitUntil(async () => refusal.test(await readFile(logFile, 'utf8').catch(() => '')), {
        timeoutMs: 20_000,
        describe: 'the refusal in the agent log',
      });
      const status = (await (await fetch(`http://127.0.0.1:${apiPort}/patroni`)).json()) as { role?: string };
      assert.equal(status.role, 'uninitialized');
      assert.equal(existsSync(join(dir, 'data', 'PG_VERSION')), false, 'initdb never ran');
    } finally {
      killPid(agent.pid, 'SIGKILL');
      // The child is unref'd: wait on the PID (a timer), not on its exit event, which alone keeps no loop alive.
      await waitUntil(() => !isAlive(agent.pid), { timeoutMs: 10_000, describe: 'the agent gone' });
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('fails with a one-line error when etcd is unreachable or flags are wrong', async () => {
    const bad = await cli(['-c', '/nonexistent.yml', 'list']);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /^Error: cannot read config file \/nonexistent\.yml/);
    const wrongFlag = await cli([...config, 'list', '--format', 'xml']);
    assert.notEqual(wrongFlag.code, 0);
    assert.match(wrongFlag.stderr, /argument 'xml' is invalid/);
  });
});
