// A short seeded chaos run on real processes (the full runs are `npm run bench:chaos`): synchronous mode, faults
// from the seed, the writer through the proxy; the checker must find nothing.
import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { describe, it } from 'node:test';
import { runChaos } from '../../src/chaos/runner.js';

describe('pgwarden chaos (short seeded run)', { timeout: 600_000 }, () => {
  it('loses no acknowledged write, never has two writable primaries through the proxy, and converges', async () => {
    const lines: string[] = [];
    const report = await runChaos({ seed: 11, faults: 4, isSync: true, out: (line) => lines.push(line) });
    const context = lines.join('\n');
    assert.ok(report.acknowledged > 100, context);
    assert.deepEqual(report.lost, [], context);
    assert.equal(report.dualWritable, 0, context);
    assert.deepEqual(report.divergentMembers, [], context);
    assert.equal(report.converged, true, context);
    assert.ok(report.faults.every((fault) => fault.recoveryMs !== undefined && fault.converged), context);
    await rm(report.reportPath, { force: true });
  });
});
