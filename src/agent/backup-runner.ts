// Backups as commands (the `backup:` section): this member runs `pgbackrest backup` in the background, never in the HA
// cycle, holding the cluster's backup lock (a DCS key on this agent's lease) while it runs. A change of the member's role
// or of the cluster's leader mid-backup stops pgBackRest (SIGTERM) and releases the lock: the next backup runs on the
// new layout.
import { backupLayoutOf, type BackupType } from '../core/backup-plan.js';
import type { BackupLockRecord, BackupLocks, BackupTool, Clock } from '../core/ports.js';
import { describeError, PgwardenError } from '../util/errors.js';
import type { Log } from '../util/log.js';
import type { AgentSnapshot } from './snapshot.js';

/** How often a running backup checks the member's role and the leader (the snapshot is refreshed by the HA cycle). */
const LAYOUT_CHECK_MS = 1000;
const INFO_CACHE_MS = 3000;
const DCS_BUDGET_MS = 5000;
/** A backup that has not finished after this long is stopped (a stuck repository must not hold the lock for ever). */
const BACKUP_LIMIT_MS = 24 * 3600_000;

export interface BackupOutcome extends BackupLockRecord {
  readonly outcome: 'ok' | 'failed' | 'stopped';
  readonly label?: string | undefined;
  readonly sizeBytes?: number | undefined;
  readonly durationS: number;
  readonly detail: string;
}

export type BackupStart =
  | { readonly kind: 'started'; readonly record: BackupLockRecord; readonly fromStandby: boolean }
  | { readonly kind: 'busy'; readonly holder: BackupLockRecord }
  | { readonly kind: 'refused'; readonly reason: string };

export interface BackupRunnerOptions {
  readonly name: string;
  readonly locks: BackupLocks;
  readonly tool: BackupTool;
  readonly clock: Clock;
  readonly log: Log;
  readonly getSnapshot: () => AgentSnapshot;
}

export class BackupRunner {
  readonly #options: BackupRunnerOptions;
  #running: { readonly record: BackupLockRecord; readonly controller: AbortController } | undefined;
  #last: BackupOutcome | undefined;
  #info: { readonly atMs: number; readonly text: string } | undefined;

  constructor(options: BackupRunnerOptions) {
    this.#options = options;
  }

