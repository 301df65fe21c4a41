// A real local cluster on 127.0.0.1: an etcd cluster plus N agents (each owning a PostgreSQL), started and stopped by PID.
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { copyFile, mkdir, readFile, rm, statfs, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { etcdConnection, openEtcdDcs, type EtcdDcs } from '../bin/adapters.js';
import { ClusterKeys } from '../dcs/keys.js';
import type { ClusterView } from '../core/types.js';
import { deadline } from '../util/abort.js';
import { AGENT_ENV, AGENT_NODE_FLAGS } from '../util/agent-process.js';
import { describeError, PgwardenError } from '../util/errors.js';
import { fencePidPathOf } from '../fence/fence-paths.js';
import { postmasterPidFrom } from '../postgres/postmaster-pid.js';
import { runCommand } from '../util/run-command.js';
import { waitUntil } from '../util/wait-until.js';
import { prepareNodes, type LocalNode } from './cluster-nodes.js';
import { openNetwork, type ClusterNetwork } from './cluster-network.js';
import { enableEtcdAuth, startEtcdCluster, type EtcdClientSecurity, type EtcdClusterHandle } from './etcd-cluster.js';
import type { FaultRelay } from './fault-relay.js';
import { fixedPorts, pickFreePorts } from './free-port.js';
import { AGENT_PID_FILE, PROXY_PID_FILE } from './cluster-processes.js';
import { renderLocalProxyConfig } from './local-proxy-config.js';
import type { NetnsLab } from './netns.js';
import { DEFAULT_DYNAMIC_CONFIG, LOCAL_REWIND_USER, type LocalTiming, type NodeTlsFiles } from './node-config.js';
import { generatePgCertificates, type CertificatePair, type PgCertificates } from './pg-certificates.js';
import { isAlive, spawnManaged, stopPid } from './process.js';
import { waitForExitSync } from '../util/process-alive.js';
import { isMountPoint, unmountTmpfs } from './tmpfs.js';
import { protectClusterDir, protectPrivateDir } from './dir-modes.js';
import { createEtcdTlsFiles } from './tls-certs.js';

export type { LocalNode } from './cluster-nodes.js';

/** The pgBackRest repository of a local cluster started with `backup: true` (--backup). */
export function backupRepositoryOf(dir: string): string {
  return join(dir, 'pgbackrest-repo');
}

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
  /** Extra bootstrap.dcs.postgresql.parameters (the dynamic config the cluster starts with), e.g. { wal_keep_segments: 100 }. */
  readonly bootstrapParameters?: Readonly<Record<string, string | number | boolean>>;
  /** Other bootstrap.dcs keys, e.g. { standby_cluster: { host, port } } for a standby cluster. */
  readonly bootstrapDcs?: Readonly<Record<string, unknown>>;
  /** postgresql.recovery_conf for every node, e.g. { restore_command: 'cp /archive/%f %p' }. */
  readonly recoveryConf?: Readonly<Record<string, string | number | boolean>>;
  /**
   * The `backup:` section of every node (pgBackRest); `true` is a posix repository in the cluster directory
   * (<dir>/pgbackrest-repo), shared by the nodes.
   */
  readonly backup?: true | Readonly<Record<string, unknown>>;
  /** Extra `postgresql` keys of every node, e.g. { create_replica_methods: ['pgbackrest', 'basebackup'], pgbackrest: {...} }. */
  readonly postgresqlExtra?: Readonly<Record<string, unknown>>;
  /** Extra `bootstrap` keys of every node, e.g. a custom bootstrap: { method: 'restore', restore: { command, recovery_conf } }. */
  readonly bootstrapExtra?: Readonly<Record<string, unknown>>;
  /**
   * Use this running etcd (loopback only) instead of starting one: several clusters (scopes) on one etcd. It is not
   * stopped with this cluster.
   */
  readonly sharedEtcd?: EtcdClusterHandle;
  /** The superuser and replication passwords, e.g. those of the cluster a standby cluster is a copy of. */
  readonly passwords?: { readonly superuser: string; readonly replication: string };
  /**
   * loopback (default): everything on 127.0.0.1. netns: each etcd member and each node in its own network namespace
   * on a private bridge (root only), so partitions, loss and latency are real network faults. relay: loopback, with
   * each agent reaching each etcd member through a TCP relay of this process that can stop moving bytes (no root).
   */
  readonly network?: 'loopback' | 'netns' | 'relay';
  /** Each node's directory (data, WAL, logs) on its own tmpfs of this many MB (root), so a disk can be filled. */
  readonly nodeTmpfsMb?: number;
  /** The nodes whose agents start with the cluster (default: all); the others wait for startAgent, as a member added later. */
  readonly agents?: readonly string[];
  /** Extra restapi keys for every node (a TLS REST API with certfile/keyfile/cafile, verify_client, authentication). */
  readonly restapi?: Readonly<Record<string, unknown>>;
  /**
   * REST API credentials generated for this cluster (default off): every node's restapi.authentication gets user
   * pgwarden and a random password, so unsafe endpoints (POST, PATCH, PUT, DELETE) need HTTP Basic auth; the CLI and
   * patronictl run with a node's config (0600) find them there. An explicit restapi.authentication wins.
   */
  readonly restAuth?: boolean;
  /** A ctl section in every node's config (what `pgwarden -c <node config>` uses to call the REST APIs). */
  readonly ctl?: Readonly<Record<string, unknown>>;
  /**
   * PostgreSQL over TLS only (default off): a CA, a server certificate per node and client certificates for the
   * superuser and replication users are made in <dir>/tls (openssl); every node runs with ssl on, pg_hba accepts TCP
   * only as hostssl with clientcert=verify-full, and the superuser, replication and rewind users connect with sslmode
   * verify-full and their own certificate.
   */
  readonly postgresTls?: boolean;
  /**
   * etcd serves clients over https and requires client certificates (--client-cert-auth): a CA, etcd's certificate and
   * the one client certificate agents, proxies and this process use are made with openssl in <dir>/etcd-tls (files
   * 0600; apart from postgresTls's <dir>/tls, which is made afresh and would take etcd's files with it).
   * Off by default here (it adds several seconds to every test cluster's start); `pgwarden local start` turns it on,
   * with etcdAuth and restAuth, unless --insecure.
   */
  readonly etcdTls?: boolean;
  /**
   * etcd authentication on (a root user, and user pgwarden whose role has readwrite on <namespace>/<scope>/ only);
   * agents and proxies connect with etcd3.username/password. Not with sharedEtcd.
   */
  readonly etcdAuth?: boolean;
  /**
   * Fixed ports instead of random free ones (see PORT_LAYOUT): etcd members from portBase, nodes (REST API, PostgreSQL)
   * from portBase + 10, proxies (primary, replica, API) from portBase + 30. Start fails if one is taken.
   */
  readonly portBase?: number;
  /** Aborting stops the start-up between steps and undoes what was started (SIGINT/SIGTERM of `pgwarden local start`). */
  readonly signal?: AbortSignal;
}

