// The data directory and the files pgwarden owns in and around it: its state, removal, files written as the postgres
// user, pgpass, postgresql.conf / pg_hba.conf / standby.signal, history files and copied slot state.
import { existsSync } from 'node:fs';
import { constants } from 'node:fs';
import { access, chmod, chown, lstat, mkdir, readFile, readdir, realpath, rename, rm, stat, statfs, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import type { Upstream } from '../core/ports.js';
import type { LocalPg } from '../core/types.js';
import { slotNameForMember } from '../core/slot-names.js';
import { autoConfWithout, renderPgHba, renderPgpass, renderPostgresqlConf, type GucValue, type ReplicaSettings } from './conf-render.js';
import { renderServiceFile, serviceNameFor, type PgAuth } from './conninfo.js';
import { adaptParametersToVersion, type ParameterChange } from './parameter-versions.js';
import type { RunAs } from './runner.js';
import { addressOf } from './sql-session.js';

export type Credentials = PgAuth;

/** The libpq service file beside the pgpass file: the sslpassword of each user, for pg_basebackup and pg_rewind. */
export function serviceFilePath(pgpassPath: string): string {
  return `${pgpassPath}.service.conf`;
}

export interface DataDirOptions {
  readonly member: string;
  readonly scope: string;
  readonly dataDir: string;
  readonly listenHost: string;
  readonly port: number;
  readonly socketDir: string;
  readonly superuser: Credentials;
  readonly replication: Credentials;
  readonly rewind?: Credentials | undefined;
  readonly pgHba: readonly string[];
  readonly pgpassPath: string;
  readonly runAs?: RunAs | undefined;
}

/** What the rendered postgresql.conf makes of this node: the GUCs, and whether (and from where) it replicates. */
export interface RenderedRole {
  readonly upstream: Upstream | undefined;
  readonly isReplica: boolean;
}

const CONF_MARK = '# Written by pgwarden';

/** statfs f_type of kernel pseudo file systems: nothing written there is stored (initdb hangs or fails oddly). */
const PSEUDO_FILE_SYSTEMS: ReadonlyMap<number, string> = new Map([
  [0x9fa0, 'proc'],
  [0x62656572, 'sysfs'],
  [0x1cd1, 'devpts'],
  [0x27e0eb, 'cgroup'],
  [0x63677270, 'cgroup2'],
  [0x64626720, 'debugfs'],
  [0x73636673, 'securityfs'],
  [0x74726163, 'tracefs'],
  [0xcafe4a11, 'bpf'],
  [0x6165676c, 'pstore'],
  [0x62656570, 'configfs'],
  [0x65735543, 'fusectl'],
]);

function errorCode(error: unknown): string | undefined {
  return (error as { code?: unknown }).code as string | undefined;
}

/** Whether `uid`/`gid` (the postgres user) may search a directory with this stat (ACLs and extra groups not read). */
function canTraverse(info: { uid: number; gid: number; mode: number }, runAs: RunAs): boolean {
  if (runAs.uid === 0) return true;
  if (info.uid === runAs.uid) return (info.mode & 0o100) !== 0;
  if (info.gid === runAs.gid) return (info.mode & 0o010) !== 0;
  return (info.mode & 0o001) !== 0;
}

interface DirectoryProblem {
  readonly kind: 'file' | 'underFile' | 'uninspectable' | 'noParent' | 'pseudo' | 'readOnly' | 'notWritable';
  /** The path itself, or its nearest existing ancestor: where the problem is. */
  readonly existing: string;
  readonly detail?: string;
}

/** Why a directory cannot be used or created (see checkDataDirUsable), judged from its nearest existing ancestor. */
async function directoryProblem(path: string): Promise<DirectoryProblem | undefined> {
  let existing = path;
  for (;;) {
    try {
      const info = await stat(existing);
      if (!info.isDirectory()) return { kind: existing === path ? 'file' : 'underFile', existing };
      break;
    } catch (error) {
      const code = errorCode(error);
      if (code !== 'ENOENT' && code !== 'ENOTDIR') return { kind: 'uninspectable', existing, detail: (error as Error).message };
      if (existing === dirname(existing)) return { kind: 'noParent', existing };
      existing = dirname(existing);
    }
  }
  const fileSystem = await statfs(existing).then(
    (info) => PSEUDO_FILE_SYSTEMS.get(info.type),
    () => undefined,
  );
  if (fileSystem !== undefined) return { kind: 'pseudo', existing, detail: fileSystem };
  try {
    await access(existing, constants.W_OK | constants.X_OK);
  } catch (error) {
    return { kind: errorCode(error) === 'EROFS' ? 'readOnly' : 'notWritable', existing };
  }
  return undefined;
}

/**
 * The same checks for another directory pgwarden creates or fills (`pgwarden local start --dir`), named by its
 * `setting`: undefined when usable, else one sentence. Run before any mkdir: Node's recursive mkdir spins forever on a
 * path under /proc (ENOENT for a parent that exists).
 */
export async function checkDirectoryUsable(directory: string, setting: string): Promise<string | undefined> {
  const path = resolve(directory);
  const problem = await directoryProblem(path);
  switch (problem?.kind) {
    case undefined:
      return undefined;
    case 'file':
      return `${setting} ${path} is a file, not a directory: pass a directory (a new one, or one pgwarden made)`;
    case 'underFile':
      return `${setting} ${path} cannot be created: ${problem.existing} is a file, not a directory`;
    case 'uninspectable':
      return `${setting} ${path}: cannot inspect ${problem.existing}: ${problem.detail}`;
    case 'noParent':
      return `${setting} ${path}: no existing parent directory`;
    case 'pseudo':
      return `${setting} ${path} is on the ${problem.detail} pseudo file system (${problem.existing}), which cannot hold a cluster: pass a directory on a real disk`;
    case 'readOnly':
      return `${setting} ${path} is on a read-only file system (${problem.existing}): pass a directory on a writable one`;
    case 'notWritable':
      return `${setting} ${path}: ${problem.existing} is not writable by this process (uid ${process.getuid?.() ?? '?'})`;
  }
}

/**
 * What makes a data dir unusable before anything is tried (and before the initialize key is taken): undefined when it
 * is usable, else one sentence naming the path, the cause and the fix. Checked: a data_dir that is a file or lies under
 * one, a pseudo file system (/proc...), a read-only file system, a directory this process cannot write, and a parent
 * the postgres user (`runAs`, when the agent runs as root) cannot reach.
 */
export async function checkDataDirUsable(dataDir: string, runAs: RunAs | undefined): Promise<string | undefined> {
  const path = resolve(dataDir);
  const problem = await directoryProblem(path);
  switch (problem?.kind) {
    case undefined:
      break;
    case 'file':
      return `data_dir ${path} is a regular file, not a directory: point postgresql.data_dir to a directory (pgwarden never removes a file it did not create)`;
    case 'underFile':
      return `data_dir ${path} cannot be created: ${problem.existing} is a file, not a directory; point postgresql.data_dir elsewhere`;
    case 'uninspectable':
      return `data_dir ${path}: cannot inspect ${problem.existing}: ${problem.detail}`;
    case 'noParent':
      return `data_dir ${path}: no existing parent directory`;
    case 'pseudo':
      return `data_dir ${path} is on the ${problem.detail} pseudo file system (${problem.existing}), which cannot hold a database: point postgresql.data_dir to a real disk`;
    case 'readOnly':
      return `data_dir ${path} is on a read-only file system (${problem.existing}): remount it read-write or point postgresql.data_dir elsewhere`;
    case 'notWritable':
      return `data_dir ${path}: ${problem.existing} is not writable by this process (uid ${process.getuid?.() ?? '?'}): fix its owner or mode, or point postgresql.data_dir elsewhere`;
  }
  if (runAs !== undefined) {
    // The postgres user must reach the data dir through every existing parent: pgwarden chowns only what it creates.
    for (let parent = dirname(path); ; parent = dirname(parent)) {
      const info = await stat(parent).catch(() => undefined);
      if (info !== undefined && !canTraverse(info, runAs))
        return `data_dir ${path}: the postgres user (uid ${runAs.uid}) cannot reach it: ${parent} is mode ${(info.mode & 0o777).toString(8).padStart(4, '0')} owned by uid ${info.uid}; chmod o+x or chown it (pgwarden does not change directories it did not create)`;
      if (parent === dirname(parent)) break;
    }
    const info = await stat(path).catch(() => undefined);
    if (info !== undefined) {
      if (info.uid !== runAs.uid && existsSync(join(path, 'PG_VERSION')))
        return `data_dir ${path} holds a cluster owned by uid ${info.uid}, not the postgres user (uid ${runAs.uid}): chown -R it to postgres`;
    }
  }
  return undefined;
}

/** pg_wal/<TLI>.history, the file PostgreSQL writes when a promotion starts timeline `timeline`. */
export function historyFileName(timeline: number): string {
  return `${timeline.toString(16).toUpperCase().padStart(8, '0')}.history`;
}

export class DataDir {
  readonly #options: DataDirOptions;
  /** Numbers the temporary files of writeOwnedFile (two writes of one file may overlap). */
  #writes = 0;

  constructor(options: DataDirOptions) {
    this.#options = options;
  }

  get path(): string {
    return this.#options.dataDir;
  }

  async state(): Promise<LocalPg['dataDir']> {
    try {
      const info = await stat(this.path);
      if (!info.isDirectory()) return 'missing';
      if (existsSync(join(this.path, 'PG_VERSION'))) return 'initialized';
      // A directory without PG_VERSION holds nothing PostgreSQL can start (e.g. an aborted basebackup).
      await readdir(this.path);
      return 'empty';
    } catch {
      return 'missing';
    }
  }

  /** Removes the data dir; a path that is not a directory (a file the user pointed data_dir to) is never removed. */
  async remove(): Promise<void> {
    const info = await lstat(this.path).catch((error: unknown) => {
      if (errorCode(error) === 'ENOENT') return undefined;
      throw error;
    });
    if (info === undefined) return;
    if (!info.isDirectory()) throw new Error(`data_dir ${this.path} is not a directory: not removing it`);
    await rm(this.path, { recursive: true, force: true });
  }

  /** An empty data dir owned by postgres (0700, as PostgreSQL demands) under a parent it can traverse. */
  async recreateEmpty(): Promise<void> {
    await this.remove();
    await this.ensureDir(dirname(this.path), 0o755).catch(() => undefined);
    await this.ensureDir(this.path, 0o700);
  }

  /** Creates `path` and missing parents; only the directories created here are given to postgres, never existing ones. */
  async ensureDir(path: string, mode: number): Promise<void> {
    const firstCreated = await mkdir(path, { recursive: true, mode });
    if (firstCreated === undefined) return;
    const created: string[] = [];
    for (let dir = resolve(path); ; dir = dirname(dir)) {
      created.push(dir);
      if (dir === resolve(firstCreated) || dir === dirname(dir)) break;
    }
    for (const dir of created.reverse()) await this.chownToPostgres(dir);
  }

  async chownToPostgres(path: string): Promise<void> {
    const runAs = this.#options.runAs;
    if (runAs !== undefined) await chown(path, runAs.uid, runAs.gid);
  }

  /**
   * Written beside, then renamed over: a reader never sees the file empty or half written. pgBackRest reads its config
   * at every archive-push while the agent rewrites it (a stanza-create once failed with "requires option: pg1-path"),
   * and libpq reads the pgpass file at every connection.
   */
  async writeOwnedFile(path: string, content: string | Buffer, mode: number): Promise<void> {
    // A file the operator made a symlink stays one: its target is replaced.
    const target = await realpath(path).catch(() => path);
    const temporary = `${target}.pgwarden-${process.pid}-${(this.#writes += 1)}`;
    try {
      await writeFile(temporary, content, { mode });
      // writeFile's mode is filtered by the umask: set it exactly.
      await chmod(temporary, mode);
      await this.chownToPostgres(temporary);
      await rename(temporary, target);
    } catch (error) {
      await rm(temporary, { force: true });
      throw error;
    }
  }

  /** The pgpass file and, when a user has an sslpassword, the service file: both 0600, owned by postgres. */
  async writePgpass(): Promise<void> {
    const { pgpassPath, replication, superuser, rewind } = this.#options;
    await mkdir(dirname(pgpassPath), { recursive: true });
    const users = [replication, superuser, ...(rewind === undefined ? [] : [rewind])];
    await this.writeOwnedFile(pgpassPath, renderPgpass(users.map((auth) => ({ username: auth.username, password: auth.password }))), 0o600);
    const servicePath = serviceFilePath(pgpassPath);
    if (users.every((auth) => auth.sslpassword === undefined)) {
      await rm(servicePath, { force: true });
      return;
    }
    await this.writeOwnedFile(
      servicePath,
      renderServiceFile([
        { service: serviceNameFor('replication'), sslpassword: replication.sslpassword },
        { service: serviceNameFor('superuser'), sslpassword: superuser.sslpassword },
        { service: serviceNameFor('rewind'), sslpassword: rewind?.sslpassword },
      ]),
      0o600,
    );
  }

  /** Initdb reads the superuser password from a file: written beside the data dir for `work`, removed after it. */
  async withPasswordFile<T>(work: (path: string) => Promise<T>): Promise<T> {
    const path = join(dirname(this.path), `.pgwarden-pwfile-${process.pid}`);
    await this.writeOwnedFile(path, `${this.#options.superuser.password ?? 'postgres'}\n`, 0o600);
    try {
      return await work(path);
    } finally {
      await rm(path, { force: true });
    }
  }

  #replicaSettings(upstream: Upstream): ReplicaSettings {
    const isArchiveOnly = upstream.connUrl === '';
    const { host, port } = isArchiveOnly ? { host: '', port: 0 } : addressOf(upstream);
    return {
      host,
      port,
      user: this.#options.replication.username,
      applicationName: this.#options.member,
      passfile: this.#options.pgpassPath,
      security: this.#options.replication,
      slotName: upstream.slotName === undefined ? slotNameForMember(this.#options.member) : (upstream.slotName ?? undefined),
      isArchiveOnly,
      recovery: upstream.recovery ?? {},
    };
  }

  /**
   * Renders every file pgwarden owns; called after initdb, basebackup and rewind (they copy the source's files). The
   * postgresql.conf initdb wrote is kept as postgresql.base.conf and included, so its locale settings stay.
   */
  /** The major version of the cluster in the data dir (PG_VERSION), if there is one. */
  async serverMajor(): Promise<number | undefined> {
    const text = await readFile(join(this.path, 'PG_VERSION'), 'utf8').catch(() => undefined);
    const major = text === undefined ? Number.NaN : Number.parseInt(text.trim(), 10);
    return Number.isInteger(major) ? major : undefined;
  }

  /** Renders the config for the server in the data dir; returns the parameters adapted to its version. */
  async writeConfig(userParameters: Readonly<Record<string, GucValue>>, role: RenderedRole): Promise<readonly ParameterChange[]> {
    const dir = this.path;
    const serverMajor = await this.serverMajor();
    const adapted =
      serverMajor === undefined ? { parameters: userParameters, changes: [] } : adaptParametersToVersion(userParameters, serverMajor);
    const parameters = adapted.parameters;
    const confPath = join(dir, 'postgresql.conf');
    const basePath = join(dir, 'postgresql.base.conf');
    if (!existsSync(basePath) && existsSync(confPath)) {
      const current = await readFile(confPath, 'utf8');
      if (!current.startsWith(CONF_MARK)) await rename(confPath, basePath);
    }
    await this.writeOwnedFile(
      confPath,
      renderPostgresqlConf({
        parameters,
        listenHost: this.#options.listenHost,
        port: this.#options.port,
        scope: this.#options.scope,
        socketDir: this.#options.socketDir,
        replica: role.upstream === undefined ? undefined : this.#replicaSettings(role.upstream),
        serverMajor,
      }),
      0o600,
    );
    await this.writeOwnedFile(join(dir, 'pg_hba.conf'), renderPgHba(this.#options.pgHba), 0o600);
    const standbySignal = join(dir, 'standby.signal');
    if (role.isReplica) await this.writeOwnedFile(standbySignal, '', 0o600);
    else await rm(standbySignal, { force: true });
    await rm(join(dir, 'recovery.signal'), { force: true });
    await this.writePgpass();
    return adapted.changes;
  }

  /** Which of recovery.signal and standby.signal the data dir holds. */
  async recoverySignals(): Promise<string[]> {
    return ['recovery.signal', 'standby.signal'].filter((file) => existsSync(join(this.path, file)));
  }

  /** Drops the lines that set `names` from postgresql.auto.conf (ALTER SYSTEM's file), with the server stopped. */
  async removeAutoConfSettings(names: readonly string[]): Promise<void> {
    const path = join(this.path, 'postgresql.auto.conf');
    const text = await readFile(path, 'utf8').catch(() => undefined);
    if (text === undefined) return;
    const kept = autoConfWithout(text, names);
    if (kept !== text) await this.writeOwnedFile(path, kept, 0o600);
  }

  /** Single-user mode refuses to run in standby mode: crash recovery before pg_rewind needs the signals gone. */
  async removeRecoverySignals(): Promise<void> {
    await rm(join(this.path, 'standby.signal'), { force: true });
    await rm(join(this.path, 'recovery.signal'), { force: true });
  }

  async readHistoryFile(timeline: number): Promise<string | undefined> {
    return readFile(join(this.path, 'pg_wal', historyFileName(timeline)), 'utf8').catch(() => undefined);
  }

  /** Writes copied slot state files (only while stopped: PostgreSQL loads pg_replslot at start); returns their dirs. */
  async writeSlotStates(states: ReadonlyMap<string, Buffer>): Promise<string[]> {
    const written: string[] = [];
    for (const [name, state] of states) {
      const dir = join(this.path, 'pg_replslot', name);
      await rm(dir, { recursive: true, force: true });
      await this.ensureDir(dir, 0o700);
      await this.writeOwnedFile(join(dir, 'state'), state, 0o600);
      written.push(dir);
    }
    return written;
  }

  async removePaths(paths: readonly string[]): Promise<void> {
    for (const path of paths) await rm(path, { recursive: true, force: true });
  }
}
