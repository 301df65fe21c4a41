// `pgwarden upgrade --major --method logical --target <new cluster's config>`: a blue/green major upgrade. The new
// cluster (a pgwarden cluster of its own scope in the same DCS, on the new major, started by the operator) gets the
// schema (pg_dump --schema-only | psql) and is fed by logical replication; at cutover the proxies hold clients, the old
// primary is fenced read-only, the new cluster is proved to have applied everything, sequences are set, and the
// proxies follow the new cluster's leader. Steps are printed as they run; a re-run continues (the publication marks a
// started copy, the redirect record a started cutover); --abort rolls back anything before the switch.
import {
  applyVerdict,
  FENCE_ROUNDS,
  logicalUpgradeRefusals,
  schemaChanges,
  sequenceTargets,
  withUpgradeSlotRule,
  type FenceMark,
  type LogicalUpgradeDatabases,
  type PgAddress,
  type ScopeRedirects,
  type SourceFacts,
} from '../../core/logical-upgrade.js';
import { formatLsn } from '../../core/lsn.js';
import type { ClusterView, DynamicConfig } from '../../core/types.js';
import { describeError, PgwardenError } from '../../util/errors.js';

export interface LogicalUpgradeContext {
  readonly oldScope: string;
  readonly newScope: string;
  readonly loadOld: () => Promise<ClusterView>;
  readonly loadNew: () => Promise<ClusterView>;
  /** The redirect record of the old scope, which its proxies follow. */
  readonly redirects: ScopeRedirects;
  readonly databases: LogicalUpgradeDatabases;
  /** Changes the old cluster's dynamic config (compare-and-set); `change` returns undefined for no change. */
  readonly updateOldConfig: (change: (config: DynamicConfig) => DynamicConfig | undefined) => Promise<void>;
  readonly out: (text: string) => void;
  readonly sleep: (ms: number) => Promise<void>;
  readonly nowMs: () => number;
  readonly wallNow: () => Date;
}

export interface LogicalUpgradeOptions {
  readonly isAbort: boolean;
  /** false: stop once the copy is in sync (a later run cuts over). */
  readonly isCutover: boolean;
  readonly sequenceMargin: bigint;
  /** How long the initial copy and catch-up may take. */
  readonly copyTimeoutMs: number;
  /** How far behind the old primary the new cluster may be when the cutover starts (the rest is applied in the pause). */
  readonly maxLagBytes: number;
  /** How long the new cluster may take to apply the last writes once the old primary is fenced (then: roll back). */
  readonly applyTimeoutMs: number;
}

/** How often progress is polled: one catalog read on each side. */
const POLL_MS = 100;
/** How long the proxies get to say they hold clients (the fence is the guarantee; this only spares clients errors). */
const PROXY_HOLD_MS = 3000;
/** How long the proxies get to route to the new leader before the command says so and ends anyway. */
const PROXY_ROUTE_MS = 15_000;

function refused(message: string, context: LogicalUpgradeContext, problems: readonly string[], hint: string): PgwardenError {
  return new PgwardenError('PGW_UPGRADE_REFUSED', message, {
    context: { command: ['pgwarden', 'upgrade'], scope: context.oldScope, target: context.newScope, problems, hint },
  });
}

function failed(message: string, context: LogicalUpgradeContext, hint: string): PgwardenError {
  return new PgwardenError('PGW_UPGRADE_FAILED', message, {
    context: { command: ['pgwarden', 'upgrade'], scope: context.oldScope, target: context.newScope, hint },
  });
}

/** The leader's PostgreSQL address (its member's conn_url), or why there is none. */
function leaderAddress(view: ClusterView, scope: string): { name: string; address: PgAddress } | string {
  const leader = view.leader?.name;
  if (leader === undefined) return `scope ${scope} has no leader`;
  const member = view.members.find((candidate) => candidate.name === leader);
  if (member === undefined) return `the leader ${leader} of scope ${scope} has no member key`;
  try {
    const url = new URL(member.conn_url);
    return { name: leader, address: { host: url.hostname.replace(/^\[|\]$/g, ''), port: Number(url.port === '' ? 5432 : url.port) } };
  } catch {
    return `the leader ${leader} of scope ${scope} has an unusable conn_url ${JSON.stringify(member.conn_url)}`;
  }
}

