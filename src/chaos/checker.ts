// The consistency checker (pure): from every acknowledged write and the final data, what the cluster broke.

export interface Ack {
  readonly id: number;
  readonly atMs: number;
  /** Which server acknowledged: its port, system identifier and timeline at the time. */
  readonly port: number;
  readonly sysid: string;
  readonly timeline: number;
}

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
    if (highest !== undefined && (ack.timeline < highest.timeline || (ack.timeline === highest.timeline && ack.port !== highest.port))) found.push({ earlier: highest, later: ack });
    if (highest === undefined || ack.timeline > highest.timeline) highest = ack;
  }
  return found;
}

export function checkRun(acks: readonly Ack[], idsOnLeader: ReadonlySet<number>, fingerprints: ReadonlyMap<string, string>): CheckReport {
  const lost = acks.map((ack) => ack.id).filter((id) => !idsOnLeader.has(id));
  const values = [...fingerprints.values()];
  const majority = values.sort((a, b) => values.filter((v) => v === b).length - values.filter((v) => v === a).length)[0];
  const divergentMembers = [...fingerprints].filter(([, fingerprint]) => fingerprint !== majority).map(([name]) => name).sort();
  return { acknowledged: acks.length, lost, dualWritable: findDualWrites(acks), divergentMembers };
}
