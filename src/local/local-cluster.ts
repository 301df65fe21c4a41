// A real local cluster on 127.0.0.1: an etcd cluster plus N agents (each owning a PostgreSQL), started and stopped by PID.
import { randomBytes } from 'node:crypto';
import { chmod, copyFile, mkdir, readFile, rm, statfs, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { openEtcdDcs } from '../bin/adapters.js';
import type { ClusterView } from '../core/types.js';
import { deadline } from '../util/abort.js';
import { AGENT_ENV, AGENT_NODE_FLAGS } from '../util/agent-process.js';
import { describeError, PgwardenError } from '../util/errors.js';
import { runCommand } from '../util/run-command.js';
import { startEtcdCluster, type EtcdClusterHandle } from './etcd-cluster.js';
import { pickFreePorts } from './free-port.js';
import { renderNodeConfig, type LocalTiming } from './node-config.js';
import { FaultRelay } from './fault-relay.js';
import { NetnsLab } from './netns.js';
import { isAlive, spawnManaged, stopPid } from './process.js';

export interface LocalClusterOptions {
  readonly dir: string;
  readonly nodes?: number;
  readonly etcdMembers?: number;
  readonly scope?: string;
  readonly namespace?: string;
  readonly timing?: LocalTiming;
  readonly binDir?: string;
  /** Per-node tags, e.g. { node3: { nofailover: true } }. */
  readonly tags?: Readonly<Record<string, Readonly<Record<string, unknown>>>>;
  /** postgresql.callbacks for every node, e.g. { on_role_change: '/path/to/script' }. */
  readonly callbacks?: Readonly<Record<string, string>>;
  /** How many `pgwarden proxy` instances to start with the cluster (each with a primary, replica and API port). */
  readonly proxies?: number;
  /** `proxy:` settings for the proxies started with the cluster, e.g. { data_path: 'kernel' }. */
  readonly proxySettings?: LocalProxySettings;
  /** Extra local postgresql.parameters for every node, e.g. { wal_level: 'logical' }. */
  readonly parameters?: Readonly<Record<string, string | number | boolean>>;
  /**
   * loopback (default): everything on 127.0.0.1. netns: each etcd member and each node in its own network namespace
   * on a private bridge (root only), so partitions, loss and latency are real network faults. relay: loopback, with
   * each agent reaching each etcd member through a TCP relay of this process that can stop moving bytes (no root).
   */
  readonly network?: 'loopback' | 'netns' | 'relay';
  /** Each node's directory (data, WAL, logs) on its own tmpfs of this many MB (root), so a disk can be filled. */
  readonly nodeTmpfsMb?: number;
}

export interface LocalProxy {
  readonly name: string;
  readonly configPath: string;
  readonly logFile: string;
  readonly primaryPort: number;
  readonly replicaPort: number;
  readonly apiPort: number;
  pid: number | undefined;
}

/** Extra `proxy:` settings for a local proxy (seconds, bytes), e.g. { hold_timeout: 5 }. */
export type LocalProxySettings = Readonly<Record<string, string | number | boolean>>;

export interface LocalNode {
  readonly name: string;
  readonly configPath: string;
  readonly nodeDir: string;
  readonly dataDir: string;
  readonly apiPort: number;
  readonly pgPort: number;
  /** Where its PostgreSQL and REST API listen: 127.0.0.1, or its own address in a netns lab. */
  readonly host: string;
  readonly logFile: string;
  agentPid: number | undefined;
}

/** What a background cluster leaves on disk so that `pgwarden local stop` can find its processes. */
export interface LocalClusterState {
  readonly dir: string;
  readonly scope: string;
  readonly namespace: string;
  readonly etcdEndpoints: readonly string[];
  readonly etcdPids: readonly number[];
  readonly nodes: readonly {
    readonly name: string;
    readonly agentPid: number | undefined;
    readonly dataDir: string;
    readonly pgPort: number;
    readonly apiPort: number;
  }[];
  readonly proxies?: readonly {
    readonly name: string;
    readonly pid: number | undefined;
    readonly primaryPort: number;
    readonly replicaPort: number;
    readonly apiPort: number;
  }[];
  readonly superuserPassword: string;
}

export const DEFAULT_TIMING: LocalTiming = { ttl: 30, loop_wait: 10, retry_timeout: 10 };
const AGENT_ENTRY = fileURLToPath(new URL('../bin/agent.js', import.meta.url));
const CLI_ENTRY = fileURLToPath(new URL('../bin/pgwarden.js', import.meta.url));
const AGENT_STOP_GRACE_MS = 30_000;
/** Agents get the process settings of a production agent (src/util/agent-process.ts). */
export { AGENT_NODE_FLAGS };

export class LocalCluster {
  readonly dir: string;
  readonly scope: string;
  readonly namespace: string;
  readonly nodes: LocalNode[];
  readonly etcd: EtcdClusterHandle;
  readonly superuserPassword: string;
  readonly proxies: LocalProxy[] = [];
  /** The network-namespace lab when started with network: 'netns'. */
  readonly lab: NetnsLab | undefined;
  /** network: 'relay': each node's relays to the etcd members, by node name. */
  readonly relays = new Map<string, FaultRelay[]>();

  private constructor(
    dir: string,
    scope: string,
    namespace: string,
    nodes: LocalNode[],
    etcd: EtcdClusterHandle,
    superuserPassword: string,
    lab: NetnsLab | undefined,
  ) {
    this.lab = lab;
    this.dir = dir;
    this.scope = scope;
    this.namespace = namespace;
    this.nodes = nodes;
    this.etcd = etcd;
    this.superuserPassword = superuserPassword;
  }

  static async start(options: LocalClusterOptions): Promise<LocalCluster> {
    const nodeCount = options.nodes ?? 3;
    const scope = options.scope ?? 'pgwarden';
    const namespace = options.namespace ?? '/service';
    await mkdir(options.dir, { recursive: true });
    // PostgreSQL runs as the postgres user and must be able to reach its data dir through this one.
    await chmod(options.dir, 0o755);
    const etcdSize = options.etcdMembers ?? 3;
    let lab: NetnsLab | undefined;
    if (options.network === 'netns') {
      lab = await NetnsLab.create();
      try {
        for (let index = 0; index < etcdSize; index++) await lab.addHost(`etcd${index + 1}`);
        for (let index = 0; index < nodeCount; index++) await lab.addHost(`node${index + 1}`);
      } catch (error) {
        await lab.destroy();
        throw error;
      }
    }
    const withLab = lab;
    let etcd: EtcdClusterHandle;
    try {
      etcd = await startEtcdCluster({
        size: etcdSize,
        dir: join(options.dir, 'etcd'),
        ...(withLab === undefined
          ? {}
          : {
              hosts: Array.from({ length: etcdSize }, (_unused, index) => withLab.host(`etcd${index + 1}`).ip),
              wrap: (index: number) => withLab.wrap(`etcd${index + 1}`),
            }),
      });
    } catch (error) {
      await lab?.destroy();
      throw error;
    }
    const relays = new Map<string, FaultRelay[]>();
    const superuserPassword = randomBytes(9).toString('base64url');
    const replicationPassword = randomBytes(9).toString('base64url');
    const ports = await pickFreePorts(nodeCount * 2);
    const nodes: LocalNode[] = [];
    try {
      if (options.network === 'relay') {
        for (let index = 0; index < nodeCount; index++) {
          relays.set(
            `node${index + 1}`,
            await Promise.all(
              etcd.endpoints.map(async (endpoint) => {
                const url = new URL(endpoint);
                return FaultRelay.start({ host: url.hostname, port: Number(url.port) });
              }),
            ),
          );
        }
      }
      for (let index = 0; index < nodeCount; index++) {
        const name = `node${index + 1}`;
        const nodeDir = join(options.dir, name);
        await mkdir(nodeDir, { recursive: true });
        if (options.nodeTmpfsMb !== undefined) await mountTmpfs(nodeDir, options.nodeTmpfsMb);
        await chmod(nodeDir, 0o777);
        const apiPort = ports[index * 2]!;
        const pgPort = ports[index * 2 + 1]!;
        const configPath = join(nodeDir, 'pgwarden.yml');
        const host = lab?.host(name).ip ?? '127.0.0.1';
        const yaml = renderNodeConfig({
          scope,
          namespace,
          name,
          apiPort,
          pgPort,
          host,
          ...(lab === undefined ? {} : { hbaNetwork: lab.subnet }),
          nodeDir,
          etcdHosts:
            relays.get(name)?.map((relay) => `127.0.0.1:${relay.port}`) ??
            etcd.endpoints.map((endpoint) => endpoint.replace(/^https?:\/\//, '')),
          timing: options.timing ?? DEFAULT_TIMING,
          superuserPassword,
          replicationPassword,
          binDir: options.binDir ?? '/usr/lib/postgresql/15/bin',
          ...(options.tags?.[name] !== undefined ? { tags: options.tags[name] } : {}),
          ...(options.callbacks !== undefined ? { callbacks: options.callbacks } : {}),
          ...(options.parameters !== undefined ? { extraParameters: options.parameters } : {}),
        });
        await writeFile(configPath, yaml, { mode: 0o600 });
        nodes.push({
          name,
          configPath,
          nodeDir,
          dataDir: join(nodeDir, 'data'),
          apiPort,
          pgPort,
          host,
          logFile: join(nodeDir, 'agent.log'),
          agentPid: undefined,
        });
      }
      const cluster = new LocalCluster(options.dir, scope, namespace, nodes, etcd, superuserPassword, lab);
      for (const [name, list] of relays) cluster.relays.set(name, list);
      for (const node of nodes) cluster.startAgent(node.name);
      try {
        for (let index = 0; index < (options.proxies ?? 0); index++) await cluster.startProxy(options.proxySettings);
      } catch (error) {
        await cluster.stop();
        throw error;
      }
      return cluster;
    } catch (error) {
      await etcd.stop();
      await lab?.destroy();
      for (const list of relays.values()) for (const relay of list) await relay.close();
      for (const node of nodes) await unmountTmpfs(node.nodeDir);
      throw error;
    }
  }

  node(name: string): LocalNode {
    const node = this.nodes.find((candidate) => candidate.name === name);
    if (node === undefined) throw new PgwardenError('PGW_LOCAL_PROCESS', `no local node named ${name}`);
    return node;
  }

  startAgent(name: string): number {
    const node = this.node(name);
    if (node.agentPid !== undefined && isAlive(node.agentPid)) return node.agentPid;
    const prefix = this.lab?.wrap(name) ?? [];
    const argv = [...prefix, process.execPath, ...AGENT_NODE_FLAGS, AGENT_ENTRY, node.configPath];
    const env = { ...process.env, ...AGENT_ENV };
    const child = spawnManaged({ command: argv[0]!, args: argv.slice(1), logFile: node.logFile, env });
    node.agentPid = child.pid;
    return child.pid;
  }

  /** Starts a `pgwarden proxy` for this cluster on free ports and waits until its API answers. */
  async startProxy(settings: LocalProxySettings = {}): Promise<LocalProxy> {
    const name = `proxy${this.proxies.length + 1}`;
    const proxyDir = join(this.dir, name);
    await mkdir(proxyDir, { recursive: true });
    const [primaryPort, replicaPort, apiPort] = (await pickFreePorts(3)) as [number, number, number];
    const configPath = join(proxyDir, 'proxy.yml');
    const extra = Object.entries(settings).map(([key, value]) => `  ${key}: ${JSON.stringify(value)}`);
    await writeFile(
      configPath,
      [
        `scope: ${this.scope}`,
        `namespace: ${this.namespace}`,
        'etcd3:',
        `  hosts: ${this.etcd.endpoints.map((endpoint) => endpoint.replace(/^https?:\/\//, '')).join(',')}`,
        'proxy:',
        `  primary_listen: 127.0.0.1:${primaryPort}`,
        `  replica_listen: 127.0.0.1:${replicaPort}`,
        `  api_listen: 127.0.0.1:${apiPort}`,
        ...extra,
        '',
      ].join('\n'),
    );
    const logFile = join(proxyDir, 'proxy.log');
    const child = spawnManaged({ command: process.execPath, args: [CLI_ENTRY, 'proxy', configPath], logFile });
    const proxy: LocalProxy = { name, configPath, logFile, primaryPort, replicaPort, apiPort, pid: child.pid };
    this.proxies.push(proxy);
    const giveUpAt = Date.now() + 15_000;
    for (;;) {
      const isUp = await fetch(`http://127.0.0.1:${apiPort}/status`, { signal: AbortSignal.timeout(1000) }).then(
        (response) => response.ok,
        () => false,
      );
      if (isUp) return proxy;
      if (!isAlive(child.pid) || Date.now() > giveUpAt) {
        const log = await readFile(logFile, 'utf8').catch(() => '');
        throw new PgwardenError('PGW_LOCAL_PROCESS', `${name} did not start (see ${logFile}): ${log.split('\n').slice(-3).join(' ')}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  async stopProxy(name: string, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const proxy = this.proxies.find((candidate) => candidate.name === name);
    if (proxy?.pid === undefined) return;
    await stopPid(proxy.pid, { signal, graceMs: 10_000 });
    proxy.pid = undefined;
  }

  /** SIGKILL (or another signal) to the agent only; PostgreSQL keeps running, as after an agent crash. */
  killAgent(name: string, signal: NodeJS.Signals = 'SIGKILL'): void {
    const node = this.node(name);
    if (node.agentPid !== undefined) {
      try {
        process.kill(node.agentPid, signal);
      } catch {
        // already gone
      }
    }
  }

  /** Graceful stop of one agent (it stops its PostgreSQL and releases the lock). */
  async stopAgent(name: string): Promise<void> {
    const node = this.node(name);
    if (node.agentPid === undefined) return;
    await stopPid(node.agentPid, { signal: 'SIGTERM', graceMs: AGENT_STOP_GRACE_MS });
    node.agentPid = undefined;
  }

  async postmasterPid(name: string): Promise<number | undefined> {
    try {
      const text = await readFile(join(this.node(name).dataDir, 'postmaster.pid'), 'utf8');
      const pid = Number(text.split('\n')[0]);
      return Number.isInteger(pid) && pid > 0 && isAlive(pid) ? pid : undefined;
    } catch {
      return undefined;
    }
  }

  async killPostmaster(name: string, signal: NodeJS.Signals = 'SIGKILL'): Promise<number | undefined> {
    const pid = await this.postmasterPid(name);
    if (pid !== undefined) process.kill(pid, signal);
    return pid;
  }

  /** A read-only DCS client for tests and the CLI view of this cluster. */
  async view(timeoutMs = 3000): Promise<ClusterView> {
    const dcs = openEtcdDcs({
      endpoints: this.etcd.endpoints,
      namespace: this.namespace,
      scope: this.scope,
      member: '__local_observer',
      ttlSeconds: 30,
    });
    try {
      return await dcs.loadCluster(deadline(timeoutMs));
    } finally {
      await dcs.close();
    }
  }

  /** libpq multi-host connection string that always lands on the writable primary. */
  connectionString(targetSessionAttrs = 'read-write'): string {
    const hosts = this.nodes.map((node) => `${node.host}:${node.pgPort}`).join(',');
    return `postgresql://postgres:${this.superuserPassword}@${hosts}/postgres?target_session_attrs=${targetSessionAttrs}&connect_timeout=2`;
  }

  state(): LocalClusterState {
    return {
      dir: this.dir,
      scope: this.scope,
      namespace: this.namespace,
      etcdEndpoints: this.etcd.endpoints,
      etcdPids: this.etcd.members.map((member) => member.pid).filter((pid): pid is number => pid !== undefined),
      nodes: this.nodes.map((node) => ({
        name: node.name,
        agentPid: node.agentPid,
        dataDir: node.dataDir,
        pgPort: node.pgPort,
        apiPort: node.apiPort,
      })),
      proxies: this.proxies.map((proxy) => ({
        name: proxy.name,
        pid: proxy.pid,
        primaryPort: proxy.primaryPort,
        replicaPort: proxy.replicaPort,
        apiPort: proxy.apiPort,
      })),
      superuserPassword: this.superuserPassword,
    };
  }

  /** Stops agents gracefully (they stop PostgreSQL), then any postmaster left over, then etcd. */
  async stop(): Promise<void> {
    await Promise.all(this.proxies.map((proxy) => this.stopProxy(proxy.name).catch(() => undefined)));
    await Promise.all(this.nodes.map((node) => this.stopAgent(node.name).catch(() => undefined)));
    await Promise.all(this.nodes.map(async (node) => stopLeftoverPostmaster(node.dataDir)));
    await this.etcd.stop();
    await this.lab?.destroy();
    for (const list of this.relays.values()) for (const relay of list) await relay.close();
    for (const node of this.nodes) {
      // A tmpfs takes its contents with it: keep the agent's log next to it for the post-mortem.
      if (await isMountPoint(node.nodeDir)) await copyFile(node.logFile, `${node.nodeDir}-agent.log`).catch(() => undefined);
      await unmountTmpfs(node.nodeDir);
    }
  }

  /** Fills the file system of a node's directory (tmpfs nodes only) and returns how to give the space back. */
  async fillDisk(name: string): Promise<{ readonly bytes: number; readonly release: () => Promise<void> }> {
    const node = this.node(name);
    const stats = await statfs(node.nodeDir);
    const bytes = Number(stats.bavail) * Number(stats.bsize);
    const filler = join(node.nodeDir, 'disk-filler');
    await runCommand('fallocate', ['-l', String(bytes), filler]);
    return { bytes, release: async () => rm(filler, { force: true }) };
  }
}

async function mountTmpfs(dir: string, sizeMb: number): Promise<void> {
  try {
    await runCommand('mount', ['-t', 'tmpfs', '-o', `size=${sizeMb}m,mode=0777`, 'tmpfs', dir]);
  } catch (error) {
    throw new PgwardenError('PGW_LOCAL_PROCESS', `could not mount a ${sizeMb} MB tmpfs on ${dir} (needs root): ${describeError(error)}`);
  }
}

async function isMountPoint(dir: string): Promise<boolean> {
  const mounts = await readFile('/proc/self/mounts', 'utf8').catch(() => '');
  return mounts.split('\n').some((line) => line.split(' ')[1] === dir);
}

async function unmountTmpfs(dir: string): Promise<void> {
  if (await isMountPoint(dir)) await runCommand('umount', ['-l', dir]).catch(() => undefined);
}

/** A postmaster whose agent was killed keeps running: stop it by the PID in postmaster.pid. */
export async function stopLeftoverPostmaster(dataDir: string): Promise<void> {
  try {
    const text = await readFile(join(dataDir, 'postmaster.pid'), 'utf8');
    const pid = Number(text.split('\n')[0]);
    if (Number.isInteger(pid) && pid > 0 && isAlive(pid)) {
      // SIGINT = fast shutdown; stopPid escalates to SIGKILL after the grace period.
      await stopPid(pid, { signal: 'SIGINT', graceMs: 10_000 });
    }
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT')
      throw new PgwardenError('PGW_LOCAL_PROCESS', `could not stop the postmaster of ${dataDir}: ${describeError(error)}`);
  }
}

/** Stops a background cluster from its state file, by PID. */
export async function stopFromState(state: LocalClusterState): Promise<void> {
  await Promise.all(
    (state.proxies ?? []).map(async (proxy) => {
      if (proxy.pid !== undefined && isAlive(proxy.pid)) await stopPid(proxy.pid, { signal: 'SIGTERM', graceMs: 10_000 });
    }),
  );
  await Promise.all(
    state.nodes.map(async (node) => {
      if (node.agentPid !== undefined && isAlive(node.agentPid))
        await stopPid(node.agentPid, { signal: 'SIGTERM', graceMs: AGENT_STOP_GRACE_MS });
    }),
  );
  await Promise.all(state.nodes.map((node) => stopLeftoverPostmaster(node.dataDir)));
  await Promise.all(state.etcdPids.filter(isAlive).map((pid) => stopPid(pid, { signal: 'SIGTERM', graceMs: 2000 })));
}
