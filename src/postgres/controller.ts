// PgController for a local PostgreSQL 15: owns the data dir, runs the postmaster as a child, and probes it with one SQL round trip.
import { execFileSync, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chown, mkdir, open, readFile, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import pg from 'pg';
import type { PgController, StopMode, Upstream, WalStatus } from '../core/ports.js';
import type { LocalPg, ReplicationRow } from '../core/types.js';
import { describeError, PgwardenError } from '../util/errors.js';
import { isAlive } from '../util/process-alive.js';
import type { Log } from '../util/log.js';
import { initdbArgv, pgBasebackupArgv, pgControldataArgv, pgRewindArgv, singleUserArgv } from './commands.js';
import { parseControlData, roleFromControlState, isCleanShutdown } from './controldata.js';
import { STOPPED_PG } from '../core/local-pg.js';
import { slotNameForMember } from '../core/slot-names.js';
import type { SlotStep, SlotStepResult } from '../core/slot-changes.js';
import { renderPgHba, renderPgpass, renderPostgresqlConf, type GucValue, type ReplicaSettings } from './conf-render.js';
import { formatLsn, parseLsn } from './lsn.js';
import { runCommand, type RunAs } from './runner.js';

export interface PgControllerOptions {
  readonly member: string;
  readonly scope: string;
  readonly dataDir: string;
  readonly binDir: string;
  readonly listenHost: string;
  readonly port: number;
  readonly socketDir: string;
  readonly superuser: { readonly username: string; readonly password?: string | undefined };
  readonly replication: { readonly username: string; readonly password?: string | undefined };
  readonly parameters: Readonly<Record<string, GucValue>>;
  readonly pgHba: readonly string[];
  readonly initdbOptions: readonly (string | Readonly<Record<string, string>>)[];
  readonly pgpassPath: string;
  readonly runAs?: RunAs | undefined;
  readonly log: Log;
  readonly logFile: string;
}

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

/** How long a start may take before we call it failed: crash recovery of a busy node can take a while. */
const START_POLL_MS = 50;
/** An adopted postmaster (not our child) is watched by polling, the only portable way without pidfd. */
const ADOPTED_POLL_MS = 200;
const STOP_SIGNALS: Readonly<Record<StopMode, NodeJS.Signals>> = { smart: 'SIGTERM', fast: 'SIGINT', immediate: 'SIGQUIT' };

const PROBE_SQL = `SELECT pg_is_in_recovery() AS in_recovery,
  CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_current_wal_flush_lsn()::text END AS write_lsn,
  pg_last_wal_receive_lsn()::text AS received_lsn,
  pg_last_wal_replay_lsn()::text AS replayed_lsn,
  pg_last_xact_replay_timestamp()::text AS replayed_ts,
  CASE WHEN pg_is_in_recovery() THEN pg_is_wal_replay_paused() ELSE false END AS replay_paused,
  current_setting('server_version_num')::int AS server_version,
  to_char(pg_postmaster_start_time() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00:00' AS start_time,
  (SELECT system_identifier::text FROM pg_control_system()) AS sysid,
  (SELECT timeline_id FROM pg_control_checkpoint()) AS checkpoint_tli,
  CASE WHEN pg_is_in_recovery() THEN NULL ELSE ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int END AS current_tli,
  (SELECT status FROM pg_stat_wal_receiver LIMIT 1) AS receiver_status,
  (SELECT received_tli FROM pg_stat_wal_receiver LIMIT 1) AS received_tli,
  (SELECT coalesce(bool_or(pending_restart), false) FROM pg_settings) AS pending_restart,
  current_setting('synchronous_standby_names') AS synchronous_standby_names,
  current_setting('wal_level') AS wal_level,
  (SELECT coalesce(json_agg(json_build_object('name', slot_name, 'type', slot_type, 'database', database, 'plugin', plugin, 'active', active,
     'restart_lsn', restart_lsn::text, 'confirmed_flush_lsn', confirmed_flush_lsn::text, 'wal_status', wal_status,
     'retained', pg_wal_lsn_diff(CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END, restart_lsn)) ORDER BY slot_name), '[]'::json)
     FROM pg_replication_slots WHERE NOT temporary) AS slots,
  (SELECT coalesce(json_agg(json_build_object('usename', usename, 'application_name', application_name, 'client_addr', host(client_addr),
     'state', state, 'sync_state', sync_state, 'sync_priority', sync_priority, 'flush_lsn', flush_lsn::text) ORDER BY application_name), '[]'::json) FROM pg_stat_replication) AS replication`;

interface ProbeSlot {
  name: string;
  type: string;
  database: string | null;
  plugin: string | null;
  active: boolean;
  restart_lsn: string | null;
  confirmed_flush_lsn: string | null;
  wal_status: string | null;
  retained: number | null;
}

const WAL_STATUS_SQL = `SELECT CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_current_wal_flush_lsn()::text END AS write_lsn,
  pg_last_wal_receive_lsn()::text AS received_lsn,
  pg_last_wal_replay_lsn()::text AS replayed_lsn,
  (SELECT status FROM pg_stat_wal_receiver LIMIT 1) AS status,
  (SELECT coalesce(string_agg(application_name, ',' ORDER BY application_name), '') FROM pg_stat_replication WHERE state = 'streaming') AS streaming_standbys`;

interface ProbeRow {
  in_recovery: boolean;
  write_lsn: string | null;
  received_lsn: string | null;
  replayed_lsn: string | null;
  replayed_ts: string | null;
  replay_paused: boolean;
  server_version: number;
  start_time: string;
  sysid: string;
  checkpoint_tli: number;
  current_tli: number | null;
  receiver_status: string | null;
  received_tli: number | null;
  pending_restart: boolean;
  synchronous_standby_names: string;
  wal_level: string;
  slots: ProbeSlot[];
  replication: (ReplicationRow & { flush_lsn: string | null })[];
}

const lsnOrUndefined = (text: string | null): bigint | undefined => (text === null ? undefined : parseLsn(text));

export class PostgresController implements PgController {
  readonly #options: PgControllerOptions;
  readonly #exitListeners: (() => void)[] = [];
  #childPid: number | undefined;
  #isStopRequested = false;
  #adoptedTimer: NodeJS.Timeout | undefined;
  #client: pg.Client | undefined;
  #crashedAtMs: number | undefined;
  #upstream: string | undefined;
  /** What the last rendered config pointed at, so a parameter change re-renders the same role. */
  #rendered: { readonly upstream: Upstream | undefined; readonly isReplica: boolean } | undefined;
  #parameters: Readonly<Record<string, GucValue>>;
  /** A replica's timeline only grows; SQL shows it reliably only while streaming, so remember the highest seen. */
  #replicaTimeline = 0;

  constructor(options: PgControllerOptions) {
    this.#options = options;
    this.#parameters = options.parameters;
  }

  onUnexpectedExit(listener: () => void): void {
    this.#exitListeners.push(listener);
  }

  get #dataDir(): string {
    return this.#options.dataDir;
  }

  #bin(name: string): string {
    return join(this.#options.binDir, name);
  }

  async #chownToPostgres(path: string): Promise<void> {
    const runAs = this.#options.runAs;
    if (runAs !== undefined) await chown(path, runAs.uid, runAs.gid);
  }

  async #run(
    argv: readonly string[],
    signal: AbortSignal,
    extra: { stdin?: string; hint?: string } = {},
  ): Promise<{ stdout: string; stderr: string }> {
    return runCommand({
      member: this.#options.member,
      argv,
      signal,
      runAs: this.#options.runAs,
      env: { PGPASSFILE: this.#options.pgpassPath, PGCONNECT_TIMEOUT: '3' },
      dataDir: this.#dataDir,
      ...(extra.stdin !== undefined ? { stdin: extra.stdin } : {}),
      ...(extra.hint !== undefined ? { hint: extra.hint } : {}),
    });
  }

  // ---------- files ----------

  async #writeOwnedFile(path: string, content: string, mode: number): Promise<void> {
    await writeFile(path, content, { mode });
    await this.#chownToPostgres(path);
  }

  async #writePgpass(): Promise<void> {
    await mkdir(dirname(this.#options.pgpassPath), { recursive: true });
    await this.#writeOwnedFile(
      this.#options.pgpassPath,
      renderPgpass(
        [this.#options.replication, this.#options.superuser].map((auth) => ({ username: auth.username, password: auth.password })),
      ),
      0o600,
    );
  }

  #replicaSettings(upstream: Upstream): ReplicaSettings {
    const url = new URL(upstream.connUrl);
    return {
      host: url.hostname,
      port: Number(url.port || '5432'),
      user: this.#options.replication.username,
      applicationName: this.#options.member,
      passfile: this.#options.pgpassPath,
      slotName: slotNameForMember(this.#options.member),
    };
  }

  /** Renders every file pgwarden owns; called after initdb, basebackup and rewind (they copy the source's files). */
  async #writeConfig(upstream: Upstream | undefined, isReplica: boolean): Promise<void> {
    const dir = this.#dataDir;
    const confPath = join(dir, 'postgresql.conf');
    const basePath = join(dir, 'postgresql.base.conf');
    if (!existsSync(basePath) && existsSync(confPath)) {
      const current = await readFile(confPath, 'utf8');
      if (!current.startsWith('# Written by pgwarden')) await rename(confPath, basePath);
    }
    await this.#writeOwnedFile(
      confPath,
      renderPostgresqlConf({
        parameters: this.#parameters,
        listenHost: this.#options.listenHost,
        port: this.#options.port,
        scope: this.#options.scope,
        socketDir: this.#options.socketDir,
        replica: upstream === undefined ? undefined : this.#replicaSettings(upstream),
      }),
      0o600,
    );
    await this.#writeOwnedFile(join(dir, 'pg_hba.conf'), renderPgHba(this.#options.pgHba), 0o600);
    const standbySignal = join(dir, 'standby.signal');
    if (isReplica) await this.#writeOwnedFile(standbySignal, '', 0o600);
    else await rm(standbySignal, { force: true });
    await rm(join(dir, 'recovery.signal'), { force: true });
    await this.#writePgpass();
    this.#upstream = upstream?.name;
    this.#rendered = { upstream, isReplica };
  }

  /**
   * New GUCs from the dynamic config: re-render and reload. Settings that need a restart show up as
   * `pendingRestart` in the next probe (pg_settings.pending_restart), as Patroni reports them.
   */
  async reconfigure(parameters: Readonly<Record<string, GucValue>>, signal: AbortSignal): Promise<void> {
    this.#parameters = parameters;
    if (this.#rendered === undefined || (await this.#dataDirState()) !== 'initialized') return;
    await this.#writeConfig(this.#rendered.upstream, this.#rendered.isReplica);
    if ((await this.#runningPid()) !== undefined) await this.#query('SELECT pg_reload_conf()', signal);
    this.#options.log.info({ parameters: Object.keys(parameters).length }, 'applied PostgreSQL parameters from the dynamic configuration');
  }

  async #ensureDir(path: string, mode: number): Promise<void> {
    await mkdir(path, { recursive: true, mode });
    await this.#chownToPostgres(path);
  }

  // ---------- process ----------

  async #postmasterPidFromFile(): Promise<number | undefined> {
    try {
      const text = await readFile(join(this.#dataDir, 'postmaster.pid'), 'utf8');
      const pid = Number(text.split('\n')[0]);
      return Number.isInteger(pid) && pid > 0 && isAlive(pid) ? pid : undefined;
    } catch {
      return undefined;
    }
  }

  async #runningPid(): Promise<number | undefined> {
    if (this.#childPid !== undefined && isAlive(this.#childPid)) return this.#childPid;
    const pid = await this.#postmasterPidFromFile();
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
      this.#onPostmasterExit(pid, 'exited');
    }, ADOPTED_POLL_MS);
    this.#adoptedTimer.unref();
  }

  #onPostmasterExit(pid: number, how: string): void {
    if (this.#childPid === pid) this.#childPid = undefined;
    void this.#dropClient();
    if (this.#isStopRequested) return;
    this.#crashedAtMs = performance.now();
    this.#options.log.error({ pid, how }, 'postmaster exited without being asked to');
    for (const listener of this.#exitListeners) listener();
  }

  async #start(upstream: Upstream | undefined, isReplica: boolean, signal: AbortSignal): Promise<void> {
    const existing = await this.#runningPid();
    if (existing !== undefined)
      throw new PgwardenError(
        'PGW_PG_COMMAND_FAILED',
        `[${this.#options.member}] PostgreSQL is already running (pid ${existing}); stop it first`,
        { context: { member: this.#options.member, path: this.#dataDir } },
      );
    await this.#ensureDir(this.#options.socketDir, 0o755);
    await this.#writeConfig(upstream, isReplica);
    const logHandle = await open(this.#options.logFile, 'a');
    await this.#chownToPostgres(this.#options.logFile).catch(() => undefined);
    this.#isStopRequested = false;
    const child = spawn(this.#bin('postgres'), ['-D', this.#dataDir], {
      stdio: ['ignore', logHandle.fd, logHandle.fd],
      detached: true,
      env: { ...process.env, LC_ALL: 'C.UTF-8' },
      cwd: '/',
      ...(this.#options.runAs !== undefined ? { uid: this.#options.runAs.uid, gid: this.#options.runAs.gid } : {}),
    });
    await logHandle.close();
    const pid = child.pid;
    if (pid === undefined)
      throw new PgwardenError('PGW_PG_COMMAND_FAILED', `[${this.#options.member}] could not spawn ${this.#bin('postgres')}`);
    child.unref();
    this.#childPid = pid;
    let exitCode: number | null | undefined;
    child.once('exit', (code, exitSignal) => {
      exitCode = code;
      this.#onPostmasterExit(pid, `exit ${code ?? exitSignal ?? 'unknown'}`);
    });
    this.#options.log.info({ pid, upstream: upstream?.name ?? null, replica: isReplica }, 'started postmaster');
    while (!signal.aborted) {
      if (exitCode !== undefined || !isAlive(pid)) {
        throw new PgwardenError(
          'PGW_PG_COMMAND_FAILED',
          `[${this.#options.member}] postgres -D ${this.#dataDir} exited during start-up (code ${exitCode ?? 'unknown'}): ${await this.#logTail()}`,
          {
            context: {
              member: this.#options.member,
              command: ['postgres', '-D', this.#dataDir],
              exitCode: exitCode ?? null,
              hint: `see ${this.#options.logFile}`,
            },
          },
        );
      }
      if (await this.#isAcceptingConnections()) {
        this.#crashedAtMs = undefined;
        return;
      }
      await sleep(START_POLL_MS);
    }
    throw new PgwardenError(
      'PGW_PG_TIMEOUT',
      `[${this.#options.member}] PostgreSQL did not accept connections before the deadline; it keeps starting in the background (see ${this.#options.logFile})`,
    );
  }

  async #logTail(): Promise<string> {
    try {
      const text = await readFile(this.#options.logFile, 'utf8');
      return text.trim().split('\n').slice(-8).join(' | ');
    } catch {
      return '(no log)';
    }
  }

  async #isAcceptingConnections(): Promise<boolean> {
    try {
      await this.#query('SELECT 1', AbortSignal.timeout(1000));
      return true;
    } catch {
      return false;
    }
  }

  startPrimary(signal: AbortSignal): Promise<void> {
    return this.#start(undefined, false, signal);
  }

  startReplica(upstream: Upstream | undefined, signal: AbortSignal): Promise<void> {
    return this.#start(upstream, true, signal);
  }

  async isHistoryDivergent(upstream: Upstream, timeline: number, signal: AbortSignal): Promise<boolean | undefined> {
    if (timeline <= 1) return false;
    const file = `${timeline.toString(16).toUpperCase().padStart(8, '0')}.history`;
    const local = await readFile(join(this.#dataDir, 'pg_wal', file), 'utf8').catch(() => undefined);
    if (local === undefined) return undefined;
    const url = new URL(upstream.connUrl);
    const client = new pg.Client({
      host: url.hostname,
      port: Number(url.port || '5432'),
      user: this.#options.superuser.username,
      password: this.#options.superuser.password,
      database: 'postgres',
      connectionTimeoutMillis: 2000,
      query_timeout: 3000,
    });
    client.on('error', () => undefined);
    const onAbort = (): void => void client.end().catch(() => undefined);
    signal.addEventListener('abort', onAbort, { once: true });
    try {
      await client.connect();
      const rows = await client.query<{ text: string }>('SELECT pg_read_file($1) AS text', [`pg_wal/${file}`]);
      const remote = rows.rows[0]?.text;
      return remote === undefined ? undefined : remote.trim() !== local.trim();
    } catch {
      return undefined;
    } finally {
      signal.removeEventListener('abort', onAbort);
      await client.end().catch(() => undefined);
    }
  }

  async detachUpstream(signal: AbortSignal): Promise<void> {
    await this.#writeConfig(undefined, true);
    await this.#query('SELECT pg_reload_conf()', signal);
    this.#options.log.info({}, 'detached from the upstream: WAL receiver stopped');
  }

  async followUpstream(upstream: Upstream, signal: AbortSignal): Promise<void> {
    await this.#writeConfig(upstream, true);
    await this.#query('SELECT pg_reload_conf()', signal);
    this.#options.log.info({ upstream: upstream.name }, 'following a new upstream');
  }

  async stop(mode: StopMode, signal: AbortSignal): Promise<void> {
    const pid = await this.#runningPid();
    if (pid === undefined) return;
    this.#isStopRequested = true;
    await this.#dropClient();
    process.kill(pid, STOP_SIGNALS[mode]);
    this.#options.log.info({ pid, mode }, 'stopping postmaster');
    const fastDeadline = performance.now() + (mode === 'immediate' ? 10_000 : 60_000);
    let escalated = mode === 'immediate';
    while (isAlive(pid)) {
      if (!escalated && (signal.aborted || performance.now() > fastDeadline)) {
        // A stop that does not finish in time becomes an immediate one: a demote must not hang.
        process.kill(pid, 'SIGQUIT');
        escalated = true;
      } else if (escalated && performance.now() > fastDeadline + 10_000) {
        process.kill(pid, 'SIGKILL');
      }
      await sleep(20);
    }
    // After the postmaster is gone its children may still hold shared memory for a moment.
    for (let attempt = 0; attempt < 100 && existsSync(join(this.#dataDir, 'postmaster.pid')); attempt++) {
      if ((await this.#postmasterPidFromFile()) === undefined) break;
      await sleep(20);
    }
    if (this.#childPid === pid) this.#childPid = undefined;
  }

  async promote(signal: AbortSignal): Promise<void> {
    const rows = await this.#query<{ promoted: boolean }>('SELECT pg_promote(true, 60) AS promoted', signal);
    if (rows[0]?.promoted !== true)
      throw new PgwardenError('PGW_PG_COMMAND_FAILED', `[${this.#options.member}] pg_promote did not finish within 60 s`);
    this.#upstream = undefined;
    this.#options.log.info({}, 'promoted');
  }

  async checkpoint(signal: AbortSignal): Promise<void> {
    await this.#query('CHECKPOINT', signal);
  }

  async basebackup(from: Upstream, signal: AbortSignal): Promise<void> {
    this.#replicaTimeline = 0;
    await rm(this.#dataDir, { recursive: true, force: true });
    await this.#ensureDir(dirname(this.#dataDir), 0o755).catch(() => undefined);
    await this.#ensureDir(this.#dataDir, 0o700);
    await this.#writePgpass();
    const url = new URL(from.connUrl);
    await this.#run(
      pgBasebackupArgv(this.#bin('pg_basebackup'), {
        dataDir: this.#dataDir,
        host: url.hostname,
        port: Number(url.port || '5432'),
        user: this.#options.replication.username,
      }),
      signal,
      { hint: `can the replication user connect to ${from.name}? check pg_hba and the replication password` },
    );
    await this.#writeConfig(from, true);
  }

  async rewind(from: Upstream, signal: AbortSignal): Promise<void> {
    this.#replicaTimeline = 0;
    await this.stop('fast', signal);
    const control = await this.#controlData(signal);
    // Remove recovery signals: single-user mode refuses to run in standby mode.
    await rm(join(this.#dataDir, 'standby.signal'), { force: true });
    await rm(join(this.#dataDir, 'recovery.signal'), { force: true });
    if (!isCleanShutdown(control.state)) {
      this.#options.log.info({ state: control.state ?? null }, 'running crash recovery in single-user mode before pg_rewind');
      await this.#run(singleUserArgv(this.#bin('postgres'), this.#dataDir), signal, { stdin: '' });
    }
    const url = new URL(from.connUrl);
    await this.#writePgpass();
    await this.#run(
      pgRewindArgv(this.#bin('pg_rewind'), {
        dataDir: this.#dataDir,
        host: url.hostname,
        port: Number(url.port || '5432'),
        user: this.#options.superuser.username,
      }),
      signal,
      { hint: 'if rewind keeps failing, pgwarden re-clones the member' },
    );
    await this.#writeConfig(from, true);
    this.#options.log.info({ from: from.name }, 'pg_rewind finished');
  }

  async removeDataDir(signal: AbortSignal): Promise<void> {
    if (signal.aborted) throw new Error('aborted');
    await this.stop('immediate', signal);
    await rm(this.#dataDir, { recursive: true, force: true });
  }

  async initdb(signal: AbortSignal): Promise<void> {
    this.#replicaTimeline = 0;
    if ((await this.#dataDirState()) === 'initialized')
      throw new PgwardenError(
        'PGW_PG_COMMAND_FAILED',
        `[${this.#options.member}] refusing initdb: ${this.#dataDir} already holds a cluster`,
      );
    await rm(this.#dataDir, { recursive: true, force: true });
    await this.#ensureDir(dirname(this.#dataDir), 0o755).catch(() => undefined);
    await this.#ensureDir(this.#dataDir, 0o700);
    const pwfile = join(dirname(this.#dataDir), `.pgwarden-pwfile-${process.pid}`);
    await this.#writeOwnedFile(pwfile, `${this.#options.superuser.password ?? 'postgres'}\n`, 0o600);
    try {
      await this.#run(
        initdbArgv(this.#bin('initdb'), {
          dataDir: this.#dataDir,
          superuser: this.#options.superuser.username,
          pwfile,
          options: this.#options.initdbOptions,
        }),
        signal,
      );
    } finally {
      await rm(pwfile, { force: true });
    }
    const role = this.#options.replication.username.replace(/"/g, '""');
    const password = (this.#options.replication.password ?? '').replace(/'/g, "''");
    // Single-user mode creates the role before any TCP listener exists: no window with a password-less replication user.
    await this.#run(singleUserArgv(this.#bin('postgres'), this.#dataDir), signal, {
      stdin: `CREATE ROLE "${role}" WITH REPLICATION LOGIN PASSWORD '${password}';\n`,
    });
    await this.#writeConfig(undefined, false);
  }

  async applySlotPlan(steps: readonly SlotStep[], signal: AbortSignal): Promise<readonly SlotStepResult[]> {
    const results: SlotStepResult[] = [];
    for (const step of steps) {
      try {
        await this.#applySlotStep(step, signal);
        results.push({ step, status: 'ok' });
      } catch (error) {
        results.push({ step, status: 'failed', error: describeError(error) });
      }
    }
    return results;
  }

  async #applySlotStep(step: SlotStep, signal: AbortSignal): Promise<void> {
    const { slot } = step;
    switch (step.kind) {
      case 'drop':
        await this.#query('SELECT pg_drop_replication_slot($1)', signal, [slot.name]);
        this.#options.log.info(
          { slot: slot.name, type: slot.type },
          step.reason === 'unknown'
            ? 'dropped a replication slot no member or permanent slot needs'
            : 'dropped a replication slot whose definition changed',
        );
        return;
      case 'create':
        if (slot.type === 'physical') {
          await this.#query('SELECT pg_create_physical_replication_slot($1, true)', signal, [slot.name]);
          this.#options.log.info({ slot: slot.name }, 'created physical replication slot');
        } else {
          // A logical slot belongs to one database: it must be created from a session in that database.
          await this.#queryIn(
            slot.database ?? 'postgres',
            'SELECT pg_create_logical_replication_slot($1, $2)',
            [slot.name, slot.plugin],
            signal,
          );
          this.#options.log.info(
            { slot: slot.name, database: slot.database ?? null, plugin: slot.plugin ?? null },
            'created logical replication slot',
          );
        }
        return;
      case 'advance': {
        const lsnText = formatLsn(step.lsn);
        if (slot.type === 'logical')
          await this.#queryIn(
            slot.database ?? 'postgres',
            'SELECT pg_replication_slot_advance($1, $2::pg_lsn)',
            [slot.name, lsnText],
            signal,
          );
        else await this.#query('SELECT pg_replication_slot_advance($1, $2::pg_lsn)', signal, [slot.name, lsnText]);
        return;
      }
    }
  }

  /**
   * PostgreSQL 15 cannot create a logical slot in recovery, so a replica gets a byte copy of the primary's slot state
   * (as Patroni does): read with pg_read_binary_file on the primary, written into pg_replslot while stopped, loaded at
   * start. From then on manageSlots advances it to the position the primary's consumers confirmed.
   */
  async copyLogicalSlots(from: Upstream, slotNames: readonly string[], signal: AbortSignal): Promise<void> {
    const url = new URL(from.connUrl);
    const client = new pg.Client({
      host: url.hostname,
      port: Number(url.port || '5432'),
      user: this.#options.superuser.username,
      password: this.#options.superuser.password,
      database: 'postgres',
      connectionTimeoutMillis: 3000,
      query_timeout: 10_000,
    });
    client.on('error', () => undefined);
    const states = new Map<string, Buffer>();
    await client.connect();
    try {
      for (const name of slotNames) {
        const result = await client.query<{ state: Buffer }>(
          "SELECT pg_read_binary_file('pg_replslot/' || slot_name || '/state') AS state FROM pg_replication_slots WHERE slot_name = $1 AND slot_type = 'logical'",
          [name],
        );
        const state = result.rows[0]?.state;
        if (state === undefined)
          throw new PgwardenError(
            'PGW_PG_COMMAND_FAILED',
            `[${this.#options.member}] logical slot ${name} is not on ${from.name} (any more): nothing to copy`,
          );
        states.set(name, state);
      }
    } finally {
      await client.end().catch(() => undefined);
    }
    await this.stop('fast', signal);
    const written: string[] = [];
    for (const [name, state] of states) {
      const dir = join(this.#dataDir, 'pg_replslot', name);
      await rm(dir, { recursive: true, force: true });
      await this.#ensureDir(dir, 0o700);
      await this.#writeOwnedFile(join(dir, 'state'), '', 0o600);
      await writeFile(join(dir, 'state'), state);
      written.push(dir);
    }
    this.#options.log.info({ slots: [...states.keys()], from: from.name }, 'copied logical slot state from the primary; restarting');
    try {
      await this.startReplica(from, signal);
    } catch (error) {
      // A copy PostgreSQL refuses (e.g. wal_level is not logical here) must not keep the replica down.
      for (const dir of written) await rm(dir, { recursive: true, force: true });
      await this.startReplica(from, signal).catch(() => undefined);
      throw error;
    }
  }

  async #queryIn(database: string, text: string, params: unknown[], signal: AbortSignal): Promise<void> {
    const client = new pg.Client({
      host: this.#options.socketDir,
      port: this.#options.port,
      user: this.#options.superuser.username,
      password: this.#options.superuser.password,
      database,
      application_name: 'pgwarden',
      connectionTimeoutMillis: 2000,
      query_timeout: 30_000,
    });
    client.on('error', () => undefined);
    const onAbort = (): void => void client.end().catch(() => undefined);
    signal.addEventListener('abort', onAbort, { once: true });
    try {
      await client.connect();
      await client.query(text, params);
    } catch (error) {
      throw new PgwardenError(
        'PGW_PG_QUERY_FAILED',
        `[${this.#options.member}] query in database ${database} failed: ${describeError(error)}`,
        { cause: error, context: { member: this.#options.member } },
      );
    } finally {
      signal.removeEventListener('abort', onAbort);
      await client.end().catch(() => undefined);
    }
  }

  /**
   * ALTER SYSTEM (postgresql.auto.conf) rather than our rendered file: it applies to a postmaster this agent adopted
   * and survives a crash restart, so a primary that comes back keeps waiting for the standbys the sync key allows.
   */
  async setSynchronousStandbyNames(value: string, signal: AbortSignal): Promise<void> {
    await this.#query(`ALTER SYSTEM SET synchronous_standby_names = '${value.replace(/'/g, "''")}'`, signal);
    await this.#query('SELECT pg_reload_conf()', signal);
    // Commits already waiting are released when a listed standby next reports its position; a little WAL makes the
    // standbys report now (after the walsenders have had a moment to reload) instead of at their status interval.
    await sleep(50);
    await this.#query(
      "SELECT CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_logical_emit_message(false, 'pgwarden', 'synchronous_standby_names changed') END",
      signal,
    ).catch(() => undefined);
    this.#options.log.info({ synchronous_standby_names: value }, 'set synchronous_standby_names');
  }

  async walStatus(signal: AbortSignal): Promise<WalStatus | undefined> {
    try {
      const rows = await this.#query<{
        write_lsn: string | null;
        received_lsn: string | null;
        replayed_lsn: string | null;
        status: string | null;
        streaming_standbys: string;
      }>(WAL_STATUS_SQL, signal);
      const row = rows[0];
      if (row === undefined) return undefined;
      return {
        isStreaming: row.status === 'streaming',
        writeLsn: lsnOrUndefined(row.write_lsn),
        receivedLsn: lsnOrUndefined(row.received_lsn),
        replayedLsn: lsnOrUndefined(row.replayed_lsn),
        streamingStandbys: row.streaming_standbys === '' ? [] : row.streaming_standbys.split(','),
      };
    } catch {
      return undefined;
    }
  }

  // ---------- probe ----------

  async #dataDirState(): Promise<LocalPg['dataDir']> {
    try {
      const info = await stat(this.#dataDir);
      if (!info.isDirectory()) return 'missing';
      if (existsSync(join(this.#dataDir, 'PG_VERSION'))) return 'initialized';
      // A directory without PG_VERSION holds nothing PostgreSQL can start (e.g. an aborted basebackup).
      await readdir(this.#dataDir);
      return 'empty';
    } catch {
      return 'missing';
    }
  }

  async #controlData(signal: AbortSignal): Promise<ReturnType<typeof parseControlData>> {
    const { stdout } = await this.#run(pgControldataArgv(this.#bin('pg_controldata'), this.#dataDir), signal);
    return parseControlData(stdout);
  }

  async probe(signal: AbortSignal): Promise<LocalPg> {
    const dataDir = await this.#dataDirState();
    const down: LocalPg = { ...STOPPED_PG, dataDir, upstream: this.#upstream, crashedAtMs: this.#crashedAtMs };
    if (dataDir !== 'initialized') return down;
    const pid = await this.#runningPid();
    if (pid !== undefined) {
      try {
        const row = (await this.#query<ProbeRow>(PROBE_SQL, signal))[0];
        if (row !== undefined) return this.#fromRow(row, dataDir);
      } catch (error) {
        this.#options.log.debug({ error: describeError(error) }, 'probe query failed');
      }
      // Running but not answering (starting, shutting down): report not running and let the task slot own it.
      return { ...down, controlState: 'running' };
    }
    try {
      const control = await this.#controlData(signal);
      return {
        ...down,
        sysid: control.sysid,
        timeline: control.timeline,
        controlState: control.state,
        role: roleFromControlState(control.state),
      };
    } catch (error) {
      this.#options.log.warn({ error: describeError(error) }, 'pg_controldata failed');
      return down;
    }
  }

  #fromRow(row: ProbeRow, dataDir: LocalPg['dataDir']): LocalPg {
    const isReplica = row.in_recovery;
    return {
      dataDir,
      isRunning: true,
      role: isReplica ? 'replica' : 'primary',
      sysid: row.sysid,
      timeline: isReplica ? this.#noteReplicaTimeline(row.received_tli ?? row.checkpoint_tli) : (row.current_tli ?? row.checkpoint_tli),
      writeLsn: isReplica ? undefined : lsnOrUndefined(row.write_lsn),
      receivedLsn: isReplica ? lsnOrUndefined(row.received_lsn) : undefined,
      replayedLsn: isReplica ? lsnOrUndefined(row.replayed_lsn) : undefined,
      isStreaming: row.receiver_status === 'streaming',
      upstream: isReplica ? this.#upstream : undefined,
      crashedAtMs: undefined,
      controlState: undefined,
      serverVersion: row.server_version,
      postmasterStartTime: row.start_time,
      replayedTimestamp: row.replayed_ts,
      isReplayPaused: row.replay_paused,
      replication: row.replication.map(({ flush_lsn: _flush, ...rest }) => rest),
      isPendingRestart: row.pending_restart,
      synchronousStandbyNames: row.synchronous_standby_names,
      walLevel: row.wal_level,
      slots: row.slots.map((slot) => ({
        name: slot.name,
        type: slot.type === 'logical' ? 'logical' : 'physical',
        database: slot.database ?? undefined,
        plugin: slot.plugin ?? undefined,
        isActive: slot.active,
        restartLsn: lsnOrUndefined(slot.restart_lsn),
        confirmedFlushLsn: lsnOrUndefined(slot.confirmed_flush_lsn),
        retainedBytes: slot.retained === null ? undefined : Math.max(0, Number(slot.retained)),
        walStatus: slot.wal_status ?? undefined,
      })),
      standbyFlushLsn: Object.fromEntries(
        row.replication
          .filter((entry) => entry.flush_lsn !== null)
          .map((entry) => [entry.application_name, parseLsn(entry.flush_lsn ?? '0/0')]),
      ),
    };
  }

  #noteReplicaTimeline(timeline: number): number {
    this.#replicaTimeline = Math.max(this.#replicaTimeline, timeline);
    return this.#replicaTimeline;
  }

  // ---------- SQL ----------

  async #query<T extends object>(text: string, signal: AbortSignal, params: unknown[] = []): Promise<T[]> {
    if (signal.aborted) throw new Error('aborted before the query');
    const client = await this.#connect();
    const onAbort = (): void => void this.#dropClient();
    signal.addEventListener('abort', onAbort, { once: true });
    try {
      const result = await client.query<T>(text, params);
      return result.rows;
    } catch (error) {
      await this.#dropClient();
      throw new PgwardenError('PGW_PG_QUERY_FAILED', `[${this.#options.member}] query failed: ${describeError(error)}`, {
        cause: error,
        context: { member: this.#options.member },
      });
    } finally {
      signal.removeEventListener('abort', onAbort);
    }
  }

  async #connect(): Promise<pg.Client> {
    if (this.#client !== undefined) return this.#client;
    const client = new pg.Client({
      host: this.#options.socketDir,
      port: this.#options.port,
      user: this.#options.superuser.username,
      password: this.#options.superuser.password,
      database: 'postgres',
      application_name: 'pgwarden',
      connectionTimeoutMillis: 2000,
      query_timeout: 60_000,
    });
    client.on('error', () => void this.#dropClient());
    try {
      await client.connect();
    } catch (error) {
      await client.end().catch(() => undefined);
      throw error;
    }
    this.#client = client;
    return client;
  }

  async #dropClient(): Promise<void> {
    const client = this.#client;
    this.#client = undefined;
    await client?.end().catch(() => undefined);
  }

  async close(): Promise<void> {
    if (this.#adoptedTimer !== undefined) clearInterval(this.#adoptedTimer);
    this.#adoptedTimer = undefined;
    await this.#dropClient();
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