/** Offsets from LocalClusterOptions.portBase: room for 5 etcd members, 10 nodes and several proxies. */
export const PORT_LAYOUT = { etcd: 0, nodes: 10, proxies: 30 } as const;

/**
 * Spawns an agent for a node directory (log: agent.log, pid file: agent.pid beside its config), as the local cluster and
 * `pgwarden local restart` do. `prefix` runs it elsewhere (a network namespace).
 */
export function spawnAgentProcess(
  nodeDir: string,
  options: {
    readonly prefix?: readonly string[];
    readonly configPath?: string | undefined;
    readonly environment?: Readonly<Record<string, string>>;
  } = {},
): number {
  const prefix = options.prefix ?? [];
  const argv = [
    ...prefix,
    process.execPath,
    ...AGENT_NODE_FLAGS,
    AGENT_ENTRY,
    ...(options.configPath === undefined ? [] : [options.configPath]),
  ];
  const env = { ...process.env, ...AGENT_ENV, ...options.environment };
  const child = spawnManaged({ command: argv[0]!, args: argv.slice(1), logFile: join(nodeDir, 'agent.log'), env });
  writeFileSync(join(nodeDir, AGENT_PID_FILE), `${child.pid}\n`);
  return child.pid;
}

export interface LocalProxy {
  readonly name: string;
  readonly configPath: string;
  readonly logFile: string;
  readonly primaryPort: number;
  readonly replicaPort: number;
  readonly apiPort: number;
  /** The split listener's port, when the proxy was started with one. */
  readonly splitPort?: number;
  pid: number | undefined;
}

