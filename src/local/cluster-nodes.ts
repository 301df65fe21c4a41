// The node-config step of a local cluster: each node's directory (on its own tmpfs if asked), ports and rendered
// pgwarden.yml. Nothing runs yet; the agents are started from these records.
import { mkdir, writeFile } from 'node:fs/promises';
import { protectNodeDir } from './dir-modes.js';
import { join } from 'node:path';
import type { EtcdClientSecurity } from './etcd-cluster.js';
import { pickFreePorts } from './free-port.js';
import { renderNodeConfig, type LocalTiming, type NodeTlsFiles } from './node-config.js';
import { mountTmpfs, unmountTmpfs } from './tmpfs.js';

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

export interface NodeSetup {
  readonly dir: string;
  readonly names: readonly string[];
  readonly scope: string;
  readonly namespace: string;
  readonly timing: LocalTiming;
  readonly binDir: string;
  readonly superuserPassword: string;
  readonly replicationPassword: string;
  /** Where each node listens. */
  readonly hostOf: (name: string) => string;
  /** What each node's config lists as etcd3.hosts. */
  readonly etcdHostsOf: (name: string) => readonly string[];
  /** etcd3.protocol, cacert, cert, key, username, password of every node. */
  readonly etcdSecurity?: EtcdClientSecurity;
  readonly hbaNetwork: string | undefined;
  readonly tags?: Readonly<Record<string, Readonly<Record<string, unknown>>>>;
  readonly callbacks?: Readonly<Record<string, string>>;
  readonly parameters?: Readonly<Record<string, string | number | boolean>>;
  readonly bootstrapParameters?: Readonly<Record<string, string | number | boolean>>;
  readonly bootstrapDcs?: Readonly<Record<string, unknown>>;
  readonly recoveryConf?: Readonly<Record<string, string | number | boolean>>;
  readonly backup?: Readonly<Record<string, unknown>>;
  readonly postgresqlExtra?: Readonly<Record<string, unknown>>;
  readonly bootstrapExtra?: Readonly<Record<string, unknown>>;
  readonly nodeTmpfsMb?: number;
  readonly restapi?: Readonly<Record<string, unknown>>;
  readonly ctl?: Readonly<Record<string, unknown>>;
  /** Each node's certificate files when PostgreSQL runs over TLS, by node name. */
  readonly postgresTlsOf?: (name: string) => NodeTlsFiles;
  /** REST API and PostgreSQL port of each node in turn (2 per node); free ports picked at random when absent. */
  readonly ports?: readonly number[];
}

/** Writes every node's directory and config; on failure unmounts what it mounted. */
export async function prepareNodes(setup: NodeSetup): Promise<LocalNode[]> {
  const ports = setup.ports ?? (await pickFreePorts(setup.names.length * 2));
  const nodes: LocalNode[] = [];
  const mounted: string[] = [];
  try {
    for (const [index, name] of setup.names.entries()) {
      const nodeDir = join(setup.dir, name);
      await mkdir(nodeDir, { recursive: true, mode: 0o700 });
      if (setup.nodeTmpfsMb !== undefined) {
        await mountTmpfs(nodeDir, setup.nodeTmpfsMb);
        mounted.push(nodeDir);
      }
      // PostgreSQL runs as the postgres user, creates its data dir and its socket in here: its own, and no one else's.
      await protectNodeDir(nodeDir);
      const apiPort = ports[index * 2]!;
      const pgPort = ports[index * 2 + 1]!;
      const host = setup.hostOf(name);
      const configPath = join(nodeDir, 'pgwarden.yml');
      const yaml = renderNodeConfig({
        scope: setup.scope,
        namespace: setup.namespace,
        name,
        apiPort,
        pgPort,
        host,
        ...(setup.hbaNetwork === undefined ? {} : { hbaNetwork: setup.hbaNetwork }),
        nodeDir,
        etcdHosts: setup.etcdHostsOf(name),
        ...(setup.etcdSecurity !== undefined ? { etcdSecurity: setup.etcdSecurity } : {}),
        timing: setup.timing,
        superuserPassword: setup.superuserPassword,
        replicationPassword: setup.replicationPassword,
        binDir: setup.binDir,
        ...(setup.tags?.[name] !== undefined ? { tags: setup.tags[name] } : {}),
        ...(setup.callbacks !== undefined ? { callbacks: setup.callbacks } : {}),
        ...(setup.parameters !== undefined ? { extraParameters: setup.parameters } : {}),
        ...(setup.bootstrapParameters !== undefined ? { bootstrapParameters: setup.bootstrapParameters } : {}),
        ...(setup.bootstrapDcs !== undefined ? { bootstrapDcs: setup.bootstrapDcs } : {}),
        ...(setup.recoveryConf !== undefined ? { recoveryConf: setup.recoveryConf } : {}),
        ...(setup.backup !== undefined ? { backup: setup.backup } : {}),
        ...(setup.postgresqlExtra !== undefined ? { postgresqlExtra: setup.postgresqlExtra } : {}),
        ...(setup.bootstrapExtra !== undefined ? { bootstrapExtra: setup.bootstrapExtra } : {}),
        ...(setup.restapi !== undefined ? { restapi: setup.restapi } : {}),
        ...(setup.ctl !== undefined ? { ctl: setup.ctl } : {}),
        ...(setup.postgresTlsOf !== undefined ? { postgresTls: setup.postgresTlsOf(name) } : {}),
      });
      // The config holds the superuser and replication passwords.
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
    return nodes;
  } catch (error) {
    for (const dir of mounted) await unmountTmpfs(dir);
    throw error;
  }
}
