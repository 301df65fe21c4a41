// The data directory and the files pgwarden owns in and around it: its state, removal, files written as the postgres
// user, pgpass, postgresql.conf / pg_hba.conf / standby.signal, history files and copied slot state.
import { existsSync } from 'node:fs';
import { chmod, chown, mkdir, readFile, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Upstream } from '../core/ports.js';
import type { LocalPg } from '../core/types.js';
import { slotNameForMember } from '../core/slot-names.js';
import { renderPgHba, renderPgpass, renderPostgresqlConf, type GucValue, type ReplicaSettings } from './conf-render.js';
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

/** pg_wal/<TLI>.history, the file PostgreSQL writes when a promotion starts timeline `timeline`. */
export function historyFileName(timeline: number): string {
  return `${timeline.toString(16).toUpperCase().padStart(8, '0')}.history`;
}

export class DataDir {
  readonly #options: DataDirOptions;

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

  async remove(): Promise<void> {
    await rm(this.path, { recursive: true, force: true });
  }

  /** An empty data dir owned by postgres (0700, as PostgreSQL demands) under a parent it can traverse. */
  async recreateEmpty(): Promise<void> {
    await this.remove();
    await this.ensureDir(dirname(this.path), 0o755).catch(() => undefined);
    await this.ensureDir(this.path, 0o700);
  }

  async ensureDir(path: string, mode: number): Promise<void> {
    await mkdir(path, { recursive: true, mode });
    await this.chownToPostgres(path);
  }

  async chownToPostgres(path: string): Promise<void> {
    const runAs = this.#options.runAs;
    if (runAs !== undefined) await chown(path, runAs.uid, runAs.gid);
  }

  async writeOwnedFile(path: string, content: string | Buffer, mode: number): Promise<void> {
    await writeFile(path, content, { mode });
    // writeFile's mode applies only to a new file: an existing one (pgpass, the service file) is narrowed too.
    await chmod(path, mode);
    await this.chownToPostgres(path);
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