/** A split listener for a local proxy: its auth file and proxy.split settings (pool_size...). */
export interface LocalSplitSpec {
  readonly authFile: string;
  readonly settings?: Readonly<Record<string, string | number | boolean>>;
}

/** Extra `proxy:` settings for a local proxy (seconds, bytes), e.g. { hold_timeout: 5 }. */
export type LocalProxySettings = Readonly<Record<string, string | number | boolean>>;

/** What a background cluster leaves on disk so that `pgwarden local stop` can find its processes. */
export interface LocalClusterState {
  readonly dir: string;
  readonly scope: string;
  readonly namespace: string;
  readonly etcdEndpoints: readonly string[];
  /** TLS files and credentials of etcd's clients, when the cluster was started with etcdTls or etcdAuth. */
  readonly etcdClient?: EtcdClientSecurity;
  /** etcd's root password (etcdctl --user root:...), when the cluster was started with etcdAuth. */
  readonly etcdRootPassword?: string;
  /** restapi.authentication of every node, when the cluster was started with restAuth. */
  readonly restapiAuthentication?: RestCredentials;
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

export const DEFAULT_TIMING: LocalTiming = DEFAULT_DYNAMIC_CONFIG;
const AGENT_ENTRY = fileURLToPath(new URL('../bin/agent.js', import.meta.url));
const CLI_ENTRY = fileURLToPath(new URL('../bin/pgwarden.js', import.meta.url));
const AGENT_STOP_GRACE_MS = 30_000;
const AGENT_KILL_WAIT_MS = 2_000;
/** fillDisk stops below this much free space: far too little for a new WAL segment (16 MB). */
const FILL_REMAINDER_BYTES = 64 * 1024;
/** A proxy answers its API within a second or two; 15 s leaves room for a loaded CI machine. */
const PROXY_START_TIMEOUT_MS = 15_000;
/** Agents get the process settings of a production agent (src/util/agent-process.ts). */
export { AGENT_NODE_FLAGS };

/** Undo actions of the start-up steps done so far, run newest first when a later step fails. */
class StartupUndo {
  readonly #actions: (() => Promise<void>)[] = [];

  push(action: () => Promise<void>): void {
    this.#actions.push(action);
  }

  /** From here on one action (the cluster's stop) undoes everything. */
  replaceAll(action: () => Promise<void>): void {
    this.#actions.splice(0, this.#actions.length, action);
  }

  async run(): Promise<void> {
    for (const action of this.#actions.reverse()) await action().catch(() => undefined);
  }
}

function nodeTlsFiles(certificates: PgCertificates, name: string): NodeTlsFiles {
  const pairOf = (pair: CertificatePair | undefined, what: string): CertificatePair => {
    if (pair === undefined) throw new PgwardenError('PGW_INTERNAL', `no ${what} certificate was made for ${name}`);
    return pair;
  };
  return {
    caFile: certificates.ca.certFile,
    server: pairOf(certificates.servers.get(name), 'server'),
    superuser: pairOf(certificates.clients.get('postgres'), 'superuser'),
    replication: pairOf(certificates.clients.get('replicator'), 'replication'),
    rewind: pairOf(certificates.clients.get(LOCAL_REWIND_USER), 'rewind'),
  };
}

/** HTTP Basic credentials of the REST API's unsafe endpoints (restapi.authentication). */
export interface RestCredentials {
  readonly username: string;
  readonly password: string;
}

interface ClusterParts {
  readonly etcdRootPassword: string | undefined;
  readonly restCredentials: RestCredentials | undefined;
  readonly dir: string;
  readonly scope: string;
  readonly namespace: string;
  readonly nodes: LocalNode[];
  readonly etcd: EtcdClusterHandle;
  readonly network: ClusterNetwork;
  readonly superuserPassword: string;
  readonly postgresTls: PgCertificates | undefined;
  readonly portBase: number | undefined;
}

export class LocalCluster {
  readonly dir: string;
  readonly scope: string;
  readonly namespace: string;
  readonly nodes: LocalNode[];
  readonly etcd: EtcdClusterHandle;
  readonly superuserPassword: string;
  /** etcd's root password when the cluster was started with etcdAuth (for etcdctl --user root:...). */
  readonly etcdRootPassword: string | undefined;
  /** The REST API's credentials when the cluster was started with restAuth (they are in every node's config too). */
  readonly restCredentials: RestCredentials | undefined;
  readonly proxies: LocalProxy[] = [];
  /** The network-namespace lab when started with network: 'netns'. */
  readonly lab: NetnsLab | undefined;
  /** network: 'relay': each node's relays to the etcd members, by node name. */
  readonly relays: ReadonlyMap<string, FaultRelay[]>;
  /** The certificates when started with postgresTls: clients use `ca` and the user's entry of `clients`. */
  readonly postgresTls: PgCertificates | undefined;
  readonly #network: ClusterNetwork;
  readonly #portBase: number | undefined;

