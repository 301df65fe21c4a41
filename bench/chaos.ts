// Longer chaos runs: several seeds, synchronous and asynchronous, each a fresh local cluster; prints one row per
// run and the totals (faults, lost writes, dual-writable periods, recovery time).
import { parseArgs } from 'node:util';
import { kindSummaryTable, summarizeByKind } from '../src/chaos/checker.js';
import { runChaos, stopActiveClusters, type ChaosReport } from '../src/chaos/runner.js';
import { ALL_FAULT_KINDS, type FaultKind } from '../src/chaos/schedule.js';

const { values } = parseArgs({
  options: {
    seeds: { type: 'string', default: '3' },
    faults: { type: 'string', default: '8' },
    'first-seed': { type: 'string', default: '100' },
    /** Comma-separated fault kinds (default: those the network allows), e.g. blackhole-primary,kill-etcd-leader. */
    kinds: { type: 'string' },
    network: { type: 'string', default: 'auto' },
    /** sync, async or both (default). */
    mode: { type: 'string', default: 'both' },
  },
});
const kinds = values.kinds?.split(',').map((kind) => kind.trim());
const unknown = kinds?.filter((kind) => !(ALL_FAULT_KINDS as readonly string[]).includes(kind)) ?? [];
if (unknown.length > 0) throw new Error(`unknown fault kinds ${unknown.join(', ')}; choose from ${ALL_FAULT_KINDS.join(', ')}`);
const network = values.network as 'auto' | 'loopback' | 'netns' | 'relay';
const modes = { sync: [true], async: [false], both: [true, false] }[values.mode as 'sync' | 'async' | 'both'] ?? [true, false];

process.once('uncaughtException', (error) => {
  console.error(error);
  void stopActiveClusters().finally(() => process.exit(1));
});

async function main(): Promise<void> {
  const reports: ChaosReport[] = [];
  const first = Number(values['first-seed']);
  for (let seed = first; seed < first + Number(values.seeds); seed++) {
    for (const isSync of modes) {
      reports.push(
        await runChaos({
          seed,
          faults: Number(values.faults),
          isSync,
          network,
          ...(kinds !== undefined ? { kinds: kinds as FaultKind[] } : {}),
          out: (line) => console.log(line),
        }),
      );
    }
  }
  const recoveries = reports
    .flatMap((report) => report.faults.map((fault) => fault.recoveryMs))
    .filter((ms): ms is number => ms !== undefined)
    .sort((a, b) => a - b);
  console.log(
    '\n| seed | mode | network | faults | acknowledged | lost (WAL bytes; bound in async) | dual-writable | divergent | converged | reads ok / failed |',
  );
  console.log('|---|---|---|---|---|---|---|---|---|---|');
  for (const report of reports) {
    const loss = `${report.lost.length} (${report.lostWalBytes}${report.isSync ? '' : ` of ${report.maximumLagOnFailover}`})`;
    console.log(
      `| ${report.seed} | ${report.isSync ? 'sync' : 'async'} | ${report.network} | ${report.faults.length} | ${report.acknowledged} | ${loss} | ${report.dualWritable} | ${report.divergentMembers.length} | ${report.converged ? 'yes' : 'NO'} | ${report.reads.ok} / ${report.reads.failed} |`,
    );
  }
  console.log(
    `\ntotal: ${reports.reduce((sum, report) => sum + report.faults.length, 0)} faults, lost (sync) ${reports.filter((r) => r.isSync).reduce((sum, r) => sum + r.lost.length, 0)}, lost (async) ${reports.filter((r) => !r.isSync).reduce((sum, r) => sum + r.lost.length, 0)}, dual-writable ${reports.reduce((sum, r) => sum + r.dualWritable, 0)}`,
  );
  console.log(
    `longest write pause per fault (what the application saw, through the proxy): median ${recoveries[Math.floor((recoveries.length - 1) / 2)] ?? '-'} ms, max ${recoveries.at(-1) ?? '-'} ms`,
  );
  console.log('\nper fault kind, over every run:');
  for (const line of kindSummaryTable(summarizeByKind(reports.flatMap((report) => report.faults)))) console.log(line);
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.stack : error);
  process.exitCode = 1;
});
