// `pgwarden local start|stop|status|kill|restart`: the one-command local cluster, in the foreground (Ctrl-C stops it) or
// in the background. Every verb finds the cluster's processes from its directory (pid files, /proc command lines), not
// only from the state file, and `start` never deletes data unless told to with --wipe.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parse } from 'yaml';
import type { ClusterView } from '../core/types.js';
import { checkDirectoryUsable } from '../postgres/data-dir.js';
import { PgwardenError } from '../util/errors.js';
import { waitHealthy } from './cluster-health.js';
import { findClusterProcesses, memberNamesOf, stopClusterProcesses, type ClusterProcess } from './cluster-processes.js';
import { backupRepositoryOf, LocalCluster, spawnAgentProcess, type LocalClusterState } from './local-cluster.js';
import type { LocalTiming } from './node-config.js';
import { isAlive, killPid, waitForExit } from './process.js';

export interface LocalStartOptions {
  readonly dir: string;
  readonly isBackground: boolean;
  /** Delete the data of a previous cluster in `dir` (refused without it). */
  readonly isWipe: boolean;
  readonly nodes: number;
  readonly timing: LocalTiming;
  /** data_path of the local proxy (kernel: nftables DNAT, needs root). */
  readonly proxyDataPath?: 'userspace' | 'kernel';
  /** Fixed ports from here (see PORT_LAYOUT) instead of random free ones. */
  readonly portBase?: number | undefined;
  readonly healthyTimeoutMs: number;
  /** Off: etcd over TLS with client certificates and authentication, REST API credentials. On: none of them. */
  readonly isInsecure?: boolean;
  /** backup: section on every node, with a pgBackRest repository in the cluster directory. */
  readonly isBackup?: boolean;
  /** Renders the member table (the CLI's `list` renderer). */
  readonly renderTable: (view: ClusterView, scope: string) => string;
  readonly out: (line: string) => void;
}

const STATE_FILE = 'cluster-state.json';
const pgpassPathOf = (dir: string): string => join(dir, 'pgpass');

export function defaultLocalDir(): string {
  return resolve(process.env.PGWARDEN_LOCAL_DIR ?? '.pgwarden/local');
}

async function readState(dir: string): Promise<LocalClusterState | undefined> {
  try {
    return JSON.parse(await readFile(join(dir, STATE_FILE), 'utf8')) as LocalClusterState;
  } catch {
    return undefined;
  }
}

const describeProcess = (process: ClusterProcess): string =>
  `${process.member} ${process.kind} (pid ${process.pid}, by ${process.foundBy})`;