  private constructor(parts: ClusterParts) {
    this.dir = parts.dir;
    this.scope = parts.scope;
    this.namespace = parts.namespace;
    this.nodes = parts.nodes;
    this.etcd = parts.etcd;
    this.superuserPassword = parts.superuserPassword;
    this.etcdRootPassword = parts.etcdRootPassword;
    this.restCredentials = parts.restCredentials;
    this.#network = parts.network;
    this.lab = parts.network.lab;
    this.relays = parts.network.relays;
    this.postgresTls = parts.postgresTls;
    this.#portBase = parts.portBase;
  }

  /**
   * Starts the cluster in steps, each undone if a later one fails: the network (loopback, namespaces or relays), etcd,
   * the node configs, the agents, the proxies. Returns once the proxies answer; the agents elect a leader after that.
   */
  static async start(options: LocalClusterOptions): Promise<LocalCluster> {
    const scope = options.scope ?? 'pgwarden';
    const namespace = options.namespace ?? '/service';
    const etcdNames = Array.from({ length: options.etcdMembers ?? 3 }, (_unused, index) => `etcd${index + 1}`);
    const nodeNames = Array.from({ length: options.nodes ?? 3 }, (_unused, index) => `node${index + 1}`);
    // Parents keep the usual mode (postgres must pass through them, e.g. a fresh .pgwarden/); the cluster dir is closed.
    await mkdir(dirname(options.dir), { recursive: true });
    await mkdir(options.dir, { recursive: true, mode: 0o700 });
    // PostgreSQL runs as the postgres user and must be able to reach its data dir through this one: traverse, no more.
    await protectClusterDir(options.dir);
    const undo = new StartupUndo();
    const portBase = options.portBase;
    const checkAborted = (): void => {
      if (options.signal?.aborted === true)
        throw new PgwardenError('PGW_CLI_ABORTED', 'local cluster start-up interrupted: what was started is being stopped', {
          context: { path: options.dir },
        });
    };
    try {
      checkAborted();
      // Namespace hosts are numbered in this order: etcd members first, then nodes.
      const network = await openNetwork(options.network ?? 'loopback', [...etcdNames, ...nodeNames]);
      undo.push(() => network.close());
      const sharedEtcd = network.lab === undefined ? options.sharedEtcd : undefined;
      const isOwnEtcd = sharedEtcd === undefined;
      const tlsFiles =
        options.etcdTls === true && isOwnEtcd
          ? await createEtcdTlsFiles(
              join(options.dir, 'etcd-tls'),
              [...new Set(['127.0.0.1', ...etcdNames.map((name) => network.host(name))])],
              // etcd refuses gateway requests from a certificate with a CN when authentication is on too.
              options.etcdAuth === true ? '/O=pgwarden' : undefined,
            )
          : undefined;
      const etcd =
        sharedEtcd !== undefined
          ? borrowedEtcd(sharedEtcd)
          : await startEtcdCluster({
              size: etcdNames.length,
              dir: join(options.dir, 'etcd'),
              ...(portBase === undefined
                ? {}
                : { ports: await fixedPorts(portBase + PORT_LAYOUT.etcd, etcdNames.length * 2, 'etcd client and peer ports') }),
              ...(network.lab === undefined
                ? {}
                : { hosts: etcdNames.map((name) => network.host(name)), wrap: (index: number) => network.wrap(etcdNames[index]!) }),
              ...(tlsFiles === undefined
                ? {}
                : {
                    tls: {
                      ca: tlsFiles.ca.cert,
                      cert: tlsFiles.server.cert,
                      key: tlsFiles.server.key,
                      isClientCertRequired: true,
                      client: tlsFiles.client,
                    },
                  }),
            });
      undo.push(() => etcd.stop());
      const etcdRootPassword = options.etcdAuth === true && isOwnEtcd ? randomBytes(9).toString('base64url') : undefined;
      if (etcdRootPassword !== undefined)
        await enableEtcdAuth(etcd, {
          rootPassword: etcdRootPassword,
          username: 'pgwarden',
          password: randomBytes(9).toString('base64url'),
          prefixes: [new ClusterKeys(namespace, scope).prefix],
        });
      checkAborted();
      const superuserPassword = options.passwords?.superuser ?? randomBytes(9).toString('base64url');
      const etcdHosts = await network.connectNodes(nodeNames, etcd.endpoints);
      const restCredentials: RestCredentials | undefined =
        options.restAuth === true ? { username: 'pgwarden', password: randomBytes(12).toString('base64url') } : undefined;
      const restapi = restCredentials === undefined ? options.restapi : { authentication: restCredentials, ...options.restapi };
      const certificates =
        options.postgresTls === true
          ? await generatePgCertificates({
              dir: join(options.dir, 'tls'),
              servers: nodeNames.map((name) => ({ name, host: network.host(name) })),
              users: ['postgres', 'replicator', LOCAL_REWIND_USER],
            })
          : undefined;
      const nodes = await prepareNodes({
        dir: options.dir,
        names: nodeNames,
        scope,
        namespace,
        timing: options.timing ?? DEFAULT_TIMING,
        binDir: options.binDir ?? '/usr/lib/postgresql/15/bin',
        superuserPassword,
        replicationPassword: options.passwords?.replication ?? randomBytes(9).toString('base64url'),
        hostOf: (name) => network.host(name),
        etcdHostsOf: (name) => etcdHosts.get(name) ?? [],
        etcdSecurity: etcd.client,
        hbaNetwork: network.hbaNetwork,
        ...(options.tags !== undefined ? { tags: options.tags } : {}),
        ...(options.callbacks !== undefined ? { callbacks: options.callbacks } : {}),
        ...(options.parameters !== undefined ? { parameters: options.parameters } : {}),
        ...(options.bootstrapParameters !== undefined ? { bootstrapParameters: options.bootstrapParameters } : {}),
        ...(options.bootstrapDcs !== undefined ? { bootstrapDcs: options.bootstrapDcs } : {}),
        ...(options.recoveryConf !== undefined ? { recoveryConf: options.recoveryConf } : {}),
        ...(options.backup !== undefined
          ? { backup: options.backup === true ? { repository: backupRepositoryOf(options.dir) } : options.backup }
          : {}),
        ...(options.postgresqlExtra !== undefined ? { postgresqlExtra: options.postgresqlExtra } : {}),
        ...(options.bootstrapExtra !== undefined ? { bootstrapExtra: options.bootstrapExtra } : {}),
        ...(options.nodeTmpfsMb !== undefined ? { nodeTmpfsMb: options.nodeTmpfsMb } : {}),
        ...(restapi !== undefined ? { restapi } : {}),
        ...(options.ctl !== undefined ? { ctl: options.ctl } : {}),
        ...(certificates !== undefined ? { postgresTlsOf: (name: string) => nodeTlsFiles(certificates, name) } : {}),
        ...(portBase === undefined
          ? {}
          : { ports: await fixedPorts(portBase + PORT_LAYOUT.nodes, nodeNames.length * 2, 'node REST API and PostgreSQL ports') }),
      });
      undo.push(async () => {
        for (const node of nodes) await unmountTmpfs(node.nodeDir);
      });
      const cluster = new LocalCluster({
        dir: options.dir,
        scope,
        namespace,
        nodes,
        etcd,
        network,
        superuserPassword,
        postgresTls: certificates,
        etcdRootPassword,
        restCredentials,
        portBase,
      });
      undo.replaceAll(() => cluster.stop());
      for (const node of nodes) {
        checkAborted();
        if (options.agents === undefined || options.agents.includes(node.name)) cluster.startAgent(node.name);
      }
      for (let index = 0; index < (options.proxies ?? 0); index++) {
        checkAborted();
        await cluster.startProxy(options.proxySettings);
      }
      checkAborted();
      return cluster;
    } catch (error) {
      await undo.run();
      throw error;
    }
  }