class Steps {
  readonly #context: LogicalUpgradeContext;
  constructor(context: LogicalUpgradeContext) {
    this.#context = context;
  }
  stamp(): string {
    return this.#context.wallNow().toISOString();
  }
  async run<T>(line: string, work: () => Promise<T>): Promise<T> {
    this.#context.out(`${this.stamp()} step: ${line}`);
    const startedMs = this.#context.nowMs();
    const result = await work();
    // A wait that ran out of time returns what it waited for instead of failing: say so rather than "ok".
    const parts: unknown[] = Array.isArray(result) ? result : [result];
    const isTimedOut = parts.some((part) => typeof part === 'object' && part !== null && 'waitingFor' in part);
    this.#context.out(
      `${this.stamp()} ${isTimedOut ? 'timed out' : 'ok'} (${((this.#context.nowMs() - startedMs) / 1000).toFixed(2)} s): ${line}`,
    );
    return result;
  }
}

async function waitFor<T>(
  context: LogicalUpgradeContext,
  timeoutMs: number,
  probe: () => Promise<{ done: T } | { waitingFor: string }>,
): Promise<{ done: T } | { waitingFor: string }> {
  const deadlineMs = context.nowMs() + timeoutMs;
  for (;;) {
    const result = await probe();
    if ('done' in result || context.nowMs() > deadlineMs) return result;
    await context.sleep(POLL_MS);
  }
}

