// How a replica is created: the one place that says which of Patroni's create_replica_methods pgwarden runs (pure).
// postgresql.create_replica_methods and standby_cluster.create_replica_methods are refused when they name another
// method (config/patroni-keys.ts, core/standby-cluster.ts): to support one (pgBackRest, WAL-G...), add it here and to
// the executor that clones a replica.

/** The replica creation methods pgwarden runs: pg_basebackup from a running member only. */
export const SUPPORTED_REPLICA_METHODS: readonly string[] = ['basebackup'];

/** The methods of a create_replica_methods value that pgwarden cannot run (a non-list is itself unsupported). */
export function unsupportedReplicaMethods(value: unknown): string[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) return [JSON.stringify(value)];
  return value.filter((method) => !SUPPORTED_REPLICA_METHODS.includes(method as string)).map(String);
}

/** "create_replica_methods lists pgbackrest: pgwarden creates replicas with basebackup only; ..." or undefined. */
export function replicaMethodsProblem(path: string, value: unknown): string | undefined {
  const unsupported = unsupportedReplicaMethods(value);
  if (unsupported.length === 0) return undefined;
  return `${path} lists ${unsupported.join(', ')}: pgwarden creates replicas with ${SUPPORTED_REPLICA_METHODS.join(', ')} only (a restore from a backup tool is not supported yet); remove the other methods or the key`;
}
