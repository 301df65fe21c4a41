// PgController for a local PostgreSQL 15: a façade that composes the postmaster, the data dir, the SQL session, the
// probe and the slot applier, and holds the little state an agent keeps about its node between calls.
import { execFileSync } from 'node:child_process';
import { constants as fsConstants, existsSync } from 'node:fs';
import { access, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { backupRows } from '../core/backup-plan.js';
import { AGENT_TOOLS, type BinDirReport } from '../core/minor-upgrade.js';
import type { MajorCheckFacts } from '../core/major-upgrade-check.js';
import type {
  BackupPrimary,
  BackupTool,
  PgController,
  RestoreTool,
  RewindOptions,
  StopMode,
  Upstream,
  UpstreamWatchEnd,
  WalArchiveTool,
  WalStatus,
} from '../core/ports.js';
import { previousTimelineSegments, readyWalFiles, type ArchiveMethod, type ArchivePushStep } from '../core/wal-archive.js';
import type { CustomBootstrap, ReplicaMethod, ReplicaMethodResult } from '../core/replica-methods.js';
import { describeRestoreTarget, pgbackrestTargetOptions, type RestoreTarget } from '../core/restore-target.js';
import type { SlotStep, SlotStepResult } from '../core/slot-changes.js';
import type { BackupRepositoryState, LocalPg } from '../core/types.js';
import { waitUntil } from '../util/wait-until.js';
import { describeError, PgwardenError } from '../util/errors.js';
import { redactText } from '../util/redact.js';
import type { Log } from '../util/log.js';
import {
  bootstrapRolesSql,
  ensureRolesSql,
  initdbArgv,
  pgBasebackupArgv,
  pgControldataArgv,
  pgRewindArgv,
  singleUserArgv,
} from './commands.js';
import type { GucValue } from './conf-render.js';
import { isCleanShutdown, parseControlData, type ControlData } from './controldata.js';
import { serviceNameFor, type PgAuth } from './conninfo.js';
import { checkDataDirUsable, DataDir, historyFileName, serviceFilePath, type RenderedRole } from './data-dir.js';
import { isFrozen, Postmaster } from './postmaster.js';
import {
  localPgFromRow,
  PROBE_SQL,
  PROBE_WITHOUT_SETTINGS_SQL,
  replicaTimelineOf,
  stoppedLocalPg,
  WAL_STATUS_SQL,
  walStatusFromRow,
  type ProbeRow,
  type WalStatusRow,
} from './probe.js';
import {
  isLocalRepository,
  latestBackupLabel,
  repositorySummary,
  foreignSystemProblem,
  pgbackrestArgv,
  pgbackrestBackupArgv,
  pgbackrestRestoreArgv,
  renderPgBackrestConf,
  type PgBackrestSettings,
} from './pgbackrest.js';
import { tryReplicaMethods, type MethodRun } from './replica-create.js';
import { runCommand, type RunAs } from './runner.js';
import { applySlotSteps, readLogicalSlotStates } from './slots.js';
import { addressOf, connectTo, LocalSession, withSession, type SqlClient, type SqlTarget } from './sql-session.js';
import { listWal, pushWalFiles } from './wal-archive-push.js';
import type { MajorHostStep } from '../core/major-upgrade.js';
import { gatherMajorCheckFacts } from './major-check.js';
import {
  analyzeInStages,
  inspectUpgrade,
  linkUpgrade,
  prepareNewCluster,
  rollbackUpgrade,
  swapDataDirs,
  type MajorRunIo,
} from './major-upgrade-run.js';
import { WalDiskReader } from './wal-disk.js';
import { ArchiveFailureWatch } from './archive-failure.js';

export interface PgControllerOptions {
  readonly member: string;
  readonly scope: string;
  readonly dataDir: string;
  readonly binDir: string;
  readonly listenHost: string;
  readonly port: number;
  readonly socketDir: string;
  /** With its TLS keys: the agent's own sessions (upstreams over TCP) and pg_rewind use them. */
  readonly superuser: PgAuth;
  /** With its TLS keys: primary_conninfo and pg_basebackup use them. */
  readonly replication: PgAuth;
  /**
   * postgresql.authentication.rewind: pg_rewind connects as this user, with its TLS keys (the superuser when absent).
   * A new cluster creates it with what pg_rewind needs.
   */
  readonly rewind?: PgAuth | undefined;
  readonly parameters: Readonly<Record<string, GucValue>>;
  readonly pgHba: readonly string[];
  readonly initdbOptions: readonly (string | Readonly<Record<string, string>>)[];
  readonly pgpassPath: string;
  readonly runAs?: RunAs | undefined;
  readonly log: Log;
  readonly logFile: string;
  /** The `backup:` section: pgBackRest's config file is written for this member and its stanza created on the primary. */
  readonly backup?: PgBackrestSettings | undefined;
}

/** pgBackRest commands that only read the repository (info, stanza-create) get this long. */
/**
 * pg_settings (every setting built as a row) was most of the probe's cost on the server: pending_restart is read on
 * the first probe of a postmaster, for PENDING_RESTART_REREAD_MS after every reload pgwarden makes, and otherwise at
 * least this often (a change made outside pgwarden, e.g. ALTER SYSTEM and pg_reload_conf(), shows within it).
 */
const PENDING_RESTART_MAX_AGE_MS = 30_000;
const PENDING_RESTART_REREAD_MS = 10_000;
const PGBACKREST_SHORT_MS = 120_000;
/** A failed stanza-create is tried again after this, doubling up to the maximum. */
const STANZA_RETRY_FIRST_MS = 5000;
const STANZA_RETRY_MAX_MS = 300_000;

/** The postgres OS user's ids when the agent runs as root (PostgreSQL refuses to run as root). */
export function resolveRunAs(): RunAs | undefined {
  if (process.getuid?.() !== 0) return undefined;
  try {
    const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim());
    const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim());
    return { uid, gid };
  } catch {
    throw new PgwardenError(
      'PGW_CONFIG_INVALID',
      'the agent runs as root but there is no postgres OS user to run PostgreSQL as; create it (apt-get install postgresql-15 does) or run the agent as the postgres user',
    );
  }
}

/** Client sessions only: the agent's own and the walsenders' are not transactions a switchover would cut. */
const OLDEST_TRANSACTION_SQL = `SELECT COALESCE(EXTRACT(epoch FROM max(now() - xact_start)), 0)::float8 AS age
  FROM pg_stat_activity WHERE backend_type = 'client backend' AND xact_start IS NOT NULL AND pid <> pg_backend_pid()`;

/** Local queries may wait behind a checkpoint; the connect itself is over a Unix socket and quick. */
const LOCAL_TIMEOUTS = { connectTimeoutMs: 2000, queryTimeoutMs: 60_000 };
/** isHistoryDivergent runs inside an HA cycle: an upstream that is slow to answer counts as "cannot tell". */
/** How long a promotion may take, and how often the end of recovery is checked meanwhile. */
const PROMOTE_TIMEOUT_MS = 60_000;
const PROMOTE_POLL_MS = 10;
const HISTORY_TIMEOUTS = { connectTimeoutMs: 2000, queryTimeoutMs: 3000 };
/** A new primary's checkpoint after promote takes well under a second; a source that never makes it is not waited for. */
const SOURCE_CHECKPOINT_WAIT_MS = 30_000;
/** The timeline of the source's last checkpoint, and its current one (null on a standby, which has no current WAL file). */
const SOURCE_TIMELINES_SQL = `SELECT (SELECT timeline_id FROM pg_control_checkpoint())::int AS checkpoint,
  CASE WHEN pg_is_in_recovery() THEN NULL
       ELSE ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int END AS current`;
const SLOT_COPY_TIMEOUTS = { connectTimeoutMs: 3000, queryTimeoutMs: 10_000 };
/** The upstream watch only connects; it never queries. */
const WATCH_TIMEOUTS = { connectTimeoutMs: 2000, queryTimeoutMs: 2000 };
/** Lets walsenders reload synchronous_standby_names before the WAL that makes standbys report (see below). */
const SYNC_RELOAD_SETTLE_MS = 50;
/** A readiness check must not outlast the start poll by much: the start loop owns the deadline. */
const READY_CHECK_MS = 1000;
/**
 * How often a primary reads `pgbackrest info` for the age of its newest backup (a metric; the repository may be
 * remote); more often while it has seen none, so a new cluster's first backup shows soon.
 */
