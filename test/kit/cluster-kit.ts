// Helpers for system tests on a LocalCluster: SQL on a node, REST status codes, agent log lines, the pgwarden CLI, and
// (from src/local/cluster-health.ts) waiting for a healthy topology.
import { execFile, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import type { HeartbeatRecord } from '../../src/core/types.js';
import type { LocalCluster } from '../../src/local/local-cluster.js';
import { waitUntil } from '../../src/util/wait-until.js';

export { healthyTopology, waitHealthy, type Healthy } from '../../src/local/cluster-health.js';

const CLI_ENTRY = fileURLToPath(new URL('../../src/bin/pgwarden.js', import.meta.url));

/** Runs a program (patronictl, an agent...); never rejects: the exit code and both outputs are the result. */
export function runProgram(
  command: string,
  args: readonly string[],
  timeoutMs = 90_000,
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(command, [...args], { timeout: timeoutMs }, (error, stdout, stderr) => {
      resolve({ code: error === null ? 0 : typeof error.code === 'number' ? error.code : 1, stdout, stderr });
    });
  });
}

/** Runs the built `pgwarden` CLI (see runProgram). */
export function runCli(args: readonly string[], timeoutMs = 90_000): Promise<{ code: number; stdout: string; stderr: string }> {
  return runProgram(process.execPath, [CLI_ENTRY, ...args], timeoutMs);
}

/**
 * Runs the CLI and SIGKILLs it once its output matches `stopAt` (an interruption at a known point); resolves its output.
 * The CLI is killed by its PID only.
 */
export function runCliUntil(args: readonly string[], stopAt: RegExp, timeoutMs: number): Promise<{ stdout: string; wasKilled: boolean }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI_ENTRY, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let wasKilled = false;
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
      if (!wasKilled && stopAt.test(stdout)) {
        wasKilled = true;
        child.kill('SIGKILL');
      }
    });
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    child.on('exit', () => {
      clearTimeout(timer);
      if (!wasKilled) reject(new Error(`the CLI ended before ${String(stopAt)}:\n${stdout}\n${stderr}`));
      else resolve({ stdout, wasKilled });
    });
  });
}

/** Runs the CLI with `input` on its stdin (the answers to remove's and restore's typed confirmation). */
export function runCliWithInput(
  args: readonly string[],
  input: string,
  timeoutMs = 90_000,
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile(process.execPath, [CLI_ENTRY, ...args], { timeout: timeoutMs }, (error, stdout, stderr) => {
      resolve({ code: error === null ? 0 : typeof error.code === 'number' ? error.code : 1, stdout, stderr });
    });
    child.stdin?.end(input);
  });
}

/** Runs the CLI and fails with its output unless it exits 0. */
export async function runCliOk(args: readonly string[]): Promise<{ stdout: string }> {
  const result = await runCli(args);
  if (result.code !== 0) throw new Error(`pgwarden ${args.join(' ')} exited ${result.code}: ${result.stderr || result.stdout}`);
  return { stdout: result.stdout };
}

export async function sql<T extends Record<string, unknown>>(
  cluster: LocalCluster,
  name: string,
  text: string,
  params: unknown[] = [],
): Promise<T[]> {
  const node = cluster.node(name);
  const tls = cluster.postgresTls;
  const superuserCertificate = tls?.clients.get('postgres');
  const client = new pg.Client({
    host: node.host,
    port: node.pgPort,
    user: 'postgres',
    password: cluster.superuserPassword,
    database: 'postgres',
    connectionTimeoutMillis: 2000,
    query_timeout: 5000,
    // A postgresTls cluster takes TCP connections only over TLS with a client certificate: verify-full, as its agents.
    ...(tls === undefined || superuserCertificate === undefined
      ? {}
      : {
          ssl: {
            ca: readFileSync(tls.ca.certFile),
            cert: readFileSync(superuserCertificate.certFile),
            key: readFileSync(superuserCertificate.keyFile),
          },
        }),
  });
  client.on('error', () => undefined);
  await client.connect();
  try {
    const result = await client.query<T>(text, params);
    return result.rows;
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** A connected client as the cluster's superuser to any port on 127.0.0.1 (a node, a proxy, a pooler). */
export async function connectSuperuser(cluster: LocalCluster, port: number): Promise<pg.Client> {
  const client = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', password: cluster.superuserPassword, database: 'postgres' });
  client.on('error', () => undefined);
  await client.connect();
  return client;
}

/** Committed transactions per member (pg_stat_database.xact_commit counts a standby's own read transactions too). */
export async function commitsPerMember(cluster: LocalCluster): Promise<Map<string, number>> {
  const counts = new Map<string, number>();
  for (const node of cluster.nodes) {
    const [row] = await sql<{ n: string }>(
      cluster,
      node.name,
      "SELECT xact_commit::text AS n FROM pg_stat_database WHERE datname = 'postgres'",
    );
    counts.set(node.name, Number(row!.n));
  }
  return counts;
}

/** True when the node accepts a write right now (connects and is not in recovery). */
export async function isWritable(cluster: LocalCluster, name: string): Promise<boolean> {
  try {
    const rows = await sql<{ ok: boolean }>(cluster, name, 'SELECT NOT pg_is_in_recovery() AS ok');
    return rows[0]?.ok === true;
  } catch {
    return false;
  }
}

/** The first of `names` that is writable now, if any. */
export async function writableAmong(cluster: LocalCluster, names: readonly string[]): Promise<string | undefined> {
  for (const name of names) if (await isWritable(cluster, name)) return name;
  return undefined;
}

export async function httpStatus(cluster: LocalCluster, name: string, path: string): Promise<number> {
  try {
    const response = await fetch(`http://${cluster.node(name).host}:${cluster.node(name).apiPort}${path}`, {
      signal: AbortSignal.timeout(2000),
    });
    await response.arrayBuffer();
    return response.status;
  } catch {
    return 0;
  }
}

/**
 * @deprecated Use waitUntil (src/util/wait-until.ts). Kept with this signature so tests written against the old kit
 * (on branches not merged yet) still build; it delegates to waitUntil.
 */
export async function poll<T>(
  what: string,
  timeoutMs: number,
  intervalMs: number,
  probe: () => Promise<T | undefined>,
  lastState?: () => string,
): Promise<Exclude<T, undefined | null | false>> {
  return waitUntil(probe, { timeoutMs, intervalMs, describe: what, ...(lastState !== undefined ? { lastState } : {}) });
}

/** The last lines of a member's agent log that match a pattern: what a failed wait prints so CI shows the cause. */
export function agentLogTail(cluster: LocalCluster, name: string, pattern: RegExp, lines = 8): string {
  try {
    const text = readFileSync(cluster.node(name).logFile, 'utf8');
    return text
      .split('\n')
      .filter((line) => pattern.test(line))
      .slice(-lines)
      .join('\n');
  } catch (error) {
    return `(no agent log for ${name}: ${error instanceof Error ? error.message : String(error)})`;
  }
}

/** The heartbeat key as the cluster's etcd holds it now (pgwarden's silent-leader detector). */
export async function readHeartbeat(cluster: LocalCluster): Promise<HeartbeatRecord | undefined> {
  return (await cluster.view()).heartbeat;
}
