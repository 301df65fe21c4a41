// A standby cluster (Patroni's `standby_cluster` in the dynamic config): the whole cluster replicates from a remote
// primary. Its leader, the standby leader, holds the lock but runs PostgreSQL as a replica of that remote; the other
// members cascade from it. Removing the section promotes the standby leader (pure).
import { standbyMethodsProblem } from './replica-methods.js';
import type { DynamicConfig } from './types.js';

/**
 * The upstream name of the remote primary in actions (startReplica, followLeader, basebackup): not a member of this
 * cluster, so it has no member key; the executor resolves it from the `standby_cluster` section instead.
 */
export const REMOTE_PRIMARY = '(standby_cluster)';

export interface StandbyClusterSettings {
  readonly host: string | undefined;
  readonly port: number | undefined;
  /** A slot on the remote primary for the standby leader (none when absent). */
  readonly primarySlotName: string | undefined;
  /** WAL from an archive, with or without streaming from host/port. */
  readonly restoreCommand: string | undefined;
  readonly archiveCleanupCommand: string | undefined;
  readonly recoveryMinApplyDelay: string | number | undefined;
}

const KNOWN_KEYS = new Set([
  'host',
  'port',
  'primary_slot_name',
  'restore_command',
  'archive_cleanup_command',
  'recovery_min_apply_delay',
  'create_replica_methods',
]);

/**
 * Checks a `standby_cluster` value (undefined/null = none); returns a message naming the bad key, or undefined. As in
 * Patroni, a section counts only when it names host, port or restore_command.
 */
export function validateStandbyCluster(value: unknown): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'object' || Array.isArray(value))
    return 'standby_cluster must be a mapping with host and port of the remote primary and/or restore_command';
  const section = value as Record<string, unknown>;
  for (const key of Object.keys(section))
    if (!KNOWN_KEYS.has(key)) return `standby_cluster.${key} is not a standby_cluster key (expected one of ${[...KNOWN_KEYS].join(', ')})`;
  if (section.host !== undefined && (typeof section.host !== 'string' || section.host === ''))
    return 'standby_cluster.host must be a host name or address';
  if (section.port !== undefined) {
    const port = Number(section.port);
    if (!Number.isInteger(port) || port < 1 || port > 65535)
      return `standby_cluster.port must be a TCP port, got ${JSON.stringify(section.port)}`;
  }
  for (const key of ['primary_slot_name', 'restore_command', 'archive_cleanup_command'] as const)
    if (section[key] !== undefined && section[key] !== null && typeof section[key] !== 'string')
      return `standby_cluster.${key} must be a string`;
  if (typeof section.primary_slot_name === 'string' && !/^[a-z0-9_]{1,63}$/.test(section.primary_slot_name))
    return 'standby_cluster.primary_slot_name may contain only lower-case letters, digits and underscores (at most 63)';
  const methodsProblem = standbyMethodsProblem('standby_cluster.create_replica_methods', section.create_replica_methods);
  if (methodsProblem !== undefined) return methodsProblem;
  return undefined;
}

/** The standby cluster settings of a dynamic config, or undefined when this is not a standby cluster. */
export function standbyClusterOf(config: DynamicConfig | undefined): StandbyClusterSettings | undefined {
  const value = config?.standby_cluster;
  if (value === undefined || value === null || typeof value !== 'object' || Array.isArray(value)) return undefined;
  if (validateStandbyCluster(value) !== undefined) return undefined;
  const section = value as Record<string, unknown>;
  const text = (key: string): string | undefined => {
    const entry = section[key];
    return typeof entry === 'string' && entry !== '' ? entry : undefined;
  };
  const port = section.port === undefined || section.port === null ? undefined : Number(section.port);
  const settings: StandbyClusterSettings = {
    host: text('host'),
    port,
    primarySlotName: text('primary_slot_name'),
    restoreCommand: text('restore_command'),
    archiveCleanupCommand: text('archive_cleanup_command'),
    recoveryMinApplyDelay:
      typeof section.recovery_min_apply_delay === 'string' || typeof section.recovery_min_apply_delay === 'number'
        ? section.recovery_min_apply_delay
        : undefined,
  };
  return settings.host !== undefined || settings.port !== undefined || settings.restoreCommand !== undefined ? settings : undefined;
}

/** This member runs as the standby leader: it holds the lock of a standby cluster and its PostgreSQL is a running replica. */
export function isStandbyLeaderNow(
  view: { readonly config: DynamicConfig | undefined; readonly leader?: { readonly name: string } | undefined } | undefined,
  name: string,
  pg: { readonly isRunning: boolean; readonly role: string | undefined } | undefined,
  holdsLock: boolean,
): boolean {
  return (
    holdsLock &&
    view?.leader?.name === name &&
    standbyClusterOf(view.config) !== undefined &&
    pg?.isRunning === true &&
    pg.role === 'replica'
  );
}

/** A stable text of the settings, to tell whether the standby leader follows the section as it is now. */
export function standbyClusterFingerprint(settings: StandbyClusterSettings | undefined): string {
  return JSON.stringify(settings ?? null);
}
