// Total order of leader-race candidates: most WAL first, then highest failover_priority, then name.
import type { MemberTags } from './types.js';

export interface Candidate {
  readonly name: string;
  readonly walPosition: bigint;
  readonly failoverPriority: number;
}

/** Patroni's default priority is 1; 0 (or nofailover) means never promote. */
export function failoverPriority(tags: MemberTags): number {
  if (tags.nofailover === true) return 0;
  return typeof tags.failover_priority === 'number' ? tags.failover_priority : 1;
}

/** Negative when `a` is the better candidate. The name tie-break makes exactly one of two identical nodes try. */
export function compareCandidates(a: Candidate, b: Candidate): number {
  if (a.walPosition !== b.walPosition) return a.walPosition > b.walPosition ? -1 : 1;
  if (a.failoverPriority !== b.failoverPriority) return b.failoverPriority - a.failoverPriority;
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}
