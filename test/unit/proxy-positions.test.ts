// The proxy's position monitor against a fake reader: the primary is read before the replicas in every round, a member
// that fails its read has no position (routing falls back to the published one), and one failure is logged once.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { MemberPosition, PositionReader } from '../../src/core/ports.js';
import type { MemberRecord } from '../../src/core/types.js';
import { PositionMonitor } from '../../src/proxy/member-positions.js';
import { waitUntil } from '../../src/util/wait-until.js';
import { member } from '../sim/builders.js';

class FakeReader implements PositionReader {
  readonly calls: string[] = [];
  readonly failing = new Set<string>();
  retained: string[] = [];
  isClosed = false;

  async read(target: MemberRecord): Promise<MemberPosition> {
    this.calls.push(target.name);
    // Let the other reads of the same batch start, so that the order between batches is what is checked.
    await new Promise((resolve) => setImmediate(resolve));
    if (this.failing.has(target.name)) throw new Error(`${target.name} refused the connection`);
    return { isInRecovery: target.role === 'replica', lsn: 100, isStreaming: target.role === 'replica' ? true : undefined, replayAgeMs: 0 };
  }

  retain(keep: ReadonlySet<string>): void {
    this.retained = [...keep].sort();
  }

  async close(): Promise<void> {
    this.isClosed = true;
  }
}

describe('proxy position monitor', () => {
  it('reads the primary before the replicas, drops members that fail or leave, and logs a failure once', async () => {
    const reader = new FakeReader();
    let members = [member('node2'), member('node1', { role: 'primary' }), member('node3')];
    const warnings: string[] = [];
    let rounds = 0;
    const monitor = new PositionMonitor({
      reader,
      members: () => members,
      intervalMs: 5,
      nowMs: () => performance.now(),
      log: { debug: () => undefined, info: () => undefined, warn: (_fields, message) => warnings.push(message), error: () => undefined },
      onRound: () => rounds++,
    });
    monitor.start();
    await waitUntil(() => rounds >= 2, { timeoutMs: 5000, intervalMs: 5, describe: 'two rounds' });
    assert.deepEqual(reader.calls.slice(0, 3), ['node1', 'node2', 'node3'], 'the primary first');
    assert.deepEqual([...monitor.positions().keys()].sort(), ['node1', 'node2', 'node3']);

    reader.failing.add('node3');
    const atFailure = rounds;
    await waitUntil(() => rounds >= atFailure + 3, { timeoutMs: 5000, intervalMs: 5, describe: 'three rounds with node3 failing' });
    assert.equal(monitor.positions().has('node3'), false, 'no position for a member whose read failed');
    assert.equal(warnings.filter((warning) => warning.includes('cannot read')).length, 1, 'the same failure is said once');

    members = [member('node1', { role: 'primary' }), member('node2')];
    const atLeave = rounds;
    await waitUntil(() => rounds >= atLeave + 2, { timeoutMs: 5000, intervalMs: 5, describe: 'rounds after node3 left' });
    assert.deepEqual(reader.retained, ['node1', 'node2'], 'sessions of members that left are closed');
    await monitor.stop();
    assert.equal(reader.isClosed, true);
  });
});
