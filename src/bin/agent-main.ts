// Wires one agent from its config file: logger, etcd DCS, PostgreSQL controller, peer client, HA loop and REST API.
import { PATRONI_WIRE_VERSION } from '../core/patroni-wire.js';
import { readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { BackupRunner } from '../agent/backup-runner.js';
import { BackupScheduler } from '../agent/backup-scheduler.js';
import { WalCatchUp } from '../agent/wal-catch-up.js';
import { pgbackrestArchiveCommand } from '../config/backup.js';
import { BACKUP_TYPES } from '../core/backup-plan.js';
import { parseCron, type CronSpec } from '../core/backup-schedule.js';
import { CallbackRunner } from '../agent/callbacks.js';
import { assertNoRunningNamesake } from '../agent/duplicate-name.js';
import { Agent } from '../agent/loop.js';
import { Allowlist } from '../api/allowlist.js';
import { startApiServer } from '../api/server.js';
import type { DynamicConfig, MemberTags } from '../core/types.js';
import type { Upstream } from '../core/ports.js';
import { planReplicaMethods, type ReplicaMethod, type ReplicaMethodSpec } from '../core/replica-methods.js';
import { assertReloadable } from '../config/reload-changes.js';
import { isDeepStrictEqual } from 'node:util';
import type { PgwardenConfig } from '../config/load.js';
import { etcdConnection, openEtcdDcs } from './adapters.js';
import { createLogger } from '../obs/logger.js';
import { HttpPeerClient } from '../peers/http-peer-client.js';
import { restClientSettings } from '../config/rest-client-settings.js';
import { createRestClient } from '../util/rest-client.js';
import { checkDataDirUsable, openPostgresController, resolveRunAs } from './adapters.js';
import { binDirFilePath, readPersistedBinDir, writePersistedBinDir } from '../postgres/bin-dir-file.js';
import { effectiveBinDir } from '../core/minor-upgrade.js';
import { wantedSlots } from '../core/slot-plan.js';
import { SystemClock } from '../util/clock.js';
import { FenceClient } from '../fence/fence-client.js';
import { fenceSocketPathOf } from '../fence/fence-paths.js';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { loadConfigIsolated } from './load-config-isolated.js';
import { describeError, PgwardenError } from '../util/errors.js';
import { AGENT_ENV, AGENT_NODE_FLAGS, missingAgentSettings } from '../util/agent-process.js';
import { trimWorkingSetLater } from './working-set-report.js';
import { DEFAULT_SAFETY_MARGIN_SECONDS, WatchdogFeed } from '../agent/watchdog-feed.js';
import { DEFAULT_WATCHDOG_DEVICE, watchdogModeOf } from '../config/watchdog.js';
import { LinuxWatchdogDevice } from './linux-watchdog.js';

const FENCE_ENTRY = fileURLToPath(new URL('./fence.js', import.meta.url));
/** A relayed dashboard action (restart, reinitialize) waits this long for the target: under the REST server's 60 s request timeout. */
const FORWARD_TIMEOUT_MS = 55_000;

/** create_replica_methods as last (re)loaded: SIGHUP and POST /reload replace `specs`, as Patroni re-reads them. */
export interface ReloadableReplicaMethods {
  specs: readonly ReplicaMethodSpec[] | undefined;
  /**
   * The methods a clone tries against `from`, each user command given --scope, --datadir, --role=replica and
   * --connstring (the source as a URI with the replication user; its password is in the pgpass file PGPASSFILE
   * names); the backup: section's pgBackRest restore first when no list is given. Neither configured: undefined,
   * pg_basebackup as always.
   */
  readonly plan: (from: Upstream) => readonly ReplicaMethod[] | undefined;
}

export function reloadableReplicaMethods(config: PgwardenConfig): ReloadableReplicaMethods {
  const holder: ReloadableReplicaMethods = {
    specs: config.replicaMethods,
    plan: (from) =>
      holder.specs === undefined && config.backup === undefined
        ? undefined
        : planReplicaMethods(holder.specs, {
            scope: config.scope,
            dataDir: config.postgresql.data_dir,
            connstring: replicationUri(from.connUrl, config.postgresql.authentication.replication.username),
            hasBackupSection: config.backup !== undefined,
          }),
  };
  return holder;
}

function replicationUri(connUrl: string, user: string): string | undefined {
  if (connUrl === '') return undefined;
  try {
    const url = new URL(connUrl);
    url.username = encodeURIComponent(user);
    return url.toString();
  } catch {
    return undefined;
  }
}

/** Patroni publishes the standard boolean tags only when they are set, and user tags always. */
function publishedTags(tags: MemberTags): MemberTags {
  const standard = new Set(['nofailover', 'noloadbalance', 'clonefrom', 'nosync']);
  return Object.fromEntries(Object.entries(tags).filter(([key, value]) => !standard.has(key) || value === true));
}

/** `configPath` undefined: configured by the PATRONI_* environment alone. */
export async function runAgent(configPath: string | undefined): Promise<void> {
  const { config, warnings } = await loadConfigIsolated(configPath);
  const log = createLogger({
    member: config.name,
    scope: config.scope,
    level: config.log.level,
    type: config.log.type,
    format: config.log.format,
    dateformat: config.log.dateformat,
  });
  for (const warning of warnings) log.warn({ config: configPath ?? 'environment' }, warning);
  const missingSettings = missingAgentSettings(process.execArgv, process.env);
  if (missingSettings.length > 0) {
    log.info(
      { missing: missingSettings },
      `started without the agent's process settings (more threads and memory than needed, same behaviour); run dist/src/bin/agent.js directly or \`${Object.entries(
        AGENT_ENV,
      )
        .map(([name, value]) => `${name}=${value}`)
        .join(' ')} node ${AGENT_NODE_FLAGS.join(' ')} dist/src/bin/agent.js <config>\``,
    );
  }

  const clock = new SystemClock();
  const bootstrapConfig: DynamicConfig = config.bootstrap.dcs;
  const dcs = openEtcdDcs({
    ...etcdConnection(config.etcd),
    namespace: config.namespace,
    scope: config.scope,
    member: config.name,
    log,
  });
  const dataDir = config.postgresql.data_dir;
  const parameters = { ...(bootstrapConfig.postgresql?.parameters ?? {}), ...config.postgresql.parameters };
  const socketDir =
    typeof parameters.unix_socket_directories === 'string' ? parameters.unix_socket_directories.split(',')[0]!.trim() : dirname(dataDir);
  // A bin_dir set by pgwarden upgrade (POST /bin_dir) outlives this agent, unless the config file changed since.
  const persistedBinDir = await readPersistedBinDir(dataDir);
  const startBinDir = effectiveBinDir(config.postgresql.bin_dir, persistedBinDir);
  if (startBinDir.source === 'persisted')
    log.info(
      { bin_dir: startBinDir.binDir, config_bin_dir: config.postgresql.bin_dir, file: binDirFilePath(dataDir) },
      'using the bin_dir set at runtime (pgwarden upgrade) instead of postgresql.bin_dir; change postgresql.bin_dir to it',
    );
  else if (startBinDir.source === 'config-changed')
    log.info(
      { bin_dir: config.postgresql.bin_dir, ignored: persistedBinDir?.bin_dir, file: binDirFilePath(dataDir) },
      'postgresql.bin_dir changed since a bin_dir was set at runtime: the config file wins',
    );
  const pg = openPostgresController({
    member: config.name,
    scope: config.scope,
    dataDir,
    binDir: startBinDir.binDir,
    listenHost: config.postgresql.listen.host,
    port: config.postgresql.listen.port,
    socketDir,
    superuser: config.postgresql.authentication.superuser,
    replication: config.postgresql.authentication.replication,
    rewind: config.postgresql.authentication.rewind,
    parameters,
    pgHba: config.postgresql.pg_hba ?? config.bootstrap.pg_hba ?? [],
    initdbOptions: config.bootstrap.initdb,
    pgpassPath: config.postgresql.pgpass ?? `${dirname(dataDir)}/pgpass`,
    runAs: resolveRunAs(),
    log,
    logFile: `${dirname(dataDir)}/postgresql.log`,
    backup: config.backup,
  });
  const restapi = config.restapi;
  const isHttps = restapi.certfile !== undefined;
  const readTlsFile = (path: string, key: string): Buffer => {
    try {
      return readFileSync(path);
    } catch (error) {
      throw new PgwardenError(
        'PGW_CONFIG_UNREADABLE',
        `restapi.${key}: cannot read ${path} (${describeError(error)}); fix the path or remove the key`,
        {
          cause: error,
          context: { key: `restapi.${key}`, path, hint: 'fix the path or remove the key' },
        },
      );
    }
  };
  const tls = isHttps
    ? {
        cert: readTlsFile(restapi.certfile!, 'certfile'),
        key: readTlsFile(restapi.keyfile ?? restapi.certfile!, 'keyfile'),
        passphrase: restapi.keyfile_password,
        ca: restapi.cafile === undefined ? undefined : readTlsFile(restapi.cafile, 'cafile'),
        verifyClient: restapi.verify_client ?? 'none',
        ciphers: restapi.ciphers,
      }
    : undefined;
  // A Unix socket path is limited to 107 bytes on Linux: say so now rather than fail at every renewal.
  const isFenceSocketTooLong = Buffer.byteLength(fenceSocketPathOf(dataDir)) > 107;
  if (isFenceSocketTooLong)
    log.error(
      { socket: fenceSocketPathOf(dataDir) },
      'the data dir path is too long for the fence socket beside it (107 bytes at most): running WITHOUT the fence process, so a stalled agent cannot be fenced; use a shorter data_dir',
    );
  const externalFence = isFenceSocketTooLong
    ? undefined
    : new FenceClient({
        socketPath: fenceSocketPathOf(dataDir),
        startFence: () => {
          // Detached, in its own process group: it must outlive this agent (that is its whole point) and not share its signals.
          spawn(process.execPath, [...AGENT_NODE_FLAGS, FENCE_ENTRY, config.name, dataDir], {
            detached: true,
            stdio: ['ignore', 'inherit', 'inherit'],
            env: { ...process.env, ...AGENT_ENV },
          }).unref();
        },
        // The agent's clock is performance.now(); the fence process shares only CLOCK_MONOTONIC (process.hrtime).
        toMonotonicNs: (deadlineMs) => process.hrtime.bigint() + BigInt(Math.round((deadlineMs - performance.now()) * 1e6)),
        log,
      });
  // Requests to peers (leader race, POST /failsafe, the namesake check) go through the one REST client, configured as
  // Patroni's agent configures its own: ctl keys first, restapi's as the fallback (config/rest-client-settings.ts). An
  // unreadable ctl/restapi file is a start-up error naming the key, like an unreadable restapi.certfile.
  const restClient = createRestClient(restClientSettings(config));
  const peers = new HttpPeerClient(restClient);
  try {
    await assertNoRunningNamesake(config.name, dcs, peers, AbortSignal.timeout(5000));
  } catch (error) {
    log.error({ code: (error as { code?: string }).code ?? null }, describeError(error));
    await dcs.close().catch(() => undefined);
    process.exit(1);
  }
  // A data dir that cannot work (a file, /proc, a read-only mount, out of the postgres user's reach) is one clear
  // error and exit 1 now, before the agent races for the initialize key, rather than failed bootstraps in a loop. After
  // the namesake check: a second agent with a running member's name is told that first, whatever its data dir.
  const dataDirProblem = await checkDataDirUsable(config.postgresql.data_dir, resolveRunAs());
  if (dataDirProblem !== undefined) {
    log.error({ code: 'PGW_DATA_DIR_UNUSABLE', data_dir: config.postgresql.data_dir }, dataDirProblem);
    await dcs.close().catch(() => undefined);
    process.exit(1);
  }
  const watchdogMode = watchdogModeOf(config.watchdog?.mode);
  const replicaMethods = reloadableReplicaMethods(config);
  const agent = new Agent({
    identity: {
      name: config.name,
      connUrl: `postgres://${config.postgresql.connect_address.host}:${config.postgresql.connect_address.port}/postgres`,
      apiUrl: `${isHttps ? 'https' : 'http'}://${restapi.connect_address.host}:${restapi.connect_address.port}/patroni`,
      version: PATRONI_WIRE_VERSION,
      tags: publishedTags(config.tags),
    },
    scope: config.scope,
    canBootstrap: true,
    customBootstrap: config.customBootstrap,
    restoreTool: config.backup === undefined ? undefined : pg,
    bootstrapConfig,
    replicaMethods: replicaMethods.plan,
    isFastDeadLeaderEnabled: true,
    // Debug mode: every decision is checked against the core's safety invariants before it is executed.
    isCheckingInvariants: process.env.PGWARDEN_CHECK_INVARIANTS === '1',
    externalFence,
    watchdog:
      watchdogMode === 'off'
        ? undefined
        : new WatchdogFeed({
            mode: watchdogMode,
            device: new LinuxWatchdogDevice(config.watchdog?.device ?? DEFAULT_WATCHDOG_DEVICE),
            safetyMarginSeconds: config.watchdog?.safety_margin ?? DEFAULT_SAFETY_MARGIN_SECONDS,
            log,
          }),
    localParameters: config.postgresql.parameters,
    recoveryConf: config.postgresql.recovery_conf,
    pgbackrestArchiveCommand: config.backup === undefined ? undefined : pgbackrestArchiveCommand(config.backup),
    // WAL archiving across failover: a new primary pushes the earlier timelines' WAL its pg_wal still has.
    walCatchUp: new WalCatchUp(pg, clock, log),
    leaseTimer: dcs,
    callbacks: new CallbackRunner(config.postgresql.callbacks ?? {}, config.scope, log),
    dcs,
    pg,
    peers,
    clock,
    log,
  });
  const reloadLocalConfig = async (): Promise<void> => {
    const { config: reloaded, warnings: reloadWarnings } = await loadConfigIsolated(configPath);
    // What the file says wrong or contradictory (a nofailover/failover_priority conflict...) is said on every reload.
    for (const warning of reloadWarnings) log.warn({ config: configPath ?? 'environment' }, warning);
    assertReloadable(config, reloaded, configPath ?? 'the PATRONI_* environment');
    if (!isDeepStrictEqual(reloaded.replicaMethods, replicaMethods.specs))
      log.info(
        { create_replica_methods: reloaded.replicaMethods?.map((spec) => spec.name) ?? null },
        'create_replica_methods changed: the next clone or reinitialize uses the new list',
      );
    replicaMethods.specs = reloaded.replicaMethods;
    agent.reloadLocalConfig({
      tags: publishedTags(reloaded.tags),
      parameters: reloaded.postgresql.parameters,
      recoveryConf: reloaded.postgresql.recovery_conf,
      callbacks: new CallbackRunner(reloaded.postgresql.callbacks ?? {}, config.scope, log),
    });
  };
  // The backup: section: POST /backup runs pgBackRest here in the background, one backup at a time in the cluster.
  const backupRunner =
    config.backup === undefined
      ? undefined
      : new BackupRunner({ name: config.name, locks: dcs, tool: pg, clock, log, getSnapshot: () => agent.snapshot() });
  // backup.schedule: the leader's agent starts scheduled backups on the member `pgwarden backup` would pick.
  const schedules = BACKUP_TYPES.flatMap((type) => {
    const expression = config.backup?.schedule?.[type];
    const spec = expression === undefined ? undefined : parseCron(expression);
    return spec === undefined || typeof spec === 'string' ? [] : [{ type, spec: spec satisfies CronSpec }];
  });
  const backupScheduler =
    backupRunner === undefined || schedules.length === 0
      ? undefined
      : new BackupScheduler({
          schedules,
          clock,
          log,
          getSnapshot: () => agent.snapshot(),
          startOn: async (member, type) => {
            if (member.name === config.name) {
              const started = await backupRunner.start(type);
              return {
                status: started.kind === 'started' ? 202 : started.kind === 'busy' ? 409 : 503,
                text:
                  started.kind === 'busy' ? `running on ${started.holder.member}` : started.kind === 'refused' ? started.reason : 'started',
              };
            }
            const reply = await restClient.callMember(member.api_url, '/backup', {
              method: 'POST',
              body: { type },
              signal: AbortSignal.timeout(15_000),
            });
            return { status: reply.status, text: reply.text };
          },
        });
  let majorStepRunning: string | undefined;
  const api = await startApiServer({
    host: restapi.listen.host,
    port: restapi.listen.port,
    getSnapshot: () => ({ ...agent.snapshot(), binDir: pg.binDir }),
    getLiveSnapshot: async () => ({ ...(await agent.freshSnapshot()), binDir: pg.binDir }),
    getMetricsSnapshot: () => agent.metricsSnapshot(),
    nowMs: () => clock.nowMs(),
    log,
    dcs,
    nudge: () => agent.nudge(),
    runCommand: (kind, timeoutMs, target) => agent.runCommand(kind, timeoutMs, target),
    fetchPeerStatus: (member) => peers.fetchStatus(member, AbortSignal.timeout(2000)),
    subscribeCycles: (listener) => agent.onCycle(listener),
    fetchPeerEvents: (apiUrl, since, limit) => peers.fetchEvents(apiUrl, since, limit, AbortSignal.timeout(2000)),
    lockTimeLeft: (signal) => dcs.leaderLockTimeLeft(signal),
    // The caller's credentials, never ours: the target member authenticates the person at the dashboard.
    forwardToMember: async (apiUrl, endpoint, body, authorization) => {
      const reply = await restClient.callMember(apiUrl, endpoint, {
        method: 'POST',
        body,
        signal: AbortSignal.timeout(FORWARD_TIMEOUT_MS),
        onBehalfOf: { authorization },
      });
      return { status: reply.status, text: reply.text };
    },
    restartScheduler: { schedule: (at, filters) => agent.scheduleRestart(at, filters), cancel: () => agent.cancelScheduledRestart() },
    reload: reloadLocalConfig,
    tls,
    extraHeaders: { ...restapi.http_extra_headers, ...(isHttps ? restapi.https_extra_headers : {}) },
    authentication: restapi.authentication,
    receiveFailsafe: (body) => agent.receiveFailsafe(body),
    binDir: {
      inspect: (dir) => pg.inspectBinDir(dir, AbortSignal.timeout(10_000)),
      // initdb, pg_upgrade --check and a schema restore: tens of seconds on a small cluster, more with many objects.
      majorCheck: (dir) => pg.majorUpgradeFacts(dir, AbortSignal.timeout(600_000)),
      use: async (dir) => {
        await writePersistedBinDir(dataDir, { bin_dir: dir, overrides: config.postgresql.bin_dir, set_at: new Date().toISOString() });
        const previous = pg.binDir;
        pg.setBinDir(dir);
        log.info({ bin_dir: dir, previous }, 'bin_dir changed on request: PostgreSQL runs from it after its next start');
      },
    },
    majorUpgrade: {
      standing: () => {
        const snapshot = agent.snapshot();
        return { isLeaderWithLock: snapshot.isLeaderWithLock, isPaused: snapshot.isPaused, isRunning: snapshot.pg.isRunning };
      },
      run: async (step, dir) => {
        // One step at a time: a CLI retrying while a slow pg_upgrade still runs must not start a second one.
        if (majorStepRunning !== undefined)
          throw new PgwardenError('PGW_UPGRADE_FAILED', `[${config.name}] ${majorStepRunning} is still running`, {
            context: { member: config.name, hint: 'wait for it, then run pgwarden upgrade --major again' },
          });
        majorStepRunning = step;
        try {
          log.info({ step, bin_dir: dir ?? null }, 'major upgrade step starting');
          // pg_upgrade restores the schema and links every file: hours for a very large catalog, minutes usually.
          const snapshot = agent.snapshot();
          // The slots the leader would keep (members' and permanent physical ones), made while paused leaders make none.
          const slots =
            step === 'slots' && snapshot.view !== undefined
              ? wantedSlots(snapshot.view, config.name, snapshot.tags, true, snapshot.view.config?.postgresql?.use_slots ?? true)
                  .filter((slot) => slot.type === 'physical')
                  .map((slot) => slot.name)
              : [];
          const result = await pg.majorUpgradeStep(step, dir ?? pg.binDir, AbortSignal.timeout(6 * 3600_000), slots);
          if (step === 'swap' && dir !== undefined && typeof result.sysid === 'string') {
            await writePersistedBinDir(dataDir, { bin_dir: dir, overrides: config.postgresql.bin_dir, set_at: new Date().toISOString() });
            pg.setBinDir(dir);
            // The cluster is now the new one: replicas of the old system identifier are refused until re-cloned.
            await dcs.setInitialize(result.sysid, AbortSignal.timeout(10_000));
          }
          log.info({ step, result }, 'major upgrade step done');
          return { ...result, bin_dir: pg.binDir };
        } finally {
          majorStepRunning = undefined;
        }
      },
    },
    backup: backupRunner,
    allowlist: new Allowlist({
      entries: restapi.allowlist ?? [],
      includeMembers: restapi.allowlist_include_members ?? false,
      nowMs: () => clock.nowMs(),
    }),
  });
  log.info({ api: `${restapi.listen.host}:${api.port}`, data_dir: dataDir }, 'pgwarden agent started');
  agent.start();
  backupScheduler?.start();
  trimWorkingSetLater(log);

  let isStopping = false;
  const shutdown = (signal: string): void => {
    if (isStopping) return;
    isStopping = true;
    log.info({ signal }, 'shutting down: stopping PostgreSQL and releasing the leader lock');
    backupScheduler?.close();
    (backupRunner?.close() ?? Promise.resolve())
      .then(() => agent.stop({ stopPostgres: true }))
      .catch((error: unknown) => log.error({ error: describeError(error) }, 'shutdown failed'))
      .finally(() => {
        void api.close().finally(() => process.exit(0));
      });
  };
  process.on('SIGHUP', () => {
    reloadLocalConfig().catch((error: unknown) =>
      log.error({ error: describeError(error) }, 'reload failed; keeping the previous configuration'),
    );
  });
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
}
