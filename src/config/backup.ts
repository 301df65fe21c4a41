// The `backup:` section (pgwarden's own, not Patroni's): pgBackRest configured by pgwarden. Resolves the section into
// the settings the PostgreSQL adapter writes pgBackRest's config file from, and the archive_command/restore_command
// the member runs with.
import { dirname, join } from 'node:path';
import { z } from 'zod';
import type { BackupType } from '../core/backup-plan.js';
import { parseCron } from '../core/backup-schedule.js';
import type { CustomBootstrap } from '../core/replica-methods.js';
import { parseTargetTimeline, pgbackrestTargetOptions, restoreTargetOf } from '../core/restore-target.js';

const optionValue = z.union([z.string(), z.number(), z.boolean()]);

function checkCron(expression: string, context: z.RefinementCtx): void {
  const parsed = parseCron(expression);
  if (typeof parsed === 'string') context.addIssue({ code: 'custom', message: `backup.schedule: ${parsed}` });
}
const cron = z.string().superRefine(checkCron).optional();

export const backupSection = z
  .object({
    tool: z.literal('pgbackrest', { message: 'backup.tool: only pgbackrest is supported' }).default('pgbackrest'),
    /** The pgBackRest stanza (default: the scope). */
    stanza: z
      .string()
      .regex(/^[A-Za-z0-9_.-]+$/, 'backup.stanza may contain letters, digits, _ . and - only')
      .optional(),
    /** repo1-path: a directory (posix repository) every member reaches, e.g. an NFS mount. */
    repository: z.string().min(1, 'backup.repository is required: the repository directory, e.g. /var/lib/pgbackrest'),
    /** Where pgwarden writes this member's pgBackRest config (default: beside the data dir). */
    config_file: z.string().min(1).optional(),
    /** repo1-retention-full. */
    retention_full: z.number().int().min(1).optional(),
    /**
     * When the leader's agent starts backups: a cron expression (UTC) for full backups, or one per type, e.g.
     * { full: '0 2 * * 0', diff: '0 2 * * 1-6', incr: '0 * * * *' }.
     */
    schedule: z.union([z.string().superRefine(checkCron), z.object({ full: cron, diff: cron, incr: cron }).strict()]).optional(),
    /** Further pgBackRest [global] options written as given, e.g. { 'compress-type': 'zst', 'repo1-type': 's3' }. */
    options: z.record(z.string(), optionValue).optional(),
  })
  .strict();

export type RawBackupSection = z.output<typeof backupSection>;

/** What the PostgreSQL adapter needs to run pgBackRest for this member. */
export interface BackupSettings {
  readonly tool: 'pgbackrest';
  readonly stanza: string;
  readonly repository: string;
  readonly configFile: string;
  /** A directory of this member's own for pgBackRest's lock, log and spool files. */
  readonly workDir: string;
  readonly retentionFull: number | undefined;
  /** Cron expressions (UTC) per backup type; undefined: no scheduled backups. */
  readonly schedule: { readonly [type in BackupType]?: string | undefined } | undefined;
  readonly options: Readonly<Record<string, string | number | boolean>>;
}

export function resolveBackup(section: RawBackupSection, scope: string, name: string, dataDir: string): BackupSettings {
  const base = dirname(dataDir);
  return {
    tool: 'pgbackrest',
    stanza: section.stanza ?? scope,
    repository: section.repository,
    configFile: section.config_file ?? join(base, `pgbackrest-${name}.conf`),
    workDir: join(base, `pgbackrest-${name}`),
    retentionFull: section.retention_full,
    schedule: typeof section.schedule === 'string' ? { full: section.schedule } : section.schedule,
    options: section.options ?? {},
  };
}

