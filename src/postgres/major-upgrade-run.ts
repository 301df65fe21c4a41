// The primary host's part of the in-place major upgrade (core/major-upgrade.ts plans it): initdb of the new cluster
// beside the data directory, pg_upgrade --link into it, the swap of the two directories, the rollback before that
// swap, and vacuumdb --analyze-in-stages afterwards. Each operation is idempotent where a resumed run may repeat it.
import { existsSync } from 'node:fs';
import { chown, mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PgwardenError } from '../util/errors.js';
import { parseControlData, type ControlData } from './controldata.js';
import { alterSystemFact, failureOutput, freePort, newClusterInitdbArgv, readOldCluster, type MajorCheckIo } from './major-check.js';

/** What the host needs beyond the check's: the superuser vacuumdb connects as. */
export interface MajorRunIo extends MajorCheckIo {
  readonly superuser: string;
}

/** Where the upgrade puts things, all beside the data directory (the same file system: hard links need it). */
export function upgradePaths(dataDir: string): { newData: string; work: string; oldKept: string; state: string } {
  const base = dataDir.replace(/\/+$/, '');
  return {
    newData: `${base}.pg_upgrade_new`,
    work: `${base}.pg_upgrade_work`,
    oldKept: `${base}.pg_upgrade_old`,
    state: `${base}.pg_upgrade_work/upgrade.json`,
  };
}

interface PreparedState {
  readonly install_user: string;
  readonly new_bin_dir: string;
}

/** Enough of pg_upgrade's log to show the failing command and its error. */
const LOG_TAIL_LINES = 8;

const elapsedS = (startedMs: number): number => Math.round((performance.now() - startedMs) / 100) / 10;

function failed(io: MajorRunIo, message: string, hint: string, cause?: unknown): PgwardenError {
  return new PgwardenError('PGW_UPGRADE_FAILED', `[${io.member}] ${message}`, {
    ...(cause !== undefined ? { cause } : {}),
    context: { member: io.member, path: io.dataDir, hint },
  });
}

async function controlDataOf(io: MajorRunIo, binDir: string, dataDir: string, signal: AbortSignal): Promise<ControlData> {
  const { stdout } = await io.run([join(binDir, 'pg_controldata'), '-D', dataDir], signal);
  return parseControlData(stdout);
}

async function ownedDir(io: MajorRunIo, path: string): Promise<void> {
  await mkdir(path, { mode: 0o700 });
  if (io.runAs !== undefined) await chown(path, io.runAs.uid, io.runAs.gid);
}

/**
 * The new cluster, initdb'd like the old one while the old primary still runs (it reads the old cluster's settings from
 * it) so the write pause does not pay for initdb. A previous attempt's leftovers are removed first.
 */
export async function prepareNewCluster(io: MajorRunIo, newBinDir: string, signal: AbortSignal): Promise<Record<string, unknown>> {
  const paths = upgradePaths(io.dataDir);
  if (existsSync(paths.oldKept))
    throw failed(io, `${paths.oldKept} exists: an earlier upgrade swapped the data directories`, `remove it once you no longer need it`);
  const started = performance.now();
  const old = await readOldCluster(io, signal);
  await rm(paths.newData, { recursive: true, force: true });
  await rm(paths.work, { recursive: true, force: true });
  await ownedDir(io, paths.work);
  await ownedDir(io, paths.newData);
  await io.run(newClusterInitdbArgv(newBinDir, paths.newData, old), signal, { cwd: paths.work });
  const state: PreparedState = { install_user: old.installUser, new_bin_dir: newBinDir };
  await writeFile(paths.state, `${JSON.stringify(state)}\n`, { mode: 0o600 });
  return { new_data_dir: paths.newData, install_user: old.installUser, seconds: elapsedS(started) };
}

/** The data directory as pg_controldata sees it, and which of the upgrade's directories exist. */
export async function inspectUpgrade(io: MajorRunIo, signal: AbortSignal): Promise<Record<string, unknown>> {
  const paths = upgradePaths(io.dataDir);
  const control = existsSync(join(io.dataDir, 'global', 'pg_control'))
    ? await controlDataOf(io, io.oldBinDir, io.dataDir, signal)
    : undefined;
  return {
    data_dir: io.dataDir,
    state: control?.state ?? null,
    sysid: control?.sysid ?? null,
    checkpoint_lsn: control?.checkpointLsn ?? null,
    has_new_data: existsSync(paths.newData),
    has_old_kept: existsSync(paths.oldKept),
    has_pg_control_old: existsSync(join(io.dataDir, 'global', 'pg_control.old')),
  };
}

