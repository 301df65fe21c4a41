// The postmaster process: spawned as our child or adopted from postmaster.pid, watched for exits the agent did not
// ask for, and stopped by signal with escalation so a demote never hangs.
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { open, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import type { StopMode } from '../core/ports.js';
import { PgwardenError } from '../util/errors.js';
import type { Log } from '../util/log.js';
import { isAlive } from '../util/process-alive.js';
import { processTree } from '../util/process-tree.js';
import { postmasterPidFrom } from './postmaster-pid.js';
import type { RunAs } from './runner.js';

/** How often a start checks for connections: short, because a failover waits on it. */
export const START_POLL_MS = 50;
/** An adopted postmaster (not our child) is watched by polling, the only portable way without pidfd. */
export const ADOPTED_POLL_MS = 200;
/** How long a start waits for a postmaster that is still on its way out (see assertStopped). */
const DYING_POSTMASTER_WAIT_MS = 3000;
const DYING_POSTMASTER_POLL_MS = 50;
/** smart waits for clients, fast disconnects them and checkpoints, immediate skips the checkpoint (crash restart). */
export const STOP_SIGNALS: Readonly<Record<StopMode, NodeJS.Signals>> = { smart: 'SIGTERM', fast: 'SIGINT', immediate: 'SIGQUIT' };
/** A smart or fast stop that takes longer becomes immediate; an immediate one that hangs this much longer is killed. */
const STOP_ESCALATE_MS: Readonly<Record<StopMode, number>> = { smart: 60_000, fast: 60_000, immediate: 10_000 };
const STOP_KILL_AFTER_MS = 10_000;
const STOP_POLL_MS = 20;
/** After the postmaster is gone its children may still hold shared memory (and postmaster.pid) for a moment. */
const PID_FILE_RELEASE_ATTEMPTS = 100;

export interface PostmasterOptions {
  readonly member: string;
  readonly dataDir: string;
  readonly binDir: string;
  /** The bin_dir in force now, when it can change at runtime (POST /bin_dir); binDir otherwise. */
  readonly currentBinDir?: (() => string) | undefined;
  readonly runAs?: RunAs | undefined;
  readonly logFile: string;
  readonly log: Log;
  /** Every exit, asked for or not (the SQL session to it is dead either way). */
  readonly onExit: () => void;
}

/**
 * Whether the process is stopped by a signal (state T in /proc/<pid>/stat). Read synchronously: every probe asks, a
 * /proc file is made by the kernel on the spot (no disk, nothing to wait for), and three thread-pool round trips cost
 * more than the read.
 */
export function isFrozen(pid: number): boolean {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return false;
  }
  return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) === 'T';
}

function signalIfAlive(pid: number, name: NodeJS.Signals): void {
  try {
    process.kill(pid, name);
  } catch {
    // gone already
  }
}

export class Postmaster {
  readonly #options: PostmasterOptions;
  readonly #unexpectedExitListeners: (() => void)[] = [];
  #childPid: number | undefined;
  #isStopRequested = false;
  #adoptedTimer: NodeJS.Timeout | undefined;
  #crashedAtMs: number | undefined;

  constructor(options: PostmasterOptions) {
    this.#options = options;
  }

  /** Monotonic time of the last exit nobody asked for; cleared once a start succeeds. */
  get crashedAtMs(): number | undefined {
    return this.#crashedAtMs;
  }

  onUnexpectedExit(listener: () => void): void {
    this.#unexpectedExitListeners.push(listener);
  }