export async function logicalUpgradeCommand(options: LogicalUpgradeOptions, context: LogicalUpgradeContext): Promise<void> {
  const steps = new Steps(context);
  const signal = (): AbortSignal => AbortSignal.timeout(5000);
  if (context.newScope === context.oldScope)
    throw refused(
      `the new cluster's scope is the old one's (${context.oldScope})`,
      context,
      [],
      'the new cluster needs a scope of its own',
    );
  const [oldView, newView, redirect] = await Promise.all([context.loadOld(), context.loadNew(), context.redirects.readRedirect(signal())]);
  if (redirect?.phase === 'switched') {
    if (options.isAbort)
      throw refused(
        `the cutover to ${redirect.scope} is done: there is nothing left to roll back`,
        context,
        [],
        'the proxies follow the new cluster; to go back, run a logical upgrade from it to a cluster of the old major',
      );
    context.out(`${steps.stamp()} the cutover to scope ${redirect.scope} is done already: the proxies of ${context.oldScope} follow it`);
    return;
  }
  if (newView.members.length === 0)
    throw refused(
      `scope ${context.newScope} has no members in this DCS`,
      context,
      [],
      "start the new cluster (its own scope, the new major's bin_dir) on the same etcd and namespace as the old one, then run this again",
    );
  const old = leaderAddress(oldView, context.oldScope);
  const fresh = leaderAddress(newView, context.newScope);
  if (typeof old === 'string' || typeof fresh === 'string')
    throw refused(
      [old, fresh].filter((problem) => typeof problem === 'string').join('; '),
      context,
      [],
      'wait until both clusters have a leader (pgwarden list)',
    );
  const facts = await context.databases.sourceFacts(old.address);
  const databases = facts.databases.map((database) => ({ name: database.name, oid: database.oid }));
  const started = await context.databases.publishedFingerprints(
    old.address,
    databases.map((database) => database.name),
  );

  if (options.isAbort) {
    await steps.run(
      `roll back: drop the subscriptions on ${fresh.name}, the publications on ${old.name}, the fence and the hold`,
      async () => {
        await context.databases.dropSubscriptions(fresh.address, databases);
        await context.databases.dropPublications(old.address, databases);
        await context.databases.unfence(old.address);
        await context.redirects.deleteRedirect(signal());
      },
    );
    context.out(
      `${steps.stamp()} rolled back: ${context.oldScope} takes writes again; the schema copied to ${context.newScope} stays (drop its databases before starting again)`,
    );
    return;
  }

  const isStarted = started.size > 0;
  const target = await context.databases.targetFacts(
    fresh.address,
    databases.map((database) => database.name),
  );
  const refusals = logicalUpgradeRefusals(facts, isStarted ? { ...target, existingTables: [] } : target);
  if (isStarted) refusals.push(...schemaChanges(started, facts.databases));
  if (refusals.length > 0) {
    for (const problem of refusals) context.out(`  refused: ${problem}`);
    throw refused(
      `the logical upgrade of ${context.oldScope} to ${context.newScope} is refused (${isStarted ? 'nothing was cut over' : 'nothing was changed'}): ${refusals.join('; ')}`,
      context,
      refusals,
      isStarted
        ? 'nothing was cut over: pgwarden upgrade --major --method logical --abort rolls the copy back'
        : 'nothing was changed: fix what is listed and run it again',
    );
  }
  context.out(
    `${steps.stamp()} ${isStarted ? 'continuing' : 'starting'} the logical upgrade of ${context.oldScope} (${old.name}, PostgreSQL ${facts.serverVersionNum}) to ${context.newScope} (${fresh.name}, PostgreSQL ${target.serverVersionNum}): ${databases.length} database(s)`,
  );
  if (!isStarted) {
    const roles = await steps.run(`copy the roles ${fresh.name} lacks`, () => context.databases.copyRoles(old.address, fresh.address));
    if (roles.length > 0) context.out(`  created: ${roles.join(', ')}`);
    await steps.run(
      `keep the agents of ${context.oldScope} from dropping the copy's slots (ignore_slots: type logical, plugin pgoutput)`,
      () => context.updateOldConfig((config) => withUpgradeSlotRule(config, true)),
    );
    for (const database of facts.databases) {
      await steps.run(`copy the schema of ${database.name} (pg_dump --schema-only | psql)`, () =>
        context.databases.copySchema(old.address, fresh.address, database.name),
      );
      await steps.run(`publish every table of ${database.name} on ${old.name}`, () =>
        context.databases.startPublication(old.address, database.name, database.fingerprint),
      );
      await steps.run(`subscribe ${fresh.name} to ${database.name}`, () =>
        context.databases.subscribe(fresh.address, database.name, database.oid, old.address),
      );
    }
  } else if (
    redirect === undefined &&
    !(await context.databases.hasSlots(
      old.address,
      databases.map((database) => database.oid),
    ))
  ) {
    throw refused(
      `${old.name} lacks the replication slots of the copy: the old cluster failed over since the copy began (slots are not on replicas)`,
      context,
      [],
      'roll back with pgwarden upgrade --major --method logical --abort, drop the databases copied to the new cluster, and start again',
    );
  }
  if (redirect === undefined) {
    const synced = await steps.run(`wait for the initial copy and for the new cluster to be within ${options.maxLagBytes} bytes`, () =>
      waitFor(context, options.copyTimeoutMs, async () => {
        const lsn = await context.databases.currentLsn(old.address);
        const verdict = applyVerdict(
          await context.databases.progress(old.address, fresh.address, databases),
          lsn,
          BigInt(options.maxLagBytes),
        );
        return verdict.isApplied ? { done: lsn } : { waitingFor: verdict.waitingFor };
      }),
    );
    if (!('done' in synced))
      throw failed(
        `the copy is not in sync after ${options.copyTimeoutMs / 1000} s: waiting for ${synced.waitingFor}`,
        context,
        'run the same command again to keep waiting (nothing was cut over), or --abort',
      );
    if (!options.isCutover) {
      context.out(
        `${steps.stamp()} in sync: ${context.newScope} follows ${context.oldScope}; run the command again without --no-cutover to cut over`,
      );
      return;
    }
  } else context.out(`${steps.stamp()} a cutover was interrupted (the proxies hold clients): continuing it`);
  await cutover(options, context, steps, { old, fresh, facts, databases, started, targetVersionNum: target.serverVersionNum });
}

interface CutoverInput {
  readonly old: { name: string; address: PgAddress };
  readonly fresh: { name: string; address: PgAddress };
  readonly facts: SourceFacts;
  readonly databases: readonly { readonly name: string; readonly oid: number }[];
  readonly started: ReadonlyMap<string, string>;
  readonly targetVersionNum: number;
}