/** SIGINT and SIGTERM for the whole life of `start`: the first one aborts (start-up or the foreground wait), later ones are ignored. */
function interruptSignal(out: (line: string) => void): { readonly signal: AbortSignal; readonly dispose: () => void } {
  const controller = new AbortController();
  const onSignal = (name: NodeJS.Signals): void => {
    if (controller.signal.aborted) return;
    out(`${name}: stopping everything this start started ...`);
    controller.abort(new PgwardenError('PGW_CLI_ABORTED', `interrupted by ${name}`));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return {
    signal: controller.signal,
    dispose: () => {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    },
  };
}

function abortable<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise<T>((resolvePromise, reject) => {
    const onAbort = (): void => reject(signal.reason as Error);
    if (signal.aborted) return onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(resolvePromise, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

/** Refuses while any process of a previous cluster in `dir` lives, and refuses to delete its data without --wipe. */
async function checkStartable(dir: string, isWipe: boolean, out: (line: string) => void): Promise<void> {
  const alive = await findClusterProcesses(dir);
  if (alive.length > 0) {
    throw new PgwardenError(
      'PGW_LOCAL_PROCESS',
      `a local cluster in ${dir} is still running: ${alive.map(describeProcess).join(', ')}; nothing was started or deleted`,
      {
        context: {
          path: dir,
          pids: alive.map((process) => process.pid),
          hint: `stop it first: npm run cluster -- stop --dir ${dir} (or start another one with --dir <new directory>)`,
        },
      },
    );
  }
  const hasData = existsSync(dir) && readdirSync(dir).length > 0;
  if (!hasData) return;
  if (!isWipe) {
    throw new PgwardenError(
      'PGW_LOCAL_PROCESS',
      `${dir} holds the data of a previous local cluster (${memberNamesOf(dir).join(', ') || 'files'}); start refuses to delete it`,
      {
        context: {
          path: dir,
          hint: `pass --wipe to delete it and start afresh, or --dir <new directory> to keep it (npm run cluster -- start --wipe)`,
        },
      },
    );
  }
  out(`--wipe: removing the previous local cluster data in ${dir}`);
  await rm(dir, { recursive: true, force: true });
}

export async function runLocalStart(options: LocalStartOptions): Promise<void> {
  const { out } = options;
  const dir = resolve(options.dir);
  const interrupt = interruptSignal(out);
  try {
    const unusable = await checkDirectoryUsable(dir, '--dir');
    if (unusable !== undefined)
      throw new PgwardenError('PGW_CLI_USAGE', `${unusable}; nothing was started`, {
        context: {
          command: ['pgwarden', 'local', 'start'],
          flag: '--dir',
          path: dir,
          hint: 'pass --dir <a new directory on a real, writable disk>',
        },
      });
    await checkStartable(dir, options.isWipe, out);
    out(`starting 3 etcd members and ${options.nodes} pgwarden agents with PostgreSQL 15 under ${dir} ...`);
    let cluster: LocalCluster | undefined;
    try {
      cluster = await LocalCluster.start({
        dir,
        nodes: options.nodes,
        timing: options.timing,
        scope: 'demo',
        proxies: 1,
        proxySettings: { data_path: options.proxyDataPath ?? 'userspace' },
        ...(options.portBase !== undefined ? { portBase: options.portBase } : {}),
        // Safe on a shared host by default: etcd needs a client certificate and a password, unsafe REST calls need
        // credentials (in each node's 0600 config, where the CLI and patronictl find them, and in the state file).
        etcdTls: options.isInsecure !== true,
        etcdAuth: options.isInsecure !== true,
        restAuth: options.isInsecure !== true,
        ...(options.isBackup === true ? { backup: true as const } : {}),
        signal: interrupt.signal,
      });
      // The state holds the superuser password, the etcd ones and the REST credentials: readable by its owner only,
      // like the pgpass file the DSNs name.
      await writeFile(join(dir, STATE_FILE), JSON.stringify(cluster.state(), null, 2), { mode: 0o600 });
      await writeFile(pgpassPathOf(dir), `*:*:*:postgres:${cluster.superuserPassword.replace(/([\\:])/g, '\\$1')}\n`, { mode: 0o600 });
      const { view } = await abortable(waitHealthy(cluster, options.healthyTimeoutMs), interrupt.signal);
      printConnections(cluster, view, options);
    } catch (error) {
      // Whatever failed or was interrupted: stop what was started, by PID and by what the directory shows.
      await cluster?.stop().catch(() => undefined);
      await stopEverything(dir, out);
      throw error;
    }
    if (options.isBackground) {
      out(`running in the background; stop it with: npm run cluster -- stop --dir ${dir}`);
      return;
    }
    out('press Ctrl-C to stop');
    // The children are detached and unref'd: without a timer Node would see an empty event loop and exit at once.
    const keepAlive = setInterval(() => undefined, 60_000);
    await new Promise<void>((resolveWait) => interrupt.signal.addEventListener('abort', () => resolveWait(), { once: true }));
    clearInterval(keepAlive);
    out('stopping the local cluster (agents stop PostgreSQL, then etcd) ...');
    await cluster.stop();
    await stopEverything(dir, out);
    out('stopped.');
  } finally {
    interrupt.dispose();
  }
}

function printConnections(cluster: LocalCluster, view: ClusterView, options: LocalStartOptions): void {
  const { out } = options;
  out(options.renderTable(view, cluster.scope));
  out('');
  const proxy = cluster.proxies[0];
  if (proxy !== undefined) {
    out(`proxy (writes):    psql 'postgresql://postgres@127.0.0.1:${proxy.primaryPort}/postgres'`);
    out(`proxy (reads):     psql 'postgresql://postgres@127.0.0.1:${proxy.replicaPort}/postgres'`);
    out(`proxy status:      http://127.0.0.1:${proxy.apiPort}/status  (metrics: /metrics)`);
  }
  // The password stays out of the terminal (and its scrollback, and CI logs): psql reads it from the pgpass file.
  const pgpass = pgpassPathOf(cluster.dir);
  out(`password:          in ${pgpass} (export PGPASSFILE=${pgpass} before psql)`);
  out(`libpq (writes):    psql '${cluster.connectionString('read-write', false)}'`);
  out(`libpq (reads):     psql '${cluster.connectionString('prefer-standby', false)}'`);
  out(`REST API:          ${cluster.nodes.map((node) => `http://127.0.0.1:${node.apiPort}`).join('  ')}`);
  const statePath = join(cluster.dir, STATE_FILE);
  out(
    cluster.restCredentials === undefined
      ? 'REST credentials:  none (--insecure): anyone on this host may switch over, restart or reconfigure'
      : `REST credentials:  user ${cluster.restCredentials.username}, password in ${statePath} (restapi.authentication; the CLI below uses it)`,
  );
  out(`etcd:              ${cluster.etcd.endpoints.join(',')}`);
  const etcdClient = cluster.etcd.client;
  if (etcdClient.cert !== undefined || etcdClient.username !== undefined)
    out(
      `etcd client:       ${[
        etcdClient.cert !== undefined ? `--cacert ${etcdClient.cacert ?? ''} --cert ${etcdClient.cert} --key ${etcdClient.key ?? ''}` : '',
        etcdClient.username !== undefined ? `--user ${etcdClient.username} (password in ${statePath})` : '',
      ]
        .filter(Boolean)
        .join(' ')}`,
    );
  else out('etcd client:       plain http, no authentication (--insecure)');
  if (options.isBackup === true) {
    const node = join(cluster.dir, '<primary>');
    out(
      `backups:           pgBackRest repository ${backupRepositoryOf(cluster.dir)}, stanza ${cluster.scope}; new replicas restore from it`,
    );
    out(
      `take a backup:     sudo -u postgres PGPASSFILE=${node}/pgpass pgbackrest --config=${node}/pgbackrest-<primary>.conf --stanza=${cluster.scope} backup`,
    );
  }
  out(`CLI:               node dist/src/bin/pgwarden.js -c ${cluster.nodes[0]?.configPath ?? ''} list`);
  out(`logs:              ${cluster.dir}/node*/agent.log ${cluster.dir}/proxy*/proxy.log`);
  out(
    `try a failover:    npm run cluster -- kill <member> --dir ${cluster.dir}; then: npm run cluster -- restart <member> --dir ${cluster.dir}`,
  );
}

/** Stops every process of the cluster in `dir`; fails naming the survivors. */
async function stopEverything(dir: string, out: (line: string) => void): Promise<ClusterProcess[]> {
  const { stopped, survivors } = await stopClusterProcesses(dir, (process) => out(`stopping ${describeProcess(process)}`));
  await rm(join(dir, STATE_FILE), { force: true });
  if (survivors.length > 0)
    throw new PgwardenError('PGW_LOCAL_PROCESS', `could not stop ${survivors.map(describeProcess).join(', ')}`, {
      context: {
        path: dir,
        pids: survivors.map((process) => process.pid),
        hint: 'kill them by hand (kill -9 <pid>) and look at their logs',
      },
    });
  return stopped;
}

export async function runLocalStop(directory: string, out: (line: string) => void): Promise<void> {
  const dir = resolve(directory);
  if (existsSync(dir) && !statSync(dir).isDirectory())
    throw new PgwardenError('PGW_CLI_USAGE', `--dir ${dir} is a file, not a directory: no local cluster lives there; nothing was stopped`, {
      context: { command: ['pgwarden', 'local', 'stop'], flag: '--dir', path: dir, hint: 'pass the --dir the cluster was started with' },
    });
  const stopped = await stopEverything(dir, out);
  out(
    stopped.length === 0 ? `no process of a local cluster in ${dir} was running: nothing to stop` : `stopped the local cluster in ${dir}`,
  );
}

/** One member's processes and what its REST API says, for `status`. */
interface MemberStatus {
  readonly member: string;
  readonly processes: readonly ClusterProcess[];
  readonly rest: string;
}

/** The REST port of a node from its pgwarden.yml (restapi.listen), for a cluster whose state file is gone. */
async function apiPortFromConfig(path: string): Promise<number | undefined> {
  try {
    const config = parse(await readFile(path, 'utf8')) as { restapi?: { listen?: unknown } } | null;
    const listen = config?.restapi?.listen;
    const port = typeof listen === 'string' ? Number(listen.split(':').pop()) : Number.NaN;
    return Number.isInteger(port) && port > 0 ? port : undefined;
  } catch {
    return undefined;
  }
}

async function restStatus(apiPort: number | undefined): Promise<string> {
  if (apiPort === undefined) return 'REST port unknown (no state file, no restapi.listen in pgwarden.yml)';
  try {
    const response = await fetch(`http://127.0.0.1:${apiPort}/patroni`, { signal: AbortSignal.timeout(2000) });
    const document = (await response.json()) as { state?: string; role?: string; timeline?: number };
    return `${document.role ?? '?'}, ${document.state ?? '?'}${document.timeline !== undefined ? `, timeline ${document.timeline}` : ''}`;
  } catch {
    return `REST API on port ${apiPort} not answering`;
  }
}

/**
 * Prints each member's processes (agent, postmaster, fence; etcd members; proxies) and what each agent's REST API says.
 * Fails (exit 1) when no process runs, or when an expected process is down, naming them.
 */
export async function runLocalStatus(directory: string, out: (line: string) => void): Promise<void> {
  const dir = resolve(directory);
  const processes = await findClusterProcesses(dir);
  const state = await readState(dir);
  if (processes.length === 0)
    throw new PgwardenError('PGW_LOCAL_PROCESS', `no process of a local cluster in ${dir} is running`, {
      context: { path: dir, hint: `start one with: npm run cluster -- start${existsSync(dir) ? ' --wipe' : ''} --dir ${dir}` },
    });
  const nodes = state?.nodes.map((node) => node.name) ?? memberNamesOf(dir);
  const etcdMembers = state?.etcdPids.map((_pid, index) => `etcd${index + 1}`) ?? [
    ...new Set(processes.filter((p) => p.kind === 'etcd').map((p) => p.member)),
  ];
  const proxies = state?.proxies?.map((proxy) => proxy.name) ?? [
    ...new Set(processes.filter((p) => p.kind === 'proxy').map((p) => p.member)),
  ];
  const down: string[] = [];
  const statuses: MemberStatus[] = await Promise.all(
    nodes.map(async (member) => {
      const own = processes.filter((process) => process.member === member);
      for (const kind of ['agent', 'postgres'] as const) if (!own.some((process) => process.kind === kind)) down.push(`${member} ${kind}`);
      const apiPort =
        state?.nodes.find((node) => node.name === member)?.apiPort ?? (await apiPortFromConfig(join(dir, member, 'pgwarden.yml')));
      return { member, processes: own, rest: await restStatus(apiPort) };
    }),
  );
  const list = (own: readonly ClusterProcess[], kind: string): string =>
    own
      .filter((process) => process.kind === kind)
      .map((process) => String(process.pid))
      .join(',') || '-';
  out(`local cluster in ${dir}`);
  out(`${'member'.padEnd(8)} ${'agent'.padEnd(8)} ${'postgres'.padEnd(9)} ${'fence'.padEnd(8)} REST /patroni`);
  for (const status of statuses)
    out(
      `${status.member.padEnd(8)} ${list(status.processes, 'agent').padEnd(8)} ${list(status.processes, 'postgres').padEnd(9)} ${list(status.processes, 'fence').padEnd(8)} ${status.rest}`,
    );
  for (const member of [...etcdMembers, ...proxies]) {
    const own = processes.filter((process) => process.member === member);
    if (own.length === 0) down.push(member);
    out(`${member.padEnd(8)} ${own.length === 0 ? 'down' : `running (pid ${own.map((process) => process.pid).join(',')})`}`);
  }
  const supervisor = processes.filter((process) => process.kind === 'supervisor');
  if (supervisor.length > 0) out(`supervised by pgwarden local start (pid ${supervisor.map((process) => process.pid).join(',')})`);
  if (down.length > 0)
    throw new PgwardenError('PGW_LOCAL_PROCESS', `the local cluster in ${dir} is degraded: not running: ${down.join(', ')}`, {
      context: {
        path: dir,
        down,
        hint: 'restart a member with: npm run cluster -- restart <member>; or stop everything with: npm run cluster -- stop',
      },
    });
}

function checkMember(dir: string, member: string): void {
  const members = memberNamesOf(dir);
  if (!members.includes(member))
    throw new PgwardenError(
      'PGW_MEMBER_UNKNOWN',
      members.length === 0
        ? `no local cluster data in ${dir}`
        : `no PostgreSQL member named ${member} in ${dir}; members: ${members.join(', ')}`,
      {
        context: {
          member,
          path: dir,
          hint: members.length === 0 ? 'pass the --dir of the cluster' : `choose one of ${members.join(', ')}`,
        },
      },
    );
}

/** SIGKILL to a member's agent and postmaster, as a crash of the whole node would do (its fence stays, by design). */
export async function runLocalKill(directory: string, member: string, out: (line: string) => void): Promise<void> {
  const dir = resolve(directory);
  checkMember(dir, member);
  const targets = (await findClusterProcesses(dir)).filter(
    (process) => process.member === member && (process.kind === 'agent' || process.kind === 'postgres'),
  );
  if (targets.length === 0)
    throw new PgwardenError('PGW_LOCAL_PROCESS', `${member} has no running agent or postmaster in ${dir}: nothing to kill`, {
      context: { member, path: dir, hint: `start it again with: npm run cluster -- restart ${member} --dir ${dir}` },
    });
  for (const target of targets) killPid(target.pid, 'SIGKILL');
  await Promise.all(targets.map((target) => waitForExit(target.pid, 5000)));
  out(`killed ${member} with SIGKILL: ${targets.map((target) => `${target.kind} ${target.pid}`).join(', ')}`);
}

/** Starts a stopped member's agent again (it starts its PostgreSQL and rejoins); refused while its agent runs. */
export async function runLocalRestart(directory: string, member: string, out: (line: string) => void): Promise<void> {
  const dir = resolve(directory);
  checkMember(dir, member);
  const processes = await findClusterProcesses(dir);
  const agents = processes.filter((process) => process.member === member && process.kind === 'agent');
  if (agents.length > 0)
    throw new PgwardenError(
      'PGW_LOCAL_PROCESS',
      `${member}'s agent is running (pid ${agents.map((agent) => agent.pid).join(',')}): restart starts a stopped member only`,
      { context: { member, path: dir, hint: `kill it first: npm run cluster -- kill ${member} --dir ${dir}` } },
    );
  if (!processes.some((process) => process.kind === 'etcd'))
    throw new PgwardenError('PGW_LOCAL_PROCESS', `no etcd member of the local cluster in ${dir} is running: the agent would have no DCS`, {
      context: { member, path: dir, hint: `start the whole cluster again: npm run cluster -- start --wipe --dir ${dir}` },
    });
  const nodeDir = join(dir, member);
  const pid = spawnAgentProcess(nodeDir, { configPath: join(nodeDir, 'pgwarden.yml') });
  await new Promise((resolveWait) => setTimeout(resolveWait, 500));
  if (!isAlive(pid)) {
    const log = await readFile(join(nodeDir, 'agent.log'), 'utf8').catch(() => '');
    throw new PgwardenError('PGW_LOCAL_PROCESS', `${member}'s agent exited at once: ${log.trim().split('\n').slice(-2).join(' ')}`, {
      context: { member, path: join(nodeDir, 'agent.log'), hint: 'read the agent log' },
    });
  }
  out(`started ${member}'s agent (pid ${pid}); it starts PostgreSQL and rejoins (log: ${join(nodeDir, 'agent.log')})`);
}

/** The live state of a running cluster (for callers that need its endpoints), undefined when none runs. */
export async function readLocalState(dir: string): Promise<LocalClusterState | undefined> {
  const state = await readState(resolve(dir));
  if (state === undefined) return undefined;
  return state.etcdPids.some(isAlive) ? state : undefined;
}