async function readPrepared(io: MajorRunIo): Promise<PreparedState> {
  const paths = upgradePaths(io.dataDir);
  try {
    return JSON.parse(await readFile(paths.state, 'utf8')) as PreparedState;
  } catch (error) {
    throw failed(io, `the new cluster was not prepared (${paths.state} is unreadable)`, 'run the prepare step again', error);
  }
}

/**
 * pg_upgrade --link from the cleanly shut down old cluster into the prepared one. On failure the old cluster is left as
 * pg_upgrade left it (rollback puts pg_control back); the error carries pg_upgrade's own words and report files.
 */
export async function linkUpgrade(io: MajorRunIo, newBinDir: string, signal: AbortSignal): Promise<Record<string, unknown>> {
  const paths = upgradePaths(io.dataDir);
  const prepared = await readPrepared(io);
  if (prepared.new_bin_dir !== newBinDir)
    throw failed(io, `the new cluster was prepared for ${prepared.new_bin_dir}, not ${newBinDir}`, 'run the prepare step again');
  const control = await controlDataOf(io, io.oldBinDir, io.dataDir, signal);
  if (control.state !== 'shut down')
    throw failed(
      io,
      `the old cluster's state is "${control.state ?? 'unknown'}", not "shut down": pg_upgrade needs a clean shutdown of the primary`,
      'start the old primary and stop it cleanly (pgwarden upgrade does), then run again',
    );
  const started = performance.now();
  let result: { stdout: string };
  try {
    result = await io.run(
      [
        join(newBinDir, 'pg_upgrade'),
        '--link',
        '-b',
        io.oldBinDir,
        '-B',
        newBinDir,
        '-d',
        io.dataDir,
        '-D',
        paths.newData,
        '-p',
        String(await freePort()),
        '-P',
        String(await freePort()),
        '-U',
        prepared.install_user,
        '-s',
        paths.work,
      ],
      signal,
      { cwd: paths.work },
    );
  } catch (error) {
    // pg_upgrade names its log and says "consult the last few lines": they are read now, before a rollback removes them.
    const logs = await logTails(join(paths.newData, 'pg_upgrade_output.d'));
    throw failed(
      io,
      `pg_upgrade --link failed after ${elapsedS(started)} s: ${await failureOutput(error, paths.newData)}${logs}`,
      'the old cluster is untouched; roll back (pgwarden upgrade --major --rollback) and read pg_upgrade_output.d in the new cluster',
      error,
    );
  }
  const newControl = await controlDataOf(io, newBinDir, paths.newData, signal);
  const carried = await carryAlterSystem(io, newBinDir, paths.newData, signal);
  return {
    seconds: elapsedS(started),
    alter_system: carried,
    new_sysid: newControl.sysid ?? null,
    output: result.stdout.trim().split('\n').slice(-6).join('\n'),
  };
}

/**
 * pg_upgrade leaves postgresql.auto.conf behind: ALTER SYSTEM's settings are copied into the new cluster, unless the new
 * server does not know one (it would not start past the point of no return): then the step fails and rolls back.
 */
async function carryAlterSystem(io: MajorRunIo, newBinDir: string, newData: string, signal: AbortSignal): Promise<readonly string[]> {
  const fact = await alterSystemFact(io, newBinDir, signal);
  if (fact.names.length === 0) return [];
  if (fact.error !== undefined || fact.unknown.length > 0)
    throw failed(
      io,
      fact.error !== undefined
        ? `could not check postgresql.auto.conf against ${newBinDir}/postgres: ${fact.error}`
        : `postgresql.auto.conf sets ${fact.unknown.join(', ')}, which ${newBinDir}/postgres does not know`,
      'roll back (pgwarden upgrade --major --rollback), ALTER SYSTEM RESET those settings, and run the upgrade again',
    );
  const target = join(newData, 'postgresql.auto.conf');
  await writeFile(target, fact.text, { mode: 0o600 });
  if (io.runAs !== undefined) await chown(target, io.runAs.uid, io.runAs.gid);
  return fact.names;
}

