// Split listener benchmark on a real local cluster (issue 17): pgbench -S direct to the primary vs through the split
// listener (transaction pooling, reads spread to replicas), interleaved; the share of reads replicas served; and
// pgbench tpcb-like through the split listener (writes to the primary, read-your-writes floors), with its errors.
import { execFile, execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs, promisify } from 'node:util';
import { LocalCluster } from '../src/local/local-cluster.js';
import { waitUntil } from '../src/util/wait-until.js';
import { commitsPerMember, waitHealthy } from '../test/kit/cluster-kit.js';
import { DEFAULT_DYNAMIC_CONFIG } from '../test/kit/fixtures.js';

const run = promisify(execFile);
const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '10' },
    clients: { type: 'string', default: '8' },
    rounds: { type: 'string', default: '2' },
    'pool-size': { type: 'string', default: '8' },
  },
});
const PGBENCH = '/usr/lib/postgresql/15/bin/pgbench';

async function pgbench(port: number, password: string, args: string[]): Promise<{ tps: number; failed: string }> {
  const { stdout } = await run(PGBENCH, ['-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', ...args, 'postgres'], {
    env: { ...process.env, PGPASSWORD: password },
    maxBuffer: 16 * 1024 * 1024,
  });
  return {
    tps: Number(/tps = ([\d.]+) \(without initial connection time\)/.exec(stdout)?.[1] ?? Number.NaN),
    failed: /number of failed transactions: (\d+)/.exec(stdout)?.[1] ?? '0',
  };
}

const median = (numbers: number[]): number => [...numbers].sort((a, b) => a - b)[Math.floor(numbers.length / 2)]!;

const CLOCK_TICKS = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());

/** A process's user and system CPU seconds so far (/proc/<pid>/stat fields 14 and 15). */
function cpuSeconds(pid: number): { user: number; system: number } {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return { user: Number(fields[11]) / CLOCK_TICKS, system: Number(fields[12]) / CLOCK_TICKS };
}

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'pgw-benchsplit-'));
  const cluster = await LocalCluster.start({ dir, timing: DEFAULT_DYNAMIC_CONFIG, scope: 'benchsplit', proxies: 0 });
  try {
    const { leader } = await waitHealthy(cluster, 120_000);
    const password = cluster.superuserPassword;
    const authFile = join(dir, 'userlist.txt');
    await writeFile(authFile, `"postgres" "${password}"\n`, { mode: 0o600 });
    const proxy = await cluster.startProxy({}, { authFile, settings: { pool_size: Number(values['pool-size']) } });
    await waitUntil(
      async () => {
        const status = (await (await fetch(`http://127.0.0.1:${proxy.apiPort}/status`)).json()) as { replicas: { members?: string[] } };
        return status.replicas.members?.length === 2;
      },
      { timeoutMs: 60_000, describe: 'both replicas routable' },
    );
    await pgbench(cluster.node(leader).pgPort, password, ['-i', '-s', '10', '-q']);
    const args = ['-c', values.clients, '-j', '2', '-T', values.seconds, '-n'];
    const targets = { direct: cluster.node(leader).pgPort, split: proxy.splitPort! };
    const results: Record<string, number[]> = { direct: [], split: [] };
    // On a shared machine tps swings with other load; the proxy's own CPU per transaction is the steadier figure.
    const cpuPerTransaction: { user: number; system: number }[] = [];
    console.log(
      `pgbench -S ${args.join(' ')} (scale 10, simple protocol), ${values.rounds} interleaved rounds; pool_size ${values['pool-size']}`,
    );
    let replicaShare = '';
    for (let round = 0; round < Number(values.rounds); round++) {
      for (const [name, port] of Object.entries(targets)) {
        const before = await commitsPerMember(cluster);
        const cpuBefore = cpuSeconds(proxy.pid!);
        const { tps } = await pgbench(port, password, ['-S', ...args]);
        const cpuAfter = cpuSeconds(proxy.pid!);
        results[name]!.push(tps);
        if (name === 'split') {
          const after = await commitsPerMember(cluster);
          const delta = cluster.nodes.map((node) => [node.name, after.get(node.name)! - before.get(node.name)!] as const);
          const total = delta.reduce((sum, [, n]) => sum + n, 0);
          const replicas = delta.filter(([member]) => member !== leader).reduce((sum, [, n]) => sum + n, 0);
          replicaShare = `${((100 * replicas) / total).toFixed(1)} % of transactions on replicas (${delta.map(([m, n]) => `${m}: ${n}`).join(', ')})`;
          const transactions = tps * Number(values.seconds);
          cpuPerTransaction.push({
            user: (1e6 * (cpuAfter.user - cpuBefore.user)) / transactions,
            system: (1e6 * (cpuAfter.system - cpuBefore.system)) / transactions,
          });
        }
        const cpu = name === 'split' ? cpuPerTransaction.at(-1)! : undefined;
        console.log(
          `  round ${round + 1} ${name}: ${tps.toFixed(0)} tps${cpu === undefined ? '' : `, proxy CPU ${cpu.user.toFixed(0)} µs user + ${cpu.system.toFixed(0)} µs system per transaction`} (load average ${loadavg()[0]!.toFixed(1)})`,
        );
      }
    }
    const direct = median(results.direct!);
    const split = median(results.split!);
    console.log(
      `select-only median: direct ${direct.toFixed(0)} tps, split ${split.toFixed(0)} tps (${(split / direct).toFixed(2)}x of direct)`,
    );
    console.log(
      `split proxy CPU per transaction, median: ${median(cpuPerTransaction.map((cpu) => cpu.user)).toFixed(0)} µs user + ${median(cpuPerTransaction.map((cpu) => cpu.system)).toFixed(0)} µs system`,
    );
    console.log(`split select-only, last round: ${replicaShare}`);
    // The same text every time: the classifier's parse cache answers, which shows what parsing costs above.
    const script = join(dir, 'fixed.sql');
    await writeFile(script, 'SELECT abalance FROM pgbench_accounts WHERE aid = 4242;\n');
    const fixedDirect = await pgbench(targets.direct, password, ['-f', script, ...args]);
    const fixedSplit = await pgbench(targets.split, password, ['-f', script, ...args]);
    console.log(
      `one repeated SELECT text: direct ${fixedDirect.tps.toFixed(0)} tps, split ${fixedSplit.tps.toFixed(0)} tps (${(fixedSplit.tps / fixedDirect.tps).toFixed(2)}x)`,
    );
    const tpcb = await pgbench(proxy.splitPort!, password, args);
    console.log(`tpcb-like through the split listener: ${tpcb.tps.toFixed(0)} tps, ${tpcb.failed} failed transactions`);
  } finally {
    await cluster.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
