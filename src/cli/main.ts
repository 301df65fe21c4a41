// The `pgwarden` command line: global options and the verbs, with one-line errors and non-zero exits.
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command, CommanderError, Option } from 'commander';
import type { ClusterView } from '../core/types.js';
import { describeError, PgwardenError } from '../util/errors.js';
import { createRestClient, type RestClient } from '../util/rest-client.js';
import { callApi } from './api-client.js';
import { confirmTyped } from './confirm.js';
import { applyRestorePlan, checkRestorePossible, restoreIntoNewCluster, restStepRunner } from './commands/restore.js';
import type { NewClusterMemberConfig, NewClusterRestorePlan } from '../core/restore-new-cluster.js';
import { renderMemberTable } from './render.js';
import { summarizeCluster } from '../core/cluster-summary.js';
import { describeRestoreStep, planInPlaceRestore } from '../core/restore-plan.js';
import { describeRestoreTarget, restoreTargetOf, targetTimelineOf } from '../core/restore-target.js';
import {
  editConfigCommand,
  pauseCommand,
  reinitCommand,
  reloadCommand,
  restartCommand,
  switchoverCommand,
  type ControlContext,
} from './commands/control.js';
import { backupCommand, fetchBackupRows, renderBackupRows } from './commands/backup.js';
import { eventsCommand } from './commands/events.js';
import { dsn, historyTable, showConfig } from './commands/inspect.js';
import { renderHaproxyConfig, serversFromView } from './commands/haproxy-config.js';
import { listCommand } from './commands/list.js';
import { queryCommand, type DbAccess } from './commands/query.js';
import { minorUpgradeCommand, type UpgradeContext } from './commands/upgrade.js';
import { majorUpgradeCommand, type MajorRunContext } from './commands/major-upgrade-run.js';
import { majorCheckCommand } from './commands/upgrade-major.js';
import { logicalUpgradeCommand, type LogicalUpgradeContext } from './commands/upgrade-logical.js';

import { DEFAULT_MAX_LAG_BYTES, DEFAULT_MAX_TRANSACTION_SECONDS } from '../core/minor-upgrade.js';
import type { UpgradeLedger } from '../core/ports.js';
import { parsePatroniInt } from '../util/patroni-int.js';

interface UpgradeFlags {
  minor?: boolean;
  major?: boolean;
  to?: string;
  check?: boolean;
  allowSameMajor?: boolean;
  binDir?: string;
  maxLag: string;
  maxTransactionAge: string;
  abort?: boolean;
  rollback?: boolean;
  timeout: string;
  method?: string;
  target?: string;
  cutover: boolean;
  toolsBinDir?: string;
  sequenceMargin: string;
  copyTimeout: string;
  applyTimeout: string;
}

/** What the composition root opens for `upgrade --major --method logical`: both clusters in one DCS, their databases. */
export type LogicalUpgradeHandles = Pick<
  LogicalUpgradeContext,
  'oldScope' | 'newScope' | 'loadOld' | 'loadNew' | 'redirects' | 'databases' | 'updateOldConfig'
> & { close(): Promise<void> };

export interface CliDeps {
  /** Reads the cluster of the config file given with -c (straight from the DCS). */
  readonly loadCluster: (
    configPath: string,
    signal: AbortSignal,
    options?: { readonly isInsecure?: boolean | undefined },
  ) => Promise<{
    readonly scope: string;
    readonly view: ClusterView;
    /** The REST client of the config file's ctl/restapi settings (default: plain, no credentials). */
    readonly rest?: RestClient | undefined;
    readonly db?: DbAccess | undefined;
  }>;
  readonly version: string;
  readonly out: (text: string) => void;
  /** Deletes every DCS key of the cluster (`remove`). */
  readonly removeCluster?: (configPath: string) => Promise<void>;
  /** Reads the confirmation answers of `remove` (one line each). */
  readonly readLine?: (prompt: string) => Promise<string>;
  /** `restore --scope`: what an agent config file says (name, scope, data dir and whether it is empty, backup: section). */
  readonly readMemberConfig?: (path: string) => Promise<NewClusterMemberConfig>;
  /** `restore --scope`: sets bootstrap.method and bootstrap.pgbackrest in an agent config file, keeping the rest. */
  readonly writeBootstrap?: (path: string, bootstrap: NewClusterRestorePlan['bootstrap']) => Promise<void>;
  /** The DCS record of a running `pgwarden upgrade` (the composition root opens the cluster's DCS for it). */
  readonly openUpgradeLedger?: (configPath: string) => Promise<{ readonly ledger: UpgradeLedger; close(): Promise<void> }>;
  /** `upgrade --major --method logical`: the old cluster (-c) and the new one (--target) with their superusers. */
  readonly openLogicalUpgrade?: (
    configPath: string,
    targetConfigPath: string,
    toolsBinDir: string | undefined,
  ) => Promise<LogicalUpgradeHandles>;
  /** Lets the composition root add verbs (agent, local) that need adapters the CLI must not import. */
  readonly register?: (program: Command) => void;
}