/** Until the new cluster has applied everything up to `lsn` on the old primary, or `timeoutMs` ran out. */
function waitApplied(
  context: LogicalUpgradeContext,
  input: CutoverInput,
  lsn: bigint,
  timeoutMs: number,
): Promise<{ done: true } | { waitingFor: string }> {
  return waitFor(context, timeoutMs, async () => {
    const verdict = applyVerdict(await context.databases.progress(input.old.address, input.fresh.address, input.databases), lsn);
    return verdict.isApplied ? { done: true as const } : { waitingFor: verdict.waitingFor };
  });
}

/** Under the fence: the schema checked again and everything up to the mark applied, then the sequences set; or why not. */
async function applyUnderFence(
  options: LogicalUpgradeOptions,
  context: LogicalUpgradeContext,
  steps: Steps,
  input: CutoverInput,
  mark: FenceMark,
): Promise<string | undefined> {
  const { old, fresh, databases } = input;
  // Without a fingerprint published (a copy begun by an older pgwarden) the schema seen at this run's start counts.
  const started =
    input.started.size > 0 ? input.started : new Map(input.facts.databases.map((database) => [database.name, database.fingerprint]));
  // The schema check under the fence and the wait for the apply are both reads: run together, they cost one pause.
  const [now, applied] = await steps.run(
    `wait until ${fresh.name} has applied everything up to ${old.name}'s last write; check the schema again`,
    () => Promise.all([context.databases.sourceFacts(old.address), waitApplied(context, input, mark.lsn, options.applyTimeoutMs)]),
  );
  const violations = [
    ...schemaChanges(started, now.databases),
    ...now.databases.filter((database) => database.largeObjects > 0).map((database) => `database ${database.name} holds large objects`),
  ];
  if (violations.length > 0) return violations.join('; ');
  if (!('done' in applied)) return `${fresh.name} did not apply everything in ${options.applyTimeoutMs / 1000} s: ${applied.waitingFor}`;
  await steps.run('set the sequences of the new cluster', async () => {
    for (const database of databases) {
      const targets = sequenceTargets(await context.databases.sequences(old.address, database.name), options.sequenceMargin);
      await context.databases.setSequences(fresh.address, database.name, targets);
    }
  });
  return undefined;
}