  node(name: string): LocalNode {
    const node = this.nodes.find((candidate) => candidate.name === name);
    if (node === undefined)
      throw new PgwardenError(
        'PGW_LOCAL_PROCESS',
        `no local node named ${name}; this cluster has ${this.nodes.map((candidate) => candidate.name).join(', ')}`,
        {
          context: { member: name },
        },
      );
    return node;
  }

  /**
   * Starts the node's agent (a no-op while one runs). `environment` adds variables (PATRONI_*); with `withoutConfigFile`
   * the agent gets no config path and must be configured by the environment alone, as in Patroni's container images.
   */
  startAgent(
    name: string,
    options: { readonly environment?: Readonly<Record<string, string>>; readonly withoutConfigFile?: boolean } = {},
  ): number {
    const node = this.node(name);
    if (node.agentPid !== undefined && isAlive(node.agentPid)) return node.agentPid;
    node.agentPid = spawnAgentProcess(node.nodeDir, {
      prefix: this.lab?.wrap(name) ?? [],
      configPath: options.withoutConfigFile === true ? undefined : node.configPath,
      ...(options.environment !== undefined ? { environment: options.environment } : {}),
    });
    return node.agentPid;
  }

  /**
   * The role a local proxy reads replication positions with: the lab's superuser (a production proxy takes a role with
   * pg_monitor only, see the README), over TLS with its client certificate when the cluster runs PostgreSQL over TLS.
   */
  #proxyMonitor(): Readonly<Record<string, string>> {
    const tls = this.postgresTls;
    const client = tls?.clients.get('postgres');
    return {
      username: 'postgres',
      password: this.superuserPassword,
      ...(tls !== undefined && client !== undefined
        ? { sslmode: 'verify-full', sslrootcert: tls.ca.certFile, sslcert: client.certFile, sslkey: client.keyFile }
        : {}),
    };
  }