const BACKUP_INFO_EVERY_MS = 120_000;
/**
 * How long an old primary may spend pushing its .ready WAL before pg_rewind: long enough for a backlog of segments
 * to a reachable repository, short enough that an unreachable one delays the rejoin by minutes, not for ever.
 */
const READY_WAL_PUSH_MS = 120_000;
const BACKUP_INFO_NONE_YET_EVERY_MS = 20_000;

/** What pgBackRest may write into postgresql.auto.conf for a target; reset after the promotion. */
const RECOVERY_TARGET_SETTINGS = [
  'recovery_target',
  'recovery_target_time',
  'recovery_target_lsn',
  'recovery_target_name',
  'recovery_target_xid',
  'recovery_target_action',
  'recovery_target_inclusive',
  'recovery_target_timeline',
] as const;

/** What a restore leaves in postgresql.auto.conf that must not outlive it in a new cluster (it names the old stanza). */
const AUTO_CONF_RECOVERY_SETTINGS: readonly string[] = [...RECOVERY_TARGET_SETTINGS, 'restore_command'];

export class PostgresController implements PgController, BackupTool, RestoreTool, WalArchiveTool {
  readonly #options: PgControllerOptions;
  readonly #dataDir: DataDir;
  readonly #walDisk: WalDiskReader;
  /** pg_settings.pending_restart as last read, from which postmaster, and when (performance.now()). */
  #pendingRestart: { readonly value: boolean; readonly pid: number; readonly atMs: number } | undefined;
  #pendingRestartRereadUntilMs = 0;
  readonly #postmaster: Postmaster;
  readonly #session: LocalSession;
  #upstream: string | undefined;
  #stanzaRetryMs = STANZA_RETRY_FIRST_MS;
  /** The one pending retry of a failed stanza-create: a failure while one is pending replaces it, chains never pile up. */
  #stanzaRetry: NodeJS.Timeout | undefined;
  /** stanza-create ran (or is running) in this process: it is idempotent, but once per agent is enough. */
  #isStanzaEnsured = false;
  /** What the last rendered config pointed at, so a parameter change re-renders the same role. */
  #rendered: RenderedRole | undefined;
  #parameters: Readonly<Record<string, GucValue>>;
  #binDir: string;
  /** A replica's timeline only grows; SQL shows it reliably only while streaming, so remember the highest seen. */
  #replicaTimeline = 0;
  /** The newest backup as the last `pgbackrest info` saw it (monotonic read time), and whether a read is under way. */
  #backupInfo: { readonly readAtMs: number; readonly state: BackupRepositoryState } | undefined;
  /** Logs a failing archive_command once per change (only with a backup: section: it reads pgBackRest's log). */
  readonly #archiveFailures: ArchiveFailureWatch | undefined;
  #isBackupInfoRunning = false;
  /** The repository's stanza holds another system (the sentence said), until a stanza-create or push succeeds. */
  #foreignSystem: string | undefined;
  /** WAL files the archive held with another content when pushed here (045): split-brain signals, since start. */
  readonly #differentContentFiles = new Set<string>();

  constructor(options: PgControllerOptions) {
    this.#options = options;
    this.#parameters = options.parameters;
    this.#dataDir = new DataDir(options);
    this.#walDisk = new WalDiskReader(this.#dataDir.path);
    this.#session = new LocalSession(this.#target(options.socketDir, options.port, 'postgres', LOCAL_TIMEOUTS));
    this.#binDir = options.binDir;
    this.#postmaster = new Postmaster({ ...options, currentBinDir: () => this.#binDir, onExit: () => void this.#session.drop() });
    const backup = options.backup;
    this.#archiveFailures =
      backup === undefined
        ? undefined
        : // PostgreSQL's log first: it gets the stderr of every attempt, so its last error is the current one.
          new ArchiveFailureWatch(options.log, [options.logFile, join(backup.workDir, 'log', `${backup.stanza}-archive-push.log`)]);
  }