  async #pidFromFile(): Promise<number | undefined> {
    const text = await readFile(join(this.#options.dataDir, 'postmaster.pid'), 'utf8').catch(() => undefined);
    const pid = text === undefined ? undefined : postmasterPidFrom(text);
    return pid !== undefined && isAlive(pid) ? pid : undefined;
  }

  /** The live postmaster of this data dir, adopting one an earlier agent process started. */
  async runningPid(): Promise<number | undefined> {
    if (this.#childPid !== undefined && isAlive(this.#childPid)) return this.#childPid;
    const pid = await this.#pidFromFile();
    if (pid !== undefined && this.#childPid === undefined) this.#adopt(pid);
    return pid;
  }

  /** A postmaster started by an earlier agent process: we cannot get its exit event, so we poll for it. */
  #adopt(pid: number): void {
    if (this.#adoptedTimer !== undefined) return;
    this.#options.log.info({ pid }, 'adopted a running postmaster');
    this.#adoptedTimer = setInterval(() => {
      if (isAlive(pid)) return;
      clearInterval(this.#adoptedTimer);
      this.#adoptedTimer = undefined;
      this.#onExit(pid, 'exited');
    }, ADOPTED_POLL_MS);
    this.#adoptedTimer.unref();
  }

  #onExit(pid: number, how: string): void {
    if (this.#childPid === pid) this.#childPid = undefined;
    this.#options.onExit();
    if (this.#isStopRequested) return;
    this.#crashedAtMs = performance.now();
    this.#options.log.error({ pid, how }, 'postmaster exited without being asked to');
    for (const listener of this.#unexpectedExitListeners) listener();
  }

  /**
   * Rejects when a postmaster runs on this data dir (after any stop in flight finished): a second one would refuse to
   * start anyway, after our files changed.
   */
  async assertStopped(): Promise<void> {
    // A stop in flight is waited for: it is about to make this true.
    await this.#stopping?.catch(() => undefined);
    let existing = await this.runningPid();
    // A postmaster that crashed or got an immediate shutdown closes its sockets (the probe sees it down) a moment
    // before its process is gone: a start decided in that moment waits for the exit instead of failing (under load
    // the start failed, and a leader gave its lock up for a start that would have worked a few ms later).
    const waitUntilMs = performance.now() + DYING_POSTMASTER_WAIT_MS;
    while (existing !== undefined && performance.now() < waitUntilMs) {
      await sleep(DYING_POSTMASTER_POLL_MS);
      existing = await this.runningPid();
    }
    if (existing !== undefined)
      throw new PgwardenError(
        'PGW_PG_COMMAND_FAILED',
        `[${this.#options.member}] PostgreSQL is already running (pid ${existing}); stop it first`,
        { context: { member: this.#options.member, path: this.#options.dataDir } },
      );
    await this.#removeZombieLockFile();
  }

  /**
   * A postmaster.pid that names a dead postmaster nobody reaped (a zombie: kill(0) still succeeds on it) makes every
   * later start and single-user run fail with "lock file already exists"; PostgreSQL removes a stale file itself only
   * once the PID is gone. Here the process is known dead, so the file goes (a rewind otherwise became a re-clone).
   */
  async #removeZombieLockFile(): Promise<void> {
    const path = join(this.#options.dataDir, 'postmaster.pid');
    const text = await readFile(path, 'utf8').catch(() => undefined);
    const pid = text === undefined ? undefined : postmasterPidFrom(text);
    if (pid === undefined || isAlive(pid)) return;
    try {
      process.kill(pid, 0);
    } catch {
      return;
    }
    await rm(path, { force: true });
    this.#options.log.warn(
      { pid, path },
      'removed the lock file of a dead postmaster nobody reaped (a zombie); run the agent under an init that reaps orphans (systemd, tini)',
    );
  }

  /**
   * Spawns `postgres -D` and waits until `isReady` (it accepts connections). A postmaster that exits during start-up
   * fails the start with the tail of its log; one still starting at the deadline keeps starting in the background.
   */
  async start(isReady: () => Promise<boolean>, signal: AbortSignal, detail: Record<string, unknown>): Promise<void> {
    const { member, dataDir, logFile, runAs } = this.#options;
    await this.assertStopped();
    const logHandle = await open(logFile, 'a');
    // An error quotes what this start wrote, not an earlier attempt's lines.
    const logOffset = (await logHandle.stat()).size;
    if (runAs !== undefined) await logHandle.chown(runAs.uid, runAs.gid).catch(() => undefined);
    this.#isStopRequested = false;
    const binary = join(this.#options.currentBinDir?.() ?? this.#options.binDir, 'postgres');
    const child = spawn(binary, ['-D', dataDir], {
      stdio: ['ignore', logHandle.fd, logHandle.fd],
      detached: true,
      env: { ...process.env, LC_ALL: 'C.UTF-8' },
      cwd: '/',
      ...(runAs !== undefined ? { uid: runAs.uid, gid: runAs.gid } : {}),
    });
    await logHandle.close();
    const pid = child.pid;
    if (pid === undefined) throw new PgwardenError('PGW_PG_COMMAND_FAILED', `[${member}] could not spawn ${binary}`);
    child.unref();
    this.#childPid = pid;
    let exitCode: number | null | undefined;
    child.once('exit', (code, exitSignal) => {
      exitCode = code;
      this.#onExit(pid, `exit ${code ?? exitSignal ?? 'unknown'}`);
    });
    this.#options.log.info({ pid, ...detail }, 'started postmaster');
    while (!signal.aborted) {
      if (exitCode !== undefined || !isAlive(pid)) {
        throw new PgwardenError(
          'PGW_PG_COMMAND_FAILED',
          `[${member}] postgres -D ${dataDir} exited during start-up (code ${exitCode ?? 'unknown'}): ${await this.logTail(logOffset)}`,
          { context: { member, command: [binary, '-D', dataDir], exitCode: exitCode ?? null, hint: `see ${logFile}` } },
        );
      }
      if (await isReady()) {
        this.#crashedAtMs = undefined;
        return;
      }
      await sleep(START_POLL_MS);
    }
    throw new PgwardenError(
      'PGW_PG_TIMEOUT',
      `[${member}] PostgreSQL did not accept connections before the deadline; it keeps starting in the background (see ${logFile})`,
    );
  }

  /** The last lines of the server log, from byte `fromOffset` on. */
  async logTail(fromOffset = 0): Promise<string> {
    try {
      const text = (await readFile(this.#options.logFile)).subarray(fromOffset).toString('utf8');
      if (text.trim() === '') return '(nothing logged)';
      return text.trim().split('\n').slice(-8).join(' | ');
    } catch {
      return '(no log)';
    }
  }

  /** Stops the postmaster, escalating to immediate and then SIGKILL; returns once its shared memory is released. */
  /**
   * A stop in flight: a start waits for it (the fence's immediate stop at the lock deadline is not awaited by the HA
   * loop, and a start racing it failed with "already running" and was retried only a loop_wait later).
   */
  #stopping: Promise<void> | undefined;

  async stop(mode: StopMode, signal: AbortSignal): Promise<void> {
    const stopping = this.#stop(mode, signal);
    this.#stopping = stopping;
    try {
      await stopping;
    } finally {
      if (this.#stopping === stopping) this.#stopping = undefined;
    }
  }

  async #stop(mode: StopMode, signal: AbortSignal): Promise<void> {
    const pid = await this.runningPid();
    if (pid === undefined) return;
    this.#isStopRequested = true;
    this.#options.onExit();
    if (isFrozen(pid)) {
      // The fence froze it (the heartbeat window passed): a frozen postmaster cannot act on a stop signal, and thawing
      // it could let a backend acknowledge a commit. Killed while frozen, it ends as an immediate stop would.
      const tree = await processTree(pid);
      for (const child of tree) signalIfAlive(child, 'SIGKILL');
      this.#options.log.warn({ pid, processes: tree.length, mode }, 'postmaster was frozen by the fence: killed instead of stopped');
    } else process.kill(pid, STOP_SIGNALS[mode]);
    this.#options.log.info({ pid, mode }, 'stopping postmaster');
    const escalateAt = performance.now() + STOP_ESCALATE_MS[mode];
    let isEscalated = mode === 'immediate';
    while (isAlive(pid)) {
      if (!isEscalated && (signal.aborted || performance.now() > escalateAt)) {
        // A stop that does not finish in time becomes an immediate one: a demote must not hang.
        process.kill(pid, 'SIGQUIT');
        isEscalated = true;
      } else if (isEscalated && performance.now() > escalateAt + STOP_KILL_AFTER_MS) {
        process.kill(pid, 'SIGKILL');
      }
      await sleep(STOP_POLL_MS);
    }
    const pidFile = join(this.#options.dataDir, 'postmaster.pid');
    for (let attempt = 0; attempt < PID_FILE_RELEASE_ATTEMPTS && existsSync(pidFile); attempt++) {
      if ((await this.#pidFromFile()) === undefined) break;
      await sleep(STOP_POLL_MS);
    }
    if (this.#childPid === pid) this.#childPid = undefined;
  }

  close(): void {
    if (this.#adoptedTimer !== undefined) clearInterval(this.#adoptedTimer);
    this.#adoptedTimer = undefined;
  }
}
