// PostgreSQL parameters renamed or removed between major versions, and the one pure function that adapts a parameter
// set to the server it is rendered for, as Patroni does (a config written for PostgreSQL 12 keeps working on 15).
// Sources: the PostgreSQL release notes of each version named below.
import type { GucValue } from './conf-render.js';

/** PostgreSQL's default WAL segment size; the unit wal_keep_segments counted in. */
const WAL_SEGMENT_MB = 16;

interface Rename {
  /** The old name, valid before `sinceMajor`. */
  readonly old: string;
  /** The new name, valid from `sinceMajor` on. */
  readonly current: string;
  readonly sinceMajor: number;
  /** Old value -> new value (undefined when the old value cannot be read: the parameter is dropped with a warning). */
  readonly forward: (value: GucValue) => GucValue | undefined;
  readonly backward: (value: GucValue) => GucValue | undefined;
}

interface Removal {
  readonly name: string;
  /** The first major version without the parameter. */
  readonly removedInMajor: number;
}

const identity = (value: GucValue): GucValue => value;

const MEMORY_UNITS_MB: Readonly<Record<string, number>> = { kb: 1 / 1024, mb: 1, gb: 1024, tb: 1024 * 1024 };

/** A size GUC in MB ('128MB', '1GB', a bare number is MB as wal_keep_size counts it). */
function sizeInMb(value: GucValue): number | undefined {
  const match = /^\s*(\d+(?:\.\d+)?)\s*([kmgt]b)?\s*$/i.exec(String(value));
  if (match === null) return undefined;
  return Number(match[1]) * (MEMORY_UNITS_MB[(match[2] ?? 'mb').toLowerCase()] ?? 1);
}

function segmentsToSize(value: GucValue): GucValue | undefined {
  const segments = Number(value);
  return Number.isInteger(segments) && segments >= 0 ? `${segments * WAL_SEGMENT_MB}MB` : undefined;
}

function sizeToSegments(value: GucValue): GucValue | undefined {
  const mb = sizeInMb(value);
  return mb === undefined ? undefined : Math.ceil(mb / WAL_SEGMENT_MB);
}

export const RENAMED_PARAMETERS: readonly Rename[] = [
  { old: 'wal_keep_segments', current: 'wal_keep_size', sinceMajor: 13, forward: segmentsToSize, backward: sizeToSegments },
  { old: 'min_parallel_relation_size', current: 'min_parallel_table_scan_size', sinceMajor: 10, forward: identity, backward: identity },
  { old: 'force_parallel_mode', current: 'debug_parallel_query', sinceMajor: 16, forward: identity, backward: identity },
];

export const REMOVED_PARAMETERS: readonly Removal[] = [
  { name: 'checkpoint_segments', removedInMajor: 10 },
  { name: 'sql_inheritance', removedInMajor: 10 },
  { name: 'replacement_sort_tuples', removedInMajor: 11 },
  { name: 'operator_precedence_warning', removedInMajor: 14 },
  { name: 'vacuum_cleanup_index_scale_factor', removedInMajor: 14 },
  { name: 'stats_temp_directory', removedInMajor: 15 },
  { name: 'promote_trigger_file', removedInMajor: 16 },
  { name: 'vacuum_defer_cleanup_age', removedInMajor: 16 },
  { name: 'db_user_namespace', removedInMajor: 17 },
  { name: 'old_snapshot_threshold', removedInMajor: 17 },
  { name: 'trace_recovery_messages', removedInMajor: 17 },
];

export interface ParameterChange {
  readonly parameter: string;
  readonly change: 'renamed' | 'removed' | 'superseded';
  /** renamed: the name (and value) written instead. */
  readonly to?: { readonly parameter: string; readonly value: GucValue } | undefined;
  readonly reason: string;
}

export interface AdaptedParameters {
  readonly parameters: Readonly<Record<string, GucValue>>;
  readonly changes: readonly ParameterChange[];
}

/**
 * The parameters as `major` understands them. A renamed parameter given under the other version's name is written
 * under this version's (value converted); if both names are given, the one this version knows wins and the other is
 * dropped. A parameter this version no longer has is dropped. Every change is returned, to be logged.
 */
export function adaptParametersToVersion(input: Readonly<Record<string, GucValue>>, major: number): AdaptedParameters {
  const parameters: Record<string, GucValue> = { ...input };
  const changes: ParameterChange[] = [];
  for (const rename of RENAMED_PARAMETERS) {
    const isNew = major >= rename.sinceMajor;
    const [from, to, convert] = isNew ? [rename.old, rename.current, rename.forward] : [rename.current, rename.old, rename.backward];
    const value = parameters[from];
    if (value === undefined) continue;
    delete parameters[from];
    const era = isNew ? `renamed in PostgreSQL ${rename.sinceMajor}` : `called ${to} before PostgreSQL ${rename.sinceMajor}`;
    if (parameters[to] !== undefined) {
      changes.push({ parameter: from, change: 'superseded', reason: `${era}; ${to} is set too and wins` });
      continue;
    }
    const converted = convert(value);
    if (converted === undefined) {
      changes.push({ parameter: from, change: 'removed', reason: `${era}, and its value ${String(value)} cannot be converted` });
      continue;
    }
    parameters[to] = converted;
    changes.push({ parameter: from, change: 'renamed', to: { parameter: to, value: converted }, reason: era });
  }
  for (const removal of REMOVED_PARAMETERS) {
    if (major < removal.removedInMajor || parameters[removal.name] === undefined) continue;
    delete parameters[removal.name];
    changes.push({ parameter: removal.name, change: 'removed', reason: `removed in PostgreSQL ${removal.removedInMajor}` });
  }
  return { parameters, changes };
}
