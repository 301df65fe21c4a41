// A fault schedule from a seed (pure): the same seed and options always give the same faults in the same order.
import { PgwardenError } from '../util/errors.js';
import { mulberry32 } from '../util/prng.js';

export type FaultKind =
  | 'kill-primary-agent'
  | 'kill-primary-postmaster'
  | 'kill-primary-both'
  | 'stop-primary'
  | 'stop-primary-agent'
  | 'kill-replica-both'
  | 'kill-etcd-member'
  | 'switchover-replica-kill'
  | 'etcd-quorum-loss'
  | 'partition-primary'
  | 'partition-primary-oneway'
  | 'partition-etcd-minority'
  | 'latency-primary'
  | 'full-disk-primary'
  | 'blackhole-primary'
  | 'kill-etcd-leader'
  | 'etcd-quorum-loss-failsafe';

export interface Fault {
  readonly index: number;
  readonly kind: FaultKind;
  /** Which replica / etcd member, as an index into the sorted candidates at the time of injection. */
  readonly pick: number;
  /** Seconds of steady workload before the fault. */
  readonly settleS: number;
}

/** Faults on processes: any machine. The order is part of the schedule: seeds of earlier runs replay unchanged. */
export const PROCESS_FAULT_KINDS: readonly FaultKind[] = [
  'kill-primary-agent',
  'kill-primary-postmaster',
  'kill-primary-both',
  'stop-primary',
  'kill-replica-both',
  'kill-etcd-member',
  'switchover-replica-kill',
];
/** Faults on the network between members (which networks can make each: the fault table in faults.ts). */
export const NETWORK_FAULT_KINDS: readonly FaultKind[] = [
  'partition-primary',
  'partition-primary-oneway',
  'partition-etcd-minority',
  'latency-primary',
];
export const FAULT_KINDS: readonly FaultKind[] = [...PROCESS_FAULT_KINDS, 'etcd-quorum-loss', ...NETWORK_FAULT_KINDS, 'full-disk-primary'];
/**
 * Kinds a run makes only when asked (--kinds): outside the default lists, so that the seeds of earlier runs replay the
 * same schedule. stop-primary-agent freezes the primary's agent alone while its PostgreSQL runs (the fence's case);
 * blackhole-primary drops every packet of the primary's namespace (a power loss, as the others see it; netns only);
 * kill-etcd-leader SIGKILLs the etcd raft leader a few times under load (no PostgreSQL failover may follow);
 * etcd-quorum-loss-failsafe takes etcd's quorum away with failsafe_mode on (the primary must stay, nobody promotes).
 */
export const EXTRA_FAULT_KINDS: readonly FaultKind[] = [
  'stop-primary-agent',
  'blackhole-primary',
  'kill-etcd-leader',
  'etcd-quorum-loss-failsafe',
];
export const ALL_FAULT_KINDS: readonly FaultKind[] = [...FAULT_KINDS, ...EXTRA_FAULT_KINDS];

export function faultSchedule(seed: number, count: number, kinds: readonly FaultKind[] = FAULT_KINDS): Fault[] {
  if (!Number.isInteger(count) || count < 1)
    throw new PgwardenError('PGW_CHAOS_USAGE', `--faults must be a positive integer, got ${count}`, { context: { faults: count } });
  if (kinds.length === 0)
    throw new PgwardenError('PGW_CHAOS_USAGE', 'no fault kinds to choose from', { context: { hint: 'pass at least one kind in --kinds' } });
  const random = mulberry32(seed);
  return Array.from({ length: count }, (_unused, index) => ({
    index,
    kind: kinds[Math.floor(random() * kinds.length)]!,
    pick: Math.floor(random() * 1000),
    settleS: 1 + Math.floor(random() * 3),
  }));
}
