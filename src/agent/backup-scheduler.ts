// backup.schedule, run by the leader's agent only: every few seconds it asks whether a scheduled backup fell due since
// its last look and, if one did, starts it on the member `pgwarden backup` would pick (a streaming standby, else itself).
// The cluster's backup lock keeps it to one run: a backup already running makes this one skipped, and said so.
import { chooseBackupMember, type BackupType } from '../core/backup-plan.js';
import { dueBackupType, type CronSpec } from '../core/backup-schedule.js';
import type { Clock } from '../core/ports.js';
import type { MemberRecord } from '../core/types.js';
import { describeError } from '../util/errors.js';
import type { Log } from '../util/log.js';
import type { AgentSnapshot } from './snapshot.js';

const TICK_MS = 15_000;

export interface BackupSchedulerOptions {
  readonly schedules: readonly { readonly type: BackupType; readonly spec: CronSpec }[];
  readonly clock: Clock;
  readonly log: Log;
  readonly getSnapshot: () => AgentSnapshot;
  /** Starts the backup on `member` (its POST /backup, or this agent's runner when it is this member): what it answered. */
  readonly startOn: (member: MemberRecord, type: BackupType) => Promise<{ readonly status: number; readonly text: string }>;
}

export class BackupScheduler {
  readonly #options: BackupSchedulerOptions;
  /** Wall-clock ms of the last look while leading; undefined while not leading (a new leader does not make up runs). */
  #lastMs: number | undefined;
  #cancel: (() => void) | undefined;
  #isClosed = false;

  constructor(options: BackupSchedulerOptions) {
    this.#options = options;
  }

  start(): void {
    this.#cancel = this.#options.clock.setTimer(TICK_MS, () => void this.tick().finally(() => this.#isClosed || this.start()));
  }

  close(): void {
    this.#isClosed = true;
    this.#cancel?.();
  }

  /** One look: exported for tests. */
  async tick(): Promise<BackupType | undefined> {
    const { clock, log, getSnapshot, schedules } = this.#options;
    const snapshot = getSnapshot();
    const isLeading = snapshot.isLeaderWithLock && snapshot.pg.isRunning && snapshot.pg.role === 'primary' && !snapshot.isPaused;
    const nowMs = Date.parse(clock.wallIso());
    if (!isLeading || snapshot.view === undefined) {
      this.#lastMs = undefined;
      return undefined;
    }
    const fromMs = this.#lastMs ?? nowMs;
    this.#lastMs = nowMs;
    const type = dueBackupType(schedules, fromMs, nowMs);
    if (type === undefined) return undefined;
    const chosen = chooseBackupMember(snapshot.view, undefined);
    if ('problem' in chosen) {
      log.warn({ type }, `scheduled ${type} backup not started: ${chosen.problem}`);
      return type;
    }
    const tryOn = async (member: MemberRecord): Promise<boolean> => {
      try {
        const reply = await this.#options.startOn(member, type);
        if (reply.status === 202) {
          log.info({ type, member: member.name }, `scheduled ${type} backup started on ${member.name}`);
          return true;
        }
        if (reply.status === 409) {
          log.warn({ type, member: member.name, answer: reply.text }, `scheduled ${type} backup skipped: a backup is already running`);
          return true;
        }
        log.warn(
          { type, member: member.name, status: reply.status, answer: reply.text },
          `scheduled ${type} backup refused by ${member.name}`,
        );
      } catch (error) {
        log.warn({ type, member: member.name, error: describeError(error) }, `scheduled ${type} backup: ${member.name} did not answer`);
      }
      return false;
    };
    if (!(await tryOn(chosen.member)) && chosen.isStandby) {
      const self = snapshot.view.members.find((member) => member.name === snapshot.name);
      if (self !== undefined) {
        log.info({ type }, `scheduled ${type} backup: taking it on the leader instead`);
        await tryOn(self);
      }
    }
    return type;
  }
}
