#!/usr/bin/env -S UV_THREADPOOL_SIZE=2 node --max-semi-space-size=1 --optimize-for-size --v8-pool-size=1
// Composition root of the `pgwarden` CLI: wires config + etcd into the verbs, and adds `agent` and `local`.
import { existsSync, readFileSync } from 'node:fs';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { parseDocument } from 'yaml';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { Command } from 'commander';
import { restClientSettings } from '../config/rest-client-settings.js';
import { createRestClient, type RestClient } from '../util/rest-client.js';
import type { DbAccess } from '../cli/commands/query.js';
import { runCli } from '../cli/main.js';
import { renderMemberTable } from '../cli/render.js';
import { loadConfig } from '../config/load.js';
import { summarizeCluster } from '../core/cluster-summary.js';
import type { ClusterView } from '../core/types.js';
import type { NewClusterMemberConfig, NewClusterRestorePlan } from '../core/restore-new-cluster.js';
import type { UpgradeLedger } from '../core/ports.js';
import type { LogicalUpgradeHandles } from '../cli/main.js';
import { PgLogicalUpgrade } from '../postgres/logical-upgrade.js';
import { etcdConnection, openEtcdDcs } from './adapters.js';
import { normalizeNamespace } from '../dcs/keys.js';
import { securityEnvironment } from '../postgres/conninfo.js';
import { registerLocalCommand } from '../local/local-cli.js';
import { defaultLocalDir, runLocalKill, runLocalRestart, runLocalStart, runLocalStatus, runLocalStop } from '../local/local-command.js';
import { isViolation, runChaos, stopActiveClusters } from '../chaos/runner.js';
import { ALL_FAULT_KINDS, type FaultKind } from '../chaos/schedule.js';
import { runAgent } from './agent-main.js';
import { runDcsSnapshot } from './dcs-snapshot.js';
import { runProxy } from './proxy-main.js';
import { describeError, isPgwardenError, PgwardenError } from '../util/errors.js';

