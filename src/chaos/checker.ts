// The consistency checker (pure): from every acknowledged write and the final data, what the cluster broke.
import type { Ack } from './workload.js';

export interface DualWrite {
  readonly earlier: Ack;
  readonly later: Ack;
}

export interface CheckReport {
  readonly acknowledged: number;
  readonly lost: readonly number[];
  /** Acks that prove two servers accepted writes in the same period (a lower timeline after a higher one, or two servers on one timeline). */
  readonly dualWritable: readonly DualWrite[];
  readonly divergentMembers: readonly string[];
  /** WAL the lost acknowledged writes spanned on the server that acknowledged them (the largest span per timeline). */
  readonly lostWalBytes: number;
}

/**
 * A single sequential writer sees the primaries in the order they served it. Legitimate changes of server always
 * move to a higher timeline; an ack from a lower timeline after a higher one, or from a second server on the same
 * timeline, means two nodes accepted writes during one interval.
 */
export function findDualWrites(acks: readonly Ack[]): DualWrite[] {
  const sorted = [...acks].sort((a, b) => a.atMs - b.atMs);
  const found: DualWrite[] = [];
  let highest: Ack | undefined;
  for (const ack of sorted) {
    if (highest !== undefined && (ack.timeline < highest.timeline || (ack.timeline === highest.timeline && ack.port !== highest.port)))
      found.push({ earlier: highest, later: ack });
    if (highest === undefined || ack.timeline > highest.timeline) highest = ack;
  }
  return found;
}

export function checkRun(acks: readonly Ack[], idsOnLeader: ReadonlySet<number>, fingerprints: ReadonlyMap<string, string>): CheckReport {
  const lost = acks.map((ack) => ack.id).filter((id) => !idsOnLeader.has(id));
  const values = [...fingerprints.values()];
  const majority = values.sort((a, b) => values.filter((v) => v === b).length - values.filter((v) => v === a).length)[0];
  const divergentMembers = [...fingerprints]
    .filter(([, fingerprint]) => fingerprint !== majority)
    .map(([name]) => name)
    .sort();
  return {
    acknowledged: acks.length,
    lost,
    dualWritable: findDualWrites(acks),
    divergentMembers,
    lostWalBytes: lostWalSpan(acks, new Set(lost)),
  };
}

/**
 * How much WAL the lost writes covered: per server and timeline, from the position before the first lost commit to
 * the position after the last one. In asynchronous mode a failover may lose at most what the new primary lacked,
 * which maximum_lag_on_failover bounds; this is the figure to compare with it.
 */
export function lostWalSpan(acks: readonly Ack[], lost: ReadonlySet<number>): number {
  const byServer = new Map<string, Ack[]>();
  for (const ack of acks) {
    const key = `${ack.sysid}/${ack.port}/${ack.timeline}`;
    byServer.set(key, [...(byServer.get(key) ?? []), ack]);
  }
  let largest = 0;
  for (const list of byServer.values()) {
    const sorted = [...list].sort((a, b) => a.lsn - b.lsn);
    const lostIndexes = sorted.flatMap((ack, index) => (lost.has(ack.id) ? [index] : []));
    const firstIndex = lostIndexes[0];
    const lastIndex = lostIndexes.at(-1);
    if (firstIndex === undefined || lastIndex === undefined) continue;
    const last = sorted[lastIndex]!.lsn;
    const before = firstIndex > 0 ? sorted[firstIndex - 1]!.lsn : sorted[firstIndex]!.lsn - 1;
    largest = Math.max(largest, last - before);
  }
  return largest;
}