/** Opens $EDITOR (or vi) on a temporary copy and returns what the user saved. */
async function editInEditor(text: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'pgwarden-edit-'));
  const file = join(dir, 'config.yaml');
  try {
    await writeFile(file, text);
    const editor = process.env.EDITOR ?? process.env.VISUAL ?? 'vi';
    const code = await new Promise<number | null>((resolve, reject) => {
      const child = spawn(editor, [file], { stdio: 'inherit', shell: true });
      child.once('error', reject);
      child.once('exit', resolve);
    });
    if (code !== 0)
      throw new PgwardenError('PGW_CLI_ABORTED', `${editor} exited with ${code ?? 'a signal'}; nothing changed`, {
        context: {
          command: [editor, file],
          exitCode: code,
          hint: 'nothing was changed: save and quit the editor normally to apply, or set $EDITOR to a working editor',
        },
      });
    return await readFile(file, 'utf8');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

export function configPathFrom(program: Command): string {
  const options = program.opts<{ config?: string }>();
  const path = options.config ?? process.env.PGWARDEN_CONFIG ?? process.env.PATRONICTL_CONFIG_FILE;
  if (path === undefined)
    throw new PgwardenError('PGW_CLI_USAGE', 'no config file: pass -c <pgwarden.yml> (or set PGWARDEN_CONFIG)', {
      context: { flag: '-c', hint: 'pass -c <pgwarden.yml> before the verb, or set PGWARDEN_CONFIG (or PATRONICTL_CONFIG_FILE)' },
    });
  return path;
}

export function buildProgram(deps: CliDeps): Command {
  const program = new Command('pgwarden')
    .description('PostgreSQL high availability on etcd, Patroni-compatible')
    .option('-c, --config <file>', 'agent/patroni YAML config file (or $PGWARDEN_CONFIG)')
    .option('-k, --insecure', "do not verify the members' REST API certificates (overrides ctl.insecure)")
    .showHelpAfterError('(run pgwarden --help for usage)')
    // Global options go before the verb (as with patronictl), so `query -c <SQL>` is not taken for `-c <config>`.
    .enablePositionalOptions()
    .exitOverride();
  program
    .command('list')
    .description('show the members of the cluster (like patronictl list)')
    .option('-e, --extended', 'show pending restart, scheduled restart and tags columns')
    .addOption(new Option('-f, --format <format>', 'output format').choices(['pretty', 'tsv', 'json', 'yaml']).default('pretty'))
    .option('-W', 'refresh every 2 seconds')
    .option('-w, --watch <seconds>', 'refresh every N seconds')
    .action(async (options: { extended?: boolean; format: 'pretty' | 'tsv' | 'json' | 'yaml'; W?: boolean; watch?: string }) => {
      const configPath = configPathFrom(program);
      await listCommand({ ...options, configPath, loadCluster: deps.loadCluster, out: deps.out });
    });
  const control = async (isForced: boolean): Promise<ControlContext> => {
    const isInsecure = program.opts<{ insecure?: boolean }>().insecure === true ? true : undefined;
    const loaded = await deps.loadCluster(configPathFrom(program), AbortSignal.timeout(5000), { isInsecure });
    const readLine = deps.readLine;
    const confirm =
      process.stdin.isTTY && readLine !== undefined ? async (question: string) => /^y(es)?$/i.test(await readLine(question)) : undefined;
    const rest = loaded.rest ?? createRestClient({});
    return { scope: loaded.scope, view: loaded.view, rest, out: deps.out, isForced, confirm };
  };
  const reload = async (): Promise<ClusterView> => (await deps.loadCluster(configPathFrom(program), AbortSignal.timeout(5000))).view;
  /** Runs a rolling upgrade command with the cluster's upgrade record open (closed after, whatever happens). */
  const withUpgradeLedger = async (
    base: { readonly scope: string; readonly rest: RestClient },
    run: (context: UpgradeContext & MajorRunContext) => Promise<void>,
  ): Promise<void> => {
    const open = deps.openUpgradeLedger;
    if (open === undefined)
      throw new PgwardenError('PGW_INTERNAL', 'upgrade is not available in this build (no DCS access)', {
        context: { command: ['pgwarden', 'upgrade'], hint: 'run the pgwarden binary (dist/src/bin/pgwarden.js)' },
      });
    const opened = await open(configPathFrom(program));
    try {
      await run({
        scope: base.scope,
        rest: base.rest,
        out: deps.out,
        reload,
        ledger: opened.ledger,
        sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
        nowMs: () => performance.now(),
        wallNow: () => new Date(),
      });
    } finally {
      await opened.close();
    }
  };
  for (const kind of ['switchover', 'failover'] as const) {
    program
      .command(kind)
      .description(
        kind === 'switchover'
          ? 'hand the primary role to another member, cleanly'
          : 'promote a named member (also when the cluster has no leader)',
      )
      .option('--leader, --primary <name>', 'the current leader (default: read from the DCS)')
      .option('--candidate <name>', 'the member to promote')
      .option('--scheduled <time>', 'ISO-8601 time with zone, or "now"')
      .option('--force', 'do not ask for confirmation')
      .action(async (options: { leader?: string; primary?: string; candidate?: string; scheduled?: string; force?: boolean }) => {
        const leader = options.leader ?? options.primary;
        await switchoverCommand(
          kind,
          {
            ...(leader !== undefined ? { leader } : {}),
            ...(options.candidate !== undefined ? { candidate: options.candidate } : {}),
            ...(options.scheduled !== undefined ? { scheduled: options.scheduled } : {}),
          },
          await control(options.force === true),
        );
      });
  }
  for (const verb of ['pause', 'resume'] as const) {
    program
      .command(verb)
      .description(verb === 'pause' ? 'maintenance mode: stop all automatic failover and restarts' : 'leave maintenance mode')
      .option('--wait', 'wait until every member has seen it')
      .action(async (options: { wait?: boolean }) => pauseCommand(verb === 'pause', options, await control(true), reload));
  }
  program
    .command('restart')
    .description('restart PostgreSQL on members (all by default) through their REST API')
    .argument('[members...]', 'member names')
    .option('-r, --role <role>', 'leader, replica or any')
    .option('--pending', 'only members with a pending restart')
    .option('--scheduled <time>', 'ISO-8601 time with zone, or "now"')
    .option('--force', 'do not ask for confirmation')
    .action(async (members: string[], options: { role?: string; pending?: boolean; scheduled?: string; force?: boolean }) => {
      const failed = await restartCommand(members, options, await control(options.force === true));
      if (failed.length > 0)
        throw new PgwardenError('PGW_CLI_PARTIAL_FAILURE', 'some restarts failed', {
          context: { command: ['pgwarden', 'restart'], members: failed, hint: 'the Failed: lines above say why for each member' },
        });
    });
  program
    .command('upgrade')
    .description(
      'rolling minor upgrade: each replica restarted on the new binaries, a switchover, then the old primary; or the check of an in-place major upgrade',
    )
    .option('--minor', 'a minor upgrade (the same major, new binaries)')
    .option('--major', 'an in-place major upgrade with pg_upgrade --link (Spilo-style); --check only checks')
    .option('--to <major>', 'the major of --major, e.g. 17')
    .option('--check', 'with --major: pg_upgrade --check on a scratch cluster, extensions, disk, a schema restore; changes nothing')
    .option('--allow-same-major', 'with --major: accept a bin dir of the same major (the 15 -> 15 test path)')
    .option('--bin-dir <dir>', 'directory of the new binaries on every member (postgres, initdb, pg_basebackup, pg_rewind...)')
    .option('--max-lag <size>', 'refuse while a replica lags more (bytes, or 16MB, 1GB)', String(DEFAULT_MAX_LAG_BYTES))
    .option(
      '--max-transaction-age <seconds>',
      'refuse while a transaction on the primary is older',
      String(DEFAULT_MAX_TRANSACTION_SECONDS),
    )
    .option('--abort', 'forget the upgrade in progress (members already upgraded keep the new binaries)')
    .option('--rollback', 'with --major: roll back the major upgrade in progress (only before its point of no return)')
    .option('--timeout <seconds>', 'with --major: how long pg_upgrade and each re-clone may take', '3600')
    .option('--method <method>', 'with --major: pg_upgrade (in place) or logical (blue/green by logical replication)')
    .option('--target <config>', 'with --method logical: a member config of the new cluster (its own scope, same DCS)')
    .option('--no-cutover', 'with --method logical: stop once the new cluster is in sync (run again to cut over)')
    .option('--tools-bin-dir <dir>', "with --method logical: where pg_dump and psql are (default: the old cluster's bin_dir)")
    .option('--sequence-margin <n>', 'with --method logical: increments added to each sequence at cutover', '100')
    .option('--copy-timeout <seconds>', 'with --method logical: how long the initial copy may take', '3600')
    .option(
      '--apply-timeout <seconds>',
      'with --method logical: how long the last writes may take to apply at cutover (then roll back)',
      '30',
    )
    .action(async (options: UpgradeFlags) => {
      if (options.major === true && options.method === 'logical') {
        await runLogicalUpgrade(options);
        return;
      }
      if (options.method === 'logical')
        throw new PgwardenError('PGW_CLI_USAGE', '--method logical is a major upgrade: add --major', {
          context: {
            command: ['pgwarden', 'upgrade'],
            flag: '--major',
            hint: 'pgwarden upgrade --major --method logical --target <new cluster config>',
          },
        });
      if (options.method !== undefined && options.method !== 'pg_upgrade' && options.method !== 'logical')
        throw new PgwardenError('PGW_CLI_USAGE', `--method must be pg_upgrade or logical, got "${options.method}"`, {
          context: {
            command: ['pgwarden', 'upgrade'],
            flag: '--method',
            value: options.method,
            hint: 'e.g. --major --method logical --target <new cluster config>',
          },
        });
      if (options.major === true) {
        if (options.minor === true)
          throw new PgwardenError('PGW_CLI_USAGE', 'upgrade takes --minor or --major, not both', {
            context: {
              command: ['pgwarden', 'upgrade'],
              flag: '--major',
              hint: 'pgwarden upgrade --major --to 17 --bin-dir <dir> --check',
            },
          });
        const base = await control(true);
        const majorOptions = {
          binDir: options.binDir,
          to: options.to,
          allowSameMajor: options.allowSameMajor === true,
          isCheck: options.check === true,
        };
        if (options.check === true) {
          await majorCheckCommand(majorOptions, { scope: base.scope, rest: base.rest, out: deps.out, reload });
          return;
        }
        const timeoutS = Number(options.timeout);
        if (!(timeoutS > 0))
          throw new PgwardenError('PGW_CLI_USAGE', `--timeout expects seconds, got "${options.timeout}"`, {
            context: { command: ['pgwarden', 'upgrade'], flag: '--timeout', value: options.timeout, hint: 'e.g. --timeout 7200' },
          });
        await withUpgradeLedger(base, (context) =>
          majorUpgradeCommand({ ...majorOptions, isRollback: options.rollback === true, timeoutS }, context),
        );
        return;
      }
      if (options.minor !== true && options.abort !== true)
        throw new PgwardenError('PGW_CLI_USAGE', 'upgrade needs --minor or --major', {
          context: {
            command: ['pgwarden', 'upgrade'],
            flag: '--minor',
            hint: 'pgwarden upgrade --minor --bin-dir <dir of the new binaries>, or pgwarden upgrade --major --to 17 --bin-dir <dir> [--check]',
          },
        });
      const maxLagBytes = parsePatroniInt(options.maxLag, 'B');
      if (maxLagBytes === undefined || maxLagBytes < 0)
        throw new PgwardenError('PGW_CLI_USAGE', `--max-lag expects a size (bytes, or e.g. 16MB), got "${options.maxLag}"`, {
          context: { command: ['pgwarden', 'upgrade'], flag: '--max-lag', value: options.maxLag, hint: 'e.g. --max-lag 16MB' },
        });
      const maxTransactionSeconds = Number(options.maxTransactionAge);
      if (!(maxTransactionSeconds >= 0))
        throw new PgwardenError('PGW_CLI_USAGE', `--max-transaction-age expects seconds, got "${options.maxTransactionAge}"`, {
          context: {
            command: ['pgwarden', 'upgrade'],
            flag: '--max-transaction-age',
            value: options.maxTransactionAge,
            hint: 'e.g. --max-transaction-age 120',
          },
        });
      await withUpgradeLedger(await control(true), (context) =>
        minorUpgradeCommand(
          { binDir: options.binDir, bounds: { maxLagBytes, maxTransactionSeconds }, isAbort: options.abort === true },
          context,
        ),
      );
    });
  async function runLogicalUpgrade(options: UpgradeFlags): Promise<void> {
    const usage = (message: string, flag: string, value: string | undefined, hint: string): PgwardenError =>
      new PgwardenError('PGW_CLI_USAGE', message, {
        context: { command: ['pgwarden', 'upgrade'], flag, ...(value !== undefined ? { value } : {}), hint },
      });
    if (options.target === undefined)
      throw usage(
        '--method logical needs --target <a member config of the new cluster>',
        '--target',
        undefined,
        'start the new cluster (own scope, same etcd) first, then pass one of its pgwarden.yml files',
      );
    const seconds = (flag: string, value: string): number => {
      const number = Number(value);
      if (!(number > 0)) throw usage(`${flag} expects seconds above 0, got "${value}"`, flag, value, `e.g. ${flag} 60`);
      return number * 1000;
    };
    if (!/^\d+$/.test(options.sequenceMargin))
      throw usage(
        `--sequence-margin expects a whole number, got "${options.sequenceMargin}"`,
        '--sequence-margin',
        options.sequenceMargin,
        'e.g. --sequence-margin 100',
      );
    const maxLagBytes = parsePatroniInt(options.maxLag, 'B');
    if (maxLagBytes === undefined || maxLagBytes < 0)
      throw usage(
        `--max-lag expects a size (bytes, or e.g. 16MB), got "${options.maxLag}"`,
        '--max-lag',
        options.maxLag,
        'e.g. --max-lag 16MB',
      );
    const settings = {
      maxLagBytes,
      isAbort: options.abort === true,
      isCutover: options.cutover,
      sequenceMargin: BigInt(options.sequenceMargin),
      copyTimeoutMs: seconds('--copy-timeout', options.copyTimeout),
      applyTimeoutMs: seconds('--apply-timeout', options.applyTimeout),
    };
    const open = deps.openLogicalUpgrade;
    if (open === undefined)
      throw new PgwardenError('PGW_INTERNAL', 'the logical upgrade is not available in this build (no DCS or PostgreSQL access)', {
        context: { command: ['pgwarden', 'upgrade'], hint: 'run the pgwarden binary (dist/src/bin/pgwarden.js)' },
      });
    const handles = await open(configPathFrom(program), options.target, options.toolsBinDir);
    try {
      await logicalUpgradeCommand(settings, {
        ...handles,
        out: deps.out,
        sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
        nowMs: () => performance.now(),
        wallNow: () => new Date(),
      });
    } finally {
      await handles.close();
    }
  }
  program
    .command('reload')
    .description('make members re-read their local config file (tags, local GUCs, callbacks)')
    .argument('[members...]', 'member names')
    .option('-r, --role <role>', 'leader, replica or any')
    .option('--force', 'do not ask for confirmation')
    .action(async (members: string[], options: { role?: string; force?: boolean }) => {
      const failed = await reloadCommand(members, options, await control(options.force === true));
      if (failed.length > 0)
        throw new PgwardenError('PGW_CLI_PARTIAL_FAILURE', 'some reloads failed', {
          context: { command: ['pgwarden', 'reload'], members: failed, hint: 'the Failed: lines above say why for each member' },
        });
    });
  program
    .command('reinit')
    .description('re-clone replicas from the leader')
    .argument('<members...>', 'member names')
    .option('--wait', 'wait until the new copy runs')
    .option('--force', 'do not ask for confirmation')
    .action(async (members: string[], options: { wait?: boolean; force?: boolean }) => {
      const failed = await reinitCommand(members, options, await control(options.force === true));
      if (failed.length > 0)
        throw new PgwardenError('PGW_CLI_PARTIAL_FAILURE', 'some reinitializations failed', {
          context: { command: ['pgwarden', 'reinit'], members: failed, hint: 'the Failed: lines above say why for each member' },
        });
    });
  const backup = program
    .command('backup')
    .description('take a backup with pgBackRest (backup: section) on a streaming standby, else the leader; `backup list` lists them')
    .addOption(new Option('-t, --type <type>', 'backup type').choices(['full', 'diff', 'incr']).default('full'))
    .addOption(new Option('--from <source>', 'take it on a streaming standby or on the primary').choices(['standby', 'primary']))
    .option('--wait', 'wait until the backup finished and say how it went')
    .option('--timeout <seconds>', 'how long --wait waits', '3600')
    .action(async (options: { type: 'full' | 'diff' | 'incr'; from?: 'standby' | 'primary'; wait?: boolean; timeout: string }) => {
      const timeoutS = Number(options.timeout);
      if (!Number.isInteger(timeoutS) || timeoutS < 1)
        throw new PgwardenError('PGW_CLI_USAGE', `--timeout must be a positive number of seconds, got "${options.timeout}"`, {
          context: { command: ['pgwarden', 'backup'], flag: '--timeout', value: options.timeout, hint: 'e.g. --timeout 600' },
        });
      await backupCommand({ type: options.type, from: options.from, wait: options.wait, timeoutS }, await control(true));
    });
  backup
    .command('list')
    .description("the repository's backups (pgBackRest info, through any member's GET /backups)")
    .addOption(new Option('-f, --format <format>', 'output format').choices(['pretty', 'json']).default('pretty'))
    .action(async (options: { format: 'pretty' | 'json' }) => {
      const { rows } = await fetchBackupRows(await control(true));
      deps.out(renderBackupRows(rows, options.format));
    });
  program
    .command('restore')
    .description('point-in-time recovery of the whole cluster in place from the pgBackRest repository (asks to type the cluster name)')
    .option('--target-time <timestamp>', 'recover to this time, with a zone: 2026-12-07T10:15:30Z or "2026-12-07 10:15:30+01"')
    .option('--target-lsn <lsn>', 'recover to this WAL position, e.g. 0/3000060')
    .option('--target-name <name>', 'recover to a restore point made with pg_create_restore_point()')
    .option('--immediate', 'recover only to the end of the backup (its consistency point)')
    .option('--timeout <seconds>', 'how long the restore, each re-clone and the backup may take', '3600')
    .option('--scope <new scope>', 'restore into a new cluster of this scope instead, the source cluster untouched')
    .option(
      '--member-config <file>',
      'with --scope: the agent config file of a member of the new cluster (repeat for each); the restore bootstrap is written into it',
      (value: string, list: string[]) => [...list, value],
      [] as string[],
    )
    .option('--wait', 'with --scope: wait until the new cluster runs healthy (start its agents meanwhile)')
    .addHelpText(
      'after',
      `
Exactly one target. In place means: pause the cluster, stop PostgreSQL on the replicas, restore the leader's data dir
with pgBackRest to the target and promote it onto a new timeline (it keeps the leader lock throughout, so no other
member can become primary), take a full backup of the new timeline on it, re-clone the replicas, and resume (unless
the cluster was paused before). Everything committed after the target is gone from the cluster.
A time needs a zone; it must lie between the end of the oldest backup and now. Recovery follows the timeline that held
the target, read from the DCS history.
Into a new cluster instead (--scope NEW --member-config <file>...): each file is the agent config of a member of NEW
(scope NEW, an empty data dir, a backup: section with the same repository and a stanza of its own); pgwarden checks
them, writes bootstrap.method: pgbackrest with the stanza, target and timeline into each, and (--wait) follows NEW
until it runs: start the agents. The first member restores and is promoted, the others clone from it.
Each step is printed as it runs; if one fails, the run stops and says where the cluster stands and how to go on.
Nothing changes before the two answers: the cluster name, then "Yes I am aware" (from stdin when not at a terminal).`,
    )
    .action(
      async (options: {
        targetTime?: string;
        targetLsn?: string;
        targetName?: string;
        immediate?: boolean;
        timeout: string;
        scope?: string;
        memberConfig: string[];
        wait?: boolean;
      }) => {
        const given = restoreTargetOf(options);
        if ('problem' in given)
          throw new PgwardenError('PGW_CLI_USAGE', given.problem, {
            context: { command: ['pgwarden', 'restore'], hint: 'nothing was changed; pgwarden restore --help shows the targets' },
          });
        const timeoutS = Number(options.timeout);
        if (!Number.isInteger(timeoutS) || timeoutS < 1)
          throw new PgwardenError('PGW_CLI_USAGE', `--timeout must be a positive number of seconds, got "${options.timeout}"`, {
            context: { command: ['pgwarden', 'restore'], flag: '--timeout', value: options.timeout, hint: 'e.g. --timeout 7200' },
          });
        const readLine = deps.readLine;
        if (readLine === undefined)
          throw new PgwardenError('PGW_INTERNAL', 'restore is not available', {
            context: {
              command: ['pgwarden', 'restore'],
              hint: 'this build of the CLI cannot ask for confirmation: use the pgwarden binary',
            },
          });
        const context = await control(true);
        const target = { ...given, timeline: targetTimelineOf(given, context.view.history) };
        if (options.scope !== undefined) {
          const { readMemberConfig, writeBootstrap } = deps;
          if (readMemberConfig === undefined || writeBootstrap === undefined)
            throw new PgwardenError('PGW_INTERNAL', 'restore --scope is not available', {
              context: {
                command: ['pgwarden', 'restore'],
                hint: 'this build of the CLI cannot read config files: use the pgwarden binary',
              },
            });
          const newScope = options.scope;
          await restoreIntoNewCluster(
            target,
            {
              newScope,
              sourceConfigPath: configPathFrom(program),
              memberConfigs: options.memberConfig,
              wait: options.wait === true,
              timeoutS,
            },
            context,
            {
              readMemberConfig,
              writeBootstrap,
              loadView: async (path) => (await deps.loadCluster(path, AbortSignal.timeout(10_000))).view,
              confirm: () =>
                confirmTyped(readLine, {
                  cluster: newScope,
                  verb: 'create',
                  what: `restore ${context.scope}'s backup to ${describeRestoreTarget(target)} into the new cluster ${newScope}`,
                  undone: 'written',
                  command: ['pgwarden', 'restore', '--scope', newScope],
                }),
              out: deps.out,
            },
          );
          return;
        }
        if (options.memberConfig.length > 0 || options.wait === true)
          throw new PgwardenError('PGW_CLI_USAGE', '--member-config and --wait go with --scope (a restore into a new cluster)', {
            context: { command: ['pgwarden', 'restore'], hint: 'add --scope <new scope>, or leave them out to restore in place' },
          });
        const plan = planInPlaceRestore(context.view, target);
        if ('problem' in plan)
          throw new PgwardenError('PGW_CLI_CLUSTER_STATE', `cannot restore: ${plan.problem}`, {
            context: {
              command: ['pgwarden', 'restore'],
              scope: context.scope,
              hint: 'nothing was changed; pgwarden list shows the members',
            },
          });
        await checkRestorePossible(target, context, Date.now());
        deps.out(renderMemberTable(context.scope, summarizeCluster(context.view), 'pretty'));
        deps.out(`Restore of cluster ${context.scope} in place to ${describeRestoreTarget(target)}, on ${plan.leader}:`);
        plan.steps.forEach((step, index) => deps.out(`  ${index + 1}. ${describeRestoreStep(step)}`));
        await confirmTyped(readLine, {
          cluster: context.scope,
          verb: 'restore',
          what: `replace every member's data of ${context.scope} with the state at ${describeRestoreTarget(target)}; later commits are lost`,
          undone: 'restored',
          command: ['pgwarden', 'restore'],
        });
        await applyRestorePlan(plan, restStepRunner(context, { timeoutS, reload }), deps.out);
        deps.out(`Success: cluster ${context.scope} restored to ${describeRestoreTarget(target)}`);
      },
    );
  program
    .command('show-config')
    .description('print the dynamic configuration stored in the DCS')
    .addOption(new Option('-f, --format <format>', 'output format').choices(['yaml', 'json']).default('yaml'))
    .action(async (options: { format: 'yaml' | 'json' }) => deps.out(showConfig(await reload(), options.format)));
  program
    .command('edit-config')
    .description('change the dynamic configuration (through the REST API, compare-and-set)')
    .option(
      '-s, --set <key=value>',
      'set a key path, e.g. ttl=20 or postgresql.parameters.work_mem=8MB; null deletes',
      (value: string, list: string[]) => [...list, value],
      [] as string[],
    )
    .option(
      '-p, --pg <param=value>',
      'shorthand for --set postgresql.parameters.<param>=<value>',
      (value: string, list: string[]) => [...list, value],
      [] as string[],
    )
    .option('--apply <file>', 'merge a YAML file (or - for stdin) into the config; null deletes')
    .option('--replace <file>', 'replace the whole config with a YAML file (or - for stdin)')
    .option('--force', 'apply without asking')
    .action(async (options: { set: string[]; pg: string[]; apply?: string; replace?: string; force?: boolean }) => {
      if (options.apply !== undefined && options.replace !== undefined)
        throw new PgwardenError('PGW_CLI_USAGE', 'use either --apply or --replace, not both', {
          context: {
            command: ['pgwarden', 'edit-config'],
            flag: '--apply/--replace',
            hint: '--apply merges a file into the config, --replace makes it the whole config: pick one',
          },
        });
      const edit = process.stdin.isTTY ? editInEditor : undefined;
      await editConfigCommand(
        { ...options, readFile: (path) => (path === '-' ? readStdin() : readFile(path, 'utf8')), edit },
        await control(options.force === true),
      );
    });
  program
    .command('topology')
    .description('the member table as a tree: the leader and its replicas')
    .addOption(
      new Option('-f, --format <format>', 'output format (pretty draws the tree)')
        .choices(['pretty', 'tsv', 'json', 'yaml'])
        .default('pretty'),
    )
    .option('-W', 'refresh every 2 seconds')
    .option('-w, --watch <seconds>', 'refresh every N seconds')
    .action(async (options: { format: 'pretty' | 'tsv' | 'json' | 'yaml'; W?: boolean; watch?: string }) => {
      await listCommand({
        ...options,
        isTopology: true,
        configPath: configPathFrom(program),
        loadCluster: deps.loadCluster,
        out: deps.out,
      });
    });
  program
    .command('remove')
    .description("delete the cluster's keys from the DCS (asks to type the cluster name)")
    .argument('<cluster>', 'the cluster name (scope)')
    .action(async (cluster: string) => {
      const configPath = configPathFrom(program);
      const loaded = await deps.loadCluster(configPath, AbortSignal.timeout(5000));
      if (cluster !== loaded.scope)
        throw new PgwardenError('PGW_CLI_USAGE', `the config file is for cluster ${loaded.scope}, not ${cluster}`, {
          context: {
            command: ['pgwarden', 'remove', cluster],
            path: configPath,
            scope: loaded.scope,
            hint: `pass the config file of cluster ${cluster} with -c, or name cluster ${loaded.scope}`,
          },
        });
      const readLine = deps.readLine;
      if (deps.removeCluster === undefined || readLine === undefined)
        throw new PgwardenError('PGW_INTERNAL', 'remove is not available', {
          context: { command: ['pgwarden', 'remove'], hint: 'this build of the CLI has no DCS access for remove: use the pgwarden binary' },
        });
      await confirmTyped(readLine, {
        cluster,
        verb: 'remove',
        what: `remove all information in DCS for ${cluster}`,
        undone: 'removed',
        command: ['pgwarden', 'remove', cluster],
      });
      const aborted = (message: string, hint: string): PgwardenError =>
        new PgwardenError('PGW_CLI_ABORTED', message, { context: { command: ['pgwarden', 'remove', cluster], scope: cluster, hint } });
      const leader = loaded.view.leader?.name;
      if (
        leader !== undefined &&
        (await readLine('This cluster currently is healthy. Please specify the leader name to continue: ')) !== leader
      )
        throw aborted(
          'You did not specify the current leader of the cluster',
          `nothing was removed: type the name of the current leader, ${leader}`,
        );
      await deps.removeCluster(configPath);
      deps.out(`Success: cluster ${cluster} removed from the DCS`);
    });
  program
    .command('query')
    .description('run SQL on a member (default: the leader) and print tab-separated rows')
    .option('-c, --command <sql>', 'the SQL to run')
    .option('-f, --file <file>', 'a file of SQL to run')
    .option('-r, --role <role>', 'leader, replica or any')
    .option('-m, --member <name>', 'a member by name')
    .option('-d, --dbname <db>', 'database (default postgres)')
    .option('-U, --username <user>', 'user (default: the superuser of the config file)')
    .addOption(new Option('--format <format>', 'output format').choices(['tsv', 'json', 'yaml']).default('tsv'))
    .action(
      async (options: {
        command?: string;
        file?: string;
        role?: string;
        member?: string;
        dbname?: string;
        username?: string;
        format: 'tsv' | 'json' | 'yaml';
      }) => {
        const configPath = configPathFrom(program);
        const loaded = await deps.loadCluster(configPath, AbortSignal.timeout(5000));
        if (loaded.db === undefined)
          throw new PgwardenError('PGW_CONFIG_INVALID', 'query needs postgresql settings in the config file', {
            context: {
              command: ['pgwarden', 'query'],
              path: configPath,
              key: 'postgresql',
              hint: 'add the postgresql section (bin_dir, authentication.superuser) to the config file',
            },
          });
        await queryCommand(loaded.view, options, loaded.db, deps.out);
      },
    );
  program
    .command('history')
    .description('timeline history of the cluster')
    .addOption(new Option('-f, --format <format>', 'output format').choices(['pretty', 'tsv', 'json', 'yaml']).default('pretty'))
    .action(async (options: { format: 'pretty' | 'tsv' | 'json' | 'yaml' }) => deps.out(historyTable(await reload(), options.format)));
  program
    .command('events')
    .description("recent HA decisions of every member (each member's GET /events), merged by time")
    .option('-m, --member <name>', 'one member only')
    .option('-n, --limit <count>', 'the newest N decisions of each member', '50')
    .addOption(new Option('-f, --format <format>', 'output format').choices(['pretty', 'tsv', 'json', 'yaml']).default('pretty'))
    .action(async (options: { member?: string; limit: string; format: 'pretty' | 'tsv' | 'json' | 'yaml' }) => {
      const limit = Number(options.limit);
      if (!Number.isInteger(limit) || limit < 1)
        throw new PgwardenError('PGW_CLI_USAGE', `--limit must be a positive integer, got "${options.limit}"`, {
          context: { flag: '--limit', hint: 'e.g. --limit 20' },
        });
      const isInsecure = program.opts<{ insecure?: boolean }>().insecure === true ? true : undefined;
      const loaded = await deps.loadCluster(configPathFrom(program), AbortSignal.timeout(5000), { isInsecure });
      const result = await eventsCommand(loaded.view, loaded.rest ?? createRestClient({}), { ...options, limit });
      deps.out(result.output);
      for (const line of result.unreachable) deps.out(`(no events from ${line})`);
    });
  program
    .command('dsn')
    .description('connection parameters of a member (default: the leader)')
    .option('-r, --role <role>', 'leader, primary, replica or any')
    .option('-m, --member <name>', 'a member by name')
    .action(async (options: { role?: string; member?: string }) => deps.out(dsn(await reload(), options)));
  program
    .command('haproxy-config')
    .description('print an HAProxy config with Patroni-style checks (GET /primary, GET /replica) for this cluster')
    .option('--bind <address>', 'address HAProxy listens on', '0.0.0.0')
    .option('--primary-port <port>', 'port for writes (the primary)', '5000')
    .option('--replica-port <port>', 'port for reads (replicas)', '5001')
    .option('--check-interval <ms>', 'health check interval in milliseconds', '1000')
    .option('--stats-port <port>', 'also serve the HAProxy stats page on this port')
    .action(async (options: { bind: string; primaryPort: string; replicaPort: string; checkInterval: string; statsPort?: string }) => {
      const port = (flag: string, value: string): number => {
        const number = Number(value);
        if (!Number.isInteger(number) || number < 1 || number > 65535)
          throw new PgwardenError('PGW_CLI_USAGE', `--${flag} expects a port number (1-65535), got "${value}"`, {
            context: { command: ['pgwarden', 'haproxy-config'], flag: `--${flag}`, value, hint: 'pass a port number from 1 to 65535' },
          });
        return number;
      };
      const interval = Number(options.checkInterval);
      if (!(interval >= 10))
        throw new PgwardenError('PGW_CLI_USAGE', `--check-interval expects milliseconds (>= 10), got "${options.checkInterval}"`, {
          context: {
            command: ['pgwarden', 'haproxy-config'],
            flag: '--check-interval',
            value: options.checkInterval,
            hint: 'pass milliseconds, at least 10 (e.g. 1000)',
          },
        });
      const servers = serversFromView(await reload());
      deps.out(
        renderHaproxyConfig(servers, {
          bind: options.bind,
          primaryPort: port('primary-port', options.primaryPort),
          replicaPort: port('replica-port', options.replicaPort),
          checkIntervalMs: interval,
          statsPort: options.statsPort === undefined ? undefined : port('stats-port', options.statsPort),
        }).trimEnd(),
      );
    });
  program
    .command('version')
    .description('print the pgwarden version, and with -c the version of every member')
    .action(async () => {
      deps.out(`pgwarden ${deps.version}`);
      const options = program.opts<{ config?: string }>();
      if (options.config === undefined && process.env.PGWARDEN_CONFIG === undefined) return;
      const context = await control(true);
      deps.out('');
      for (const member of context.view.members) {
        const reply = await callApi(member, 'GET', '/patroni', undefined, context.rest, 3000).catch(() => undefined);
        const document =
          reply?.status === 200 ? (JSON.parse(reply.text) as { server_version?: number; patroni?: { version?: string } }) : undefined;
        const pgVersion =
          document?.server_version === undefined
            ? 'unknown'
            : `${Math.floor(document.server_version / 10000)}.${document.server_version % 10000}`;
        deps.out(
          `${member.name}: ${document === undefined ? 'not reachable' : `pgwarden (Patroni ${document.patroni?.version ?? '?'}) PostgreSQL ${pgVersion}`}`,
        );
      }
    });
  deps.register?.(program);
  return program;
}

/** Runs the CLI: every failure becomes `Error: <message>` on stderr and exit code 1 (usage errors: 2). */
export async function runCli(argv: readonly string[], deps: CliDeps): Promise<number> {
  const program = buildProgram(deps);
  try {
    await program.parseAsync([...argv], { from: 'user' });
    return 0;
  } catch (error) {
    if (error instanceof CommanderError) {
      if (error.code === 'commander.helpDisplayed' || error.code === 'commander.version' || error.exitCode === 0) return 0;
      return 2;
    }
    process.stderr.write(`Error: ${describeError(error)}\n`);
    return 1;
  }
}
