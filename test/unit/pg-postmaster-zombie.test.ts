import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { Postmaster } from '../../src/postgres/postmaster.js';
import { isAlive } from '../../src/util/process-alive.js';
import { silentLog } from '../../src/util/log.js';
import { waitUntil } from '../../src/util/wait-until.js';

/** A zombie: sh starts a child and execs into sleep, which never reaps it. Returns its PID and the parent to kill. */
async function zombie(): Promise<{ readonly pid: number; readonly parent: number }> {
  const shell = spawn('sh', ['-c', 'sleep 0.2 & echo $!; exec sleep 30'], { stdio: ['ignore', 'pipe', 'ignore'] });
  const [line] = (await once(shell.stdout, 'data')) as [Buffer];
  const pid = Number(String(line).trim());
  await waitUntil(() => !isAlive(pid) || undefined, { timeoutMs: 5000, intervalMs: 10, describe: 'the child to die unreaped' });
  return { pid, parent: shell.pid! };
}

/** A Postmaster on `dir` that never starts anything: only its lock-file checks run. */
const postmasterOf = (dir: string): Postmaster =>
  new Postmaster({
    member: 'node1',
    dataDir: dir,
    binDir: '/nonexistent',
    logFile: join(dir, 'log'),
    log: silentLog,
    onExit: () => undefined,
  });

test('a postmaster.pid naming a zombie is removed before a start; one naming a live process stops it', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pgw-zombie-'));
  const { pid, parent } = await zombie();
  try {
    process.kill(pid, 0); // still a process table entry: PostgreSQL would take the lock file as held
    const pidFile = join(dir, 'postmaster.pid');
    const postmaster = postmasterOf(dir);
    writeFileSync(pidFile, `${pid}\n${dir}\n1700000000\n5432\n/tmp\n*\n  1234  5678\nready   \n`);
    await postmaster.assertStopped();
    assert.equal(existsSync(pidFile), false, 'the zombie lock file is gone');
    writeFileSync(pidFile, `${parent}\n${dir}\n`);
    await assert.rejects(postmaster.assertStopped(), /already running \(pid/);
    assert.equal(existsSync(pidFile), true);
  } finally {
    process.kill(parent, 'SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a start waits for a postmaster on its way out instead of failing', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pgw-dying-'));
  // A "postmaster" that exits 300 ms from now: the moment after a crash, its sockets closed, its process not yet gone.
  const dying = spawn('sleep', ['0.3'], { stdio: 'ignore' });
  try {
    writeFileSync(join(dir, 'postmaster.pid'), `${dying.pid!}\n${dir}\n`);
    const postmaster = postmasterOf(dir);
    const started = performance.now();
    await postmaster.assertStopped();
    assert.ok(performance.now() - started >= 200, 'it waited for the exit');
  } finally {
    dying.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
});