  /** Starts a `pgwarden proxy` for this cluster on free ports and waits until its API answers. */
  async startProxy(settings: LocalProxySettings = {}, split?: LocalSplitSpec): Promise<LocalProxy> {
    const name = `proxy${this.proxies.length + 1}`;
    const proxyDir = join(this.dir, name);
    await mkdir(proxyDir, { recursive: true, mode: 0o700 });
    await protectPrivateDir(proxyDir);
    const [primaryPort, replicaPort, apiPort] = (
      this.#portBase === undefined
        ? await pickFreePorts(3)
        : await fixedPorts(this.#portBase + PORT_LAYOUT.proxies + 3 * this.proxies.length, 3, `${name} primary, replica and API`)
    ) as [number, number, number];
    const splitPort = split === undefined ? undefined : (await pickFreePorts(1))[0]!;
    const configPath = join(proxyDir, 'proxy.yml');
    await writeFile(
      configPath,
      renderLocalProxyConfig({
        name,
        scope: this.scope,
        namespace: this.namespace,
        etcdEndpoints: this.etcd.endpoints,
        etcdSecurity: this.etcd.client,
        primaryPort,
        replicaPort,
        apiPort,
        settings,
        monitor: this.#proxyMonitor(),
        ...(split === undefined || splitPort === undefined
          ? {}
          : { split: { port: splitPort, authFile: split.authFile, settings: split.settings ?? {} } }),
      }),
      // It may hold the etcd password.
      { mode: 0o600 },
    );
    const logFile = join(proxyDir, 'proxy.log');
    const child = spawnManaged({ command: process.execPath, args: [CLI_ENTRY, 'proxy', configPath], logFile });
    writeFileSync(join(proxyDir, PROXY_PID_FILE), `${child.pid}\n`);
    const proxy: LocalProxy = {
      name,
      configPath,
      logFile,
      primaryPort,
      replicaPort,
      apiPort,
      ...(splitPort === undefined ? {} : { splitPort }),
      pid: child.pid,
    };
    this.proxies.push(proxy);
    let hasExited = false;
    const isUp = await waitUntil(
      async () => {
        hasExited = !isAlive(child.pid);
        if (hasExited) return 'exited';
        const response = await fetch(`http://127.0.0.1:${apiPort}/status`, { signal: AbortSignal.timeout(1000) });
        return response.ok;
      },
      { timeoutMs: PROXY_START_TIMEOUT_MS, describe: `${name} to answer on its API port ${apiPort}` },
    ).then(
      (value) => value === true,
      () => false,
    );
    if (isUp) return proxy;
    const log = await readFile(logFile, 'utf8').catch(() => '');
    throw new PgwardenError(
      'PGW_LOCAL_PROCESS',
      `${name} ${hasExited ? 'exited' : `did not answer within ${PROXY_START_TIMEOUT_MS / 1000} s`} (see ${logFile}): ${log.split('\n').slice(-3).join(' ')}`,
      { context: { member: name, path: logFile, command: [process.execPath, CLI_ENTRY, 'proxy', configPath] } },
    );
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
      // A SIGKILLed process closes its sockets a moment before it is gone: a caller that sees the REST port refuse and
      // starts the agent again must not find the dying PID still alive (startAgent would take it for a running agent).
      if (signal === 'SIGKILL') waitForExitSync(node.agentPid, AGENT_KILL_WAIT_MS);
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
      const pid = postmasterPidFrom(await readFile(join(this.node(name).dataDir, 'postmaster.pid'), 'utf8'));
      return pid !== undefined && isAlive(pid) ? pid : undefined;
    } catch {
      return undefined;
    }
  }

