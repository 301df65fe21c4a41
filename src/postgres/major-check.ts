// The facts of `pgwarden upgrade --major --check`, gathered on the primary's host without changing the running
// cluster: the new binaries, the old cluster's settings, pg_upgrade --check against a temporary new cluster (removed
// afterwards), the extension inventory, the disk, and a schema-only dump restored into that scratch cluster.
// core/major-upgrade-check.ts decides; this only reports.
import { constants as fsConstants } from 'node:fs';
import { access, chown, lstat, mkdir, mkdtemp, readdir, readFile, realpath, rm, stat, statfs } from 'node:fs/promises';
import { createServer } from 'node:net';
import { basename, dirname, join } from 'node:path';
import {
  MAJOR_UPGRADE_TOOLS,
  type AlterSystemFacts,
  type ExtensionFact,
  type MajorCheckFacts,
  type StepFact,
} from '../core/major-upgrade-check.js';
import { describeError, PgwardenError } from '../util/errors.js';
import type { RunAs } from './runner.js';

export interface MajorCheckIo {
  readonly member: string;
  readonly dataDir: string;
  readonly oldBinDir: string;
  /** Where the running server's socket is, and its port: pg_dumpall reads the old server there. */
  readonly socketDir: string;
  readonly port: number;
  readonly runAs: RunAs | undefined;
  run(argv: readonly string[], signal: AbortSignal, extra?: { stdin?: string; cwd?: string }): Promise<{ stdout: string; stderr: string }>;
  isRunningPrimary(signal: AbortSignal): Promise<boolean>;
  query<T extends object>(database: string, text: string, signal: AbortSignal): Promise<T[]>;
}

/** pg_upgrade's reports of what it found (e.g. tables using reg* types): the lines that explain a failed check. */
const REPORT_LINES = 40;

async function isExecutable(path: string): Promise<boolean> {
  try {
    await access(path, fsConstants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** Bytes under `dir` (what `du -sb` counts), without following symlinks. */
async function treeBytes(dir: string): Promise<number> {
  let total = 0;
  const entries = await readdir(dir, { withFileTypes: true });
  for (const entry of entries) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) total += await treeBytes(path);
    else total += (await lstat(path).catch(() => ({ size: 0 }))).size;
  }
  return total;
}

/** A port nothing listens on now, for the scratch servers (they listen on a private socket only, but need a number). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** The share directory of a bin_dir: `pg_config --sharedir` when it has pg_config, else ../share[/postgresql]. */
async function shareDirOf(io: MajorCheckIo, binDir: string, signal: AbortSignal): Promise<string | undefined> {
  if (await isExecutable(join(binDir, 'pg_config'))) {
    const reported = await io
      .run([join(binDir, 'pg_config'), '--sharedir'], signal)
      .then((result) => result.stdout.trim())
      .catch(() => '');
    if (reported !== '') return reported;
  }
  const root = dirname(dirname(await realpath(join(binDir, 'postgres')).catch(() => join(binDir, 'postgres'))));
  for (const candidate of [join(root, 'share', 'postgresql'), join(root, 'share')])
    if (await isExecutable(join(candidate, 'extension'))) return candidate;
  return undefined;
}

const elapsed = (startedMs: number): number => (performance.now() - startedMs) / 1000;

/** A failed program's words: the error (with its output's tail) and pg_upgrade's report files, when any. */
export async function failureOutput(error: unknown, newData: string | undefined): Promise<string> {
  const stderrTail = error instanceof PgwardenError ? error.context.stderrTail : undefined;
  const parts = [typeof stderrTail === 'string' && stderrTail !== '' ? stderrTail : describeError(error)];
  if (newData !== undefined) {
    const outputDir = join(newData, 'pg_upgrade_output.d');
    const reports = await findFiles(outputDir, (name) => name.endsWith('.txt')).catch(() => []);
    for (const report of reports) {
      const text = await readFile(report, 'utf8').catch(() => '');
      parts.push(`${basename(report)}:\n${text.trim().split('\n').slice(0, REPORT_LINES).join('\n')}`);
    }
  }
  return parts.join('\n');
}

async function findFiles(dir: string, isWanted: (name: string) => boolean): Promise<string[]> {
  const found: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) found.push(...(await findFiles(path, isWanted)));
    else if (isWanted(entry.name)) found.push(path);
  }
  return found;
}

