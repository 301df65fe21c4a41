// pgBackRest as pgwarden runs it (the `backup:` section): this member's config file, the argv of each command, and
// what `pgbackrest info` says. Pure; the controller runs the commands as the postgres user.

/** The resolved `backup:` section (config/backup.ts gives it). */
export interface PgBackrestSettings {
  readonly stanza: string;
  /** repo1-path. */
  readonly repository: string;
  readonly configFile: string;
  /** This member's lock, log and spool directory. */
  readonly workDir: string;
  readonly retentionFull?: number | undefined;
  /** Further [global] options, written as given. */
  readonly options: Readonly<Record<string, string | number | boolean>>;
}

/** How pgBackRest reaches this member's PostgreSQL (stanza-create and backup connect over the Unix socket). */
export interface PgBackrestMember {
  readonly dataDir: string;
  readonly port: number;
  readonly socketDir: string;
  readonly user: string;
}

function optionLine(key: string, value: string | number | boolean): string {
  const text = typeof value === 'boolean' ? (value ? 'y' : 'n') : String(value);
  if (/[\r\n]/.test(key) || /[\r\n]/.test(text)) throw new Error(`pgBackRest option ${key}: a value cannot span lines`);
  return `${key}=${text}`;
}

/** pgBackRest's config file for this member: the repository and retention in [global], this member in [stanza]. */
export function renderPgBackrestConf(settings: PgBackrestSettings, member: PgBackrestMember): string {
  const global: Record<string, string | number | boolean> = {
    'repo1-path': settings.repository,
    ...(settings.retentionFull !== undefined ? { 'repo1-retention-full': settings.retentionFull } : {}),
    'lock-path': `${settings.workDir}/lock`,
    'log-path': `${settings.workDir}/log`,
    'spool-path': `${settings.workDir}/spool`,
    'log-level-console': 'warn',
    'log-level-file': 'info',
    // A backup starts at once instead of waiting for the next checkpoint.
    'start-fast': true,
    ...settings.options,
  };
  const stanza = {
    'pg1-path': member.dataDir,
    'pg1-port': member.port,
    'pg1-socket-path': member.socketDir,
    'pg1-user': member.user,
  };
  return [
    '# Written by pgwarden from its backup: section; changes here are overwritten.',
    '[global]',
    ...Object.entries(global).map(([key, value]) => optionLine(key, value)),
    '',
    `[${settings.stanza}]`,
    ...Object.entries(stanza).map(([key, value]) => optionLine(key, value)),
    '',
  ].join('\n');
}

/** `pgbackrest --config=<file> --stanza=<stanza> <extra...> <command>`. */
export function pgbackrestArgv(settings: PgBackrestSettings, command: string, extra: readonly string[] = []): string[] {
  return ['pgbackrest', `--config=${settings.configFile}`, `--stanza=${settings.stanza}`, ...extra, command];
}

/** A standby restore of the latest backup; `--delta` reuses the files already in the data dir. */
export function pgbackrestRestoreArgv(settings: PgBackrestSettings, isDelta: boolean): string[] {
  return pgbackrestArgv(settings, 'restore', ['--type=standby', ...(isDelta ? ['--delta'] : [])]);
}

/**
 * The label of the newest backup `pgbackrest info --output=json` lists for the stanza; undefined when there is none
 * (status 0 ok, 1 missing stanza path, 2 no valid backups). Throws with pgBackRest's message when the repository could
 * not be read (info still exits 0 then: permission denied, a missing mount, another cluster's stanza).
 */
export function latestBackupLabel(infoJson: string, stanza: string): string | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(infoJson);
  } catch {
    throw new Error(`pgbackrest info printed no JSON: ${infoJson.slice(0, 200)}`);
  }
  if (!Array.isArray(parsed)) return undefined;
  const entry = parsed.find((item: unknown) => (item as { name?: unknown } | null)?.name === stanza) as
    | {
        backup?: readonly { label?: unknown; database?: { id?: unknown } }[];
        db?: readonly { id?: unknown }[];
        status?: { code?: unknown; message?: unknown };
        repo?: readonly { status?: { code?: unknown; message?: unknown } }[];
      }
    | undefined;
  const code = entry?.status?.code;
  if (typeof code === 'number' && ![0, 1, 2].includes(code)) {
    const repoMessages = (entry?.repo ?? []).map((repo) => repo.status?.message).filter((message) => typeof message === 'string');
    throw new Error(
      `pgbackrest info: stanza ${stanza} status ${code} (${typeof entry?.status?.message === 'string' ? entry.status.message : 'unknown'})${repoMessages.length > 0 ? `: ${repoMessages.join('; ')}` : ''}`,
    );
  }
  // After a major upgrade (stanza-upgrade) the stanza's current database is the newest in its history: a backup of
  // an earlier one is of another system and cannot seed a replica of this cluster.
  const currentDb = Math.max(...(entry?.db ?? []).map((db) => (typeof db.id === 'number' ? db.id : 0)), 0);
  const backups = (entry?.backup ?? []).filter(
    (backup) => currentDb === 0 || backup.database?.id === undefined || backup.database.id === currentDb,
  );
  const label = backups[backups.length - 1]?.label;
  return typeof label === 'string' ? label : undefined;
}