  async killPostmaster(name: string, signal: NodeJS.Signals = 'SIGKILL'): Promise<number | undefined> {
    const pid = await this.postmasterPid(name);
    if (pid !== undefined) process.kill(pid, signal);
    return pid;
  }

  /** A DCS client of this cluster (TLS and credentials as its agents have them); the caller closes it. */
  openDcs(member = '__local_observer'): EtcdDcs {
    return openEtcdDcs({
      ...etcdConnection({ hosts: this.etcd.endpoints, protocol: 'http', ...this.etcd.client }),
      namespace: this.namespace,
      scope: this.scope,
      member,
    });
  }

  /** A read-only DCS client for tests and the CLI view of this cluster. */
  async view(timeoutMs = 3000): Promise<ClusterView> {
    const dcs = this.openDcs();
    try {
      return await dcs.loadCluster(deadline(timeoutMs));
    } finally {
      await dcs.close();
    }
  }

  /** Merges `patch` into the dynamic configuration (compare-and-set on its revision, retried a few times). */
  async patchConfig(patch: Readonly<Record<string, unknown>>, timeoutMs = 5000): Promise<void> {
    const dcs = this.openDcs();
    try {
      for (let attempt = 0; attempt < 5; attempt++) {
        const view = await dcs.loadCluster(deadline(timeoutMs));
        if (view.config === undefined) throw new PgwardenError('PGW_LOCAL_PROCESS', 'the cluster has no dynamic configuration yet');
        if (await dcs.setConfig({ ...view.config, ...patch }, view.configRevision, deadline(timeoutMs))) return;
      }
      throw new PgwardenError('PGW_LOCAL_PROCESS', 'the dynamic configuration kept changing under the update', { context: { patch } });
    } finally {
      await dcs.close();
    }
  }

  /** libpq multi-host connection string that always lands on the writable primary (without the password: to print). */
  connectionString(targetSessionAttrs = 'read-write', hasPassword = true): string {
    const hosts = this.nodes.map((node) => `${node.host}:${node.pgPort}`).join(',');
    const user = hasPassword ? `postgres:${encodeURIComponent(this.superuserPassword)}` : 'postgres';
    return `postgresql://${user}@${hosts}/postgres?target_session_attrs=${targetSessionAttrs}&connect_timeout=2`;
  }

