// Interop: Debian's patronictl 3.0.2, pointed at a pgwarden cluster, reads the same state and switches over through our REST API.
import assert from 'node:assert/strict';
import { isDeepStrictEqual } from 'node:util';
import { execFile } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import type { LocalCluster } from '../../src/local/local-cluster.js';
import { isWaitTimeout, waitUntil } from '../../src/util/wait-until.js';
import { waitHealthy } from '../kit/cluster-kit.js';
import { startTestCluster, teardownCluster } from '../kit/fixtures.js';

const PGWARDEN = fileURLToPath(new URL('../../src/bin/pgwarden.js', import.meta.url));

function run(command: string, args: readonly string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(command, [...args], { timeout: 90_000 }, (error, stdout, stderr) =>
      resolve({ code: error === null ? 0 : typeof error.code === 'number' ? error.code : 1, stdout, stderr }),
    );
  });
}
interface Listing {
  readonly theirs: { code: number; stdout: string; stderr: string };
  readonly ours: { code: number; stdout: string; stderr: string };
  readonly theirTable: string;
  readonly ourTable: string;
}

const patronictl = (config: string, ...args: string[]) => run('patronictl', ['-c', config, ...args]);
const pgwarden = (config: string, ...args: string[]) => run(process.execPath, [PGWARDEN, '-c', config, ...args]);

describe("Patroni's patronictl against pgwarden", { timeout: 300_000 }, () => {
  let cluster: LocalCluster;
  let started: LocalCluster | undefined;
  let config: string;

  before(async () => {
    // REST credentials, as `pgwarden local start` generates them: patronictl must send restapi.authentication for
    // switchover and pause. (etcd stays plain here: this host's Debian patronictl cannot do https without python3-idna.)
    // A proxy too: its proxies/<name> record under the scope (and the replicas' lag_seconds) must not disturb patronictl.
    started = await startTestCluster('interop', { restAuth: true, proxies: 1 });
    cluster = started;
    config = cluster.node('node1').configPath;
  });

  after(() => teardownCluster(started));

  it('lists the same members and shows the same config as pgwarden', async () => {
    await waitHealthy(cluster, 90_000);
    await waitUntil(async () => (await cluster.view()).proxies?.length === 1, {
      timeoutMs: 15_000,
      describe: "the proxy's record under the scope",
    });
    // The two tools read etcd a moment apart, and a replica's published lag can change in between (a fresh replica
    // catching up): compare a few times until both saw the same keys; a real difference persists and fails.
    const sameJson = (a: string, b: string): boolean => {
      try {
        return isDeepStrictEqual(JSON.parse(a), JSON.parse(b));
      } catch {
        return false;
      }
    };
    const read = async (): Promise<Listing> => ({
      theirs: await patronictl(config, 'list', '-f', 'json'),
      ours: await pgwarden(config, 'list', '-f', 'json'),
      theirTable: (await patronictl(config, 'list')).stdout.trim(),
      ourTable: (await pgwarden(config, 'list')).stdout.trim(),
    });
    let last: Listing | undefined;
    let isDone = false;
    await waitUntil(
      async () => {
        const listing = await read();
        // A read still running when the wait gave up must not change what the asserts below look at.
        if (!isDone) last = listing;
        return sameJson(listing.theirs.stdout, listing.ours.stdout) && listing.theirTable === listing.ourTable;
      },
      { timeoutMs: 30_000, intervalMs: 500, describe: 'patronictl and pgwarden to list the same members' },
    ).catch((error: unknown) => {
      // The asserts below show the difference if the two never agreed.
      if (!isWaitTimeout(error)) throw error;
    });
    isDone = true;
    assert.ok(last !== undefined, 'no listing finished within 30 s');
    const { theirs, ours, theirTable, ourTable } = last;
    assert.equal(theirs.code, 0, theirs.stderr);
    assert.deepEqual(JSON.parse(theirs.stdout), JSON.parse(ours.stdout));
    assert.equal(theirTable, ourTable);
    assert.deepEqual(parse((await patronictl(config, 'show-config')).stdout), parse((await pgwarden(config, 'show-config')).stdout));
  });

  it('switches over through the pgwarden REST API and shows the same history', async () => {
    const { leader, replicas } = await waitHealthy(cluster, 60_000);
    const candidate = replicas[1]!;
    const result = await patronictl(config, 'switchover', '--leader', leader, '--candidate', candidate, '--force');
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, new RegExp(`Successfully switched over to "${candidate}"`));
    const healthy = await waitHealthy(cluster, 60_000);
    assert.equal(healthy.leader, candidate);
    assert.equal((await patronictl(config, 'history')).stdout.trim(), (await pgwarden(config, 'history')).stdout.trim());
  });

  it('pauses and resumes the cluster', async () => {
    // pause --wait waits for every member to acknowledge: start from a cluster whose members all run.
    await waitHealthy(cluster, 60_000);
    const paused = await patronictl(config, 'pause', '--wait');
    assert.equal(paused.code, 0, paused.stderr);
    assert.match(paused.stdout, /Success: cluster management is paused/, paused.stdout + paused.stderr);
    const listed = await pgwarden(config, 'list');
    assert.match(listed.stdout, / Maintenance mode: on/, listed.stdout + listed.stderr);
    const resumed = await patronictl(config, 'resume', '--wait');
    assert.match(resumed.stdout, /Success: cluster management is resumed/, resumed.stdout + resumed.stderr);
  });
});
