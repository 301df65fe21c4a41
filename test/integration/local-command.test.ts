// `pgwarden local` on real processes: a typo never wipes data, start refuses while a cluster lives, status reports each
// member, kill and restart a member, stop finds a hand-restarted agent, and SIGTERM during start leaves nothing behind.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rename, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { findClusterProcesses, stopClusterProcesses } from '../../src/local/cluster-processes.js';
import { AGENT_NODE_FLAGS } from '../../src/local/local-cluster.js';
import { isAlive } from '../../src/local/process.js';
import { waitUntil } from '../../src/util/wait-until.js';

const CLI = fileURLToPath(new URL('../../src/bin/pgwarden.js', import.meta.url));
const AGENT = fileURLToPath(new URL('../../src/bin/agent.js', import.meta.url));
/** Two nodes with the system tests' timing: a cluster is healthy within about 15 s. */
const SMALL = ['--nodes', '2', '--ttl', '8', '--loop-wait', '1', '--retry-timeout', '3'];

interface Outcome {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

function local(args: readonly string[], timeoutMs = 120_000): Promise<Outcome> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, 'local', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

const pids = async (dir: string): Promise<number[]> => (await findClusterProcesses(dir)).map((process) => process.pid).sort();
const hasData = (dir: string): boolean => existsSync(join(dir, 'node1', 'data', 'PG_VERSION')) && existsSync(join(dir, 'etcd', 'etcd1'));

describe('pgwarden local on real processes', { timeout: 600_000 }, () => {
  let dir: string;
  const otherDirs: string[] = [];

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pgw-localcmd-'));
    const started = await local(['start', '--background', '--dir', dir, ...SMALL], 240_000);
    assert.equal(started.code, 0, `start failed: ${started.stderr}\n${started.stdout}`);
  });

  after(async () => {
    for (const each of [dir, ...otherDirs]) {
      await stopClusterProcesses(each).catch(() => undefined);
      await rm(each, { recursive: true, force: true });
    }
  });

  it('a typo of status, an unknown subcommand or flag is an error: nothing is stopped, wiped or started', async () => {
    const before = await pids(dir);
    assert.ok(before.length >= 8, `etcd x3, agents, postmasters, fences, proxy: ${before.join(',')}`);
    for (const args of [['stat'], ['bogus'], ['start', '--bckground'], ['start', '--wipe', '--nodse', '2']]) {
      const outcome = await local([...args, '--dir', dir]);
      assert.equal(outcome.code, 1, `${args.join(' ')}: ${outcome.stderr}`);
      assert.match(outcome.stderr, /^Error: (unknown local subcommand|unknown option)/, args.join(' '));
    }
    assert.match((await local(['stat', '--dir', dir])).stderr, /did you mean 'start' or 'status'\?/);
    assert.ok(hasData(dir), 'the data is still there');
    assert.deepEqual(await pids(dir), before, 'every process still runs');
  });

  it('start refuses while the cluster runs, even with --wipe', async () => {
    const before = await pids(dir);
    const outcome = await local(['start', '--background', '--wipe', '--dir', dir, ...SMALL]);
    assert.equal(outcome.code, 1);
    assert.match(outcome.stderr, /is still running: .*etcd1 etcd \(pid \d+, by pid file\).*nothing was started or deleted/);
    assert.ok(hasData(dir));
    assert.deepEqual(await pids(dir), before);
  });

  it("status reports every member's processes and REST state", async () => {
    const outcome = await local(['status', '--dir', dir]);
    assert.equal(outcome.code, 0, outcome.stderr);
    assert.match(outcome.stdout, /^node1 +\d+ +\d+ +(\d+|-) +(primary|master|replica), running/m);
    assert.match(outcome.stdout, /^node2 +\d+ +\d+ +(\d+|-) +(primary|master|replica), running/m);
    assert.match(outcome.stdout, /^etcd3 +running/m);
    assert.match(outcome.stdout, /^proxy1 +running/m);
    // Without the state file (an interrupted start, a deleted file) the members and REST ports come from the directory.
    const stateFile = join(dir, 'cluster-state.json');
    await rename(stateFile, `${stateFile}.away`);
    try {
      const withoutState = await local(['status', '--dir', dir]);
      assert.equal(withoutState.code, 0, withoutState.stderr);
      assert.match(withoutState.stdout, /^node2 +\d+ +\d+ +(\d+|-) +(primary|master|replica), running/m);
      assert.match(withoutState.stdout, /^etcd1 +running/m);
    } finally {
      await rename(`${stateFile}.away`, stateFile);
    }
  });

