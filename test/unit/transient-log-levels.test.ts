// Logs tell the truth: a clone whose source is still starting is an expected state (info, with a retry), and stays an
// error when it lasts or has another cause.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { TaskSlot } from '../../src/agent/tasks.js';
import { runCommand } from '../../src/postgres/runner.js';
import { isPgwardenError, PgwardenError } from '../../src/util/errors.js';
import { SystemClock } from '../../src/util/clock.js';
import type { Log } from '../../src/util/log.js';

function recordingLog(): { log: Log; lines: { level: string; message: string }[] } {
  const lines: { level: string; message: string }[] = [];
  const record = (level: string) => (_fields: unknown, message: string) => void lines.push({ level, message });
  const log = { info: record('info'), warn: record('warn'), error: record('error'), debug: () => undefined } as unknown as Log;
  return { log, lines };
}

const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe('a clone source that is not accepting connections yet', () => {
  it('is PGW_PG_UNREACHABLE with a retry hint, not the pg_hba/password hint', async () => {
    const failure = await runCommand({
      member: 'node2',
      argv: ['sh', '-c', 'echo "pg_basebackup: error: FATAL:  the database system is starting up" >&2; exit 1'],
      signal: AbortSignal.timeout(5000),
      runAs: undefined,
      hint: 'check pg_hba and the replication password',
    }).then(
      () => undefined,
      (error: unknown) => error,
    );
    assert.ok(isPgwardenError(failure, 'PGW_PG_UNREACHABLE'), String(failure));
    assert.match((failure as Error).message, /not accepting connections yet \(starting up\): retried/);
    assert.doesNotMatch((failure as Error).message, /pg_hba/);
  });

  it('is logged at info for the first failures in a row, then as an error; other failures are errors at once', async () => {
    const { log, lines } = recordingLog();
    const slot = new TaskSlot(new SystemClock(), log, () => undefined);
    const unreachable = new PgwardenError('PGW_PG_UNREACHABLE', 'node1 is starting up');
    for (let attempt = 0; attempt < 4; attempt++) {
      slot.start('basebackup', () => Promise.reject(unreachable));
      await settle();
    }
    const outcomes = lines.filter((line) => line.message !== 'task basebackup started').map((line) => line.level);
    assert.deepEqual(outcomes, ['info', 'info', 'info', 'error']);
    assert.match(lines[1]!.message, /did not complete: its source is not accepting connections yet; retrying/);
    lines.length = 0;
    slot.start('bootstrap', () => Promise.reject(new PgwardenError('PGW_PG_COMMAND_FAILED', 'initdb: No space left on device')));
    await settle();
    assert.equal(lines.at(-1)?.level, 'error');
  });
});
