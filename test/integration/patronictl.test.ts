// Interop: Debian's patronictl 3.0.2, pointed at a pgwarden cluster, reads the same state and switches over through our REST API.
import assert from 'node:assert/strict';
import { isDeepStrictEqual } from 'node:util';
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { LocalCluster } from '../../src/local/local-cluster.js';
import { waitHealthy } from '../kit/cluster-kit.js';

const PGWARDEN = fileURLToPath(new URL('../../src/bin/pgwarden.js', import.meta.url));

function run(command: string, args: readonly string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(command, [...args], { timeout: 90_000 }, (error, stdout, stderr) =>
      resolve({ code: error === null ? 0 : typeof error.code === 'number' ? error.code : 1, stdout, stderr }),
    );
  });
}
const patronictl = (config: string, ...args: string[]) => run('patronictl', ['-c', config, ...args]);
const pgwarden = (config: string, ...args: string[]) => run(process.execPath, [PGWARDEN, '-c', config, ...args]);

describe("Patroni's patronictl against pgwarden", { timeout: 300_000 }, () => {
  let dir: string;
  let cluster: LocalCluster;
  let config: string;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pgw-patronictl-'));
    cluster = await LocalCluster.start({ dir, timing: { ttl: 8, loop_wait: 1, retry_timeout: 3 }, scope: 'interop' });
    config = cluster.node('node1').configPath;
  });

  after(async () => {
    await cluster.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('lists the same members and shows the same config as pgwarden', async () => {
    await waitHealthy(cluster, 90_000);
    // The two tools read etcd a moment apart, and a replica's published lag can change in between (a fresh replica
    // catching up): compare a few times until both saw the same keys; a real difference persists and fails.
    let theirs = await patronictl(config, 'list', '-f', 'json');
    let ours = await pgwarden(config, 'list', '-f', 'json');
    let theirTable = await patronictl(config, 'list');
    let ourTable = await pgwarden(config, 'list');
    const sameJson = (a: string, b: string): boolean => {
      try {
        return isDeepStrictEqual(JSON.parse(a), JSON.parse(b));
      } catch {
        return false;
      }
    };
    for (
      let attempt = 0;
      attempt < 10 && (!sameJson(theirs.stdout, ours.stdout) || theirTable.stdout.trim() !== ourTable.stdout.trim());
      attempt++
    ) {
      await new Promise((resolve) => setTimeout(resolve, 500));
      [theirs, ours] = [await patronictl(config, 'list', '-f', 'json'), await pgwarden(config, 'list', '-f', 'json')];
      [theirTable, ourTable] = [await patronictl(config, 'list'), await pgwarden(config, 'list')];
    }
    assert.equal(theirs.code, 0, theirs.stderr);
    assert.deepEqual(JSON.parse(theirs.stdout), JSON.parse(ours.stdout));
    assert.equal(theirTable.stdout.trim(), ourTable.stdout.trim());
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
    const paused = await patronictl(config, 'pause', '--wait');
    assert.equal(paused.code, 0, paused.stderr);
    assert.match(paused.stdout, /Success: cluster management is paused/);
    assert.match((await pgwarden(config, 'list')).stdout, / Maintenance mode: on/);
    const resumed = await patronictl(config, 'resume', '--wait');
    assert.match(resumed.stdout, /Success: cluster management is resumed/);
  });
});
