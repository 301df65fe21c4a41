// Helpers for system tests on a LocalCluster: SQL on a node, REST status codes, and waiting for a healthy topology.
import pg from 'pg';
import { readFileSync } from 'node:fs';
import type { ClusterView } from '../../src/core/types.js';
import type { LocalCluster } from '../../src/local/local-cluster.js';

export async function sql<T extends Record<string, unknown>>(
  cluster: LocalCluster,
  name: string,
  text: string,
  params: unknown[] = [],
): Promise<T[]> {
  const node = cluster.node(name);
  const client = new pg.Client({
    host: node.host,
    port: node.pgPort,
    user: 'postgres',
    password: cluster.superuserPassword,
    database: 'postgres',
    connectionTimeoutMillis: 2000,
    query_timeout: 5000,
  });
  await client.connect();
  try {
    const result = await client.query<T>(text, params);
    return result.rows;
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** True when the node accepts a write right now (connect + not in recovery + a real INSERT). */
export async function isWritable(cluster: LocalCluster, name: string): Promise<boolean> {
  try {
    const rows = await sql<{ ok: boolean }>(cluster, name, 'SELECT NOT pg_is_in_recovery() AS ok');
    return rows[0]?.ok === true;
  } catch {
    return false;
  }
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

export interface Healthy {
  readonly leader: string;
  readonly replicas: readonly string[];
  readonly view: ClusterView;
}

/** One leader whose member key says running and every other expected member streaming on the leader's timeline. */
export function healthyTopology(view: ClusterView, expected: readonly string[]): Healthy | undefined {
  const leader = view.leader?.name;
  if (leader === undefined) return undefined;
  const leaderMember = view.members.find((member) => member.name === leader);
  if (leaderMember?.state !== 'running' || leaderMember.role !== 'primary') return undefined;
  const replicas = expected.filter((name) => name !== leader);
  for (const name of replicas) {
    const member = view.members.find((candidate) => candidate.name === name);
    if (member?.replication_state !== 'streaming' || member.timeline !== leaderMember.timeline) return undefined;
  }
  return { leader, replicas, view };
}

export async function poll<T>(
  what: string,
  timeoutMs: number,
  intervalMs: number,
  probe: () => Promise<T | undefined>,
  lastState: () => string = () => '',
): Promise<T> {
  const startedAt = Date.now();
  let lastError = '';
  while (Date.now() - startedAt < timeoutMs) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (error) {
      lastError = error instanceof Error ? error.message : String(error);
    }
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; last state: ${lastState()} ${lastError}`);
}

export async function waitHealthy(
  cluster: LocalCluster,
  timeoutMs: number,
  expected: readonly string[] = cluster.nodes.map((node) => node.name),
): Promise<Healthy> {
  let last = '';
  return poll(
    'a healthy cluster (1 leader, all others streaming)',
    timeoutMs,
    250,
    async () => {
      const view = await cluster.view();
      last = JSON.stringify({
        leader: view.leader?.name,
        members: view.members.map((m) => [m.name, m.role, m.state, m.replication_state, m.timeline]),
      });
      return healthyTopology(view, expected);
    },
    () => last,
  );
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