const version = (JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
const out = (text: string): void => void process.stdout.write(`${text}\n`);

/** The cluster's DCS as the CLI opens it (a member name no agent uses, so nothing it writes looks like a member's). */
function openCliDcs(config: ReturnType<typeof loadConfig>['config']): ReturnType<typeof openEtcdDcs> {
  return openEtcdDcs({ ...etcdConnection(config.etcd), namespace: config.namespace, scope: config.scope, member: '__pgwarden_cli' });
}

async function loadCluster(
  configPath: string,
  signal: AbortSignal,
  options: { readonly isInsecure?: boolean | undefined } = {},
): Promise<{ scope: string; view: ClusterView; rest: RestClient; db: DbAccess }> {
  const { config, warnings } = loadConfig(configPath);
  // A config file with passwords that others can read is said here too, not only in the agent's log.
  for (const warning of warnings) if (warning.includes('holds passwords')) process.stderr.write(`Warning: ${warning}\n`);
  const rest = createRestClient(restClientSettings(config, options));
  const dcs = openCliDcs(config);
  try {
    const psql = join(config.postgresql.bin_dir, 'psql');
    const db: DbAccess = {
      psql: existsSync(psql) ? psql : 'psql',
      username: config.postgresql.authentication.superuser.username,
      password: config.postgresql.authentication.superuser.password,
      environment: securityEnvironment(config.postgresql.authentication.superuser),
    };
    return { scope: config.scope, view: await dcs.loadCluster(signal), rest, db };
  } catch (error) {
    // A read that timed out on a member without quorum looks like a slow etcd: ask the members themselves.
    if (!isPgwardenError(error, 'PGW_DCS_UNAVAILABLE')) throw error;
    const quorumLoss = await dcs.quorumLoss();
    if (quorumLoss === undefined) throw error;
    throw new PgwardenError('PGW_DCS_UNAVAILABLE', quorumLoss, { cause: error, isRetryable: true, context: error.context });
  } finally {
    await dcs.close();
  }
}

/** The cluster's DCS for `pgwarden upgrade`'s record (no lease: the record must outlive this CLI). */
async function openUpgradeLedger(configPath: string): Promise<{ ledger: UpgradeLedger; close(): Promise<void> }> {
  const { config } = loadConfig(configPath);
  const dcs = openCliDcs(config);
  return { ledger: dcs, close: () => dcs.close() };
}

/**
 * `upgrade --major --method logical`: the old cluster's DCS (its redirect key too) and the new scope read through the
 * same etcd connection, so a new cluster on another etcd shows as a scope without members and is refused.
 */
async function openLogicalUpgrade(
  configPath: string,
  targetConfigPath: string,
  toolsBinDir: string | undefined,
): Promise<LogicalUpgradeHandles> {
  const { config } = loadConfig(configPath);
  const { config: target } = loadConfig(targetConfigPath);
  if (normalizeNamespace(target.namespace) !== normalizeNamespace(config.namespace))
    throw new PgwardenError(
      'PGW_UPGRADE_REFUSED',
      `the new cluster's namespace ${target.namespace} is not the old one's (${config.namespace})`,
      {
        context: {
          command: ['pgwarden', 'upgrade'],
          path: targetConfigPath,
          hint: 'the proxies follow the new cluster through the same DCS: give it the same etcd and namespace, and a scope of its own',
        },
      },
    );
  const oldDcs = openCliDcs(config);
  const newDcs = openEtcdDcs({
    ...etcdConnection(config.etcd),
    namespace: config.namespace,
    scope: target.scope,
    member: '__pgwarden_cli',
  });
  const databases = new PgLogicalUpgrade({
    source: { name: config.scope, superuser: config.postgresql.authentication.superuser },
    target: { name: target.scope, superuser: target.postgresql.authentication.superuser },
    toolsBinDir: toolsBinDir ?? config.postgresql.bin_dir,
  });
  return {
    oldScope: config.scope,
    newScope: target.scope,
    loadOld: () => oldDcs.loadCluster(AbortSignal.timeout(5000)),
    loadNew: () => newDcs.loadCluster(AbortSignal.timeout(5000)),
    redirects: oldDcs,
    databases,
    updateOldConfig: async (change) => {
      // Compare-and-set on the config's revision: an edit-config meanwhile makes this read and try again.
      for (let attempt = 0; attempt < 5; attempt++) {
        const view = await oldDcs.loadCluster(AbortSignal.timeout(5000));
        if (view.config === undefined)
          throw new PgwardenError('PGW_UPGRADE_REFUSED', `scope ${config.scope} has no dynamic config in the DCS`, {
            context: { command: ['pgwarden', 'upgrade'], scope: config.scope, hint: 'is the old cluster initialized? (pgwarden list)' },
          });
        const next = change(view.config);
        if (next === undefined) return;
        if (await oldDcs.setConfig(next, view.configRevision, AbortSignal.timeout(5000))) return;
      }
      throw new PgwardenError('PGW_UPGRADE_FAILED', `the dynamic config of ${config.scope} kept changing under the upgrade's edit`, {
        context: { command: ['pgwarden', 'upgrade'], scope: config.scope, hint: 'run the command again' },
      });
    },
    close: async () => {
      await Promise.all([oldDcs.close(), newDcs.close()]);
    },
  };
}

function positiveNumber(name: string, value: string): number {
  const number = Number(value);
  if (!(number > 0))
    throw new PgwardenError('PGW_CLI_USAGE', `--${name} expects a positive number, got "${value}"`, {
      context: { flag: `--${name}`, value, hint: `pass a number above 0 to --${name}` },
    });
  return number;
}

function register(program: Command): void {
  program
    .command('agent')
    .description('run the HA agent for one PostgreSQL node (like `patroni <config>`)')
    .argument('[config]', 'config file (defaults to -c)')
    .action(async (configArgument: string | undefined) => {
      const path = configArgument ?? program.opts<{ config?: string }>().config;
      if (path === undefined)
        throw new PgwardenError('PGW_CLI_USAGE', 'agent needs a config file: pgwarden agent <pgwarden.yml>', {
          context: { command: ['pgwarden', 'agent'], hint: 'pgwarden agent <pgwarden.yml> (or pgwarden -c <pgwarden.yml> agent)' },
        });
      await runAgent(path);
      await new Promise<never>(() => undefined);
    });
  program
    .command('proxy')
    .description('DCS-driven router: a primary port that follows the leader lock and a replica port (proxy: section)')
    .argument('[config]', 'config file (defaults to -c)')
    .action(async (configArgument: string | undefined) => {
      const path = configArgument ?? program.opts<{ config?: string }>().config;
      if (path === undefined)
        throw new PgwardenError('PGW_CLI_USAGE', 'proxy needs a config file: pgwarden -c <pgwarden.yml> proxy', {
          context: { command: ['pgwarden', 'proxy'], hint: 'pgwarden -c <pgwarden.yml> proxy (or pgwarden proxy <pgwarden.yml>)' },
        });
      await runProxy(path);
      await new Promise<never>(() => undefined);
    });
  program
    .command('chaos')
    .description('seeded fault injection against a fresh local cluster, with a consistency checker (summary table + JSON report)')
    .option('--seed <n>', 'schedule seed: the same seed replays the same faults', '1')
    .option('--faults <n>', 'number of faults', '5')
    .option('--from-fault <k>', "replay the seed's schedule from its fault k (1-based; same kinds, picks and settle times)")
    .option('--to-fault <k>', "replay the seed's schedule up to its fault k (1-based, inclusive)")
    .option('--sync', 'run with synchronous_mode on (then no acknowledged write may be lost)')
    .option('--kinds <list>', `comma-separated fault kinds (${ALL_FAULT_KINDS.join(', ')})`)
    .option(
      '--network <mode>',
      'auto (network namespaces when root, else TCP relays to etcd), netns, relay, or loopback (process faults only)',
      'auto',
    )
    .option('--keep', 'keep the cluster directory (logs) and write the report there')
    .action(
      async (options: {
        seed: string;
        faults: string;
        fromFault?: string;
        toFault?: string;
        sync?: boolean;
        kinds?: string;
        network: string;
        keep?: boolean;
      }) => {
        if (!['auto', 'netns', 'relay', 'loopback'].includes(options.network))
          throw new PgwardenError('PGW_CLI_USAGE', `--network must be auto, netns, relay or loopback, got "${options.network}"`, {
            context: {
              command: ['pgwarden', 'chaos'],
              flag: '--network',
              value: options.network,
              hint: 'choose auto, netns, relay or loopback',
            },
          });
        const seed = Number(options.seed);
        if (!Number.isInteger(seed) || seed < 0)
          throw new PgwardenError('PGW_CLI_USAGE', `--seed expects a non-negative integer, got "${options.seed}"`, {
            context: {
              command: ['pgwarden', 'chaos'],
              flag: '--seed',
              value: options.seed,
              hint: 'pass 0, 1, 2...: the same seed replays the same faults',
            },
          });
        const kinds = options.kinds?.split(',').map((kind) => kind.trim());
        const unknown = kinds?.filter((kind) => !(ALL_FAULT_KINDS as readonly string[]).includes(kind)) ?? [];
        if (unknown.length > 0)
          throw new PgwardenError('PGW_CLI_USAGE', `unknown fault kind ${unknown.join(', ')}; choose from ${ALL_FAULT_KINDS.join(', ')}`, {
            context: {
              command: ['pgwarden', 'chaos'],
              flag: '--kinds',
              value: options.kinds,
              unknown,
              hint: `choose from ${ALL_FAULT_KINDS.join(', ')}`,
            },
          });
        process.once('uncaughtException', (error) => {
          out(`chaos: crashed (${describeError(error)}): stopping the cluster`);
          void stopActiveClusters().finally(() => process.exit(1));
        });
        const report = await runChaos({
          seed,
          faults: positiveNumber('faults', options.faults),
          ...(options.fromFault !== undefined || options.toFault !== undefined
            ? {
                only: {
                  from: options.fromFault === undefined ? 1 : positiveNumber('from-fault', options.fromFault),
                  to: options.toFault === undefined ? undefined : positiveNumber('to-fault', options.toFault),
                },
              }
            : {}),
          isSync: options.sync === true,
          ...(kinds !== undefined ? { kinds: kinds as FaultKind[] } : {}),
          network: options.network as 'auto' | 'netns' | 'relay' | 'loopback',
          keepDir: options.keep === true,
          out,
        });
        if (isViolation(report)) process.exitCode = 2;
      },
    );
  const dcs = program.command('dcs').description('the DCS itself (etcd): snapshot it for recovery from a lost quorum');
  dcs
    .command('snapshot')
    .description("write etcd's snapshot (Maintenance.Snapshot) to a new file, mode 0600; restore it with etcdctl snapshot restore")
    .argument('<file>', 'new file to write (never overwritten)')
    .action(async (file: string) => {
      const path = program.opts<{ config?: string }>().config ?? process.env.PGWARDEN_CONFIG ?? process.env.PATRONICTL_CONFIG_FILE;
      if (path === undefined)
        throw new PgwardenError('PGW_CLI_USAGE', 'dcs snapshot needs a config file: pgwarden -c <pgwarden.yml> dcs snapshot <file>', {
          context: {
            command: ['pgwarden', 'dcs', 'snapshot'],
            flag: '-c',
            hint: 'pass -c <pgwarden.yml> before the verb, or set PGWARDEN_CONFIG',
          },
        });
      await runDcsSnapshot(path, file, out);
    });
  registerLocalCommand(
    program,
    {
      start: (options) =>
        runLocalStart({
          dir: options.dir,
          isBackground: options.isBackground,
          isWipe: options.isWipe,
          nodes: options.nodes,
          proxyDataPath: options.proxyDataPath,
          portBase: options.portBase,
          isInsecure: options.isInsecure,
          isBackup: options.isBackup,
          timing: { ttl: options.ttl, loop_wait: options.loopWait, retry_timeout: options.retryTimeout },
          healthyTimeoutMs: 180_000,
          renderTable: (view, scope) => renderMemberTable(scope, summarizeCluster(view), 'pretty'),
          out,
        }),
      stop: (dir) => runLocalStop(dir, out),
      status: (dir) => runLocalStatus(dir, out),
      kill: (dir, member) => runLocalKill(dir, member, out),
      restart: (dir, member) => runLocalRestart(dir, member, out),
    },
    defaultLocalDir(),
  );
}

async function removeCluster(configPath: string): Promise<void> {
  const { config } = loadConfig(configPath);
  const dcs = openCliDcs(config);
  try {
    await dcs.removeCluster(AbortSignal.timeout(5000));
  } finally {
    await dcs.close();
  }
}

/** `restore --scope`: the facts of an agent config file the new-cluster checks need (core/restore-new-cluster.ts). */
async function readMemberConfig(path: string): Promise<NewClusterMemberConfig> {
  const { config } = loadConfig(path);
  const dataDir = config.postgresql.data_dir;
  let dataDirState: NewClusterMemberConfig['dataDirState'] = 'missing';
  try {
    dataDirState = (await readdir(dataDir)).length === 0 ? 'empty' : 'not-empty';
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  return {
    path,
    name: config.name,
    scope: config.scope,
    dataDir,
    dataDirState,
    backup: config.backup === undefined ? undefined : { repository: config.backup.repository, stanza: config.backup.stanza },
  };
}

/**
 * `restore --scope`: sets bootstrap.method and bootstrap.<method> in an agent config file, keeping its other keys and
 * comments (a YAML document edit), then loads it as the agent would; a file that no longer loads is put back.
 */
async function writeBootstrap(path: string, bootstrap: NewClusterRestorePlan['bootstrap']): Promise<void> {
  const original = await readFile(path, 'utf8');
  const document = parseDocument(original);
  document.setIn(['bootstrap', 'method'], bootstrap.method);
  document.setIn(['bootstrap', bootstrap.method], document.createNode(bootstrap.pgbackrest));
  await writeFile(path, document.toString());
  try {
    loadConfig(path);
  } catch (error) {
    await writeFile(path, original);
    throw new PgwardenError('PGW_CONFIG_INVALID', `${path} with the restore bootstrap does not load: ${describeError(error)}`, {
      cause: error,
      context: { path, hint: 'the file was put back as it was; fix it and run pgwarden restore again' },
    });
  }
}

/** Answers from stdin, one line per prompt: works at a terminal and from `printf 'a\nb\n' | pgwarden remove`. */
let stdin: { readonly lines: AsyncIterator<string>; close(): void } | undefined;
async function readLine(prompt: string): Promise<string> {
  if (stdin === undefined) {
    // Created on first use only: an open stdin reader would keep every other command from exiting.
    const reader = createInterface({ input: process.stdin, terminal: false });
    stdin = { lines: reader[Symbol.asyncIterator](), close: () => reader.close() };
  }
  process.stdout.write(prompt);
  const next = await stdin.lines.next();
  return next.done === true ? '' : String(next.value).trim();
}

runCli(process.argv.slice(2), {
  loadCluster,
  version,
  out,
  register,
  removeCluster,
  readLine,
  readMemberConfig,
  writeBootstrap,
  openUpgradeLedger,
  openLogicalUpgrade,
}).then(
  (code) => {
    stdin?.close();
    if (code !== 0) process.exit(code);
  },
  (error: unknown) => {
    process.stderr.write(`Error: ${describeError(error)}\n`);
    process.exit(1);
  },
);