/**
 * Epoch seconds at which the newest backup of the stanza finished (`backup[].timestamp.stop` of `pgbackrest info
 * --output=json`); undefined when the repository holds none. Throws as latestBackupLabel when it could not be read.
 */
export function latestBackupStopEpochS(infoJson: string, stanza: string): number | undefined {
  if (latestBackupLabel(infoJson, stanza) === undefined) return undefined;
  const entry = (JSON.parse(infoJson) as unknown[]).find((item: unknown) => (item as { name?: unknown } | null)?.name === stanza) as
    { backup?: readonly { timestamp?: { stop?: unknown } }[] } | undefined;
  const stops = (entry?.backup ?? []).map((backup) => backup.timestamp?.stop).filter((stop): stop is number => typeof stop === 'number');
  return stops.length === 0 ? undefined : Math.max(...stops);
}

/** What `list`, GET /backup and /metrics say about the repository: the newest backup and how far back it reaches. */
export interface RepositorySummary {
  readonly backupCount: number;
  readonly newest?: {
    readonly label: string;
    readonly type: string;
    readonly stopEpochS: number | undefined;
    readonly sizeBytes: number | undefined;
  };
  /**
   * The earliest moment a restore can reach: the end of the oldest backup. PostgreSQL must replay a backup up to its
   * end (its WAL from archive.start to archive.stop) before it is consistent, so no recovery target before that works.
   */
  readonly recoverableFromEpochS?: number;
  /** The first WAL segment the repository's archive keeps for this stanza (`archive[].min`). */
  readonly archiveMinWal?: string;
  readonly archiveMaxWal?: string;
}

const numberOrUndefined = (value: unknown): number | undefined => (typeof value === 'number' && Number.isFinite(value) ? value : undefined);

/** The stanza's backups and archive range from `pgbackrest info --output=json`; throws as latestBackupLabel does. */
export function repositorySummary(infoJson: string, stanza: string): RepositorySummary {
  if (latestBackupLabel(infoJson, stanza) === undefined) return { backupCount: 0 };
  const entry = (JSON.parse(infoJson) as unknown[]).find((item: unknown) => (item as { name?: unknown } | null)?.name === stanza) as
    | {
        backup?: readonly {
          label?: unknown;
          type?: unknown;
          timestamp?: { start?: unknown; stop?: unknown };
          info?: { size?: unknown };
        }[];
        archive?: readonly { min?: unknown; max?: unknown }[];
      }
    | undefined;
  const backups = entry?.backup ?? [];
  const newest = backups[backups.length - 1];
  const stops = backups.map((backup) => numberOrUndefined(backup.timestamp?.stop)).filter((stop) => stop !== undefined);
  const mins = (entry?.archive ?? []).map((archive) => archive.min).filter((wal): wal is string => typeof wal === 'string');
  const maxes = (entry?.archive ?? []).map((archive) => archive.max).filter((wal): wal is string => typeof wal === 'string');
  return {
    backupCount: backups.length,
    ...(newest !== undefined
      ? {
          newest: {
            label: String(newest.label),
            type: typeof newest.type === 'string' ? newest.type : 'unknown',
            stopEpochS: numberOrUndefined(newest.timestamp?.stop),
            sizeBytes: numberOrUndefined(newest.info?.size),
          },
        }
      : {}),
    ...(stops.length > 0 ? { recoverableFromEpochS: Math.min(...stops) } : {}),
    // WAL file names of one timeline sort in WAL order, and a later timeline sorts after an earlier one.
    ...(mins.length > 0 ? { archiveMinWal: [...mins].sort()[0]! } : {}),
    ...(maxes.length > 0 ? { archiveMaxWal: [...maxes].sort()[maxes.length - 1]! } : {}),
  };
}

/** An ERROR line of pgBackRest: in its own log file (timestamp, process) or on its stderr (in PostgreSQL's log). */
const PGBACKREST_ERROR = /^(?:\d{4}-\d\d-\d\d \S+ P\d+ +)?ERROR: (\[\d+\]: .*)$/;
/** A message longer than this is cut: it goes into one log line, the list footer and GET /backup. */
const MAX_MESSAGE_CHARS = 400;

