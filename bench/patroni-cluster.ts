// A real Patroni 3.0.2 cluster (Debian's `patroni`) next to pgwarden's local cluster, for side-by-side benchmarks:
// same PostgreSQL settings as src/local/node-config.ts, run as the postgres OS user, stopped by PID.
import { execFileSync } from 'node:child_process';
import { chown, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { pickFreePorts } from '../src/local/free-port.js';
import { stopLeftoverPostmaster } from '../src/local/local-cluster.js';
import type { LocalTiming } from '../src/local/node-config.js';
import { spawnManaged, stopPid } from '../src/local/process.js';
import { LOCAL_BOOTSTRAP_PARAMETERS } from '../src/local/node-config.js';

export interface PatroniNode {
  readonly name: string;
  readonly nodeDir: string;
  readonly dataDir: string;
  readonly apiPort: number;
  readonly pgPort: number;
  readonly logFile: string;
  pid: number | undefined;
}

export interface PatroniClusterOptions {
  readonly dir: string;
  readonly etcdEndpoints: readonly string[];
  readonly scope: string;
  readonly timing: LocalTiming;
  readonly nodes?: number;
  readonly superuserPassword: string;
  readonly binDir?: string;
}

/** Patroni can take a while to stop PostgreSQL and release its key; after this it is killed. */
const STOP_GRACE_MS = 30_000;

function postgresIds(): { uid: number; gid: number } {
  const id = (flag: string): number => Number(execFileSync('id', [flag, 'postgres'], { encoding: 'utf8' }).trim());
  return { uid: id('-u'), gid: id('-g') };
}

export class PatroniCluster {
  readonly nodes: PatroniNode[];
  readonly superuserPassword: string;

  private constructor(nodes: PatroniNode[], superuserPassword: string) {
    this.nodes = nodes;
    this.superuserPassword = superuserPassword;
  }

  static async start(options: PatroniClusterOptions): Promise<PatroniCluster> {
    const { uid, gid } = postgresIds();
    const count = options.nodes ?? 3;
    const ports = await pickFreePorts(count * 2);
    await mkdir(options.dir, { recursive: true });
    const nodes: PatroniNode[] = [];
    for (let index = 0; index < count; index++) {
      const name = `node${index + 1}`;
      const nodeDir = join(options.dir, name);
      await mkdir(nodeDir, { recursive: true });
      await chown(nodeDir, uid, gid);
      const apiPort = ports[index * 2]!;
      const pgPort = ports[index * 2 + 1]!;
      const config = {
        scope: options.scope,
        namespace: '/service/',
        name,
        log: { level: 'INFO' },
        restapi: { listen: `127.0.0.1:${apiPort}`, connect_address: `127.0.0.1:${apiPort}` },
        etcd3: { hosts: options.etcdEndpoints.map((endpoint) => endpoint.replace(/^https?:\/\//, '')).join(',') },
        bootstrap: {
          dcs: {
            ttl: options.timing.ttl,
            loop_wait: options.timing.loop_wait,
            retry_timeout: options.timing.retry_timeout,
            maximum_lag_on_failover: 1048576,
            postgresql: {
              use_pg_rewind: true,
              use_slots: true,
              // wal_keep_size: pgwarden's renderer sets 128MB itself; Patroni gets it from the config.
              parameters: { ...LOCAL_BOOTSTRAP_PARAMETERS, wal_keep_size: '128MB' },
            },
          },
          initdb: [{ encoding: 'UTF8' }, { locale: 'C.UTF-8' }, 'data-checksums'],
        },
        postgresql: {
          listen: `127.0.0.1:${pgPort}`,
          connect_address: `127.0.0.1:${pgPort}`,
          data_dir: join(nodeDir, 'data'),
          bin_dir: options.binDir ?? '/usr/lib/postgresql/15/bin',
          pgpass: join(nodeDir, 'pgpass'),
          authentication: {
            superuser: { username: 'postgres', password: options.superuserPassword },
            replication: { username: 'replicator', password: options.superuserPassword },
          },
          parameters: { unix_socket_directories: nodeDir, shared_buffers: '32MB' },
          pg_hba: [
            'local all all scram-sha-256',
            'host replication replicator 127.0.0.1/32 scram-sha-256',
            'host all all 127.0.0.1/32 scram-sha-256',
          ],
        },
        watchdog: { mode: 'off' },
        tags: { nofailover: false, noloadbalance: false, clonefrom: false, nosync: false },
      };
      const configPath = join(nodeDir, 'patroni.yml');
      await writeFile(configPath, stringify(config), { mode: 0o600 });
      await chown(configPath, uid, gid);
      nodes.push({ name, nodeDir, dataDir: join(nodeDir, 'data'), apiPort, pgPort, logFile: join(nodeDir, 'patroni.log'), pid: undefined });
    }
    const cluster = new PatroniCluster(nodes, options.superuserPassword);
    // All at once, like pgwarden's local cluster: they race for the initialize key and the losers clone.
    for (const node of nodes) {
      const child = spawnManaged({
        command: 'patroni',
        args: [join(node.nodeDir, 'patroni.yml')],
        logFile: node.logFile,
        cwd: node.nodeDir,
        env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: node.nodeDir, LANG: 'C.UTF-8' },
        uid,
        gid,
      });
      node.pid = child.pid;
    }
    return cluster;
  }

  /** SIGTERM (Patroni stops PostgreSQL and releases its keys), SIGKILL after a grace, then any leftover postmaster. */
  async stop(): Promise<void> {
    await Promise.all(
      this.nodes.map(async (node) => {
        if (node.pid !== undefined) await stopPid(node.pid, { signal: 'SIGTERM', graceMs: STOP_GRACE_MS });
        node.pid = undefined;
      }),
    );
    await Promise.all(this.nodes.map((node) => stopLeftoverPostmaster(node.dataDir).catch(() => undefined)));
  }
}
