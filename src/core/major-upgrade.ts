// The in-place major upgrade's run as a plan (Spilo's model): the steps in order, which one is next given the record of
// what is done, where the point of no return lies, and what rolling back means from any step before it. Pure: the CLI
// applies the steps through the members' REST APIs and keeps the record in the DCS, so an interrupted run resumes
// (or rolls back) from what the record says.
import type { UpgradeRecord } from './minor-upgrade.js';

export type MajorStep =
  /** Maintenance mode: no agent starts, stops, promotes or fails over on its own while data directories change. */
  | { readonly kind: 'pause' }
  /** initdb of the new cluster beside the old one, like it (encoding, locale, checksums): while writes still flow. */
  | { readonly kind: 'prepare'; readonly member: string }
  /** The proxies hold new primary clients (the record's hold_writes) until the new primary runs. */
  | { readonly kind: 'holdWrites' }
  /** A clean (fast) shutdown of the primary: its shutdown checkpoint is the last WAL of the old cluster. */
  | { readonly kind: 'stopPrimary'; readonly member: string }
  /** Every replica replayed past that checkpoint: a rollback finds them consistent with the old primary. */
  | { readonly kind: 'verifyReplicas'; readonly members: readonly string[] }
  /** pg_upgrade --link into the new cluster; the old one stays startable until the swap (pg_control.old put back). */
  | { readonly kind: 'pgUpgrade'; readonly member: string }
  /** The point of no return: the new cluster takes the data directory's path, the old one is kept beside it. */
  | { readonly kind: 'swap'; readonly member: string }
  /** The new primary starts (under the lock it kept throughout), with the new system identifier in `initialize`. */
  | { readonly kind: 'startPrimary'; readonly member: string }
  /**
   * The members' and permanent physical slots made on the new primary now: the paused leader manages no slots, and the
   * re-cloned replicas stream through theirs.
   */
  | { readonly kind: 'createSlots'; readonly member: string }
  /** The proxies route again: the write pause ends. */
  | { readonly kind: 'releaseHold' }
  /** A replica on the new binaries, re-cloned from the new primary (its old data is of the old cluster). */
  | { readonly kind: 'reinitReplica'; readonly member: string; readonly from: string }
  | { readonly kind: 'resume' }
  /** vacuumdb --analyze-in-stages: pg_upgrade carries no planner statistics over. */
  | { readonly kind: 'analyze'; readonly member: string }
  /** The permanent slots exist again on the new primary (pg_upgrade carries no physical slots; the resumed leader makes them). */
  | { readonly kind: 'slots'; readonly member: string; readonly names: readonly string[] }
  /**
   * pgBackRest's stanza-upgrade for the new cluster, as soon as writes flow again: until it ran, the new cluster's WAL
   * is refused by the repository and piles up in pg_wal.
   */
  | { readonly kind: 'stanzaUpgrade'; readonly member: string }
  /** A full backup of the new cluster (a new cluster needs one before PITR works): the last step. */
  | { readonly kind: 'backup'; readonly member: string };

/** The record in the DCS (`<namespace>/<scope>/upgrade`) of a major upgrade, next to the minor one's. */
export interface MajorUpgradeRecord {
  readonly kind: 'major';
  readonly bin_dir: string;
  readonly to: number;
  readonly old_bin_dir: string;
  /** The member upgraded in place; it keeps the leader lock throughout. */
  readonly leader: string;
  readonly replicas: readonly string[];
  readonly old_sysid: string;
  readonly new_sysid?: string | undefined;
  /** The primary's shutdown checkpoint (pg_controldata's "Latest checkpoint location"). */
  readonly checkpoint_lsn?: string | undefined;
  /** The operator had paused the cluster: it stays paused at the end. */
  readonly was_paused: boolean;
  /** Permanent slots of the dynamic configuration, checked once the cluster resumed. */
  readonly permanent_slots: readonly string[];
  readonly has_backup: boolean;
  /** The proxies hold new primary connections while true. */
  readonly hold_writes: boolean;
  readonly started: string;
  /** Ids (stepId) of the steps done, in order. */
  readonly done: readonly string[];
  /** The step begun and not reported done: it may have run partly. */
  readonly current?: string | undefined;
  /** A rollback is under way: a re-run continues it rather than the upgrade. */
  readonly rolling_back?: boolean | undefined;
  /** What the run printed for each step done, for `pgwarden upgrade` of another operator. */
  readonly steps: readonly string[];
}