/** A word for sh: quoted only when it needs to be. */
function shellWord(word: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

/** `pgbackrest --config=... --stanza=... archive-push %p`, as pgBackRest documents it. */
export function pgbackrestArchiveCommand(settings: BackupSettings): string {
  return `pgbackrest ${shellWord(`--config=${settings.configFile}`)} ${shellWord(`--stanza=${settings.stanza}`)} archive-push %p`;
}

/** `pgbackrest --config=... --stanza=... archive-get %f "%p"`. */
export function pgbackrestRestoreCommand(settings: BackupSettings): string {
  return `pgbackrest ${shellWord(`--config=${settings.configFile}`)} ${shellWord(`--stanza=${settings.stanza}`)} archive-get %f "%p"`;
}

type Gucs = Readonly<Record<string, string | number | boolean>>;

/**
 * The member's parameters and recovery_conf with the backup section applied: archive_mode on, archive_command and
 * restore_command pgBackRest's. What the user wrote explicitly wins (with a warning when it is not pgBackRest's);
 * archive_mode=always is refused, as pgBackRest refuses it.
 */
export function applyBackupSection(
  settings: BackupSettings,
  parameters: Gucs,
  recoveryConf: Gucs | undefined,
  sourceName: string,
): { parameters: Gucs; recoveryConf: Gucs; warnings: string[]; problems: string[] } {
  const warnings: string[] = [];
  const problems: string[] = [];
  const mode = parameters.archive_mode;
  if (mode !== undefined && String(mode).toLowerCase() === 'always')
    problems.push('postgresql.parameters.archive_mode: always is refused by pgBackRest (backup section); use on');
  const archiveCommand = pgbackrestArchiveCommand(settings);
  const restoreCommand = pgbackrestRestoreCommand(settings);
  if (parameters.archive_command !== undefined && parameters.archive_command !== archiveCommand)
    warnings.push(
      `postgresql.parameters.archive_command in ${sourceName} is kept as written; the backup section would set: ${archiveCommand}`,
    );
  if (recoveryConf?.restore_command !== undefined && recoveryConf.restore_command !== restoreCommand)
    warnings.push(
      `postgresql.recovery_conf.restore_command in ${sourceName} is kept as written; the backup section would set: ${restoreCommand}`,
    );
  return {
    parameters: { archive_mode: 'on', archive_command: archiveCommand, ...parameters },
    recoveryConf: { restore_command: restoreCommand, ...recoveryConf },
    warnings,
    problems,
  };
}

/**
 * `bootstrap.method: pgbackrest` without a command (pgwarden's own, with a `backup:` section): the first member of a new
 * cluster restores another stanza of the repository (`bootstrap.pgbackrest.stanza`, default this cluster's) to a target
 * (target_time, target_lsn, target_name or immediate; none: the end of the archive) and is promoted there. The new
 * cluster archives into its own stanza (its scope); the restore's restore_command and target, which name the old
 * stanza, are removed once it is promoted. Throws a config problem for a bad target.
 */
export function pgbackrestBootstrapOf(
  section: Readonly<Record<string, unknown>>,
  settings: BackupSettings,
  dataDir: string,
): CustomBootstrap {
  const text = (key: string): string | undefined => {
    const value = section[key];
    if (value === undefined || value === null) return undefined;
    if (typeof value !== 'string') throw new Error(`bootstrap.pgbackrest.${key} must be a string, got ${JSON.stringify(value)}`);
    return value;
  };
  const stanza = text('stanza') ?? settings.stanza;
  if (!/^[A-Za-z0-9_.-]+$/.test(stanza)) throw new Error('bootstrap.pgbackrest.stanza may contain letters, digits, _ . and - only');
  const flags = {
    targetTime: text('target_time'),
    targetLsn: text('target_lsn'),
    targetName: text('target_name'),
    immediate: section.immediate === true ? true : undefined,
  };
  const hasTarget = Object.values(flags).some((value) => value !== undefined);
  const target = hasTarget ? restoreTargetOf(flags) : undefined;
  if (target !== undefined && 'problem' in target)
    throw new Error(
      `bootstrap.pgbackrest: ${target.problem.replace(/--target-(time|lsn|name)/g, 'target_$1').replace('--immediate', 'immediate: true')}`,
    );
  const timeline = section.target_timeline === undefined ? undefined : parseTargetTimeline(section.target_timeline);
  if (section.target_timeline !== undefined && timeline === undefined)
    throw new Error(
      `bootstrap.pgbackrest.target_timeline must be a timeline number, current or latest, got ${JSON.stringify(section.target_timeline)}`,
    );
  const targetOptions =
    target === undefined
      ? ['--target-action=promote']
      : pgbackrestTargetOptions({ ...target, ...(timeline !== undefined ? { timeline } : {}) });
  return {
    name: 'pgbackrest',
    argv: ['pgbackrest', `--config=${settings.configFile}`, `--stanza=${stanza}`, `--pg1-path=${dataDir}`, ...targetOptions, 'restore'],
    recoveryConf: undefined,
    keepExistingRecoveryConf: true,
    isRecoverySettingsRemoved: true,
  };
}
