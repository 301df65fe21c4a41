// When a local cluster is healthy (one running primary holding the lock, every other member streaming on its
// timeline), a one-line picture of a view for timeout messages, and the bounded wait for health.
import { roleFromWire } from '../core/patroni-wire.js';
import type { ClusterView } from '../core/types.js';
import { waitUntil } from '../util/wait-until.js';
import type { LocalCluster } from './local-cluster.js';

export interface Healthy {
  readonly leader: string;
  readonly replicas: readonly string[];
  readonly view: ClusterView;
}

/**
 * One leader whose member key says running primary (or standby leader, in a standby cluster), and every other
 * expected member streaming on its timeline.
 */
export function healthyTopology(view: ClusterView, expected: readonly string[]): Healthy | undefined {
  const leader = view.leader?.name;
  if (leader === undefined) return undefined;
  const leaderMember = view.members.find((member) => member.name === leader);
  const isLeading = leaderMember !== undefined && (roleFromWire(leaderMember.role) === 'primary' || leaderMember.role === 'standby_leader');
  if (leaderMember?.state !== 'running' || !isLeading) return undefined;
  const replicas = expected.filter((name) => name !== leader);
  for (const name of replicas) {
    const member = view.members.find((candidate) => candidate.name === name);
    if (member?.replication_state !== 'streaming' || member.timeline !== leaderMember.timeline) return undefined;
  }
  return { leader, replicas, view };
}

/** The leader and each member's role/state/replication/timeline, for what a failed wait last saw. */
export function describeView(view: ClusterView): string {
  const members = view.members.map(
    (member) => `${member.name} ${member.role}/${member.state}/${member.replication_state ?? '-'}/tl${member.timeline ?? '?'}`,
  );
  return `leader ${view.leader?.name ?? 'none'}; ${members.join(', ') || 'no members'}`;
}

/** Waits until healthyTopology holds; on timeout the PGW_WAIT_TIMEOUT error shows the last view and where the logs are. */
export async function waitHealthy(
  cluster: LocalCluster,
  timeoutMs: number,
  expected: readonly string[] = cluster.nodes.map((node) => node.name),
): Promise<Healthy> {
  let last = 'no DCS view yet';
  return waitUntil(
    async () => {
      const view = await cluster.view();
      last = describeView(view);
      return healthyTopology(view, expected);
    },
    {
      timeoutMs,
      intervalMs: 250,
      describe: `a healthy cluster (1 leader, all others streaming; agent logs: ${cluster.dir}/node*/agent.log)`,
      lastState: () => last,
      context: { path: cluster.dir },
    },
  );
}
