// `pgwarden local start|stop|status`: the one-command local cluster, in the foreground (Ctrl-C stops it) or in the background.
import { existsSync } from 'node:fs';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { ClusterView } from '../core/types.js';
import { PgwardenError } from '../util/errors.js';
import { waitHealthy } from './cluster-health.js';
import { LocalCluster, stopFromState, type LocalClusterState } from './local-cluster.js';
import type { LocalTiming } from './node-config.js';
import { isAlive } from './process.js';

export interface LocalStartOptions {
  readonly dir: string;
  readonly isBackground: boolean;
  readonly nodes: number;
  readonly timing: LocalTiming;
  /** data_path of the local proxy (kernel: nftables DNAT, needs root). */
  readonly proxyDataPath?: 'userspace' | 'kernel';
  readonly healthyTimeoutMs: number;
  /** Renders the member table (the CLI's `list` renderer). */
  readonly renderTable: (view: ClusterView, scope: string) => string;
  readonly out: (line: string) => void;
}

const STATE_FILE = 'cluster-state.json';

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

function isStateAlive(state: LocalClusterState): boolean {
  return state.etcdPids.some(isAlive) || state.nodes.some((node) => node.agentPid !== undefined && isAlive(node.agentPid));
}

export async function runLocalStart(options: LocalStartOptions): Promise<void> {
  const { dir, out } = options;
  const previous = await readState(dir);
  if (previous !== undefined && isStateAlive(previous)) {
    throw new PgwardenError(
      'PGW_LOCAL_PROCESS',
      `a local cluster is already running from ${dir}; stop it with 'npm run cluster -- stop' (or 'pgwarden local stop --dir ${dir}')`,
    );
  }
  if (existsSync(dir)) {
    out(`removing the previous local cluster data in ${dir}`);
    await rm(dir, { recursive: true, force: true });
  }
  out(`starting 3 etcd members and ${options.nodes} pgwarden agents with PostgreSQL 15 under ${dir} ...`);
  const cluster = await LocalCluster.start({
    dir,
    nodes: options.nodes,
    timing: options.timing,
    scope: 'demo',
    proxies: 1,
    proxySettings: { data_path: options.proxyDataPath ?? 'userspace' },
  });
  // The state holds the superuser password (and the etcd one with etcdAuth): readable by its owner only, like the pgpass file the DSNs below name.
  await writeFile(join(dir, STATE_FILE), JSON.stringify(cluster.state(), null, 2), { mode: 0o600 });
  const pgpass = join(dir, 'pgpass');
  await writeFile(pgpass, `*:*:*:postgres:${cluster.superuserPassword.replace(/([\\:])/g, '\\$1')}\n`, { mode: 0o600 });
  let isStopping = false;
  const stop = async (): Promise<void> => {
    if (isStopping) return;
    isStopping = true;
    out('stopping the local cluster (agents stop PostgreSQL, then etcd) ...');
    await cluster.stop();
    await rm(join(dir, STATE_FILE), { force: true });
    out('stopped.');
  };
  try {
    const { view } = await waitHealthy(cluster, options.healthyTimeoutMs);
    out(options.renderTable(view, cluster.scope));
    out('');
    const proxy = cluster.proxies[0];
    if (proxy !== undefined) {
      out(`proxy (writes):    psql 'postgresql://postgres@127.0.0.1:${proxy.primaryPort}/postgres'`);
      out(`proxy (reads):     psql 'postgresql://postgres@127.0.0.1:${proxy.replicaPort}/postgres'`);
      out(`proxy status:      http://127.0.0.1:${proxy.apiPort}/status  (metrics: /metrics)`);
    }
    // The password stays out of the terminal (and its scrollback, and CI logs): psql reads it from the pgpass file.
    out(`password:          in ${pgpass} (export PGPASSFILE=${pgpass} before psql)`);
    out(`libpq (writes):    psql '${cluster.connectionString('read-write', false)}'`);
    out(`libpq (reads):     psql '${cluster.connectionString('prefer-standby', false)}'`);
    out(`REST API:          ${cluster.nodes.map((node) => `http://127.0.0.1:${node.apiPort}`).join('  ')}`);
    out(`etcd:              ${cluster.etcd.endpoints.join(',')}`);
    out(`CLI:               node dist/src/bin/pgwarden.js -c ${cluster.nodes[0]?.configPath ?? ''} list`);
    out(`logs:              ${dir}/node*/agent.log ${dir}/proxy*/proxy.log`);
  } catch (error) {
    await stop();
    throw error;
  }
  if (options.isBackground) {
    out(`running in the background; stop it with: npm run cluster -- stop`);
    return;
  }
  out('press Ctrl-C to stop');
  await new Promise<void>((resolveWait) => {
    // The children are detached and unref'd: without a timer Node would see an empty event loop and exit at once.
    const keepAlive = setInterval(() => undefined, 60_000);
    const onSignal = (): void => {
      clearInterval(keepAlive);
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      resolveWait();
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  });
  await stop();
}

export async function runLocalStop(dir: string, out: (line: string) => void): Promise<void> {
  const state = await readState(dir);
  if (state === undefined) {
    out(`no local cluster state in ${dir}: nothing to stop`);
    return;
  }
  await stopFromState(state);
  await rm(join(dir, STATE_FILE), { force: true });
  out(`stopped the local cluster in ${dir}`);
}

export async function readLocalState(dir: string): Promise<LocalClusterState | undefined> {
  const state = await readState(dir);
  return state !== undefined && isStateAlive(state) ? state : undefined;
}
