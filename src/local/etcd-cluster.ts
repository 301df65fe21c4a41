// A real etcd cluster on 127.0.0.1 for the local cluster and tests: start, stop and restart members by PID.
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { chmod, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { PgwardenError } from '../util/errors.js';
import { requestText, type TlsClientOptions } from '../util/http-request.js';
import { runCommand } from '../util/run-command.js';
import { waitUntil } from '../util/wait-until.js';
import { writeFileSync } from 'node:fs';
import { etcdPidFileOf } from './cluster-processes.js';
import { pickFreePorts } from './free-port.js';
import { isAlive, spawnManaged, stopPid } from './process.js';

export interface EtcdMember {
  readonly name: string;
  readonly clientUrl: string;
  readonly peerUrl: string;
  readonly dataDir: string;
  readonly logFile: string;
  pid: number | undefined;
}

/** What a client of this etcd needs besides its endpoints (etcd3.* keys): TLS file paths and credentials. */
export interface EtcdClientSecurity {
  readonly protocol?: 'http' | 'https';
  readonly cacert?: string;
  readonly cert?: string;
  readonly key?: string;
  readonly username?: string;
  readonly password?: string;
}

export interface EtcdClusterHandle {
  readonly endpoints: readonly string[];
  readonly members: readonly EtcdMember[];
  /** TLS files and credentials a client needs; {} for plain http without authentication (enableEtcdAuth adds its user). */
  client: EtcdClientSecurity;
  stopMember(index: number): Promise<void>;
  /** SIGKILL (no graceful leader transfer, as a crash or a power loss), waiting until the process is gone. */
  killMember(index: number): Promise<void>;
  startMember(index: number): Promise<void>;
  /** The index of the raft leader as the running members report it (/v3/maintenance/status), undefined if none. */
  leaderIndex(): Promise<number | undefined>;
  stop(): Promise<void>;
}

/** etcd can take 5-25 s to honour SIGTERM; tests cannot wait that long, and its data is expendable. */
const STOP_GRACE_MS = 2000;
const HEALTHY_TIMEOUT_MS = 30_000;

interface MemberStatus {
  readonly header?: { readonly member_id?: string };
  readonly leader?: string;
}

/** etcd's own status of one member: its id and the id of the leader it follows (uint64s as decimal strings). */
async function memberStatus(clientUrl: string, tls: TlsClientOptions): Promise<MemberStatus | undefined> {
  try {
    const response = await requestText(`${clientUrl}/v3/maintenance/status`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{}',
      signal: AbortSignal.timeout(1000),
      tls,
    });
    return response.status === 200 ? (JSON.parse(response.text) as MemberStatus) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Which of these members leads: each running member names its own id and its leader's; the leader is the member
 * whose id the others name (a member cut off may still name an old leader: the most named one wins).
 */
export async function raftLeaderIndex(members: readonly EtcdMember[], tls: TlsClientOptions = {}): Promise<number | undefined> {
  const statuses = await Promise.all(
    members.map((member) => (member.pid === undefined ? Promise.resolve(undefined) : memberStatus(member.clientUrl, tls))),
  );
  const votes = new Map<string, number>();
  for (const status of statuses)
    if (status?.leader !== undefined && status.leader !== '0') votes.set(status.leader, (votes.get(status.leader) ?? 0) + 1);
  const leaderId = [...votes].sort((a, b) => b[1] - a[1])[0]?.[0];
  if (leaderId === undefined) return undefined;
  const index = statuses.findIndex((status) => status?.header?.member_id === leaderId);
  return index < 0 ? undefined : index;
}

async function isHealthy(clientUrl: string, tls: TlsClientOptions): Promise<boolean> {
  try {
    const response = await requestText(`${clientUrl}/health`, { signal: AbortSignal.timeout(1000), tls });
    const body = JSON.parse(response.text) as { health?: string };
    return body.health === 'true';
  } catch {
    return false;
  }
}

/** etcd's client port over TLS: its certificate, the CA clients check it with, and whether it demands client certificates. */
export interface EtcdServerTls {
  readonly ca: string;
  readonly cert: string;
  readonly key: string;
  /** --client-cert-auth: only clients with a certificate signed by `ca` get in. */
  readonly isClientCertRequired: boolean;
  /** The certificate this launcher (health checks, etcdctl) and the cluster's clients use. */
  readonly client: { readonly cert: string; readonly key: string };
}

export interface EtcdClusterOptions {
  readonly size: number;
  readonly dir: string;
  readonly binary?: string;
  /** Address of each member (default 127.0.0.1 for all). */
  readonly hosts?: readonly string[];
  /** argv prefix that runs member `index` where it lives, e.g. ['ip', 'netns', 'exec', ns]. */
  readonly wrap?: (index: number) => readonly string[];
  /** Serve clients over https (peers stay on http: they talk on loopback or the lab's bridge). */
  readonly tls?: EtcdServerTls;
  /** More etcd flags, e.g. ['--auth-token=simple', '--auth-token-ttl=2']. */
  readonly extraArgs?: readonly string[];
  /** Client and peer port of each member in turn (2 per member); free ports picked at random when absent. */
  readonly ports?: readonly number[];
}

export async function startEtcdCluster(options: EtcdClusterOptions): Promise<EtcdClusterHandle> {
  const size = options.size;
  const ports = options.ports ?? (await pickFreePorts(size * 2));
  const token = `pgw-${randomBytes(4).toString('hex')}`;
  // etcd's data and logs: its owner only (etcd itself wants its data dirs 0700).
  await mkdir(options.dir, { recursive: true, mode: 0o700 });
  await chmod(options.dir, 0o700);
  const clientScheme = options.tls === undefined ? 'http' : 'https';
  const members: EtcdMember[] = Array.from({ length: size }, (_unused, index) => ({
    name: `etcd${index + 1}`,
    clientUrl: `${clientScheme}://${options.hosts?.[index] ?? '127.0.0.1'}:${ports[index * 2]!}`,
    peerUrl: `http://${options.hosts?.[index] ?? '127.0.0.1'}:${ports[index * 2 + 1]!}`,
    dataDir: join(options.dir, `etcd${index + 1}`),
    logFile: join(options.dir, `etcd${index + 1}.log`),
    pid: undefined,
  }));
  const initialCluster = members.map((member) => `${member.name}=${member.peerUrl}`).join(',');
  const binary = options.binary ?? 'etcd';
  const serverTls = options.tls;
  const tlsArgs =
    serverTls === undefined
      ? []
      : [
          '--cert-file',
          serverTls.cert,
          '--key-file',
          serverTls.key,
          // etcd asks clients for certificates whenever it is given a CA for them: only with --client-cert-auth.
          ...(serverTls.isClientCertRequired ? ['--trusted-ca-file', serverTls.ca, '--client-cert-auth'] : []),
        ];
  const clientTls: TlsClientOptions =
    serverTls === undefined
      ? {}
      : { ca: readFileSync(serverTls.ca), cert: readFileSync(serverTls.client.cert), key: readFileSync(serverTls.client.key) };

  const launch = (member: EtcdMember): void => {
    const prefix = options.wrap?.(members.indexOf(member)) ?? [];
    const child = spawnManaged({
      command: prefix[0] ?? binary,
      args: [
        ...(prefix.length > 0 ? [...prefix.slice(1), binary] : []),
        '--name',
        member.name,
        '--data-dir',
        member.dataDir,
        '--listen-client-urls',
        member.clientUrl,
        '--advertise-client-urls',
        member.clientUrl,
        '--listen-peer-urls',
        member.peerUrl,
        '--initial-advertise-peer-urls',
        member.peerUrl,
        '--initial-cluster',
        initialCluster,
        '--initial-cluster-token',
        token,
        '--initial-cluster-state',
        'new',
        // Without pre-vote a healed partition forces a needless re-election.
        '--pre-vote=true',
        '--enable-v2=false',
        '--logger=zap',
        '--log-level=warn',
        // Short heartbeats keep leader elections (and our failover tests) quick on loopback.
        '--heartbeat-interval=100',
        '--election-timeout=1000',
        ...tlsArgs,
        ...(options.extraArgs ?? []),
      ],
      logFile: member.logFile,
    });
    member.pid = child.pid;
    // `pgwarden local stop|status` find the member from this file even without the cluster's state file.
    writeFileSync(etcdPidFileOf(options.dir, member.name), `${child.pid}\n`);
  };

  const waitHealthy = async (targets: readonly EtcdMember[]): Promise<void> => {
    let last = '';
    const outcome = await waitUntil(
      async () => {
        const dead = targets.find((member) => member.pid !== undefined && !isAlive(member.pid));
        if (dead !== undefined) return { dead };
        const states = await Promise.all(targets.map((member) => isHealthy(member.clientUrl, clientTls)));
        last = targets.map((member, index) => `${member.name} ${states[index] === true ? 'healthy' : 'not healthy'}`).join(', ');
        return states.every(Boolean) ? { dead: undefined } : undefined;
      },
      {
        timeoutMs: HEALTHY_TIMEOUT_MS,
        describe: `etcd ${targets.map((member) => member.name).join(', ')} to report healthy (logs: ${options.dir}/etcd*.log)`,
        lastState: () => last,
        context: { path: options.dir, hint: `see ${options.dir}/etcd*.log` },
      },
    );
    if (outcome.dead !== undefined)
      throw new PgwardenError('PGW_LOCAL_PROCESS', `etcd member ${outcome.dead.name} exited during start-up; see ${outcome.dead.logFile}`, {
        context: { member: outcome.dead.name, path: outcome.dead.logFile },
      });
  };

  const stopMember = async (index: number): Promise<void> => {
    const member = members[index];
    if (member?.pid === undefined) return;
    await stopPid(member.pid, { signal: 'SIGTERM', graceMs: STOP_GRACE_MS });
    member.pid = undefined;
  };

  const handle: EtcdClusterHandle = {
    endpoints: members.map((member) => member.clientUrl),
    members,
    client:
      serverTls === undefined ? {} : { protocol: 'https', cacert: serverTls.ca, cert: serverTls.client.cert, key: serverTls.client.key },
    stopMember,
    killMember: async (index: number): Promise<void> => {
      const member = members[index];
      if (member?.pid === undefined) return;
      await stopPid(member.pid, { signal: 'SIGKILL', graceMs: 5000 });
      member.pid = undefined;
    },
    leaderIndex: () => raftLeaderIndex(members, clientTls),
    startMember: async (index: number): Promise<void> => {
      const member = members[index];
      if (member === undefined || (member.pid !== undefined && isAlive(member.pid))) return;
      launch(member);
      // A lone restarted member is healthy only once it rejoined a quorum; wait for it when one exists.
      const running = members.filter((candidate) => candidate.pid !== undefined);
      if (running.length * 2 > size) await waitHealthy([member]);
    },
    stop: async (): Promise<void> => {
      await Promise.all(members.map((_member, index) => stopMember(index)));
    },
  };
  try {
    members.forEach(launch);
    await waitHealthy(members);
  } catch (error) {
    await handle.stop();
    throw error;
  }
  return handle;
}

/** etcdctl's connection flags for this etcd: endpoints, and its CA and client certificate when it serves TLS. */
export function etcdctlArgs(etcd: Pick<EtcdClusterHandle, 'endpoints' | 'client'>): string[] {
  const { cacert, cert, key } = etcd.client;
  return [
    '--endpoints',
    etcd.endpoints.join(','),
    ...(cacert !== undefined ? ['--cacert', cacert] : []),
    ...(cert !== undefined ? ['--cert', cert] : []),
    ...(key !== undefined ? ['--key', key] : []),
  ];
}

export interface EtcdAuthSetup {
  readonly rootPassword: string;
  /** The user pgwarden connects as; its role may read and write these key prefixes only. */
  readonly username: string;
  readonly password: string;
  readonly prefixes: readonly string[];
}

/**
 * Turns etcd authentication on (etcdctl auth enable) with a root user and a pgwarden user whose role has readwrite
 * on `prefixes` only, as an operator would: what a cluster of Patroni members on a shared etcd typically gets.
 */
export async function enableEtcdAuth(etcd: EtcdClusterHandle, setup: EtcdAuthSetup): Promise<void> {
  const etcdctl = (...args: string[]): Promise<string> => runCommand('etcdctl', [...etcdctlArgs(etcd), ...args], { timeoutMs: 15_000 });
  const role = `${setup.username}-role`;
  await etcdctl('user', 'add', `root:${setup.rootPassword}`);
  await etcdctl('user', 'grant-role', 'root', 'root');
  await etcdctl('role', 'add', role);
  for (const prefix of setup.prefixes) await etcdctl('role', 'grant-permission', role, '--prefix=true', 'readwrite', prefix);
  await etcdctl('user', 'add', `${setup.username}:${setup.password}`);
  await etcdctl('user', 'grant-role', setup.username, role);
  await etcdctl('auth', 'enable');
  etcd.client = { ...etcd.client, username: setup.username, password: setup.password };
}