  state(): LocalClusterState {
    return {
      dir: this.dir,
      scope: this.scope,
      namespace: this.namespace,
      etcdEndpoints: this.etcd.endpoints,
      ...(Object.keys(this.etcd.client).length > 0 ? { etcdClient: this.etcd.client } : {}),
      ...(this.etcdRootPassword !== undefined ? { etcdRootPassword: this.etcdRootPassword } : {}),
      ...(this.restCredentials !== undefined ? { restapiAuthentication: this.restCredentials } : {}),
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
    // A killed agent's fence outlives it by design (it enforces the last deadline): here everything stops.
    await Promise.all(this.nodes.map(async (node) => stopLeftoverFence(node.dataDir)));
    await this.etcd.stop();
    await this.#network.close();
    for (const node of this.nodes) {
      // A tmpfs takes its contents with it: keep the agent's log next to it for the post-mortem.
      if (await isMountPoint(node.nodeDir)) await copyFile(node.logFile, `${node.nodeDir}-agent.log`).catch(() => undefined);
      await unmountTmpfs(node.nodeDir);
    }
  }

  /** Fills the file system of a node's directory (tmpfs nodes only) and returns how to give the space back. */
  async fillDisk(name: string): Promise<{ readonly bytes: number; readonly release: () => Promise<void> }> {
    const node = this.node(name);
    const freeBytes = async (): Promise<number> => {
      const stats = await statfs(node.nodeDir);
      return Number(stats.bavail) * Number(stats.bsize);
    };
    // PostgreSQL keeps writing WAL meanwhile: what statfs called free may be gone when fallocate (all or nothing)
    // asks for it. Fill in pieces, halving a piece that no longer fits, until less than FILL_REMAINDER_BYTES is left.
    const fillers: string[] = [];
    let bytes = 0;
    let lastError: unknown;
    let piece = await freeBytes();
    while (piece >= FILL_REMAINDER_BYTES) {
      const filler = join(node.nodeDir, `disk-filler-${fillers.length}`);
      try {
        await runCommand('fallocate', ['-l', String(piece), filler]);
        fillers.push(filler);
        bytes += piece;
        piece = await freeBytes();
      } catch (error) {
        lastError = error;
        await rm(filler, { force: true });
        piece = Math.floor(piece / 2);
      }
    }
    const release = async (): Promise<void> => {
      for (const filler of fillers) await rm(filler, { force: true });
    };
    if (bytes === 0 && lastError !== undefined)
      throw new PgwardenError('PGW_LOCAL_PROCESS', `could not fill the disk of ${name}: ${describeError(lastError)}`, {
        context: { member: name, path: node.nodeDir, command: ['fallocate'], hint: 'nodes need their own tmpfs (nodeTmpfsMb, root)' },
        cause: lastError,
      });
    return { bytes, release };
  }
}

/** Another cluster's etcd, used but not owned: this cluster neither stops it nor counts its processes as its own. */
function borrowedEtcd(etcd: EtcdClusterHandle): EtcdClusterHandle {
  const notOwned = (): Promise<void> =>
    Promise.reject(new PgwardenError('PGW_LOCAL_PROCESS', "this cluster uses another cluster's etcd: stop or start its members there"));
  return {
    endpoints: etcd.endpoints,
    client: etcd.client,
    members: [],
    stopMember: notOwned,
    killMember: notOwned,
    startMember: notOwned,
    leaderIndex: () => Promise.resolve(undefined),
    stop: () => Promise.resolve(),
  };
}

/** A postmaster whose agent was killed keeps running: stop it by the PID in postmaster.pid. */
export async function stopLeftoverPostmaster(dataDir: string): Promise<void> {
  try {
    const pid = postmasterPidFrom(await readFile(join(dataDir, 'postmaster.pid'), 'utf8'));
    if (pid !== undefined && isAlive(pid)) {
      // SIGINT = fast shutdown; stopPid escalates to SIGKILL after the grace period.
      await stopPid(pid, { signal: 'SIGINT', graceMs: 10_000 });
    }
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT')
      throw new PgwardenError('PGW_LOCAL_PROCESS', `could not stop the postmaster of ${dataDir}: ${describeError(error)}`);
  }
}

/** The PID of the fence process of a data dir, from the file it keeps while it runs. */
export async function fencePidOf(dataDir: string): Promise<number | undefined> {
  const text = await readFile(fencePidPathOf(dataDir), 'utf8').catch(() => '');
  const pid = Number.parseInt(text.trim(), 10);
  return Number.isInteger(pid) && pid > 0 && isAlive(pid) ? pid : undefined;
}

export async function stopLeftoverFence(dataDir: string): Promise<void> {
  const pid = await fencePidOf(dataDir);
  if (pid !== undefined) await stopPid(pid, { signal: 'SIGTERM', graceMs: 2000 });
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
  await Promise.all(state.nodes.map((node) => stopLeftoverFence(node.dataDir)));
  await Promise.all(state.etcdPids.filter(isAlive).map((pid) => stopPid(pid, { signal: 'SIGTERM', graceMs: 2000 })));
}