export interface OldCluster {
  readonly encoding: string;
  readonly lcCollate: string;
  readonly lcCtype: string;
  readonly dataChecksums: boolean;
  readonly installUser: string;
  /** template0's locale provider (15+: 'c' libc, 'i' ICU) and ICU locale: pg_upgrade refuses a new cluster that differs. */
  readonly localeProvider: string;
  readonly icuLocale: string | undefined;
  readonly extensions: readonly { database: string; name: string; version: string }[];
}

export async function readOldCluster(io: MajorCheckIo, signal: AbortSignal): Promise<OldCluster> {
  const [settings] = await io.query<{ encoding: string; lc_collate: string; lc_ctype: string; checksums: string; install_user: string }>(
    'postgres',
    `SELECT current_setting('server_encoding') AS encoding, current_setting('lc_collate') AS lc_collate,
            current_setting('lc_ctype') AS lc_ctype, current_setting('data_checksums') AS checksums,
            (SELECT rolname FROM pg_roles WHERE oid = 10) AS install_user`,
    signal,
  );
  if (settings === undefined)
    throw new PgwardenError('PGW_PG_QUERY_FAILED', `[${io.member}] the old cluster's settings query returned no row`);
  // datlocprovider exists from 15 on; older clusters are libc only.
  const [provider] = await io.query<{ provider: string; icu: string | null }>(
    'postgres',
    `SELECT CASE WHEN current_setting('server_version_num')::int >= 150000
                 THEN (SELECT datlocprovider::text FROM pg_database WHERE datname = 'template0') ELSE 'c' END AS provider,
            CASE WHEN current_setting('server_version_num')::int >= 150000
                 THEN (SELECT daticulocale FROM pg_database WHERE datname = 'template0') END AS icu`,
    signal,
  );
  const databases = await io.query<{ datname: string }>(
    'postgres',
    'SELECT datname FROM pg_database WHERE datallowconn ORDER BY datname',
    signal,
  );
  const extensions: { database: string; name: string; version: string }[] = [];
  for (const { datname } of databases) {
    const rows = await io.query<{ extname: string; extversion: string }>(
      datname,
      'SELECT extname, extversion FROM pg_extension ORDER BY extname',
      signal,
    );
    for (const row of rows) extensions.push({ database: datname, name: row.extname, version: row.extversion });
  }
  return {
    encoding: settings.encoding,
    lcCollate: settings.lc_collate,
    lcCtype: settings.lc_ctype,
    dataChecksums: settings.checksums === 'on',
    installUser: settings.install_user,
    localeProvider: provider?.provider ?? 'c',
    icuLocale: provider?.icu ?? undefined,
    extensions,
  };
}

