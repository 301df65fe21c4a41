// Where the split listener sends a transaction, as a pure function: the tracker's decision, the session's
// read-your-writes floor and the replicas' own replay positions in; a replica or the primary out.
import { POSITION_FRESH_MS, pickLeastConnections, type Backend } from '../routing.js';
import type { ObservedPosition } from '../member-positions.js';

export interface ReadTargetInput {
  /** Replicas the replica route allows now (streaming, within replica_max_lag); empty when it would fall back. */
  readonly replicas: readonly Backend[];
  readonly positions: ReadonlyMap<string, ObservedPosition> | undefined;
  /** The session's floor: the LSN (bytes) its last write committed at; undefined before its first write. */
  readonly floor: number | undefined;
  readonly nowMs: number;
  /** Busy server connections per member, to spread reads. */
  readonly load: ReadonlyMap<string, number>;
  readonly rotation: number;
}

export type ReadTarget = { readonly kind: 'replica'; readonly backend: Backend } | { readonly kind: 'primary'; readonly reason: string };

/**
 * A replica qualifies for a session with a floor only when its own answer, read at most POSITION_FRESH_MS ago, shows
 * it replayed at least that far: the answer was true when read and replay only moves forward, so the session's
 * write is visible there. Without fresh positions (no proxy.monitor) a session that wrote reads from the primary.
 */
export function pickReadTarget(input: ReadTargetInput): ReadTarget {
  if (input.replicas.length === 0) return { kind: 'primary', reason: 'no replica qualifies' };
  const floor = input.floor;
  const candidates =
    floor === undefined
      ? input.replicas
      : input.replicas.filter((backend) => {
          const position = input.positions?.get(backend.member);
          return (
            position !== undefined &&
            position.isInRecovery &&
            position.lsn !== undefined &&
            input.nowMs - position.observedAtMs <= POSITION_FRESH_MS &&
            position.lsn >= floor
          );
        });
  const backend = pickLeastConnections(candidates, input.load, input.rotation);
  return backend === undefined
    ? { kind: 'primary', reason: 'no replica has replayed the session’s last commit yet (read-your-writes)' }
    : { kind: 'replica', backend };
}

/** `SHOW pgwarden.last_commit_lsn`, answered by the proxy (any spacing and case, an optional semicolon). */
export const SHOW_LAST_COMMIT_LSN = /^\s*show\s+pgwarden\.last_commit_lsn\s*;?\s*$/i;

/** An LSN in bytes as PostgreSQL prints it (`16/B374D848`). */
export function formatLsn(bytes: number): string {
  const high = Math.floor(bytes / 2 ** 32);
  const low = bytes - high * 2 ** 32;
  return `${high.toString(16).toUpperCase()}/${low.toString(16).toUpperCase()}`;
}

/** `SET pgwarden.min_lsn = '...'` (or TO, SESSION): the value as written, or undefined when this is not that statement. */
export function setMinLsnValue(sql: string): string | undefined {
  return /^\s*set\s+(?:session\s+)?pgwarden\.min_lsn\s*(?:=|to)\s*'([^']*)'\s*;?\s*$/i.exec(sql)?.[1];
}

/** Whether a Query touches a pgwarden.* setting at all (the proxy answers those; servers know none). */
export const MENTIONS_PGWARDEN_SETTING = /^\s*(?:set|show|reset)\s+(?:session\s+)?pgwarden\./i;

/** An LSN as PostgreSQL prints it (`16/B374D848`) in bytes; undefined when malformed. */
export function parseLsn(text: string): number | undefined {
  const match = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/.exec(text.trim());
  return match === null ? undefined : parseInt(match[1]!, 16) * 2 ** 32 + parseInt(match[2]!, 16);
}

/**
 * The replica to ask whether it replayed a floor yet: the one the monitor last saw furthest ahead (a paused or slow
 * replica is asked last), else the least busy.
 */
export function closestReplica(input: Omit<ReadTargetInput, 'floor'>): Backend | undefined {
  const lsnOf = (backend: Backend): number => {
    const position = input.positions?.get(backend.member);
    return position?.lsn !== undefined && input.nowMs - position.observedAtMs <= POSITION_FRESH_MS ? position.lsn : -1;
  };
  const best = Math.max(-1, ...input.replicas.map(lsnOf));
  return pickLeastConnections(
    input.replicas.filter((backend) => lsnOf(backend) === best),
    input.load,
    input.rotation,
  );
}