export type AnyUpgradeRecord = UpgradeRecord | MajorUpgradeRecord;

export function stepId(step: MajorStep): string {
  return 'member' in step ? `${step.kind}:${step.member}` : step.kind;
}

/** Every step of the upgrade recorded in `record`, in order. */
export function majorUpgradeSteps(record: MajorUpgradeRecord): MajorStep[] {
  const leader = record.leader;
  const replicas = [...record.replicas].sort();
  return [
    { kind: 'pause' },
    { kind: 'prepare', member: leader },
    { kind: 'holdWrites' },
    { kind: 'stopPrimary', member: leader },
    { kind: 'verifyReplicas', members: replicas },
    { kind: 'pgUpgrade', member: leader },
    { kind: 'swap', member: leader },
    { kind: 'startPrimary', member: leader },
    { kind: 'releaseHold' },
    { kind: 'createSlots', member: leader },
    ...(record.has_backup ? [{ kind: 'stanzaUpgrade', member: leader } as const] : []),
    ...replicas.map((member): MajorStep => ({ kind: 'reinitReplica', member, from: leader })),
    ...(record.was_paused ? [] : [{ kind: 'resume' } as const]),
    { kind: 'analyze', member: leader },
    ...(record.permanent_slots.length > 0 && !record.was_paused
      ? [{ kind: 'slots', member: leader, names: record.permanent_slots } as const]
      : []),
    ...(record.has_backup ? [{ kind: 'backup', member: leader } as const] : []),
  ];
}

/** The first step not done, or undefined when the upgrade is complete. */
export function nextMajorStep(record: MajorUpgradeRecord): MajorStep | undefined {
  return majorUpgradeSteps(record).find((step) => !record.done.includes(stepId(step)));
}

/**
 * Once the swap has begun, the old cluster is no longer where the agent starts PostgreSQL, and once the new primary
 * ran, the hard-linked data files are the new cluster's: there is no way back but a restore from a backup.
 */
export function isPastNoReturn(record: MajorUpgradeRecord): boolean {
  return record.done.some((id) => id.startsWith('swap:')) || (record.current?.startsWith('swap:') ?? false);
}

export type RollbackStep =
  /** Remove the new cluster and put the old one's global/pg_control back (pg_upgrade --link renamed it .old). */
  | { readonly kind: 'discardNew'; readonly member: string }
  /** Start the old primary again (it kept the leader lock). */
  | { readonly kind: 'startOld'; readonly member: string }
  | { readonly kind: 'releaseHold' }
  | { readonly kind: 'resume' };

/**
 * What rolling back means from where the record stands: undo, in reverse, what was begun. Undefined past the point of
 * no return. Each step is idempotent, so a rollback interrupted and run again is safe.
 */
export function rollbackSteps(record: MajorUpgradeRecord): RollbackStep[] | undefined {
  if (isPastNoReturn(record)) return undefined;
  const begun = new Set([...record.done, ...(record.current !== undefined ? [record.current] : [])].map((id) => id.split(':')[0]));
  const steps: RollbackStep[] = [];
  if (begun.has('prepare') || begun.has('pgUpgrade')) steps.push({ kind: 'discardNew', member: record.leader });
  if (begun.has('stopPrimary')) steps.push({ kind: 'startOld', member: record.leader });
  if (begun.has('holdWrites')) steps.push({ kind: 'releaseHold' });
  if (begun.has('pause') && !record.was_paused) steps.push({ kind: 'resume' });
  return steps;
}