/** Runs `work` with a scratch directory beside the data directory (so it is on the file system the upgrade will use). */
async function withScratchDir<T>(io: MajorCheckIo, work: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(dirname(io.dataDir), `.${basename(io.dataDir)}.major-check-`));
  try {
    if (io.runAs !== undefined) await chown(dir, io.runAs.uid, io.runAs.gid);
    return await work(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** What the primary's host says about upgrading its cluster to the binaries in `newBinDir`. */
/** The names postgresql.auto.conf (ALTER SYSTEM's file) sets, lower-cased as PostgreSQL matches them. */
export function autoConfNames(text: string): string[] {
  const names = text
    .split('\n')
    .map((line) => /^\s*([A-Za-z_][\w.]*)\s*=/.exec(line)?.[1]?.toLowerCase())
    .filter((name): name is string => name !== undefined);
  return [...new Set(names)];
}

/**
 * ALTER SYSTEM's settings of the old cluster, which pg_upgrade does not carry over, and those the new server does not
 * know (`postgres --describe-config`): such a name would stop the new cluster from starting after the point of no
 * return. Names with a dot belong to extensions and are not checked.
 */
export type AlterSystemFact = AlterSystemFacts & { readonly text: string };

export async function alterSystemFact(io: MajorCheckIo, newBinDir: string, signal: AbortSignal): Promise<AlterSystemFact> {
  const text = await readFile(join(io.dataDir, 'postgresql.auto.conf'), 'utf8').catch(() => '');
  const names = autoConfNames(text);
  if (names.length === 0) return { names, unknown: [], text };
  try {
    const { stdout } = await io.run([join(newBinDir, 'postgres'), '--describe-config'], signal);
    const known = new Set(stdout.split('\n').map((line) => line.split('\t')[0]?.toLowerCase()));
    return { names, unknown: names.filter((name) => !name.includes('.') && !known.has(name)), text };
  } catch (error) {
    return { names, unknown: [], text, error: describeError(error) };
  }
}

export async function gatherMajorCheckFacts(io: MajorCheckIo, newBinDir: string, signal: AbortSignal): Promise<MajorCheckFacts> {
  const missing: string[] = [];
  for (const tool of MAJOR_UPGRADE_TOOLS) if (!(await isExecutable(join(newBinDir, tool)))) missing.push(tool);
  let versionOutput: string | undefined;
  let versionError: string | undefined;
  if (!missing.includes('postgres'))
    try {
      versionOutput = (await io.run([join(newBinDir, 'postgres'), '--version'], signal)).stdout.trim();
    } catch (error) {
      versionError = describeError(error);
    }
  const pgVersion = await readFile(join(io.dataDir, 'PG_VERSION'), 'utf8').catch(() => undefined);
  const oldMajor = pgVersion === undefined ? undefined : Number.parseInt(pgVersion.trim(), 10);
  const isRunningPrimary = await io.isRunningPrimary(signal).catch(() => false);
  const old = isRunningPrimary ? await readOldCluster(io, signal) : undefined;
  const shareDir = await shareDirOf(io, newBinDir, signal);
  const extensions: ExtensionFact[] = [];
  for (const extension of old?.extensions ?? [])
    extensions.push({
      ...extension,
      has_new_control:
        shareDir !== undefined &&
        (await stat(join(shareDir, 'extension', `${extension.name}.control`)).catch(() => undefined)) !== undefined,
    });
  const dataDirBytes = await treeBytes(io.dataDir).catch(() => undefined);
  const parent = dirname(io.dataDir);
  const free = await statfs(parent).catch(() => undefined);
  const [dataStat, parentStat] = await Promise.all([stat(io.dataDir).catch(() => undefined), stat(parent).catch(() => undefined)]);

  const alterSystem = missing.includes('postgres') ? undefined : await alterSystemFact(io, newBinDir, signal);
  let pgUpgradeCheck: StepFact = { ran: false, skipped: 'not run' };
  let schemaRestore: StepFact = { ran: false, skipped: 'not run' };
  const needed = ['initdb', 'pg_upgrade', 'postgres', 'pg_ctl'].filter((tool) => missing.includes(tool));
  if (old === undefined) {
    pgUpgradeCheck = { ran: false, skipped: `${io.member} is not a running primary` };
    schemaRestore = pgUpgradeCheck;
  } else if (needed.length > 0 || versionOutput === undefined) {
    pgUpgradeCheck = { ran: false, skipped: `${newBinDir} lacks ${needed.join(', ') || 'a working postgres'}` };
    schemaRestore = pgUpgradeCheck;
  } else {
    const steps = await withScratchDir(io, (dir) => scratchChecks(io, newBinDir, old, dir, missing, signal));
    pgUpgradeCheck = steps.pgUpgradeCheck;
    schemaRestore = steps.schemaRestore;
  }

  return {
    member: io.member,
    new_bin_dir: newBinDir,
    old_bin_dir: io.oldBinDir,
    missing_tools: missing,
    ...(versionOutput !== undefined ? { new_version_output: versionOutput } : {}),
    ...(versionError !== undefined ? { new_version_error: versionError } : {}),
    ...(oldMajor !== undefined && Number.isFinite(oldMajor) ? { old_major: oldMajor } : {}),
    is_primary_running: isRunningPrimary,
    ...(old !== undefined
      ? {
          encoding: old.encoding,
          lc_collate: old.lcCollate,
          lc_ctype: old.lcCtype,
          data_checksums: old.dataChecksums,
          install_user: old.installUser,
          locale_provider: old.localeProvider === 'i' ? `icu ${old.icuLocale ?? ''}`.trim() : 'libc',
        }
      : {}),
    ...(shareDir !== undefined ? { new_share_dir: shareDir } : {}),
    extensions,
    data_dir: io.dataDir,
    ...(dataDirBytes !== undefined ? { data_dir_bytes: dataDirBytes } : {}),
    ...(free !== undefined ? { free_bytes: free.bavail * free.bsize } : {}),
    ...(dataStat !== undefined && parentStat !== undefined ? { same_filesystem: dataStat.dev === parentStat.dev } : {}),
    pg_upgrade_check: pgUpgradeCheck,
    schema_restore: schemaRestore,
    ...(alterSystem !== undefined
      ? {
          alter_system: {
            names: alterSystem.names,
            unknown: alterSystem.unknown,
            ...(alterSystem.error !== undefined ? { error: alterSystem.error } : {}),
          },
        }
      : {}),
  };
}

/**
 * initdb of a new cluster pg_upgrade accepts for `old`: the same install user, encoding, locale, locale provider and
 * data checksums. trust: it listens only on a private socket (pg_upgrade's, or the check's) until the agent writes its
 * own pg_hba.conf at the first start.
 */
export function newClusterInitdbArgv(newBinDir: string, newData: string, old: OldCluster): string[] {
  return [
    join(newBinDir, 'initdb'),
    '-D',
    newData,
    '-U',
    old.installUser,
    '--auth=trust',
    `--encoding=${old.encoding}`,
    `--lc-collate=${old.lcCollate}`,
    `--lc-ctype=${old.lcCtype}`,
    ...(old.dataChecksums ? ['--data-checksums'] : []),
    ...(old.localeProvider === 'i'
      ? ['--locale-provider=icu', ...(old.icuLocale !== undefined ? [`--icu-locale=${old.icuLocale}`] : [])]
      : []),
  ];
}

/** initdb a scratch new cluster like the old one, pg_upgrade --check against the live old server, then the schema test. */
async function scratchChecks(
  io: MajorCheckIo,
  newBinDir: string,
  old: OldCluster,
  dir: string,
  missing: readonly string[],
  signal: AbortSignal,
): Promise<{ pgUpgradeCheck: StepFact; schemaRestore: StepFact }> {
  const newData = join(dir, 'data');
  const bin = (tool: string): string => join(newBinDir, tool);
  const initStarted = performance.now();
  try {
    // trust: the scratch server listens on a socket in this 0700 directory only, and lives for the check.
    await io.run(newClusterInitdbArgv(newBinDir, newData, old), signal, { cwd: dir });
  } catch (error) {
    const failed: StepFact = {
      ran: true,
      ok: false,
      output: `initdb of the scratch cluster failed: ${await failureOutput(error, undefined)}`,
      seconds: elapsed(initStarted),
    };
    return { pgUpgradeCheck: failed, schemaRestore: { ran: false, skipped: 'the scratch cluster could not be created' } };
  }
  const newPort = await freePort();
  const checkStarted = performance.now();
  let pgUpgradeCheck: StepFact;
  try {
    const result = await io.run(
      [
        bin('pg_upgrade'),
        '--check',
        '-b',
        io.oldBinDir,
        '-B',
        newBinDir,
        '-d',
        io.dataDir,
        '-D',
        newData,
        '-p',
        String(io.port),
        '-P',
        String(newPort),
        '-U',
        old.installUser,
        '-s',
        dir,
      ],
      signal,
      { cwd: dir },
    );
    pgUpgradeCheck = { ran: true, ok: true, output: result.stdout.trim(), seconds: elapsed(checkStarted) };
  } catch (error) {
    pgUpgradeCheck = { ran: true, ok: false, output: await failureOutput(error, newData), seconds: elapsed(checkStarted) };
  }
  const schemaTools = ['pg_dumpall', 'psql'].filter((tool) => missing.includes(tool));
  if (schemaTools.length > 0)
    return { pgUpgradeCheck, schemaRestore: { ran: false, skipped: `${newBinDir} lacks ${schemaTools.join(', ')}` } };
  return { pgUpgradeCheck, schemaRestore: await schemaRestoreTest(io, newBinDir, old, dir, newData, signal) };
}

/**
 * pg_dumpall --schema-only of the old server (with the new pg_dumpall, as for a real dump/restore upgrade) restored
 * into the scratch cluster started on a private socket: objects the new major rejects show up as ERROR lines.
 */
async function schemaRestoreTest(
  io: MajorCheckIo,
  newBinDir: string,
  old: OldCluster,
  dir: string,
  newData: string,
  signal: AbortSignal,
): Promise<StepFact> {
  const bin = (tool: string): string => join(newBinDir, tool);
  const started = performance.now();
  const port = await freePort();
  const socketDir = join(dir, 'socket');
  await mkdir(socketDir, { mode: 0o700 });
  if (io.runAs !== undefined) await chown(socketDir, io.runAs.uid, io.runAs.gid);
  const serverOptions = `-p ${port} -c listen_addresses='' -c unix_socket_directories='${socketDir}'`;
  let isStarted = false;
  try {
    await io.run([bin('pg_ctl'), '-D', newData, '-w', '-t', '60', '-l', join(dir, 'scratch.log'), '-o', serverOptions, 'start'], signal, {
      cwd: dir,
    });
    isStarted = true;
    const dump = await io.run(
      [bin('pg_dumpall'), '--schema-only', '-h', io.socketDir, '-p', String(io.port), '-U', old.installUser],
      signal,
      {
        cwd: dir,
      },
    );
    const restore = await io.run(
      [bin('psql'), '-X', '-q', '-h', socketDir, '-p', String(port), '-U', old.installUser, '-d', 'postgres', '-f', '-'],
      signal,
      {
        stdin: dump.stdout,
        cwd: dir,
      },
    );
    // The install user exists in any new cluster: pg_dumpall's CREATE ROLE for it is expected to fail.
    const expected = `role "${old.installUser}" already exists`;
    const errors = restore.stderr.split('\n').filter((line) => /\bERROR:/.test(line) && !line.includes(expected));
    const statements = dump.stdout.split('\n').filter((line) => /^(CREATE|ALTER) /.test(line)).length;
    return errors.length === 0
      ? { ran: true, ok: true, output: `${statements} CREATE/ALTER statements restored`, seconds: elapsed(started) }
      : { ran: true, ok: false, output: errors.slice(0, REPORT_LINES).join('\n'), seconds: elapsed(started) };
  } catch (error) {
    return { ran: true, ok: false, output: await failureOutput(error, undefined), seconds: elapsed(started) };
  } finally {
    if (isStarted)
      await io
        .run([bin('pg_ctl'), '-D', newData, '-w', '-m', 'immediate', 'stop'], AbortSignal.timeout(30_000), { cwd: dir })
        .catch(() => undefined);
  }
}