  /** What runs here now and how the last backup here went (GET /backup). */
  status(): { readonly running: BackupLockRecord | null; readonly last: BackupOutcome | null } {
    return { running: this.#running?.record ?? null, last: this.#last ?? null };
  }

  /** The cluster's backup lock as the DCS has it now. */
  readLock(): Promise<BackupLockRecord | undefined> {
    return this.#options.locks.readBackupLock(this.#options.clock.deadline(DCS_BUDGET_MS));
  }

  /** `pgbackrest info --output=json`, cached a few seconds (GET /backups may be polled). */
  async info(): Promise<string> {
    const now = this.#options.clock.nowMs();
    if (this.#info !== undefined && now - this.#info.atMs < INFO_CACHE_MS) return this.#info.text;
    const text = await this.#options.tool.backupInfo(this.#options.clock.deadline(60_000));
    this.#info = { atMs: this.#options.clock.nowMs(), text };
    return text;
  }

  /** Starts a backup of `type` on this member if it can take one and the cluster's lock is free. */
  async start(type: BackupType): Promise<BackupStart> {
    const { clock, log, name, locks } = this.#options;
    const snapshot = this.#options.getSnapshot();
    if (this.#running !== undefined) return { kind: 'busy', holder: this.#running.record };
    const pg = snapshot.pg;
    const leaderName = snapshot.view?.leader?.name;
    if (!pg.isRunning || pg.role === undefined) return { kind: 'refused', reason: `${name}: PostgreSQL is not running` };
    if (snapshot.task.kind === 'running') return { kind: 'refused', reason: `${name}: ${snapshot.task.name} is in progress` };
    let fromStandby = false;
    let primary: Parameters<BackupTool['runBackup']>[1];
    if (pg.role === 'primary') {
      if (!snapshot.isLeaderWithLock) return { kind: 'refused', reason: `${name} is a primary without the leader lock` };
    } else {
      const leader = snapshot.view?.members.find((member) => member.name === leaderName);
      if (leaderName === undefined || leader === undefined || leaderName === name)
        return { kind: 'refused', reason: `${name}: the cluster has no leader to back up` };
      if (!pg.isStreaming) return { kind: 'refused', reason: `${name} is not streaming from the leader ${leaderName}` };
      fromStandby = true;
      primary = { name: leader.name, upstream: { name: leader.name, connUrl: leader.conn_url } };
    }
    const record: BackupLockRecord = { member: name, type, started: clock.wallIso() };
    if (!(await locks.acquireBackupLock(record, snapshot.ttlMs, clock.deadline(DCS_BUDGET_MS)))) {
      const holder = await this.readLock().catch(() => undefined);
      return { kind: 'busy', holder: holder ?? { member: 'unknown', type: 'full', started: '' } };
    }
    const controller = new AbortController();
    this.#running = { record, controller };
    const layout = backupLayoutOf(pg.role, leaderName);
    const startedAtMs = clock.nowMs();
    let stopReason: string | undefined;
    const stop = (reason: string): void => {
      if (stopReason !== undefined) return;
      stopReason = reason;
      log.warn({ backup: record, reason }, `stopping the ${type} backup: ${reason}`);
      controller.abort(new PgwardenError('PGW_BACKUP_FAILED', `backup stopped: ${reason}`, { context: { member: name, type, reason } }));
    };
    let cancelCheck = (): void => undefined;
    const check = (): void => {
      const now = this.#options.getSnapshot();
      const current = backupLayoutOf(now.pg.isRunning ? now.pg.role : undefined, now.view?.leader?.name);
      if (current !== layout) stop(`the member's place changed (${layout} -> ${current}): a switchover or failover`);
      else if (clock.nowMs() - startedAtMs > BACKUP_LIMIT_MS) stop(`it ran longer than ${BACKUP_LIMIT_MS / 3600_000} hours`);
      else cancelCheck = clock.setTimer(LAYOUT_CHECK_MS, check);
    };
    cancelCheck = clock.setTimer(LAYOUT_CHECK_MS, check);
    log.info({ backup: record, from: fromStandby ? `standby (primary ${leaderName ?? '?'})` : 'primary' }, `${type} backup started`);
    void this.#options.tool.runBackup(type, primary, controller.signal).then(
      (result) =>
        this.#finish(
          record,
          startedAtMs,
          { outcome: 'ok', label: result.label, sizeBytes: result.sizeBytes, detail: 'completed' },
          cancelCheck,
        ),
      (error: unknown) =>
        this.#finish(
          record,
          startedAtMs,
          stopReason !== undefined ? { outcome: 'stopped', detail: stopReason } : { outcome: 'failed', detail: describeError(error) },
          cancelCheck,
        ),
    );
    return { kind: 'started', record, fromStandby };
  }

  /** The agent stops: a running backup is stopped and its lock released. */
  async close(): Promise<void> {
    this.#running?.controller.abort(new PgwardenError('PGW_AGENT_STOPPING', 'the agent stops'));
    await this.#options.locks.releaseBackupLock(this.#options.clock.deadline(DCS_BUDGET_MS)).catch(() => undefined);
  }

  async #finish(
    record: BackupLockRecord,
    startedAtMs: number,
    result: Pick<BackupOutcome, 'outcome' | 'label' | 'sizeBytes' | 'detail'>,
    cancelCheck: () => void,
  ): Promise<void> {
    const { clock, log, locks } = this.#options;
    cancelCheck();
    const durationS = Math.round((clock.nowMs() - startedAtMs) / 100) / 10;
    const outcome: BackupOutcome = { ...record, ...result, durationS };
    this.#info = undefined;
    try {
      const isReleased = await locks.releaseBackupLock(clock.deadline(DCS_BUDGET_MS));
      if (!isReleased) log.warn({ backup: record }, 'the backup lock was no longer ours (its lease expired); nothing to release');
    } catch (error) {
      log.warn(
        { backup: record, error: describeError(error) },
        'could not release the backup lock: it expires with this agent\u2019s lease',
      );
    }
    this.#running = undefined;
    this.#last = outcome;
    const fields = { backup: record, duration_s: durationS, label: outcome.label ?? null, size_bytes: outcome.sizeBytes ?? null };
    if (result.outcome === 'ok') log.info(fields, `${record.type} backup finished in ${durationS} s: ${outcome.label ?? '?'}`);
    else if (result.outcome === 'stopped')
      log.warn(fields, `${record.type} backup stopped after ${durationS} s and the lock released: ${result.detail}`);
    else log.error({ ...fields, error: result.detail }, `${record.type} backup failed after ${durationS} s; the lock is released`);
  }
}