  it('kill SIGKILLs a member (status then fails naming it) and restart brings it back', async () => {
    const killed = await local(['kill', 'node2', '--dir', dir]);
    assert.equal(killed.code, 0, killed.stderr);
    assert.match(killed.stdout, /^killed node2 with SIGKILL: (agent|postgres) \d+, (agent|postgres) \d+$/m);
    const degraded = await local(['status', '--dir', dir]);
    assert.equal(degraded.code, 1);
    assert.match(degraded.stderr, /degraded: not running: node2 agent, node2 postgres/);
    assert.match(degraded.stdout, /^node2 +- +- +/m);
    assert.equal((await local(['kill', 'node2', '--dir', dir])).code, 1, 'nothing left to kill');
    assert.match((await local(['kill', 'node7', '--dir', dir])).stderr, /no PostgreSQL member named node7 .*members: node1, node2/);
    const restarted = await local(['restart', 'node2', '--dir', dir]);
    assert.equal(restarted.code, 0, restarted.stderr);
    const again = await local(['restart', 'node2', '--dir', dir]);
    assert.match(again.stderr, /node2's agent is running/);
    let last: Outcome | undefined;
    await waitUntil(
      async () => {
        last = await local(['status', '--dir', dir]);
        return last.code === 0 && /^node2 +\d+ +\d+ +(\d+|-) +(primary|master|replica), running/m.test(last.stdout);
      },
      { timeoutMs: 90_000, intervalMs: 1000, describe: 'node2 back and running', lastState: () => last },
    );
  });

  it('stop stops everything, including an agent restarted by hand (no pid file), and start then keeps the data', async () => {
    const agentPidFile = join(dir, 'node1', 'agent.pid');
    const oldAgent = Number(readFileSync(agentPidFile, 'utf8'));
    process.kill(oldAgent, 'SIGKILL');
    await waitUntil(() => !isAlive(oldAgent), { timeoutMs: 5000, describe: 'the old agent to die' });
    // By hand, with a path relative to the cluster directory: found through /proc/<pid>/cmdline and cwd.
    const byHand = spawn(process.execPath, [...AGENT_NODE_FLAGS, AGENT, 'node1/pgwarden.yml'], {
      cwd: dir,
      detached: true,
      stdio: 'ignore',
    });
    byHand.unref();
    const handPid = byHand.pid!;
    await waitUntil(async () => (await findClusterProcesses(dir)).some((process) => process.pid === handPid && process.kind === 'agent'), {
      timeoutMs: 10_000,
      describe: 'the hand-started agent to be found by its command line',
    });
    assert.equal(Number(readFileSync(agentPidFile, 'utf8')), oldAgent, 'the pid file still names the dead agent');
    const running = await pids(dir);
    const stopped = await local(['stop', '--dir', dir]);
    assert.equal(stopped.code, 0, stopped.stderr);
    assert.match(stopped.stdout, new RegExp(`stopping node1 agent \\(pid ${handPid}, by command line\\)`));
    assert.deepEqual(
      running.filter((pid) => isAlive(pid)),
      [],
      'no process of the cluster survives',
    );
    assert.deepEqual(await pids(dir), []);
    const status = await local(['status', '--dir', dir]);
    assert.match(status.stderr, /no process of a local cluster in .* is running/);
    const restart = await local(['start', '--background', '--dir', dir, ...SMALL]);
    assert.equal(restart.code, 1);
    assert.match(restart.stderr, /holds the data of a previous local cluster \(node1, node2\); start refuses to delete it/);
    assert.ok(hasData(dir));
  });

  it('SIGTERM during start stops everything it started', async () => {
    const fresh = await mkdtemp(join(tmpdir(), 'pgw-localsig-'));
    otherDirs.push(fresh);
    const child = spawn(process.execPath, [CLI, 'local', 'start', '--dir', fresh, ...SMALL], { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
    // Interrupted once the agents exist: etcd, agents and (maybe) postmasters are up, the cluster is not healthy yet.
    await waitUntil(() => existsSync(join(fresh, 'node2', 'agent.pid')), { timeoutMs: 60_000, intervalMs: 50, describe: 'agents spawned' });
    const seen = await pids(fresh);
    assert.ok(seen.length >= 3, `processes running before SIGTERM: ${seen.join(',')}`);
    child.kill('SIGTERM');
    const code = await exited;
    assert.notEqual(code, 0, output);
    assert.match(output, /SIGTERM: stopping everything this start started/);
    assert.deepEqual(
      seen.filter((pid) => isAlive(pid)),
      [],
      `survivors of ${seen.join(',')}: ${output}`,
    );
    assert.deepEqual(await pids(fresh), []);
  });
});
