// The create_replica_methods loop both PgController implementations share: try each method in order, keep how each
// went, stop at the first success; when none succeeds, one error with the last failure's code and every outcome.
import type { ReplicaMethod, ReplicaMethodResult } from '../core/replica-methods.js';
import { describeError, isPgwardenError, PgwardenError, type ErrorCode } from '../util/errors.js';

/** What running one method gives: done, or skipped with why (nothing was changed, e.g. no backup exists yet). */
export type MethodRun = { readonly outcome: 'ok'; readonly detail: string } | { readonly outcome: 'skipped'; readonly detail: string };

export async function tryReplicaMethods(
  member: string,
  methods: readonly ReplicaMethod[],
  signal: AbortSignal,
  run: (method: ReplicaMethod) => Promise<MethodRun>,
): Promise<readonly ReplicaMethodResult[]> {
  const results: ReplicaMethodResult[] = [];
  let lastError: unknown;
  for (const method of methods) {
    try {
      const outcome = await run(method);
      results.push({ method: method.name, ...outcome });
      if (outcome.outcome === 'ok') return results;
    } catch (error) {
      // A cancelled task stops here: the next method must not start behind a demote or shutdown.
      if (signal.aborted) throw error;
      lastError = error;
      results.push({
        method: method.name,
        outcome: 'failed',
        detail: describeError(error),
        code: isPgwardenError(error) ? error.code : 'PGW_PG_COMMAND_FAILED',
      });
    }
  }
  const code: ErrorCode = isPgwardenError(lastError) ? lastError.code : 'PGW_PG_COMMAND_FAILED';
  const summary = results.map((result) => `${result.method}: ${result.outcome} (${result.detail})`).join('; ');
  throw new PgwardenError(
    code,
    methods.length === 0
      ? `[${member}] no replica creation method can run (create_replica_methods without a leader needs no_leader methods)`
      : `[${member}] every replica creation method failed: ${summary}`,
    { context: { member, methods: results }, cause: lastError },
  );
}
