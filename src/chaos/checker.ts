// The consistency checker (pure): from every acknowledged write and the final data, what the cluster broke.
import { longestWriteGap, type Ack } from './workload.js';

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
 * A sequential writer sees the primaries in the order they served it. Legitimate changes of server always move to a
 * higher timeline; an ack from a lower timeline after a higher one, or from a second server on the same timeline,
 * means two nodes accepted writes during one interval, but only for a write sent after that higher ack arrived:
 * with several writers, one write may be committed by the old primary and its answer held up (a blackhole drops it
 * until TCP retransmits) while another writer already reaches the new one.
 */
export function findDualWrites(acks: readonly Ack[]): DualWrite[] {
  const sorted = [...acks].sort((a, b) => a.atMs - b.atMs);
  const found: DualWrite[] = [];
  let highest: Ack | undefined;
  for (const ack of sorted) {
    const isOtherServer =
      highest !== undefined && (ack.timeline < highest.timeline || (ack.timeline === highest.timeline && ack.port !== highest.port));
    if (highest !== undefined && isOtherServer && ack.sentAtMs >= highest.atMs) found.push({ earlier: highest, later: ack });
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

/** What a fault should do to the leadership: cause a failover, never cause one (quorum intact), or either. */
export type FailoverExpectation = 'required' | 'forbidden' | 'allowed';

/** What one fault did, as the runner measured it (times in ms). */
export interface FaultOutcome {
  readonly index: number;
  readonly kind: string;
  readonly target: string;
  /**
   * The longest pause between two writes acknowledged through the proxy that ends after the fault, until the
   * cluster converged: the outage the application saw. Undefined if no write was acknowledged after the fault.
   */
  readonly recoveryMs: number | undefined;
  /** The same for the libpq-like multi-host writer connected straight to the members' PostgreSQL ports. */
  readonly directRecoveryMs: number | undefined;
  readonly converged: boolean;
  readonly expectation: FailoverExpectation;
  /** Whether another member took the leader key (or a write was acknowledged on a newer timeline) during the fault. */
  readonly failover: boolean;
  /** The leaders that took the key during the fault, in order. */
  readonly newLeaders: readonly string[];
  /** From the injection to the first sight of another leader in the DCS. */
  readonly newLeaderMs: number | undefined;
  /** A failover the fault should not have caused (an etcd election, a replica lost: quorum intact). */
  readonly falseFailover: boolean;
  /** No failover where the fault should have forced one (the primary gone past ttl). */
  readonly missedFailover: boolean;
  /** Writes acknowledged by a member after another member was promoted (see lateAcks), by writer. */
  readonly lateAcks: { readonly proxy: number; readonly direct: number };
}

export interface FaultEvidence {
  readonly startMs: number;
  readonly endMs: number;
  readonly leaderBefore: string;
  /** The leader changes seen in the DCS during the fault (leaderChangesWithin). */
  readonly leaderChanges: readonly { readonly atMs: number; readonly leader: string }[];
  readonly proxyAcks: readonly Ack[];
  readonly directAcks: readonly Ack[];
  readonly expectation: FailoverExpectation;
}

const serverOf = (ack: Ack): string => `${ack.sysid}/${ack.port}`;

/**
 * Writes a member acknowledged after another member had been promoted: the server received the write (sentAtMs)
 * after some write had already been acknowledged (atMs) on a newer timeline, or on the same timeline by another
 * server. A write sent before that moment and acknowledged after it may have committed before the promotion and is
 * not counted (the dual-write check of the whole run still sees it). `acks` holds every writer's acks: a direct
 * client on the old primary is caught by a proxy client's ack on the new one. Returns the late acks.
 */
export function lateAcks(acks: readonly Ack[]): Ack[] {
  const byAck = [...acks].sort((a, b) => a.atMs - b.atMs);
  const bySent = [...acks].sort((a, b) => a.sentAtMs - b.sentAtMs);
  const late: Ack[] = [];
  let newest: Ack | undefined;
  let next = 0;
  for (const ack of bySent) {
    while (next < byAck.length && byAck[next]!.atMs < ack.sentAtMs) {
      const candidate = byAck[next++]!;
      if (newest === undefined || candidate.timeline > newest.timeline) newest = candidate;
    }
    if (
      newest !== undefined &&
      (ack.timeline < newest.timeline || (ack.timeline === newest.timeline && serverOf(ack) !== serverOf(newest)))
    )
      late.push(ack);
  }
  return late;
}

/** The per-fault findings from the acks and leader changes of its window [startMs, endMs]. */
export function judgeFault(evidence: FaultEvidence): Omit<FaultOutcome, 'index' | 'kind' | 'target' | 'converged'> {
  const { startMs, endMs } = evidence;
  const within = (ack: Ack): boolean => ack.atMs > startMs && ack.atMs <= endMs;
  // The timeline of the primary before the fault: the newest acknowledged before it, by either writer.
  const before = [...evidence.proxyAcks, ...evidence.directAcks].filter((ack) => ack.atMs <= startMs);
  // (reduce, not Math.max(...): a long run has more acks than a call has room for arguments)
  const timelineBefore = before.reduce((highest, ack) => Math.max(highest, ack.timeline), 0);
  const windowAcks = [...evidence.proxyAcks.filter(within), ...evidence.directAcks.filter(within)];
  const promoted = windowAcks.some((ack) => ack.timeline > timelineBefore && timelineBefore > 0);
  const newLeaders = evidence.leaderChanges.map((change) => change.leader);
  const failover = newLeaders.length > 0 || promoted;
  // The last acks before the fault anchor the timeline the window starts on.
  const last = before.reduce<Ack | undefined>((latest, ack) => (latest === undefined || ack.atMs > latest.atMs ? ack : latest), undefined);
  const anchor = last === undefined ? [] : [last];
  const late = new Set(lateAcks([...anchor, ...windowAcks]));
  const count = (acks: readonly Ack[]): number => acks.filter((ack) => within(ack) && late.has(ack)).length;
  const firstChange = evidence.leaderChanges[0];
  return {
    recoveryMs: roundMs(longestWriteGap(evidence.proxyAcks, startMs, endMs)),
    directRecoveryMs: roundMs(longestWriteGap(evidence.directAcks, startMs, endMs)),
    expectation: evidence.expectation,
    failover,
    newLeaders,
    newLeaderMs: firstChange === undefined ? undefined : Math.round(firstChange.atMs - startMs),
    falseFailover: failover && evidence.expectation === 'forbidden',
    missedFailover: !failover && evidence.expectation === 'required',
    lateAcks: { proxy: count(evidence.proxyAcks), direct: count(evidence.directAcks) },
  };
}

const roundMs = (ms: number | undefined): number | undefined => (ms === undefined ? undefined : Math.round(ms));

export interface Spread {
  readonly median: number | undefined;
  readonly max: number | undefined;
}

export function spread(values: readonly (number | undefined)[]): Spread {
  const sorted = values.filter((value): value is number => value !== undefined).sort((a, b) => a - b);
  return { median: sorted[Math.floor((sorted.length - 1) / 2)], max: sorted.at(-1) };
}

export interface KindSummary {
  readonly kind: string;
  readonly count: number;
  readonly failovers: number;
  readonly falseFailovers: number;
  readonly missedFailovers: number;
  readonly notConverged: number;
  /** The longest write pause of each fault, through the proxy and straight to the members. */
  readonly proxyPause: Spread;
  readonly directPause: Spread;
  readonly lateAcks: { readonly proxy: number; readonly direct: number };
}

/** One row per fault kind, in the order the kinds first occur. */
export function summarizeByKind(outcomes: readonly FaultOutcome[]): KindSummary[] {
  const kinds = [...new Set(outcomes.map((outcome) => outcome.kind))];
  return kinds.map((kind) => {
    const list = outcomes.filter((outcome) => outcome.kind === kind);
    const total = (pick: (outcome: FaultOutcome) => boolean): number => list.filter(pick).length;
    return {
      kind,
      count: list.length,
      failovers: total((outcome) => outcome.failover),
      falseFailovers: total((outcome) => outcome.falseFailover),
      missedFailovers: total((outcome) => outcome.missedFailover),
      notConverged: total((outcome) => !outcome.converged),
      proxyPause: spread(list.map((outcome) => outcome.recoveryMs)),
      directPause: spread(list.map((outcome) => outcome.directRecoveryMs)),
      lateAcks: {
        proxy: list.reduce((sum, outcome) => sum + outcome.lateAcks.proxy, 0),
        direct: list.reduce((sum, outcome) => sum + outcome.lateAcks.direct, 0),
      },
    };
  });
}

/** The per-kind table, as markdown lines. */
export function kindSummaryTable(rows: readonly KindSummary[]): string[] {
  const ms = (value: Spread): string => `${value.median ?? '-'} / ${value.max ?? '-'}`;
  return [
    '| kind | faults | failovers | false failovers | missed failovers | not converged | pause via proxy median / max ms | pause direct median / max ms | acked after promotion (proxy / direct) |',
    '|---|---|---|---|---|---|---|---|---|',
    ...rows.map(
      (row) =>
        `| ${row.kind} | ${row.count} | ${row.failovers} | ${row.falseFailovers} | ${row.missedFailovers} | ${row.notConverged} | ${ms(row.proxyPause)} | ${ms(row.directPause)} | ${row.lateAcks.proxy} / ${row.lateAcks.direct} |`,
    ),
  ];
}