export function describeMajorStep(step: MajorStep, record: MajorUpgradeRecord): string {
  switch (step.kind) {
    case 'pause':
      return 'pause the cluster (maintenance mode)';
    case 'prepare':
      return `initdb the new PostgreSQL ${record.to} cluster beside ${step.member}'s data directory (writes still flow)`;
    case 'holdWrites':
      return 'make the proxies hold new primary connections';
    case 'stopPrimary':
      return `shut ${step.member} down cleanly (fast)`;
    case 'verifyReplicas':
      return step.members.length === 0
        ? 'no replica to verify'
        : `verify that ${step.members.join(', ')} replayed past the shutdown checkpoint ${record.checkpoint_lsn ?? '?'}`;
    case 'pgUpgrade':
      return `pg_upgrade --link on ${step.member} (${record.old_bin_dir} -> ${record.bin_dir})`;
    case 'swap':
      return `swap the data directories on ${step.member}: POINT OF NO RETURN (the old cluster is kept beside, but cannot start once the new one ran)`;
    case 'startPrimary':
      return `start the new primary on ${step.member} from ${record.bin_dir}`;
    case 'releaseHold':
      return 'let the proxies route to the new primary (the write pause ends)';
    case 'createSlots':
      return `create the replicas' and the permanent slots on ${step.member}`;
    case 'reinitReplica':
      return `re-clone ${step.member} from ${step.from} on ${record.bin_dir}`;
    case 'resume':
      return 'resume the cluster';
    case 'analyze':
      return `vacuumdb --all --analyze-in-stages on ${step.member}`;
    case 'slots':
      return `wait for the permanent slots ${step.names.join(', ')} on ${step.member}`;
    case 'stanzaUpgrade':
      return `pgBackRest stanza-upgrade on ${step.member} (the repository takes the new cluster's WAL from now on)`;
    case 'backup':
      return 'a full pgBackRest backup of the new cluster (as pgwarden backup --type full: on a streaming replica)';
  }
}

export function describeRollbackStep(step: RollbackStep): string {
  switch (step.kind) {
    case 'discardNew':
      return `remove the new cluster on ${step.member} and give the old one its global/pg_control back`;
    case 'startOld':
      return `start the old primary on ${step.member} again`;
    case 'releaseHold':
      return 'let the proxies route to the primary again';
    case 'resume':
      return 'resume the cluster';
  }
}

/** A step's outcome recorded (done, no longer current) and its line kept. */
export function recordDone(record: MajorUpgradeRecord, id: string, line: string): MajorUpgradeRecord {
  return { ...record, done: [...record.done.filter((done) => done !== id), id], current: undefined, steps: [...record.steps, line] };
}

/** What the primary's agent does on request (POST /major_upgrade/<step>). */
export const MAJOR_HOST_STEPS = ['prepare', 'inspect', 'link', 'swap', 'rollback', 'analyze', 'slots', 'stanza'] as const;
export type MajorHostStep = (typeof MAJOR_HOST_STEPS)[number];

/** Where the member must stand for a host step; undefined when it may run. Guards against a step sent out of order. */
export function hostStepRefusal(
  step: MajorHostStep,
  member: { readonly isLeaderWithLock: boolean; readonly isPaused: boolean; readonly isRunning: boolean },
): string | undefined {
  if (step === 'inspect') return undefined;
  if (!member.isLeaderWithLock) return `${step}: only the leader holding the lock is upgraded in place`;
  if (step === 'analyze' || step === 'slots' || step === 'stanza')
    return member.isRunning ? undefined : `${step}: PostgreSQL is not running`;
  if (!member.isPaused) return `${step}: only in maintenance mode (pgwarden upgrade --major pauses the cluster first)`;
  if (step === 'prepare') return member.isRunning ? undefined : 'prepare: the old primary must run (its settings are read from it)';
  // Safe beside a running primary: it removes the new cluster, and puts pg_control back only where it is missing.
  if (step === 'rollback') return undefined;
  return member.isRunning ? `${step}: PostgreSQL is running; the old primary must be shut down cleanly first` : undefined;
}