async function cutover(options: LogicalUpgradeOptions, context: LogicalUpgradeContext, steps: Steps, input: CutoverInput): Promise<void> {
  const { old, fresh, databases } = input;
  const signal = (): AbortSignal => AbortSignal.timeout(5000);
  const holdStartedMs = context.nowMs();
  await steps.run(`hold: the proxies of ${context.oldScope} hold primary clients`, async () => {
    await context.redirects.writeRedirect({ scope: context.newScope, phase: 'hold', since: context.wallNow().toISOString() }, signal());
    const held = await waitFor(context, PROXY_HOLD_MS, async () => {
      const proxies = (await context.loadOld()).proxies ?? [];
      const routing = proxies.filter((proxy) => proxy.primary !== undefined).map((proxy) => proxy.name);
      return routing.length === 0 ? { done: proxies.length } : { waitingFor: routing.join(', ') };
    });
    if (!('done' in held)) context.out(`  not held yet by ${held.waitingFor}: the fence stops their writes`);
  });
  const rollBack = async (why: string): Promise<never> => {
    context.out(`${steps.stamp()} rolling the cutover back: ${why}`);
    try {
      await context.databases.unfence(old.address);
      await context.redirects.deleteRedirect(signal());
    } catch (error) {
      throw failed(
        `the cutover stopped (${why}) and its roll-back failed: ${describeError(error)}`,
        context,
        'run pgwarden upgrade --major --method logical --abort to release the fence and the hold',
      );
    }
    context.out(`${steps.stamp()} rolled back: ${context.oldScope} takes writes again`);
    throw refused(`the cutover was refused: ${why}`, context, [why], 'nothing was cut over; fix the cause, then run the command again');
  };
  // Anything that goes wrong before the switch leaves the old cluster serving: release the fence and the hold.
  let problem: string | undefined;
  let mark: FenceMark | undefined;
  try {
    for (let round = 1; problem === undefined; round++) {
      mark = await steps.run(`fence ${old.name}${round > 1 ? ' again' : ''}: new sessions read-only, every client session ended`, () =>
        context.databases.fence(old.address),
      );
      problem = await applyUnderFence(options, context, steps, input, mark);
      if (problem !== undefined) break;
      // Read-only is a default a session may turn off: a transaction ID handed out since the mark wrote after the fence.
      const since = (await context.databases.nextXid(old.address)) - mark.nextXid;
      if (since === 0n) break;
      const what = `${since} transaction(s) took a transaction ID on ${old.name} after the fence`;
      if (round === FENCE_ROUNDS)
        problem = `${what} in each of ${FENCE_ROUNDS} rounds: a client keeps writing there (it turned default_transaction_read_only off, or connects past the proxy)`;
      else
        context.out(
          `  ${what} (a session that turned read-only off, or autovacuum's ANALYZE): ending the sessions again, then ${fresh.name} must apply those too`,
        );
    }
  } catch (error) {
    problem = `the cutover failed: ${describeError(error)}`;
  }
  if (problem !== undefined || mark === undefined) return rollBack(problem ?? 'the old primary was not fenced');
  await steps.run(`switch: the proxies of ${context.oldScope} follow the leader of ${context.newScope}`, () =>
    context.redirects.writeRedirect({ scope: context.newScope, phase: 'switched', since: context.wallNow().toISOString() }, signal()),
  );
  const switchedMs = context.nowMs();
  const routed = await waitFor(context, PROXY_ROUTE_MS, async () => {
    const proxies = (await context.loadOld()).proxies ?? [];
    const newMembers = new Set((await context.loadNew()).members.map((member) => member.name));
    const behind = proxies.filter((proxy) => proxy.primary === undefined || !newMembers.has(proxy.primary)).map((proxy) => proxy.name);
    return behind.length === 0 ? { done: proxies.length } : { waitingFor: behind.join(', ') };
  });
  const routedMs = context.nowMs();
  context.out(
    `${steps.stamp()} write pause: ${((switchedMs - holdStartedMs) / 1000).toFixed(2)} s from the hold to the switch; ${
      'done' in routed
        ? `${routed.done} prox${routed.done === 1 ? 'y' : 'ies'} routing to ${context.newScope} ${((routedMs - holdStartedMs) / 1000).toFixed(2)} s after the hold`
        : `not routing to ${context.newScope} yet after ${PROXY_ROUTE_MS / 1000} s: ${routed.waitingFor}`
    }`,
  );
  // The subscriptions still run: a write that got past the fence after the last check is applied before they go.
  // The switch is done: an old primary that cannot be asked now is said, not a failure of the upgrade.
  const late = await context.databases.nextXid(old.address).then(
    (xid) => xid - mark.nextXid,
    (error: unknown) => {
      context.out(`${steps.stamp()} WARNING: could not ask ${old.name} for writes after the fence: ${describeError(error)}`);
      return 0n;
    },
  );
  if (late > 0n) {
    const lsn = await context.databases.currentLsn(old.address);
    const applied = await waitApplied(context, input, lsn, options.applyTimeoutMs);
    context.out(
      `${steps.stamp()} WARNING: ${late} transaction(s) took a transaction ID on ${old.name} after the fence's last check (a session that turned read-only off, or autovacuum): ${
        'done' in applied
          ? `${fresh.name} applied everything up to ${formatLsn(lsn)} before the subscriptions were dropped`
          : `${fresh.name} did not apply them (${applied.waitingFor}): compare the two clusters`
      }`,
    );
  }
  await steps.run(`clean up: drop the subscriptions on ${fresh.name} and the publications on ${old.name}`, async () => {
    await context.databases.dropSubscriptions(fresh.address, databases);
    await context.databases.dropPublications(old.address, databases);
    await context.updateOldConfig((config) => withUpgradeSlotRule(config, false));
  });
  context.out(
    `${steps.stamp()} done: ${context.newScope} (PostgreSQL ${input.targetVersionNum}) serves the proxies of ${context.oldScope}; ${old.name} stays fenced read-only (ALTER SYSTEM RESET default_transaction_read_only to lift it)`,
  );
}