/** The last lines of pg_upgrade's utility and server logs under `dir`, as text to append to an error. */
async function logTails(dir: string): Promise<string> {
  const parts: string[] = [];
  const walk = async (path: string): Promise<void> => {
    for (const entry of await readdir(path, { withFileTypes: true }).catch(() => [])) {
      const full = join(path, entry.name);
      if (entry.isDirectory()) await walk(full);
      else if (/^pg_upgrade_(utility|server)\.log$/.test(entry.name)) {
        const lines = (await readFile(full, 'utf8').catch(() => '')).trim().split('\n').slice(-LOG_TAIL_LINES);
        parts.push(`\n${entry.name} (last lines):\n${lines.join('\n')}`);
      }
    }
  };
  await walk(dir);
  return parts.join('');
}

/**
 * The swap: the old cluster moves to `.pg_upgrade_old`, the new one takes the data directory's path. Idempotent: a run
 * interrupted between the two renames finishes them. Returns the new system identifier.
 */
export async function swapDataDirs(
  io: MajorRunIo,
  newBinDir: string,
  signal: AbortSignal,
): Promise<{ sysid: string; old_data_dir: string }> {
  const paths = upgradePaths(io.dataDir);
  if (existsSync(paths.newData)) {
    if (!existsSync(paths.oldKept)) {
      if (!existsSync(io.dataDir)) throw failed(io, `neither ${io.dataDir} nor ${paths.oldKept} exists`, 'restore from a backup');
      await rename(io.dataDir, paths.oldKept);
    }
    if (existsSync(io.dataDir)) throw failed(io, `${io.dataDir} exists again after it was moved aside`, 'look at the directory by hand');
    await rename(paths.newData, io.dataDir);
  } else if (!existsSync(paths.oldKept))
    throw failed(io, `there is no upgraded cluster at ${paths.newData} to swap in`, 'run pg_upgrade (the step before) again');
  const control = await controlDataOf(io, newBinDir, io.dataDir, signal);
  if (control.sysid === undefined) throw failed(io, `pg_controldata gave no system identifier for ${io.dataDir}`, 'look at it by hand');
  // pg_upgrade's work directory (its socket, delete_old_cluster.sh) has served; its logs went with a successful run.
  await rm(paths.work, { recursive: true, force: true });
  return { sysid: control.sysid, old_data_dir: paths.oldKept };
}

/**
 * Before the swap: the new cluster is removed and the old cluster's global/pg_control, which pg_upgrade --link renames
 * to pg_control.old once it starts linking, is put back, so the old cluster starts as it was. Refused after the swap.
 */
export async function rollbackUpgrade(io: MajorRunIo, signal: AbortSignal): Promise<Record<string, unknown>> {
  const paths = upgradePaths(io.dataDir);
  if (existsSync(paths.oldKept))
    throw failed(
      io,
      `the data directories were swapped (${paths.oldKept} holds the old cluster): past the point of no return`,
      'finish the upgrade (run pgwarden upgrade --major again), or restore the old cluster from a backup',
    );
  const control = join(io.dataDir, 'global', 'pg_control');
  const isControlRestored = !existsSync(control) && existsSync(`${control}.old`);
  if (isControlRestored) await rename(`${control}.old`, control);
  await rm(paths.newData, { recursive: true, force: true });
  await rm(paths.work, { recursive: true, force: true });
  const after = await controlDataOf(io, io.oldBinDir, io.dataDir, signal);
  return { pg_control_restored: isControlRestored, state: after.state ?? null, sysid: after.sysid ?? null };
}

/** vacuumdb --all --analyze-in-stages against the running new primary: minimal statistics first, full ones last. */
export async function analyzeInStages(io: MajorRunIo, newBinDir: string, signal: AbortSignal): Promise<Record<string, unknown>> {
  const started = performance.now();
  await io.run(
    [join(newBinDir, 'vacuumdb'), '--all', '--analyze-in-stages', '-h', io.socketDir, '-p', String(io.port), '-U', io.superuser],
    signal,
  );
  return { seconds: elapsedS(started) };
}