  #target(host: string, port: number, database: string, timeouts: typeof LOCAL_TIMEOUTS): SqlTarget {
    const { superuser, member } = this.#options;
    return { host, port, user: superuser.username, password: superuser.password, database, member, security: superuser, ...timeouts };
  }

  #upstreamTarget(upstream: Upstream, timeouts: typeof LOCAL_TIMEOUTS): SqlTarget {
    const { host, port } = addressOf(upstream);
    return this.#target(host, port, 'postgres', timeouts);
  }

  onUnexpectedExit(listener: () => void): void {
    this.#postmaster.onUnexpectedExit(listener);
  }

  #bin(name: string): string {
    return join(this.#binDir, name);
  }

  /** The bin_dir every program is run from now (postgresql.bin_dir, or what POST /bin_dir set since). */
  get binDir(): string {
    return this.#binDir;
  }

  /** Later starts, clones and rewinds run from `dir`; a running server keeps its binaries until restarted. */
  setBinDir(dir: string): void {
    this.#binDir = dir;
  }

  /**
   * What `dir` holds for this member (POST /bin_dir/check): the version `postgres --version` gives when run as the
   * postgres user (so a path it cannot reach or a missing shared library shows), the tools it lacks, the data
   * directory's major, and on a running primary the age of its oldest transaction. Reports; the caller decides.
   */
  async inspectBinDir(dir: string, signal: AbortSignal): Promise<BinDirReport> {
    const missing: string[] = [];
    for (const tool of AGENT_TOOLS) {
      try {
        await access(join(dir, tool), fsConstants.X_OK);
      } catch {
        missing.push(tool);
      }
    }
    let versionOutput: string | undefined;
    let versionError: string | undefined;
    if (!missing.includes('postgres')) {
      try {
        versionOutput = (await this.#run([join(dir, 'postgres'), '--version'], signal)).stdout.trim();
      } catch (error) {
        versionError = describeError(error);
      }
    }
    const pgVersion = await readFile(join(this.#dataDir.path, 'PG_VERSION'), 'utf8').catch(() => undefined);
    const dataMajor = pgVersion === undefined ? undefined : Number.parseInt(pgVersion.trim(), 10);
    let oldestTransactionSeconds: number | undefined;
    const pg = await this.probe(signal).catch(() => undefined);
    if (pg?.isRunning === true && pg.role === 'primary') {
      const [row] = await this.#query<{ age: number | string | null }>(OLDEST_TRANSACTION_SQL, signal);
      oldestTransactionSeconds = Number(row?.age ?? 0);
    }
    return {
      bin_dir: dir,
      ...(versionOutput !== undefined ? { version_output: versionOutput } : {}),
      ...(versionError !== undefined ? { version_error: versionError } : {}),
      missing,
      ...(dataMajor !== undefined && Number.isFinite(dataMajor) ? { data_major: dataMajor } : {}),
      current_bin_dir: this.#binDir,
      ...(oldestTransactionSeconds !== undefined ? { oldest_transaction_seconds: oldestTransactionSeconds } : {}),
    };
  }

  /**
   * The facts of `pgwarden upgrade --major --check` for the binaries in `dir` (POST /bin_dir/major_check): runs
   * pg_upgrade --check and a schema-only restore against a scratch cluster beside the data directory, which is removed;
   * the running cluster is only read.
   */
  async majorUpgradeFacts(dir: string, signal: AbortSignal): Promise<MajorCheckFacts> {
    return gatherMajorCheckFacts(this.#majorIo(), dir, signal);
  }

  /** The primary host's steps of the in-place major upgrade (postgres/major-upgrade-run.ts). */
  majorUpgradeStep(
    step: MajorHostStep,
    dir: string,
    signal: AbortSignal,
    slotNames: readonly string[] = [],
  ): Promise<Record<string, unknown>> {
    const io = this.#majorIo();
    switch (step) {
      case 'prepare':
        return prepareNewCluster(io, dir, signal);
      case 'inspect':
        return inspectUpgrade(io, signal);
      case 'link':
        return linkUpgrade(io, dir, signal);
      case 'swap':
        return swapDataDirs(io, dir, signal);
      case 'rollback':
        return rollbackUpgrade(io, signal);
      case 'analyze':
        return analyzeInStages(io, dir, signal);
      case 'slots':
        return this.#createPhysicalSlots(slotNames, signal);
      case 'stanza':
        return this.#upgradeStanza(signal);
    }
  }

  /**
   * pgBackRest's stanza-upgrade after pg_upgrade (online: it reads the running new cluster's version and system
   * identifier): the repository's archive and backup info gain the new database; until then every archive-push of the
   * new cluster is refused as another system's.
   */
  async #upgradeStanza(signal: AbortSignal): Promise<Record<string, unknown>> {
    const backup = this.#options.backup;
    if (backup === undefined)
      throw new PgwardenError('PGW_CONFIG_INVALID', `[${this.#options.member}] no backup: section is configured: no stanza to upgrade`, {
        context: { member: this.#options.member, key: 'backup' },
      });
    await this.#writeBackupConfig();
    await this.#run(pgbackrestArgv(backup, 'stanza-upgrade'), AbortSignal.any([signal, AbortSignal.timeout(PGBACKREST_SHORT_MS)]), {
      hint: 'pgBackRest\u2019s log in the backup work directory says why; run pgbackrest stanza-upgrade by hand, then pgwarden upgrade --major again',
    });
    this.#foreignSystem = undefined;
    this.#isStanzaEnsured = true;
    this.#options.log.info({ stanza: backup.stanza, repository: backup.repository }, 'pgBackRest stanza upgraded to the new cluster');
    return { stanza: backup.stanza, repository: backup.repository };
  }

  async #createPhysicalSlots(names: readonly string[], signal: AbortSignal): Promise<Record<string, unknown>> {
    for (const name of names)
      await this.#query(
        'SELECT pg_create_physical_replication_slot($1, true) WHERE NOT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = $1)',
        signal,
        [name],
      );
    return { slots: names };
  }

  #majorIo(): MajorRunIo {
    return {
      member: this.#options.member,
      dataDir: this.#dataDir.path,
      oldBinDir: this.#binDir,
      socketDir: this.#options.socketDir,
      port: this.#options.port,
      runAs: this.#options.runAs,
      superuser: this.#options.superuser.username,
      run: (argv, runSignal, extra) => this.#run(argv, runSignal, extra),
      isRunningPrimary: async (probeSignal) => {
        const pg = await this.probe(probeSignal);
        return pg.isRunning && pg.role === 'primary';
      },
      query: async <T extends object>(database: string, text: string, querySignal: AbortSignal) =>
        withSession(
          this.#target(this.#options.socketDir, this.#options.port, database, LOCAL_TIMEOUTS),
          querySignal,
          async (client) => (await client.query(text)).rows as T[],
        ),
    };
  }

  async #run(
    argv: readonly string[],
    signal: AbortSignal,
    extra: { stdin?: string; hint?: string; cwd?: string } = {},
  ): Promise<{ stdout: string; stderr: string }> {
    return runCommand({
      member: this.#options.member,
      argv,
      signal,
      runAs: this.#options.runAs,
      env: { PGPASSFILE: this.#options.pgpassPath, PGSERVICEFILE: serviceFilePath(this.#options.pgpassPath), PGCONNECT_TIMEOUT: '3' },
      dataDir: this.#dataDir.path,
      ...(extra.stdin !== undefined ? { stdin: extra.stdin } : {}),
      ...(extra.hint !== undefined ? { hint: extra.hint } : {}),
      ...(extra.cwd !== undefined ? { cwd: extra.cwd } : {}),
    });
  }

  async #query<T extends object>(text: string, signal: AbortSignal, params: unknown[] = []): Promise<T[]> {
    return this.#session.query<T>(text, signal, params);
  }

  /** pg_reload_conf(), after which the probe reads pg_settings.pending_restart again for a while. */
  async #reloadConf(signal: AbortSignal): Promise<void> {
    await this.#query('SELECT pg_reload_conf()', signal);
    // The reload reaches the backends asynchronously: read pending_restart on every probe until it surely has.
    this.#pendingRestartRereadUntilMs = performance.now() + PENDING_RESTART_REREAD_MS;
  }

  /** Whether this probe must read pg_settings (see PENDING_RESTART_MAX_AGE_MS). */
  #needsSettings(pid: number, nowMs: number): boolean {
    const cached = this.#pendingRestart;
    return (
      cached === undefined ||
      cached.pid !== pid ||
      nowMs - cached.atMs >= PENDING_RESTART_MAX_AGE_MS ||
      nowMs < this.#pendingRestartRereadUntilMs
    );
  }

  async #writeConfig(upstream: Upstream | undefined, isReplica: boolean): Promise<void> {
    await this.#writeBackupConfig();
    const role = { upstream, isReplica };
    const changes = await this.#dataDir.writeConfig(this.#parameters, role);
    for (const change of changes)
      this.#options.log.warn(
        {
          parameter: change.parameter,
          change: change.change,
          ...(change.to !== undefined ? { to: change.to.parameter, value: change.to.value } : {}),
        },
        change.to === undefined
          ? `PostgreSQL parameter ${change.parameter} not written: ${change.reason}`
          : `PostgreSQL parameter ${change.parameter} written as ${change.to.parameter} = ${String(change.to.value)}: ${change.reason}`,
      );
    this.#upstream = upstream?.name;
    this.#rendered = role;
  }

  /**
   * New GUCs from the dynamic config: re-render and reload. Settings that need a restart show up as
   * `pendingRestart` in the next probe (pg_settings.pending_restart), as Patroni reports them.
   */
  async reconfigure(parameters: Readonly<Record<string, GucValue>>, signal: AbortSignal): Promise<void> {
    this.#parameters = parameters;
    if ((await this.#dataDir.state()) !== 'initialized') return;
    const isRunning = (await this.#postmaster.runningPid()) !== undefined;
    // A postmaster adopted from an earlier agent process was never rendered by this one: a primary's role is known
    // from the server itself; a replica's upstream is set by the follow that the next cycle makes.
    if (this.#rendered === undefined && isRunning) {
      const row = (await this.#query<{ in_recovery: boolean }>('SELECT pg_is_in_recovery() AS in_recovery', signal))[0];
      if (row?.in_recovery === false) this.#rendered = { upstream: undefined, isReplica: false };
    }
    if (this.#rendered === undefined) {
      if (!isRunning) return;
      throw new PgwardenError(
        'PGW_PG_COMMAND_FAILED',
        `[${this.#options.member}] the replica's upstream is not known yet: parameters are applied after it follows the leader`,
        {
          context: { member: this.#options.member },
        },
      );
    }
    await this.#writeConfig(this.#rendered.upstream, this.#rendered.isReplica);
    if (isRunning) await this.#reloadConf(signal);
    this.#options.log.info({ parameters: Object.keys(parameters).length }, 'applied PostgreSQL parameters from the dynamic configuration');
  }

  // ---------- pgBackRest (the backup: section) ----------

  /** pgBackRest's config file for this member (0600, owned by postgres) and its work directory; archive_command needs both. */
  async #writeBackupConfig(): Promise<void> {
    const backup = this.#options.backup;
    if (backup === undefined) return;
    // pgBackRest creates none of them itself: without the log directory it would log nowhere.
    for (const dir of ['', '/log', '/lock', '/spool']) await this.#dataDir.ensureDir(`${backup.workDir}${dir}`, 0o700);
    const content = renderPgBackrestConf(backup, {
      dataDir: this.#dataDir.path,
      port: this.#options.port,
      socketDir: this.#options.socketDir,
      user: this.#options.superuser.username,
    });
    await this.#dataDir.writeOwnedFile(backup.configFile, content, 0o600);
  }

  /**
   * Once per agent process, when this member runs as primary: stanza-create (idempotent), creating a posix repository
   * directory first. In the background: a repository that is not reachable must not hold up the primary; it is logged.
   */
  #ensureStanzaSoon(): void {
    const backup = this.#options.backup;
    if (backup === undefined || this.#isStanzaEnsured) return;
    this.#isStanzaEnsured = true;
    const work = async (): Promise<void> => {
      if (isLocalRepository(backup) && !existsSync(backup.repository)) await this.#dataDir.ensureDir(backup.repository, 0o750);
      await this.#writeBackupConfig();
      await this.#run(pgbackrestArgv(backup, 'stanza-create'), AbortSignal.timeout(PGBACKREST_SHORT_MS), {
        hint: 'check backup.repository (the postgres OS user must be able to write it) and pgBackRest\u2019s log in the backup work directory',
      });
    };
    work().then(
      () => {
        this.#foreignSystem = undefined;
        this.#stanzaRetryMs = STANZA_RETRY_FIRST_MS;
        this.#options.log.info({ stanza: backup.stanza, repository: backup.repository }, 'pgBackRest stanza is ready');
      },
      (error: unknown) => {
        this.#isStanzaEnsured = false;
        const output = error instanceof PgwardenError ? String(error.context.stderrTail ?? '') : '';
        const foreign = foreignSystemProblem(output, backup);
        if (foreign !== undefined) {
          this.#reportForeignSystem(foreign);
          return;
        }
        // A repository that was away for a moment must not leave the primary without a stanza until its next start.
        const retryMs = this.#stanzaRetryMs;
        this.#stanzaRetryMs = Math.min(retryMs * 2, STANZA_RETRY_MAX_MS);
        this.#options.log.warn(
          { stanza: backup.stanza, error: describeError(error), retry_in_s: retryMs / 1000 },
          `pgBackRest stanza-create failed; retried in ${retryMs / 1000} s while this member runs as primary`,
        );
        clearTimeout(this.#stanzaRetry);
        this.#stanzaRetry = setTimeout(() => {
          this.#stanzaRetry = undefined;
          if (this.#upstream === undefined) this.#ensureStanzaSoon();
        }, retryMs).unref();
      },
    );
  }

  /** The repository holds another database system: one error line (code PGW_BACKUP_FOREIGN_SYSTEM) saying what to do. */
  #reportForeignSystem(problem: string): void {
    const backup = this.#options.backup;
    this.#foreignSystem = problem;
    const error = new PgwardenError('PGW_BACKUP_FOREIGN_SYSTEM', `[${this.#options.member}] ${problem}`, {
      context: {
        member: this.#options.member,
        repository: backup?.repository,
        stanza: backup?.stanza,
        hint: 'set backup.stanza to a new name (or backup.repository to another place) on every member and restart the agents',
      },
    });
    this.#options.log.error({ code: error.code, stanza: backup?.stanza ?? null, repository: backup?.repository ?? null }, error.message);
  }

  // ---------- WAL archiving across failover (core/wal-archive.ts decides) ----------

  async pushPreviousTimelines(timeline: number, method: ArchiveMethod, signal: AbortSignal): Promise<readonly ArchivePushStep[]> {
    const { files } = await listWal(this.#dataDir.path);
    const segments = previousTimelineSegments(files, timeline);
    const steps = await pushWalFiles(segments, method, this.#walPushDeps(), signal);
    this.#logPushSteps(steps, `earlier timelines' WAL after the promotion to timeline ${timeline}`);
    return steps;
  }

  /** Before pg_rewind: the WAL the archiver had not pushed yet (.ready); pg_rewind would replace it. */
  async #pushReadyWal(method: ArchiveMethod, signal: AbortSignal): Promise<void> {
    const { statuses } = await listWal(this.#dataDir.path);
    const ready = readyWalFiles(statuses);
    if (ready.length === 0) {
      this.#options.log.info({}, 'no .ready WAL to archive before pg_rewind');
      return;
    }
    this.#options.log.info({ files: ready }, `archiving ${ready.length} .ready WAL file(s) before pg_rewind`);
    const steps = await pushWalFiles(ready, method, this.#walPushDeps(), AbortSignal.any([signal, AbortSignal.timeout(READY_WAL_PUSH_MS)]));
    this.#logPushSteps(steps, '.ready WAL before pg_rewind');
  }

  #walPushDeps(): Parameters<typeof pushWalFiles>[2] {
    return {
      dataDir: this.#dataDir.path,
      backup: this.#options.backup,
      run: (argv, signal, hint) => this.#run(argv, signal, { hint }),
    };
  }

  /** One line for the run; a different content (045) is an error of its own per file: a split-brain signal. */
  #logPushSteps(steps: readonly ArchivePushStep[], what: string): void {
    const { log } = this.#options;
    const count = (outcome: ArchivePushStep['outcome']): string[] =>
      steps.filter((step) => step.outcome === outcome).map((step) => step.file);
    for (const step of steps.filter((candidate) => candidate.outcome === 'different-content')) {
      this.#differentContentFiles.add(step.file);
      log.error(
        { file: step.file, code: 'archive-duplicate-045', detail: step.detail },
        `SPLIT-BRAIN SIGNAL: the archive already holds WAL file ${step.file} with a different content; it was NOT overwritten. Two primaries wrote this segment: compare them before trusting the archive past it`,
      );
    }
    const failed = steps.find((step) => step.outcome === 'failed');
    const fields = {
      pushed: count('pushed'),
      already_archived: count('already-archived'),
      different: count('different-content'),
      failed: count('failed'),
    };
    if (failed !== undefined) {
      if (failed.detail.includes('holds system identifier') || failed.detail.includes('another database system'))
        this.#reportForeignSystem(failed.detail);
      log.warn({ ...fields, error: failed.detail }, `archiving ${what} failed at ${failed.file}: ${failed.detail}`);
    } else {
      this.#foreignSystem = undefined;
      log.info(fields, `archived ${what}: ${fields.pushed.length} pushed, ${fields.already_archived.length} already there`);
    }
  }

  /** The label of the newest backup in the repository, or undefined; rejects when the repository cannot be read. */
  async #latestBackup(backup: PgBackrestSettings, signal: AbortSignal): Promise<string | undefined> {
    const { stdout } = await this.#run(
      pgbackrestArgv(backup, 'info', ['--output=json']),
      AbortSignal.any([signal, AbortSignal.timeout(PGBACKREST_SHORT_MS)]),
      {
        hint: 'check backup.repository: the postgres OS user must be able to read it',
      },
    );
    try {
      return latestBackupLabel(stdout, backup.stanza);
    } catch (error) {
      throw new PgwardenError('PGW_PG_COMMAND_FAILED', `[${this.#options.member}] ${describeError(error)}`, {
        context: { member: this.#options.member, hint: 'check backup.repository: the postgres OS user must be able to read it' },
      });
    }
  }

  async backupInfo(signal: AbortSignal): Promise<string> {
    const backup = this.#requireBackup();
    const { stdout } = await this.#run(
      pgbackrestArgv(backup, 'info', ['--output=json']),
      AbortSignal.any([signal, AbortSignal.timeout(PGBACKREST_SHORT_MS)]),
      { hint: 'check backup.repository: the postgres OS user must be able to read it' },
    );
    return stdout;
  }

  async runBackup(
    type: 'full' | 'diff' | 'incr',
    primary: BackupPrimary | undefined,
    signal: AbortSignal,
  ): Promise<{ readonly label: string | undefined; readonly sizeBytes: number | undefined }> {
    const backup = this.#requireBackup();
    await this.#writeBackupConfig();
    const self = {
      dataDir: this.#dataDir.path,
      port: this.#options.port,
      socketDir: this.#options.socketDir,
      user: this.#options.superuser.username,
    };
    // A standby backup needs the primary as pg1: where its data dir and socket are, asked of the primary itself.
    const standby =
      primary === undefined
        ? undefined
        : {
            primary: await withSession(this.#upstreamTarget(primary.upstream, HISTORY_TIMEOUTS), signal, async (client) => {
              const row = (
                await client.query<{ data_dir: string; sockets: string; port: string }>(
                  "SELECT current_setting('data_directory') AS data_dir, current_setting('unix_socket_directories') AS sockets, current_setting('port') AS port",
                )
              ).rows[0];
              if (row === undefined) throw new Error(`${primary.name} did not say where its data dir is`);
              return {
                dataDir: row.data_dir,
                port: Number(row.port),
                socketDir: row.sockets.split(',')[0]!.trim(),
                user: this.#options.superuser.username,
              };
            }),
            self,
          };
    await this.#run(pgbackrestBackupArgv(backup, type, standby), signal, {
      hint:
        standby === undefined
          ? 'see pgBackRest\u2019s backup log in the backup work directory'
          : 'a standby backup reads the primary\u2019s data dir too: both must be on this host, or set pg1-host in backup.options (or take it with --from primary)',
    });
    const rows = backupRows(JSON.parse(await this.backupInfo(signal)) as unknown, backup.stanza);
    const newest = rows[rows.length - 1];
    return { label: newest?.label, sizeBytes: newest?.sizeBytes };
  }

  #requireBackup(): PgBackrestSettings {
    const backup = this.#options.backup;
    if (backup === undefined)
      throw new PgwardenError('PGW_CONFIG_INVALID', `[${this.#options.member}] no backup: section is configured`, {
        context: { member: this.#options.member, key: 'backup', hint: 'add a backup: section (README, Backups) to every member' },
      });
    return backup;
  }

  // ---------- process ----------

  async #start(upstream: Upstream | undefined, isReplica: boolean, signal: AbortSignal): Promise<void> {
    await this.#postmaster.assertStopped();
    const state = await this.#dataDir.state();
    if (state !== 'initialized')
      throw new PgwardenError(
        'PGW_PG_COMMAND_FAILED',
        `[${this.#options.member}] no data dir to start: ${this.#dataDir.path} is ${state}`,
        {
          context: { member: this.#options.member, path: this.#dataDir.path, hint: 'bootstrap or clone the member first' },
        },
      );
    await this.#dataDir.ensureDir(this.#options.socketDir, 0o755);
    await this.#writeConfig(upstream, isReplica);
    await this.#postmaster.start(() => this.#isAcceptingConnections(), signal, { upstream: upstream?.name ?? null, replica: isReplica });
  }

  async #isAcceptingConnections(): Promise<boolean> {
    try {
      await this.#query('SELECT 1', AbortSignal.timeout(READY_CHECK_MS));
      return true;
    } catch {
      return false;
    }
  }

  async startPrimary(signal: AbortSignal): Promise<void> {
    await this.#start(undefined, false, signal);
    this.#ensureStanzaSoon();
  }

  startReplica(upstream: Upstream | undefined, signal: AbortSignal): Promise<void> {
    return this.#start(upstream, true, signal);
  }

  async stop(mode: StopMode, signal: AbortSignal): Promise<void> {
    await this.#postmaster.stop(mode, signal);
  }

  async promote(signal: AbortSignal): Promise<void> {
    // pg_promote's own wait checks ten times a second; polling here ends the wait within PROMOTE_POLL_MS of the end of
    // recovery instead (50 ms off every switchover and failover on average).
    const rows = await this.#query<{ signalled: boolean }>('SELECT pg_promote(false) AS signalled', signal);
    if (rows[0]?.signalled !== true)
      throw new PgwardenError('PGW_PG_COMMAND_FAILED', `[${this.#options.member}] pg_promote could not signal the startup process`);
    await waitUntil(
      async () => (await this.#query<{ recovering: boolean }>('SELECT pg_is_in_recovery() AS recovering', signal))[0]?.recovering === false,
      {
        timeoutMs: PROMOTE_TIMEOUT_MS,
        intervalMs: PROMOTE_POLL_MS,
        signal,
        describe: 'the end of recovery after pg_promote',
        context: { member: this.#options.member, hint: 'see the PostgreSQL log of this member' },
      },
    );
    this.#upstream = undefined;
    this.#options.log.info({}, 'promoted');
    this.#ensureStanzaSoon();
  }

  async checkpoint(signal: AbortSignal): Promise<void> {
    await this.#query('CHECKPOINT', signal);
  }

  // ---------- following an upstream ----------

  async isHistoryDivergent(upstream: Upstream, timeline: number, signal: AbortSignal): Promise<boolean | undefined> {
    if (timeline <= 1) return false;
    const local = await this.#dataDir.readHistoryFile(timeline);
    if (local === undefined) return undefined;
    try {
      const remote = await withSession(this.#upstreamTarget(upstream, HISTORY_TIMEOUTS), signal, async (client) => {
        const result = await client.query<{ text: string }>('SELECT pg_read_file($1) AS text', [`pg_wal/${historyFileName(timeline)}`]);
        return result.rows[0]?.text;
      });
      return remote === undefined ? undefined : remote.trim() !== local.trim();
    } catch {
      return undefined;
    }
  }

  async detachUpstream(signal: AbortSignal): Promise<void> {
    await this.#writeConfig(undefined, true);
    await this.#reloadConf(signal);
    this.#options.log.info({}, 'detached from the upstream: WAL receiver stopped');
  }

  async followUpstream(upstream: Upstream, signal: AbortSignal): Promise<void> {
    await this.#writeConfig(upstream, true);
    await this.#reloadConf(signal);
    this.#options.log.info({ upstream: upstream.name }, 'following a new upstream');
  }

  // ---------- data dir ----------

  /** The start-up check again before a bootstrap or clone: the mount may have changed since. Not retryable. */
  async #assertDataDirUsable(): Promise<void> {
    const problem = await checkDataDirUsable(this.#dataDir.path, this.#options.runAs);
    if (problem !== undefined)
      throw new PgwardenError('PGW_DATA_DIR_UNUSABLE', `[${this.#options.member}] ${problem}`, {
        context: { member: this.#options.member, path: this.#dataDir.path },
      });
  }

  async initdb(signal: AbortSignal): Promise<void> {
    this.#replicaTimeline = 0;
    if ((await this.#dataDir.state()) === 'initialized')
      throw new PgwardenError(
        'PGW_PG_COMMAND_FAILED',
        `[${this.#options.member}] refusing initdb: ${this.#dataDir.path} already holds a cluster`,
        {
          context: { member: this.#options.member, path: this.#dataDir.path },
        },
      );
    await this.#assertDataDirUsable();
    await this.#dataDir.recreateEmpty();
    await this.#dataDir.withPasswordFile((pwfile) =>
      this.#run(
        initdbArgv(this.#bin('initdb'), {
          dataDir: this.#dataDir.path,
          superuser: this.#options.superuser.username,
          pwfile,
          options: this.#options.initdbOptions,
        }),
        signal,
      ),
    );
    // Single-user mode creates the roles before any TCP listener exists: no window with a password-less replication user.
    await this.#run(singleUserArgv(this.#bin('postgres'), this.#dataDir.path), signal, {
      stdin: bootstrapRolesSql({ replication: this.#options.replication, rewind: this.#rewindRole() }),
    });
    await this.#writeConfig(undefined, false);
  }

  /** bootstrap.method: the user's command makes the data dir; it is recovered until promoted, then stopped. */
  async bootstrapFrom(method: CustomBootstrap, signal: AbortSignal): Promise<void> {
    const member = this.#options.member;
    this.#replicaTimeline = 0;
    if ((await this.#dataDir.state()) === 'initialized')
      throw new PgwardenError(
        'PGW_PG_COMMAND_FAILED',
        `[${member}] refusing bootstrap.method ${method.name}: ${this.#dataDir.path} already holds a cluster`,
        {
          context: { member, path: this.#dataDir.path },
        },
      );
    await this.#assertDataDirUsable();
    await this.#dataDir.recreateEmpty();
    await this.#dataDir.writePgpass();
    await this.#writeBackupConfig();
    try {
      await this.#run(method.argv, signal, { hint: `bootstrap.${method.name}.command must exit 0 only once the data dir holds a cluster` });
      if ((await this.#dataDir.state()) !== 'initialized')
        throw new PgwardenError(
          'PGW_PG_COMMAND_FAILED',
          `[${member}] bootstrap.method ${method.name} exited 0 but left no cluster in ${this.#dataDir.path}`,
          {
            context: { member, command: method.argv, path: this.#dataDir.path },
          },
        );
      const left = await this.#dataDir.recoverySignals();
      if (!method.keepExistingRecoveryConf) await this.#dataDir.removeRecoverySignals();
      const recovery = method.keepExistingRecoveryConf ? {} : (method.recoveryConf ?? {});
      await this.#dataDir.writeConfig({ ...this.#parameters, ...recovery }, { upstream: undefined, isReplica: false });
      const signals = method.keepExistingRecoveryConf ? left : method.recoveryConf !== undefined ? ['recovery.signal'] : [];
      for (const file of signals) await this.#dataDir.writeOwnedFile(join(this.#dataDir.path, file), '', 0o600);
      if (signals.length > 0) {
        this.#options.log.info(
          { method: method.name, signals },
          `bootstrap.method ${method.name}: recovering the copy until it is promoted`,
        );
        // pg_control copied from a primary says "in production" before recovery even started: the promotion shows as
        // that state on a new timeline (archive recovery always ends on one).
        const copiedTimeline = (await this.#controlData(signal)).timeline;
        const isPromoted = async (): Promise<boolean> => {
          const control = await this.#controlData(AbortSignal.timeout(READY_CHECK_MS * 5)).catch(() => undefined);
          return control?.state === 'in production' && control.timeline !== copiedTimeline;
        };
        await this.#postmaster.start(isPromoted, signal, { bootstrap: method.name, recovery: true });
        await this.stop('fast', signal);
        if (method.isRecoverySettingsRemoved === true) await this.#dataDir.removeAutoConfSettings(AUTO_CONF_RECOVERY_SETTINGS);
      }
      // The copy's roles are the source's: the configured users get the configured passwords before anything connects.
      await this.#run(singleUserArgv(this.#bin('postgres'), this.#dataDir.path), signal, {
        stdin: ensureRolesSql({ superuser: this.#options.superuser, replication: this.#options.replication, rewind: this.#rewindRole() }),
      });
      await this.#writeConfig(undefined, false);
      this.#options.log.info({ method: method.name }, `bootstrapped with bootstrap.method ${method.name}`);
    } catch (error) {
      if (!signal.aborted) {
        await this.stop('immediate', AbortSignal.timeout(10_000)).catch(() => undefined);
        await this.#dataDir.recreateEmpty().catch(() => undefined);
      }
      throw error;
    }
  }

  /** Clones `from` into a fresh data dir; PGW_PG_UNREACHABLE when `from` does not answer (the dir is left empty). */
  async basebackup(from: Upstream, signal: AbortSignal): Promise<void> {
    // Never empty the data dir under a running postmaster.
    await this.#postmaster.assertStopped();
    this.#replicaTimeline = 0;
    await this.#assertDataDirUsable();
    await this.#dataDir.recreateEmpty();
    await this.#dataDir.writePgpass();
    if (from.connUrl === '')
      throw new PgwardenError('PGW_PG_COMMAND_FAILED', `[${this.#options.member}] cannot clone ${from.name}: it has no host and port`, {
        context: { member: this.#options.member, hint: 'give standby_cluster a host and port to clone the remote primary from' },
      });
    const { host, port } = addressOf(from);
    await this.#run(
      pgBasebackupArgv(this.#bin('pg_basebackup'), {
        dataDir: this.#dataDir.path,
        host,
        port,
        user: this.#options.replication.username,
        security: this.#options.replication,
        service: serviceNameFor('replication'),
      }),
      signal,
      {
        hint: `can the replication user connect to ${from.name}? check pg_hba, the replication password and its TLS keys (postgresql.authentication.replication)`,
      },
    );
    await this.#writeConfig(from, true);
  }

  /** create_replica_methods: each method in order until one leaves a data dir to start as a replica of `from`. */
  async createReplica(from: Upstream, methods: readonly ReplicaMethod[], signal: AbortSignal): Promise<readonly ReplicaMethodResult[]> {
    await this.#postmaster.assertStopped();
    this.#replicaTimeline = 0;
    await this.#assertDataDirUsable();
    await this.#dataDir.writePgpass();
    await this.#writeBackupConfig();
    const results = await tryReplicaMethods(this.#options.member, methods, signal, (method) =>
      this.#runReplicaMethod(from, method, signal),
    );
    await this.#writeConfig(from, true);
    return results;
  }

  async #runReplicaMethod(from: Upstream, method: ReplicaMethod, signal: AbortSignal): Promise<MethodRun> {
    if (method.kind === 'basebackup') {
      await this.basebackup(from, signal);
      return { outcome: 'ok', detail: `copied ${from.name} with pg_basebackup` };
    }
    if (method.kind === 'pgbackrest') return this.#restoreWithPgBackrest(method.keepData, signal);
    if (method.keepData) await this.#dataDir.ensureDir(this.#dataDir.path, 0o700);
    else await this.#dataDir.recreateEmpty();
    await this.#run(method.argv, signal, {
      hint: `create_replica_methods: ${method.name} must exit 0 only once the data dir holds a copy`,
    });
    const state = await this.#dataDir.state();
    if (state !== 'initialized')
      throw new PgwardenError(
        'PGW_PG_COMMAND_FAILED',
        `[${this.#options.member}] ${method.name} exited 0 but left no cluster in ${this.#dataDir.path}`,
        {
          context: { member: this.#options.member, command: method.argv, path: this.#dataDir.path },
        },
      );
    return { outcome: 'ok', detail: `${method.name} (${redactText(method.argv.join(' '))}) made the data dir` };
  }

  /**
   * Point-in-time recovery in place (pgwarden restore): pgBackRest restores the stopped data dir (--delta) with the
   * target, PostgreSQL recovers to it and promotes itself onto a new timeline (target-action=promote), and keeps running
   * as primary. A failure stops PostgreSQL again.
   */
  async restoreToTarget(target: RestoreTarget, memberSlots: readonly string[], signal: AbortSignal): Promise<void> {
    const backup = this.#requireBackup();
    const member = this.#options.member;
    this.#replicaTimeline = 0;
    await this.#postmaster.assertStopped();
    await this.#assertDataDirUsable();
    await this.#writeBackupConfig();
    await this.#dataDir.removeRecoverySignals();
    const argv = pgbackrestArgv(backup, 'restore', ['--delta', ...pgbackrestTargetOptions(target)]);
    this.#options.log.info({ target: describeRestoreTarget(target), command: argv }, 'restoring the data dir in place with pgBackRest');
    await this.#run(argv, signal, { hint: 'pgBackRest\u2019s own log is in the backup work directory' });
    // pgBackRest wrote the target and restore_command into postgresql.auto.conf; our postgresql.conf is rendered again
    // (it was restored from the backup) and removes recovery.signal, which is written again after it.
    await this.#writeConfig(undefined, false);
    await this.#dataDir.writeOwnedFile(join(this.#dataDir.path, 'recovery.signal'), '', 0o600);
    // pg_control restored from the backup may still say "in production": only the server itself says it was promoted.
    const isPromoted = async (): Promise<boolean> => {
      try {
        const rows = await this.#query<{ in_recovery: boolean }>(
          'SELECT pg_is_in_recovery() AS in_recovery',
          AbortSignal.timeout(READY_CHECK_MS),
        );
        return rows[0]?.in_recovery === false;
      } catch {
        return false;
      }
    };
    try {
      await this.#postmaster.start(isPromoted, signal, { restore: describeRestoreTarget(target), recovery: true });
      // The target stays in postgresql.auto.conf after the promotion: were this data dir ever started as a standby
      // (a replica after a failover), recovery would stop at the old target again.
      for (const setting of RECOVERY_TARGET_SETTINGS) await this.#query(`ALTER SYSTEM RESET ${setting}`, signal);
      // pgBackRest restores no slots: the members' are made here, so the re-cloned replicas can stream through them.
      for (const slot of memberSlots)
        await this.#query(
          'SELECT pg_create_physical_replication_slot($1, true) WHERE NOT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = $1)',
          signal,
          [slot],
        );
      // As after any promotion: without a checkpoint on the new timeline a later pg_rewind may see nothing to do.
      await this.checkpoint(signal);
      this.#options.log.info({ target: describeRestoreTarget(target) }, 'restored in place and promoted onto a new timeline');
    } catch (error) {
      if (!signal.aborted) await this.stop('fast', AbortSignal.timeout(60_000)).catch(() => undefined);
      throw new PgwardenError(
        'PGW_PG_COMMAND_FAILED',
        `[${member}] the restore to ${describeRestoreTarget(target)} failed: ${describeError(error)}`,
        {
          cause: error,
          context: {
            member,
            path: this.#dataDir.path,
            hint: 'the PostgreSQL log says why recovery stopped (a target before the oldest backup, or past the archived WAL); PostgreSQL is stopped',
          },
        },
      );
    }
  }

  /** pgwarden's own pgBackRest restore: skipped (nothing touched) when the repository has no backup yet. */
  async #restoreWithPgBackrest(keepData: boolean, signal: AbortSignal): Promise<MethodRun> {
    const backup = this.#options.backup;
    if (backup === undefined) return { outcome: 'skipped', detail: 'no backup: section is configured' };
    const label = await this.#latestBackup(backup, signal);
    if (label === undefined)
      return { outcome: 'skipped', detail: `the repository ${backup.repository} holds no backup of stanza ${backup.stanza} yet` };
    const isDelta = keepData && (await this.#dataDir.state()) === 'initialized';
    if (isDelta) await this.#dataDir.removeRecoverySignals();
    else await this.#dataDir.recreateEmpty();
    await this.#run(pgbackrestRestoreArgv(backup, isDelta), signal, { hint: 'pgBackRest\u2019s own log is in the backup work directory' });
    return { outcome: 'ok', detail: `restored pgBackRest backup ${label}${isDelta ? ' (--delta)' : ''} from ${backup.repository}` };
  }

  /**
   * Stops the node, runs crash recovery first when it was not shut down cleanly (pg_rewind demands a clean target),
   * then pg_rewind from `from`. Fails with PGW_PG_UNREACHABLE when `from` does not answer and PGW_PG_COMMAND_FAILED
   * when there is no data dir or pg_rewind refuses (another system, no wal_log_hints); the data dir is untouched then.
   */
  async rewind(from: Upstream, signal: AbortSignal, options: RewindOptions = {}): Promise<void> {
    this.#replicaTimeline = 0;
    await this.stop('fast', signal);
    // Also clears the lock file of a postmaster killed with the agent and never reaped, which single-user mode trips on.
    await this.#postmaster.assertStopped();
    const control = await this.#controlData(signal);
    await this.#dataDir.removeRecoverySignals();
    if (!isCleanShutdown(control.state)) {
      this.#options.log.info({ state: control.state ?? null }, 'running crash recovery in single-user mode before pg_rewind');
      await this.#run(singleUserArgv(this.#bin('postgres'), this.#dataDir.path), signal, { stdin: '' });
    }
    if (options.archiveReadyFirst !== undefined)
      await this.#pushReadyWal(options.archiveReadyFirst, signal).catch((error: unknown) =>
        this.#options.log.warn({ error: describeError(error) }, 'could not archive the .ready WAL before pg_rewind; rewinding anyway'),
      );
    await this.#awaitSourceCheckpoint(from, signal);
    const { host, port } = addressOf(from);
    await this.#dataDir.writePgpass();
    await this.#run(
      pgRewindArgv(this.#bin('pg_rewind'), {
        dataDir: this.#dataDir.path,
        host,
        port,
        user: (this.#options.rewind ?? this.#options.superuser).username,
        security: this.#options.rewind ?? this.#options.superuser,
        service: serviceNameFor(this.#options.rewind === undefined ? 'superuser' : 'rewind'),
      }),
      signal,
      { hint: 'if rewind keeps failing, pgwarden re-clones the member' },
    );
    await this.#writeConfig(from, true);
    this.#options.log.info({ from: from.name }, 'pg_rewind finished');
  }

  /**
   * pg_rewind reads the source's pg_control: until the source's first checkpoint on its new timeline it still shows
   * the old one, and pg_rewind would find "no rewind required" for a diverged member. A new primary runs that
   * checkpoint right after promoting, while it already takes writes, so a fast rewind can get here first: wait for it
   * (bounded), as Patroni waits for the leader's checkpoint_after_promote. A source that cannot be asked is rewound
   * from anyway, as before.
   */
  async #awaitSourceCheckpoint(from: Upstream, signal: AbortSignal): Promise<void> {
    const query = async (): Promise<{ checkpoint: number; current: number | null } | undefined> =>
      withSession(this.#upstreamTarget(from, HISTORY_TIMEOUTS), signal, async (client) => {
        const result = await client.query<{ checkpoint: number; current: number | null }>(SOURCE_TIMELINES_SQL);
        return result.rows[0];
      });
    try {
      await waitUntil(
        async () => {
          const timelines = await query();
          return timelines === undefined || timelines.current === null || timelines.checkpoint >= timelines.current;
        },
        { timeoutMs: SOURCE_CHECKPOINT_WAIT_MS, intervalMs: 100, signal, describe: `a checkpoint on ${from.name}'s current timeline` },
      );
    } catch (error) {
      if (signal.aborted) throw error;
      this.#options.log.warn(
        { from: from.name, error: describeError(error) },
        'could not confirm the rewind source checkpointed on its timeline; running pg_rewind anyway',
      );
    }
  }

  async removeDataDir(signal: AbortSignal): Promise<void> {
    if (signal.aborted) throw new PgwardenError('PGW_PG_TIMEOUT', `[${this.#options.member}] aborted before removing the data dir`);
    await this.stop('immediate', signal);
    await this.#dataDir.remove();
  }

  /** The rewind user when it is a role of its own (the superuser needs no creating). */
  #rewindRole(): PgAuth | undefined {
    const rewind = this.#options.rewind;
    return rewind === undefined || rewind.username === this.#options.superuser.username ? undefined : rewind;
  }

  // ---------- slots and synchronous replication ----------

  async applySlotPlan(steps: readonly SlotStep[], signal: AbortSignal): Promise<readonly SlotStepResult[]> {
    return applySlotSteps(steps, this.#session, signal, this.#options.log);
  }

  /**
   * PostgreSQL 15 cannot create a logical slot in recovery, so a replica gets a byte copy of the primary's slot state
   * (as Patroni does): read with pg_read_binary_file on the primary, written into pg_replslot while stopped, loaded at
   * start. From then on the slot plan advances it to the position the primary's consumers confirmed.
   */
  async copyLogicalSlots(from: Upstream, slotNames: readonly string[], signal: AbortSignal): Promise<void> {
    const states = await withSession(this.#upstreamTarget(from, SLOT_COPY_TIMEOUTS), signal, (client) =>
      readLogicalSlotStates(client, slotNames, { member: this.#options.member, from: from.name }),
    );
    await this.stop('fast', signal);
    const written = await this.#dataDir.writeSlotStates(states);
    this.#options.log.info({ slots: [...states.keys()], from: from.name }, 'copied logical slot state from the primary; restarting');
    try {
      await this.startReplica(from, signal);
    } catch (error) {
      // A copy PostgreSQL refuses (e.g. wal_level is not logical here) must not keep the replica down.
      await this.#dataDir.removePaths(written);
      await this.startReplica(from, signal).catch(() => undefined);
      throw error;
    }
  }

  /**
   * ALTER SYSTEM (postgresql.auto.conf) rather than our rendered file: it applies to a postmaster this agent adopted
   * and survives a crash restart, so a primary that comes back keeps waiting for the standbys the sync key allows.
   */
  async setSynchronousStandbyNames(value: string, signal: AbortSignal): Promise<void> {
    await this.#query(`ALTER SYSTEM SET synchronous_standby_names = '${value.replace(/'/g, "''")}'`, signal);
    await this.#reloadConf(signal);
    // Commits already waiting are released when a listed standby next reports its position; a little WAL makes the
    // standbys report now (after the walsenders have had a moment to reload) instead of at their status interval.
    await sleep(SYNC_RELOAD_SETTLE_MS);
    await this.#query(
      "SELECT CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_logical_emit_message(false, 'pgwarden', 'synchronous_standby_names changed') END",
      signal,
    ).catch(() => undefined);
    this.#options.log.info({ synchronous_standby_names: value }, 'set synchronous_standby_names');
  }

  // ---------- observation ----------

  async walStatus(signal: AbortSignal): Promise<WalStatus | undefined> {
    try {
      const row = (await this.#session.query<WalStatusRow>(WAL_STATUS_SQL, signal, [], 'pgwarden_wal_status'))[0];
      return row === undefined ? undefined : walStatusFromRow(row);
    } catch {
      return undefined;
    }
  }

  async watchUpstream(upstream: Upstream, signal: AbortSignal): Promise<UpstreamWatchEnd> {
    let client: SqlClient;
    try {
      client = await connectTo(this.#upstreamTarget(upstream, WATCH_TIMEOUTS), signal);
    } catch (error) {
      if (signal.aborted) return 'aborted';
      this.#options.log.debug({ upstream: upstream.name, error: describeError(error) }, 'could not open the upstream watch session');
      return 'unavailable';
    }
    return new Promise<UpstreamWatchEnd>((resolve) => {
      const finish = (end: UpstreamWatchEnd): void => {
        signal.removeEventListener('abort', onAbort);
        client.removeListener('end', onEnd);
        void client.end().catch(() => undefined);
        resolve(end);
      };
      const onAbort = (): void => finish('aborted');
      const onEnd = (): void => finish('closed');
      client.once('end', onEnd);
      // connectTo already listens for 'error' (an unhandled one would crash the agent); 'end' follows it.
      signal.addEventListener('abort', onAbort, { once: true });
      if (signal.aborted) finish('aborted');
    });
  }

  async #controlData(signal: AbortSignal): Promise<ControlData> {
    const { stdout } = await this.#run(pgControldataArgv(this.#bin('pg_controldata'), this.#dataDir.path), signal);
    return parseControlData(stdout);
  }

  async probe(signal: AbortSignal): Promise<LocalPg> {
    const pg = await this.#probePostgres(signal);
    if (pg.dataDir !== 'initialized') return pg;
    const walDisk = await this.#walDisk.read(performance.now());
    const isPrimary = pg.isRunning && pg.role === 'primary' && this.#options.backup !== undefined;
    if (isPrimary) this.#readBackupInfoSoon();
    const lastBackup = isPrimary && this.#backupInfo !== undefined ? this.#backupInfo.state : undefined;
    const archiver = this.#archiveFailures === undefined ? pg.archiver : await this.#archiveFailures.observe(pg.archiver);
    const backupRepository =
      this.#options.backup === undefined
        ? undefined
        : { isForeignSystem: this.#foreignSystem !== undefined, differentContentFiles: this.#differentContentFiles.size };
    return {
      ...pg,
      ...(archiver !== undefined ? { archiver } : {}),
      ...(walDisk !== undefined ? { walDisk } : {}),
      ...(lastBackup !== undefined ? { lastBackup } : {}),
      ...(backupRepository !== undefined ? { backupRepository } : {}),
    };
  }

  /**
   * In the background (a slow repository must not hold up the HA cycle), at most every BACKUP_INFO_EVERY_MS. A failed
   * read keeps the last known backup, so its age grows and the alert on it fires when the repository stays unreadable.
   */
  #readBackupInfoSoon(): void {
    const backup = this.#options.backup;
    const nowMs = performance.now();
    if (backup === undefined || this.#isBackupInfoRunning) return;
    const everyMs = this.#backupInfo?.state.stopEpochS === undefined ? BACKUP_INFO_NONE_YET_EVERY_MS : BACKUP_INFO_EVERY_MS;
    if (this.#backupInfo !== undefined && nowMs - this.#backupInfo.readAtMs < everyMs) return;
    this.#isBackupInfoRunning = true;
    const read = async (): Promise<BackupRepositoryState> => {
      const { stdout } = await this.#run(pgbackrestArgv(backup, 'info', ['--output=json']), AbortSignal.timeout(PGBACKREST_SHORT_MS));
      const summary = repositorySummary(stdout, backup.stanza);
      return {
        stopEpochS: summary.newest?.stopEpochS,
        label: summary.newest?.label,
        type: summary.newest?.type,
        sizeBytes: summary.newest?.sizeBytes,
        backupCount: summary.backupCount,
        recoverableFromEpochS: summary.recoverableFromEpochS,
        archiveMinWal: summary.archiveMinWal,
      };
    };
    read()
      .then(
        (state) => (this.#backupInfo = { readAtMs: nowMs, state }),
        (error: unknown) => {
          this.#options.log.debug({ error: describeError(error) }, 'pgbackrest info for the backup age failed');
          this.#backupInfo = { readAtMs: nowMs, state: this.#backupInfo?.state ?? { stopEpochS: undefined } };
        },
      )
      .finally(() => (this.#isBackupInfoRunning = false));
  }

  async #probePostgres(signal: AbortSignal): Promise<LocalPg> {
    const context = { dataDir: await this.#dataDir.state(), upstream: this.#upstream, crashedAtMs: this.#postmaster.crashedAtMs };
    if (context.dataDir !== 'initialized') return stoppedLocalPg(context, undefined);
    const pid = await this.#postmaster.runningPid();
    if (pid !== undefined) {
      // Frozen by the fence: a query would only wait out its deadline (and hold the cycle and the lock's renewal).
      if (isFrozen(pid)) return { ...stoppedLocalPg(context, undefined), controlState: 'running', isFrozen: true };
      try {
        const nowMs = performance.now();
        const withSettings = this.#needsSettings(pid, nowMs);
        const raw = (
          await this.#session.query<Omit<ProbeRow, 'pending_restart'> & { readonly pending_restart: boolean | null }>(
            withSettings ? PROBE_SQL : PROBE_WITHOUT_SETTINGS_SQL,
            signal,
            [],
            withSettings ? 'pgwarden_probe' : 'pgwarden_probe_without_settings',
          )
        )[0];
        if (raw !== undefined && raw.pending_restart !== null) this.#pendingRestart = { value: raw.pending_restart, pid, atMs: nowMs };
        const row: ProbeRow | undefined =
          raw === undefined ? undefined : { ...raw, pending_restart: raw.pending_restart ?? this.#pendingRestart?.value ?? false };
        if (row !== undefined) {
          if (row.in_recovery) this.#replicaTimeline = Math.max(this.#replicaTimeline, replicaTimelineOf(row));
          return localPgFromRow(row, context, this.#replicaTimeline);
        }
      } catch (error) {
        this.#options.log.debug({ error: describeError(error) }, 'probe query failed');
        // Frozen by the fence while the query ran: it is not "starting or shutting down".
        if (isFrozen(pid)) return { ...stoppedLocalPg(context, undefined), controlState: 'running', isFrozen: true };
      }
      // Running but not answering (starting, shutting down): report not running and let the task slot own it.
      return { ...stoppedLocalPg(context, undefined), controlState: 'running' };
    }
    try {
      return stoppedLocalPg(context, await this.#controlData(signal));
    } catch (error) {
      // No pg_control yet (initdb or a clone in progress, an empty dir): expected, not worth a warning every cycle.
      const hasControlFile = existsSync(join(this.#dataDir.path, 'global', 'pg_control'));
      if (hasControlFile) this.#options.log.warn({ error: describeError(error) }, 'pg_controldata failed');
      else this.#options.log.debug({ error: describeError(error) }, 'pg_controldata: no pg_control yet');
      return stoppedLocalPg(context, undefined);
    }
  }

  async close(): Promise<void> {
    this.#postmaster.close();
    await this.#session.drop();
  }
}
