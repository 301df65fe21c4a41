// Shared fixtures of the system tests: the one timing profile, the default dynamic config, and a test cluster that
// is started in a fresh temp dir and torn down by PID, in `after` hooks and when the run is interrupted.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fencePidOf, LocalCluster, type LocalClusterOptions } from '../../src/local/local-cluster.js';
import type { LocalTiming } from '../../src/local/node-config.js';
import { isAlive, processTree, signalAll } from '../../src/local/process.js';

export { DEFAULT_DYNAMIC_CONFIG } from '../../src/local/node-config.js';

/**
 * The timing of every system test: a failover within seconds, and still loop_wait + 2*retry_timeout <= ttl
 * (1 + 2*3 = 7 <= 8), so the agents accept it as a real configuration.
 */
export const FAST_TIMING: LocalTiming = { ttl: 8, loop_wait: 1, retry_timeout: 3 };

const cleanups = new Set<() => Promise<void>>();

const onInterrupt = (signal: NodeJS.Signals): void => {
  // The children are detached (their own process group): without this they would outlive an interrupted run.
  process.stderr.write(`${signal}: stopping ${cleanups.size} test cluster(s) before exiting\n`);
  void Promise.all([...cleanups].map((cleanup) => cleanup().catch(() => undefined))).finally(() => process.exit(130));
};

/** Runs `cleanup` if the test process gets SIGINT or SIGTERM before the returned function is called. */
export function stopOnInterrupt(cleanup: () => Promise<void>): () => void {
  if (cleanups.size === 0) {
    process.on('SIGINT', onInterrupt);
    process.on('SIGTERM', onInterrupt);
  }
  cleanups.add(cleanup);
  return () => {
    cleanups.delete(cleanup);
    if (cleanups.size === 0) {
      process.off('SIGINT', onInterrupt);
      process.off('SIGTERM', onInterrupt);
    }
  };
}

const interruptible = new Map<LocalCluster, () => void>();

/** A LocalCluster in a fresh temp dir with FAST_TIMING and `name` as its scope unless options say otherwise. */
export async function startTestCluster(name: string, options: Omit<LocalClusterOptions, 'dir'> = {}): Promise<LocalCluster> {
  const dir = await mkdtemp(join(tmpdir(), `pgw-${name}-`));
  try {
    const cluster = await LocalCluster.start({ dir, timing: FAST_TIMING, scope: name, ...options });
    interruptible.set(
      cluster,
      stopOnInterrupt(() => cluster.stop()),
    );
    return cluster;
  } catch (error) {
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
}

/**
 * Stops every process of the cluster (proxies, agents, leftover postmasters, etcd) by PID, fails if any survived, and
 * removes its directory (kept when something survived, for the post-mortem). Does nothing when start-up failed.
 */
export async function teardownCluster(cluster: LocalCluster | undefined): Promise<void> {
  if (cluster === undefined) return;
  const postmasters = await Promise.all(cluster.nodes.map((node) => cluster.postmasterPid(node.name)));
  const fences = await Promise.all(cluster.nodes.map((node) => fencePidOf(node.dataDir)));
  const pids = [
    ...fences,
    ...cluster.proxies.map((proxy) => proxy.pid),
    ...cluster.nodes.map((node) => node.agentPid),
    ...postmasters,
    ...cluster.etcd.members.map((member) => member.pid),
  ].filter((pid): pid is number => pid !== undefined);
  // A test that failed while it had processes frozen must not leave them unable to handle SIGTERM: that includes a
  // postmaster's backends, which would otherwise keep the postmaster waiting for them until it is SIGKILLed.
  const trees = await Promise.all(postmasters.map((pid) => (pid === undefined ? Promise.resolve([]) : processTree(pid))));
  signalAll([...pids, ...trees.flat()], 'SIGCONT');
  await cluster.stop();
  interruptible.get(cluster)?.();
  interruptible.delete(cluster);
  const survivors = pids.filter(isAlive);
  assert.deepEqual(survivors, [], `processes still running after the cluster stopped (directory kept: ${cluster.dir})`);
  // PGWARDEN_KEEP_TEST_DIRS=1 keeps the logs of every cluster for a post-mortem.
  if (process.env.PGWARDEN_KEEP_TEST_DIRS !== '1') await rm(cluster.dir, { recursive: true, force: true });
}