/**
 * pgBackRest's last error in the tail of a log: its own `<stanza>-archive-push.log`, or PostgreSQL's log, which gets
 * pgBackRest's stderr right before "archive command failed with exit code N". The continuation lines (indented) are
 * kept, its HINT lines are not: `[103]: unable to find a valid repository: repo1: [FileMissingError] ...`.
 */
export function lastPgBackrestError(logTail: string): string | undefined {
  const lines = logTail.split('\n');
  for (let index = lines.length - 1; index >= 0; index--) {
    const match = PGBACKREST_ERROR.exec(lines[index]!.trimEnd());
    if (match === null) continue;
    const parts = [match[1]!.trim()];
    for (const line of lines.slice(index + 1)) {
      if (!/^\s+\S/.test(line)) break;
      if (!/^\s*HINT:/.test(line)) parts.push(line.trim());
    }
    const message = parts.join(' ');
    return message.length > MAX_MESSAGE_CHARS ? `${message.slice(0, MAX_MESSAGE_CHARS - 3)}...` : message;
  }
  return undefined;
}

/** Whether pgwarden should create a posix repository directory itself (not for s3, gcs, azure or sftp repositories). */
export function isLocalRepository(settings: PgBackrestSettings): boolean {
  const type = settings.options['repo1-type'];
  return type === undefined || type === 'posix';
}

/**
 * `pgbackrest backup --type=<type>`: on the primary as its config file says (pg1 = this member), or from a streaming
 * standby with --backup-standby, pg1 = the primary and pg2 = this standby, given on the command line over the config
 * file's pg1 (pgBackRest copies the replicated files from the standby and only the rest from the primary). Without
 * `pg1-host` in the options both data dirs must be local to this host; on separate hosts pgBackRest reaches the primary
 * through pg1-host (SSH or its TLS server), set with backup.options.
 */
export function pgbackrestBackupArgv(
  settings: PgBackrestSettings,
  type: 'full' | 'diff' | 'incr',
  standby: { readonly primary: PgBackrestMember; readonly self: PgBackrestMember } | undefined,
): string[] {
  const member = (index: number, target: PgBackrestMember): string[] => [
    `--pg${index}-path=${target.dataDir}`,
    `--pg${index}-port=${target.port}`,
    `--pg${index}-socket-path=${target.socketDir}`,
    `--pg${index}-user=${target.user}`,
  ];
  const extra = standby === undefined ? [] : ['--backup-standby', ...member(1, standby.primary), ...member(2, standby.self)];
  return pgbackrestArgv(settings, 'backup', [`--type=${type}`, ...extra]);
}

/** `pgbackrest ... archive-push <path>`: one WAL file into the archive (compared, never overwritten, by pgBackRest). */
export function pgbackrestArchivePushArgv(settings: PgBackrestSettings, walPath: string): string[] {
  return [...pgbackrestArgv(settings, 'archive-push'), walPath];
}

/**
 * What pgBackRest's output says when the repository's stanza belongs to another database system, as one sentence that
 * says what to do; undefined for any other failure. archive-push and check name both system identifiers
 * (`[ArchiveMismatchError] PostgreSQL version 15, system-id A do not match repo1 stanza version 15, system-id B`);
 * stanza-create and check say `[028]: backup and archive info files exist but do not match the database`.
 */
export function foreignSystemProblem(output: string, settings: Pick<PgBackrestSettings, 'repository' | 'stanza'>): string | undefined {
  const where = `the pgBackRest repository ${settings.repository} (stanza ${settings.stanza})`;
  const todo =
    'use a new stanza (backup.stanza) or another repository (backup.repository) for this cluster; never point two clusters at one stanza';
  const mismatch = /system-id (\d+) do not match (?:repo\d+ )?stanza version \S+, system-id (\d+)/.exec(output);
  if (mismatch !== null) return `${where} holds system identifier ${mismatch[2]!}, this cluster is ${mismatch[1]!}: ${todo}`;
  if (/\[028\]|do not match the database/.test(output)) return `${where} holds another database system than this cluster: ${todo}`;
  return undefined;
}

/** pgBackRest 045: the archive has this WAL file with another content (a split-brain signal; never overwritten). */
export const isArchiveDuplicateMismatch = (output: string): boolean =>
  /\[045\]|already exists in the \S+ archive with a different checksum/.test(output);

/** pgBackRest's warning when the archive already has this WAL file with the same content (exit 0). */
export const isAlreadyArchived = (output: string): boolean => /already exists in the \S+ archive with the same checksum/.test(output);
