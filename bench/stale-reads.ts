// The stale-read checker at full size (issue 17 point 3): 10,000 insert-then-read rounds in one session through the
// split listener while replay on both replicas is delayed half of the time (recovery_min_apply_delay toggled), and
// the same rounds through the proxy's primary and replica ports, which show the stale reads the split prevents.
// The integration test (test/integration/proxy-split.test.ts) runs 400 rounds; this prints, and exits 1 on a stale
// read through the split listener.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type pg from 'pg';
import { LocalCluster } from '../src/local/local-cluster.js';
import { waitUntil } from '../src/util/wait-until.js';
import { connectSuperuser, sql, waitHealthy } from '../test/kit/cluster-kit.js';
import { DEFAULT_DYNAMIC_CONFIG } from '../test/kit/fixtures.js';
import { checkStaleReads, toggleApplyDelay, type StaleReadResult } from '../test/kit/stale-reads.js';

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '10000' },
    'delay-ms': { type: 'string', default: '300' },
    'period-ms': { type: 'string', default: '1000' },
    'causal-wait': { type: 'string', default: '0.05' },
  },
});

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'pgw-bench-stale-'));
  const cluster = await LocalCluster.start({ dir, timing: DEFAULT_DYNAMIC_CONFIG, scope: 'benchstale', proxies: 0 });
  let stale = 0;
  try {
    const { leader } = await waitHealthy(cluster, 120_000);
    const authFile = join(dir, 'userlist.txt');
    await writeFile(authFile, `"postgres" "${cluster.superuserPassword}"\n`, { mode: 0o600 });
    const proxy = await cluster.startProxy({}, { authFile, settings: { causal_wait: Number(values['causal-wait']) } });
    await waitUntil(
      async () => {
        const status = (await (await fetch(`http://127.0.0.1:${proxy.apiPort}/status`)).json()) as { replicas: { members?: string[] } };
        return status.replicas.members?.length === 2;
      },
      { timeoutMs: 60_000, describe: 'both replicas routable' },
    );
    await sql(cluster, leader, 'CREATE TABLE stale_check (id int primary key)');
    const replicas = cluster.nodes.filter((node) => node.name !== leader);
    const replicaPorts = new Set(replicas.map((node) => node.pgPort));
    const connect = (port: number): Promise<pg.Client> => connectSuperuser(cluster, port);
    const rounds = Number(values.rounds);
    const toggler = toggleApplyDelay(
      cluster,
      replicas.map((node) => node.name),
      { delayMs: Number(values['delay-ms']), periodMs: Number(values['period-ms']) },
    );
    const report = (label: string, result: StaleReadResult): void => {
      const onReplicas = [...result.servedBy].filter(([port]) => replicaPorts.has(port)).reduce((sum, [, n]) => sum + n, 0);
      console.log(
        `${label.padEnd(34)} ${result.rounds} rounds in ${(result.elapsedMs / 1000).toFixed(1)} s: ${result.stale} stale reads; ${onReplicas} reads served by replicas`,
      );
    };
    console.log(
      `insert-then-read, recovery_min_apply_delay toggled between ${values['delay-ms']} ms and 0 every ${values['period-ms']} ms on both replicas; causal_wait ${values['causal-wait']} s`,
    );
    try {
      const split = await connect(proxy.splitPort!);
      const throughSplit = await checkStaleReads({ writer: split, reader: split, table: 'stale_check', firstId: 1, rounds });
      await split.end();
      report('split listener (one session)', throughSplit);
      const [writer, reader] = [await connect(proxy.primaryPort), await connect(proxy.replicaPort)];
      const throughPorts = await checkStaleReads({ writer, reader, table: 'stale_check', firstId: 1_000_000, rounds });
      await Promise.all([writer.end(), reader.end()]);
      report('primary port, then replica port', throughPorts);
      console.log(`apply delay toggled ${toggler.toggles()} times`);
      stale = throughSplit.stale;
    } finally {
      await toggler.stop();
    }
  } finally {
    await cluster.stop();
    await rm(dir, { recursive: true, force: true });
  }
  if (stale > 0) process.exitCode = 1;
}

await main();
