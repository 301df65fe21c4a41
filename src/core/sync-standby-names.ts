// synchronous_standby_names as the HA core reasons about it: rendering the value pgwarden sets, and reading any
// value back as a durability guarantee ("every acknowledged commit is on at least `count` of `names`").

/** A name no standby connects with: in strict mode it makes commits wait until a real standby is listed. */
export const STRICT_SYNC_PLACEHOLDER = '__patroni_strict_sync_replica_placeholder__';

export type SyncMethod = 'priority' | 'quorum';

/** What a synchronous_standby_names value promises about acknowledged commits. */
export interface SyncGuarantee {
  /** Standbys that can hold acknowledged commits (placeholders and wildcards removed), sorted. */
  readonly names: readonly string[];
  /** Each acknowledged commit is on at least this many of `names`; 0 = commits are acknowledged by the primary alone. */
  readonly count: number;
  /** True when no commit can be acknowledged at all (more standbys required than can ever answer). */
  readonly isBlocking: boolean;
}

const quoteName = (name: string): string => `"${name.replace(/"/g, '""')}"`;

/** The value pgwarden writes for a chosen set. An empty set is '' (asynchronous) or, when strict, the placeholder. */
export function renderSynchronousStandbyNames(method: SyncMethod, names: readonly string[], count: number, isStrict: boolean): string {
  const sorted = [...names].sort();
  if (sorted.length === 0) {
    if (!isStrict) return '';
    return method === 'quorum' ? `ANY 1 (${quoteName(STRICT_SYNC_PLACEHOLDER)})` : quoteName(STRICT_SYNC_PLACEHOLDER);
  }
  const list = sorted.map(quoteName).join(',');
  if (method === 'quorum') return `ANY ${count} (${list})`;
  return sorted.length === 1 && count === 1 ? list : `${count} (${list})`;
}

/** Splits a standby list on commas outside double quotes and unquotes each name (PostgreSQL's syntax). */
function splitNames(text: string): string[] | undefined {
  const names: string[] = [];
  let index = 0;
  const input = text.trim();
  while (index < input.length) {
    while (input[index] === ' ') index++;
    let name = '';
    if (input[index] === '"') {
      index++;
      for (;;) {
        if (index >= input.length) return undefined;
        if (input[index] === '"') {
          if (input[index + 1] === '"') {
            name += '"';
            index += 2;
            continue;
          }
          index++;
          break;
        }
        name += input[index++];
      }
    } else {
      while (index < input.length && input[index] !== ',') name += input[index++];
      name = name.trim().toLowerCase();
    }
    names.push(name);
    while (input[index] === ' ') index++;
    if (index < input.length) {
      if (input[index] !== ',') return undefined;
      index++;
    }
  }
  return names;
}

/**
 * Reads a synchronous_standby_names value. Anything not understood, and the `*` wildcard (any standby may
 * acknowledge, so no named set holds the commits), counts as asynchronous: the weakest promise, so the sync key
 * derived from it never lets a standby promote that might miss a commit.
 */
export function guaranteeOf(value: string): SyncGuarantee {
  const asynchronous: SyncGuarantee = { names: [], count: 0, isBlocking: false };
  const text = value.trim();
  if (text === '') return asynchronous;
  const match = /^(?:(FIRST|ANY)\s+)?(?:(\d+)\s*\((.*)\))$/i.exec(text);
  if (match === null && /[()]/.test(text)) return asynchronous;
  const list = match === null ? text : (match[3] ?? '');
  const count = match === null ? 1 : Number(match[2]);
  const parsed = splitNames(list);
  if (parsed === undefined || parsed.length === 0 || !Number.isInteger(count) || count < 1) return asynchronous;
  if (parsed.includes('*')) return asynchronous;
  const names = [...new Set(parsed.filter((name) => name !== STRICT_SYNC_PLACEHOLDER))].sort();
  return { names, count, isBlocking: count > names.length };
}

/** The sync key as a promotion rule: members of `names` may promote after seeing `quorum` others of them not ahead. */
export interface SyncKeyRule {
  readonly names: readonly string[];
  readonly quorum: number;
}

/**
 * Whether a sync key keeps every commit acknowledged under `guarantee` when a member it allows promotes.
 * A promoter sees itself plus `quorum` others of the key's set and has the most WAL among them; those quorum+1
 * members must meet every `count`-subset of the guarantee's names, which holds when the names are all in the key
 * and quorum >= |key| - count.
 */
export function isKeySafeFor(key: SyncKeyRule, guarantee: SyncGuarantee): boolean {
  if (guarantee.isBlocking) return true;
  if (key.names.length === 0) return true;
  if (guarantee.count === 0) return false;
  const keyNames = new Set(key.names);
  return guarantee.names.every((name) => keyNames.has(name)) && key.quorum >= key.names.length - guarantee.count;
}

/** The tightest key that is safe for every guarantee given (an empty set when none is possible). */
export function safeKeyFor(guarantees: readonly SyncGuarantee[]): SyncKeyRule {
  const relevant = guarantees.filter((guarantee) => !guarantee.isBlocking);
  if (relevant.some((guarantee) => guarantee.count === 0)) return { names: [], quorum: 0 };
  const names = [...new Set(relevant.flatMap((guarantee) => guarantee.names))].sort();
  if (names.length === 0) return { names: [], quorum: 0 };
  const quorum = Math.max(0, ...relevant.map((guarantee) => names.length - guarantee.count));
  // A quorum as large as the set means nobody could ever gather it: the same as no candidate, said plainly.
  return quorum >= names.length ? { names: [], quorum: 0 } : { names, quorum };
}
