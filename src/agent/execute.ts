// Carries out a Decision's actions against the ports, in order, stopping at the first failure; records lock send times.
import { lockDeadlineOf } from '../core/lease.js';
import { NO_LEADER_SOURCE, type CustomBootstrap, type ReplicaMethod, type ReplicaMethodResult } from '../core/replica-methods.js';
import type { Clock, Dcs, PgController, RestoreTool, StopMode, Upstream } from '../core/ports.js';
import { describeSlotFailures, failedSlotSteps } from '../core/slot-changes.js';
import { REMOTE_PRIMARY, standbyClusterOf } from '../core/standby-cluster.js';
import type { ArchiveMethod } from '../core/wal-archive.js';
import type { Action, ClusterView, DemoteMode, DynamicConfig, FailsafeTarget, FailsafeTopology, LockObservation } from '../core/types.js';
import { PgwardenError } from '../util/errors.js';
import { within } from '../util/abort.js';
import { describeError, isPgwardenError } from '../util/errors.js';
import type { Log } from '../util/log.js';
import type { CallbackRunner } from './callbacks.js';
import type { TaskSlot } from './tasks.js';

/** How each demote mode stops PostgreSQL and whether it gives the lock back (Patroni's demote table). */
const DEMOTE_POLICY: Readonly<Record<DemoteMode, { readonly stop: StopMode; readonly releaseLock: boolean; readonly drainMs: number }>> = {
  // DCS lost: stop quickly; the lock cannot be released anyway and will expire. The core's dcs-unreachable rule then
  // starts PostgreSQL again read-only, as Patroni does.
  offline: { stop: 'fast', releaseLock: false, drainMs: 0 },
  // Switchover: a clean shutdown checkpoint lets the old primary rejoin without rewind. The short drain first lets
  // proxies, which see the same switchover request, start holding new clients, and lets connections already in their
  // startup handshake finish it, so a reconnecting client meets a delay, not a failed connect. Writes keep working
  // during the drain: it delays the outage, it does not lengthen it.
  graceful: { stop: 'fast', releaseLock: true, drainMs: 150 },
  // Unhealthy primary still holding the lock: stop now and let others race at once.
  immediate: { stop: 'immediate', releaseLock: true, drainMs: 0 },
  // Lost the lock: someone else may already be promoting, every millisecond as primary is a risk.
  'immediate-nolock': { stop: 'immediate', releaseLock: false, drainMs: 0 },
};

/** A cancelled task gets this long to unwind before a demote proceeds regardless. */
const TASK_CANCEL_WAIT_MS = 2000;

/**
 * What the executor remembers about the lock between cycles: the send time of the last successful acquire/renew and
 * the TTL that request asked the lease for (the lock is judged by it, whatever ttl is in force later).
 */
export interface LockHolder {
  current: LockObservation;
}

export const NO_LOCK: LockObservation = { lastRenewSentAtMs: undefined };

export interface ExecutorDeps {
  readonly member: string;
  readonly dcs: Dcs;
  readonly pg: PgController;
  readonly clock: Clock;
  readonly log: Log;
  readonly tasks: TaskSlot;
  readonly lock: LockHolder;
  readonly bootstrapConfig: DynamicConfig;
  /** create_replica_methods: what a clone or reinitialize tries, in order (absent: pg_basebackup into an emptied dir). */
  readonly replicaMethods?: ((from: Upstream) => readonly ReplicaMethod[] | undefined) | undefined;
  /** bootstrap.method: a new cluster is made by this command (a restore) instead of initdb. */
  readonly customBootstrap?: CustomBootstrap | undefined;
  /** The backup: section's point-in-time recovery (pgwarden restore); absent without one. */
  readonly restoreTool?: RestoreTool | undefined;
  /** User callbacks after role and state changes (fire and forget). */
  readonly callbacks?: CallbackRunner | undefined;
  /** Called with the lock after every acquire/renew/release outcome (arms or disarms the lease fence). */
  readonly onLockChanged: (lock: LockObservation) => void;
  /** watchdog.mode: activates the watchdog before an acquire; why not to acquire when `required` and it cannot. */
  readonly watchdogVetoAcquire?: (() => string | undefined) | undefined;
  /** A reconfigure took effect: the fingerprint of the GUC set now applied. */
  readonly onParametersApplied: (fingerprint: string) => void;
  readonly onScheduledRestartCleared: () => void;
  /**
   * The failsafe key now holds this topology: the leader's own last view must say so, or a quorum loss right after
   * the write (before the next read) would find it "not listed" and demote a primary every member would confirm.
   */
  readonly onFailsafeWritten?: ((topology: FailsafeTopology) => void) | undefined;
  /**
   * How this member runs as a replica of another member: postgresql.recovery_conf (restore_command, ...) and the
   * nostream tag (WAL from the archive only, no replication connection). Read per action: a reload may change them.
   */
  readonly replicaOptions?: (() => ReplicaOptions) | undefined;
  /** failsafe_mode's hooks; without them a round confirms nothing and acquires are never vetoed. */
  readonly failsafe?: FailsafeHooks | undefined;
  /** Pushes a new primary's earlier timelines' WAL in the background (agent/wal-catch-up.ts). */
  readonly walCatchUp?: { start(timeline: number, method: ArchiveMethod): Promise<void> } | undefined;
}

/** What the executor needs from the shell's failsafe state (agent/failsafe.ts). */
export interface FailsafeHooks {
  /** Why not to acquire now (a failsafe leader was confirmed after the decision was made), or undefined. */
  vetoAcquire(): string | undefined;
  /** Brackets every acquire/renew in flight: a POST /failsafe that arrives meanwhile is refused. */
  lockCallStarted(): void;
  lockCallEnded(): void;
  /** Sends one round (recording its outcome for the next observation) and says whether every target confirmed. */
  confirm(targets: readonly FailsafeTarget[], ttlMs: number, signal: AbortSignal, sentAtMs: number): Promise<boolean>;
}

export interface ReplicaOptions {
  readonly recoveryConf: Readonly<Record<string, string | number | boolean>>;
  readonly isNoStream: boolean;
}

/** The upstream as this member starts or follows it: a member with this member's recovery_conf and nostream tag. */
function asReplicaOf(upstream: Upstream, deps: ExecutorDeps): Upstream {
  if (upstream.name === REMOTE_PRIMARY || deps.replicaOptions === undefined) return upstream;
  const options = deps.replicaOptions();
  return { ...upstream, connUrl: options.isNoStream ? '' : upstream.connUrl, recovery: options.recoveryConf };
}

export interface ExecuteContext {
  readonly view: ClusterView | undefined;
  /** The ttl in force for this cycle: acquire and renew ask the lease for it, and the lock is then judged by it. */
  readonly ttlMs: number;
  /** Budget for each inline DCS call: never longer than the time the lock has left. */
  readonly dcsBudgetMs: number;
  readonly pgBudgetMs: number;
}

/**
 * Where `name` is reached for replication, from its member key (or, for the remote primary of a standby cluster, from
 * the `standby_cluster` section); undefined when the view has neither.
 */
export function upstreamOf(view: ClusterView | undefined, name: string | undefined, bootstrapConfig?: DynamicConfig): Upstream | undefined {
  if (name === REMOTE_PRIMARY) return remoteUpstreamOf(view?.config ?? bootstrapConfig);
  const member = name === undefined ? undefined : view?.members.find((candidate) => candidate.name === name);
  return member === undefined ? undefined : { name: member.name, connUrl: member.conn_url };
}

/** Before the DCS holds a config, the local bootstrap.dcs says where a new standby cluster clones from. */
function remoteUpstreamOf(config: DynamicConfig | undefined): Upstream | undefined {
  const settings = standbyClusterOf(config);
  if (settings === undefined) return undefined;
  const connUrl =
    settings.host === undefined && settings.port === undefined
      ? ''
      : `postgres://${formatHost(settings.host ?? '127.0.0.1')}:${settings.port ?? 5432}/postgres`;
  const recovery: Record<string, string | number> = {};
  if (settings.restoreCommand !== undefined) recovery.restore_command = settings.restoreCommand;
  if (settings.archiveCleanupCommand !== undefined) recovery.archive_cleanup_command = settings.archiveCleanupCommand;
  if (settings.recoveryMinApplyDelay !== undefined) recovery.recovery_min_apply_delay = settings.recoveryMinApplyDelay;
  return { name: REMOTE_PRIMARY, connUrl, slotName: settings.primarySlotName ?? null, recovery };
}

/** An IPv6 address goes in brackets in a URL. */
function formatHost(host: string): string {
  return host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
}

export function upstreamFor(view: ClusterView | undefined, name: string, bootstrapConfig?: DynamicConfig): Upstream {
  const upstream = upstreamOf(view, name, bootstrapConfig);
  if (upstream === undefined)
    throw new PgwardenError(
      'PGW_MEMBER_UNKNOWN',
      name === REMOTE_PRIMARY
        ? 'the dynamic config has no usable standby_cluster section: cannot find the remote primary'
        : `member ${name} has no key in the DCS: cannot find its conn_url`,
      { context: { member: name } },
    );
  return upstream;
}

/**
 * Runs the actions in order; the first that fails ends the run (the rest are skipped). `dcs-unavailable`: it failed
 * because etcd did not answer, so more DCS calls in this cycle would each wait out their budget too.
 */
export async function executeActions(
  actions: readonly Action[],
  deps: ExecutorDeps,
  context: ExecuteContext,
): Promise<'ok' | 'failed' | 'dcs-unavailable'> {
  for (const action of actions) {
    let isOk: boolean;
    try {
      isOk = await executeOne(action, deps, context);
    } catch (error) {
      deps.log.warn({ action: action.kind, error: describeError(error) }, `action ${action.kind} failed`);
      return isPgwardenError(error, 'PGW_DCS_UNAVAILABLE') ? 'dcs-unavailable' : 'failed';
    }
    if (!isOk) {
      deps.log.info({ action: action.kind }, `action ${action.kind} did not take effect`);
      return 'failed';
    }
  }
  return 'ok';
}

async function executeOne(action: Action, deps: ExecutorDeps, context: ExecuteContext): Promise<boolean> {
  const { dcs, pg, tasks, clock, lock } = deps;
  const callback = (name: Parameters<CallbackRunner['fire']>[0], role: string): void => deps.callbacks?.fire(name, role);
  const dcsSignal = (): AbortSignal => clock.deadline(context.dcsBudgetMs);
  const pgSignal = (factor = 1): AbortSignal => clock.deadline(context.pgBudgetMs * factor);
  const setLock = (next: LockObservation): void => {
    lock.current = next;
    deps.onLockChanged(next);
  };
  switch (action.kind) {
    case 'acquireLeader':
    case 'renewLeader': {
      // Checked in the same synchronous step as the send: a POST /failsafe accepted after the decision stops the race.
      const veto = action.kind === 'acquireLeader' ? (deps.failsafe?.vetoAcquire() ?? deps.watchdogVetoAcquire?.()) : undefined;
      if (veto !== undefined) {
        deps.log.info({}, `not acquiring the leader lock: ${veto}`);
        return false;
      }
      const sentAtMs = clock.nowMs();
      const ttlMs = context.ttlMs;
      deps.failsafe?.lockCallStarted();
      let isOk: boolean;
      try {
        isOk = await within(dcsSignal(), (signal) =>
          action.kind === 'acquireLeader' ? dcs.acquireLeader(ttlMs, signal) : dcs.renewLeader(ttlMs, signal),
        );
      } finally {
        deps.failsafe?.lockCallEnded();
      }
      // Only a definite answer changes the record: after a timeout the old deadline (and its TTL) keeps ticking.
      setLock(isOk ? { lastRenewSentAtMs: sentAtMs, ttlMs } : NO_LOCK);
      return isOk;
    }
    case 'writeFailsafe':
      // Never fails the list: the topology is written again at the next renewal if it still differs.
      await dcs.setFailsafe(action.topology, dcsSignal()).then(
        () => deps.onFailsafeWritten?.(action.topology),
        (error: unknown) => deps.log.warn({ error: describeError(error) }, 'could not write the failsafe key'),
      );
      return true;
    case 'confirmFailsafe': {
      if (deps.failsafe === undefined) return true;
      const sentAtMs = clock.nowMs();
      const before = lock.current;
      const isConfirmed = await deps.failsafe.confirm(
        action.targets,
        before.ttlMs ?? context.ttlMs,
        clock.deadline(action.budgetMs),
        sentAtMs,
      );
      // A confirmed round proves the lock from its send time, but only for the lock it was sent under and only if
      // that lock was still valid then: a round never revives a lock that expired (the fence already stopped PostgreSQL).
      const current = lock.current;
      const deadlineMs = lockDeadlineOf(current);
      if (isConfirmed && current === before && current.lastRenewSentAtMs !== undefined && deadlineMs !== undefined && sentAtMs < deadlineMs)
        setLock({ ...current, lastFailsafeSentAtMs: sentAtMs });
      return true;
    }
    case 'releaseLeader': {
      const isOk = await dcs.releaseLeader(dcsSignal());
      setLock(NO_LOCK);
      return isOk;
    }
    case 'deleteStaleLeader':
      deps.log.warn(
        { leader: action.leader.name },
        `leader ${action.leader.name} is gone (API and PostgreSQL refuse connections): removing its lock`,
      );
      return dcs.deleteLeaderIfUnchanged(action.leader.modRevision, dcsSignal());
    case 'deleteSilentLeader':
      deps.log.warn(
        { leader: action.leader.name, heartbeat_revision: action.heartbeatRevision },
        `leader ${action.leader.name} is silent past its fence window: removing its lock`,
      );
      return dcs.deleteSilentLeader(action.leader, action.heartbeatRevision, dcsSignal());
    case 'initializeCluster':
      return dcs.initialize('', dcsSignal());
    case 'publishInitialize':
      await dcs.setInitialize(action.sysid, dcsSignal());
      return true;
    case 'writeBootstrapConfig':
      if (context.view?.config !== undefined) return true;
      return dcs.setConfig(deps.bootstrapConfig, undefined, dcsSignal());
    case 'writeHistory':
      await dcs.setHistory([...(context.view?.history ?? []), action.entry].slice(-(action.keepLast ?? 0)), dcsSignal());
      return true;
    case 'clearScheduledRestart':
      deps.onScheduledRestartCleared();
      return true;
    case 'reconfigure':
      try {
        await pg.reconfigure(action.parameters, pgSignal());
        deps.onParametersApplied(action.fingerprint);
        if (action.reloadCallbackRole !== undefined) callback('on_reload', action.reloadCallbackRole);
      } catch (error) {
        deps.log.warn(
          { error: describeError(error) },
          'could not apply the PostgreSQL parameters of the dynamic configuration; retrying at the next cycle',
        );
      }
      return true;
    case 'clearFailover':
      return dcs.setFailover(undefined, context.view?.failoverRevision, dcsSignal());
    case 'publishStatus':
      await dcs.setStatus(action.optime, action.slots, dcsSignal());
      return true;
    case 'detachUpstream':
      await pg.detachUpstream(pgSignal());
      return true;
    case 'followLeader':
      await pg.followUpstream(asReplicaOf(upstreamFor(context.view, action.upstream), deps), pgSignal());
      if (action.upstream === REMOTE_PRIMARY) callback('on_role_change', 'standby_leader');
      return true;
    case 'manageSlots': {
      // A failed slot step is logged, never fatal: the HA actions after this one still run.
      const results = await pg
        .applySlotPlan(action.plan.steps, pgSignal())
        .catch((error: unknown) => failedSlotSteps(action.plan.steps, describeError(error)));
      for (const failure of describeSlotFailures(results)) deps.log.warn(failure.fields, failure.message);
      return true;
    }
    case 'copyLogicalSlots': {
      const from = upstreamFor(context.view, action.from);
      return tasks.start('copy-slots', async (signal) => {
        await pg.copyLogicalSlots(from, action.slots, signal);
      });
    }
    case 'setSynchronousStandbyNames':
      await pg.setSynchronousStandbyNames(action.value, pgSignal());
      return true;
    case 'writeSync':
      // Create-only when the view had no key (mod revision 0), compare-and-set otherwise: never over a newer writer.
      return dcs.setSync(action.state, context.view?.syncRevision ?? '0', dcsSignal());
    case 'demote': {
      const policy = DEMOTE_POLICY[action.mode];
      await tasks.cancel(TASK_CANCEL_WAIT_MS);
      if (policy.drainMs > 0) await deps.clock.sleep(policy.drainMs);
      deps.log.warn({ mode: action.mode }, `demoting: stopping PostgreSQL (${policy.stop})`);
      await pg.stop(policy.stop, pgSignal(3));
      callback('on_role_change', 'demoted');
      if (policy.releaseLock) {
        await dcs
          .releaseLeader(dcsSignal())
          .catch((error: unknown) => deps.log.warn({ error: describeError(error) }, 'could not release the leader key after demote'));
        setLock(NO_LOCK);
      }
      return true;
    }
    case 'bootstrap':
      return tasks.start('bootstrap', async (signal) => {
        if (deps.customBootstrap === undefined) await pg.initdb(signal);
        else await pg.bootstrapFrom(deps.customBootstrap, signal);
        await pg.startPrimary(signal);
        callback('on_start', 'primary');
      });
    case 'abortBootstrap':
      // A task of its own: its failure must not read as a failed bootstrap (which asks for this abort again at once).
      return tasks.start('abort-bootstrap', async (signal) => {
        await pg.stop('immediate', signal);
        await dcs.releaseLeader(signal).catch(() => false);
        await dcs.cancelInitialize(signal);
        await pg.removeDataDir(signal);
      });
    case 'basebackup': {
      const upstream = upstreamFor(context.view, action.from, deps.bootstrapConfig);
      return tasks.start('basebackup', async (signal) => {
        await createReplica(upstream, deps, signal);
        await pg.startReplica(asReplicaOf(upstream, deps), signal);
        callback('on_start', 'replica');
      });
    }
    case 'cloneWithoutLeader':
      // The methods get no --connstring (planReplicaMethods keeps only no_leader ones); the copy then starts as a
      // replica of nobody, replaying the archive, as a member does in the leader race, until a leader appears.
      return tasks.start('basebackup', async (signal) => {
        await createReplica(NO_LEADER_SOURCE, deps, signal);
        await pg.startReplica(undefined, signal);
        callback('on_start', 'replica');
      });
    case 'reinitialize': {
      const upstream = upstreamFor(context.view, action.from);
      return tasks.start('reinitialize', async (signal) => {
        await pg.stop('immediate', signal);
        await createReplica(upstream, deps, signal);
        await pg.startReplica(asReplicaOf(upstream, deps), signal);
      });
    }
    case 'rewind': {
      const upstream = upstreamFor(context.view, action.from);
      return tasks.start('rewind', async (signal) => {
        await pg.stop('fast', signal);
        await pg.rewind(upstream, signal, { archiveReadyFirst: action.archiveReadyFirst });
        await pg.startReplica(asReplicaOf(upstream, deps), signal);
        callback('on_start', 'replica');
      });
    }
    case 'archivePreviousTimelines':
      // Fire and forget: it runs beside the loop and its outcome is the next observation's walArchive.
      void deps.walCatchUp?.start(action.timeline, action.method);
      return true;
    case 'promote':
      return tasks.start('promote', async (signal, progress) => {
        await pg.promote(signal);
        callback('on_role_change', 'primary');
        // The next cycle sees the writable primary and the REST API says so (proxies and HAProxy route on it) without
        // waiting for the checkpoint below: 150-250 ms of a switchover's write pause on this machine.
        progress();
        // Without a checkpoint on the new timeline, pg_rewind on the old primary may wrongly see nothing to do.
        await pg
          .checkpoint(signal)
          .catch((error: unknown) => deps.log.warn({ error: describeError(error) }, 'checkpoint after promote failed'));
      });
    case 'restart': {
      const upstream = action.upstream === undefined ? undefined : asReplicaOf(upstreamFor(context.view, action.upstream), deps);
      return tasks.start('restart', async (signal) => {
        await pg.stop('fast', signal);
        if (action.asPrimary) await pg.startPrimary(signal);
        else await pg.startReplica(upstream, signal);
        callback('on_restart', action.asPrimary ? 'primary' : 'replica');
      });
    }
    case 'stopPostgres':
      return tasks.start('stop', async (signal) => {
        await pg.stop('fast', signal);
        callback('on_stop', context.view?.leader?.name === deps.member ? 'primary' : 'replica');
      });
    case 'restoreToTarget': {
      const tool = deps.restoreTool;
      return tasks.start('restore', async (signal) => {
        if (tool === undefined)
          throw new PgwardenError('PGW_CONFIG_INVALID', `[${deps.member}] no backup: section is configured, so nothing to restore from`, {
            context: { member: deps.member, key: 'backup', hint: 'add a backup: section (README, Backups) to every member' },
          });
        await pg.stop('fast', signal);
        await tool.restoreToTarget(action.target, action.memberSlots, signal);
        callback('on_role_change', 'primary');
      });
    }
    case 'startPrimary':
      return tasks.start('start', async (signal) => {
        await pg.startPrimary(signal);
        callback('on_start', 'primary');
      });
    case 'startReplica': {
      const upstream = action.upstream === undefined ? undefined : asReplicaOf(upstreamFor(context.view, action.upstream), deps);
      return tasks.start('start', async (signal) => {
        await pg.startReplica(upstream, signal);
        callback('on_start', 'replica');
        if (action.upstream === REMOTE_PRIMARY) callback('on_role_change', 'standby_leader');
      });
    }
  }
}

/**
 * A new data dir copied from `upstream`: by create_replica_methods in order when they are configured (each method's
 * outcome logged, a fallback said so), otherwise pg_basebackup into an emptied data dir. A standby cluster's copy of
 * its remote primary is always pg_basebackup (standby_cluster.create_replica_methods accepts only that).
 */
async function createReplica(upstream: Upstream, deps: ExecutorDeps, signal: AbortSignal): Promise<void> {
  const { pg, log } = deps;
  const methods = upstream.name === REMOTE_PRIMARY ? undefined : deps.replicaMethods?.(upstream);
  if (methods === undefined) {
    await pg.removeDataDir(signal);
    await pg.basebackup(upstream, signal);
    return;
  }
  log.info(
    { from: upstream.name, methods: methods.map((method) => method.name) },
    `creating the replica from ${upstream.name} with ${methods.map((method) => method.name).join(', then ') || 'no method'}`,
  );
  try {
    logReplicaMethodResults(await pg.createReplica(upstream, methods, signal), methods, log);
  } catch (error) {
    const results = isPgwardenError(error) ? (error.context.methods as readonly ReplicaMethodResult[] | undefined) : undefined;
    if (results !== undefined) logReplicaMethodResults(results, methods, log);
    throw error;
  }
}

function logReplicaMethodResults(results: readonly ReplicaMethodResult[], methods: readonly ReplicaMethod[], log: Log): void {
  results.forEach((result, index) => {
    const fields = {
      method: result.method,
      outcome: result.outcome,
      detail: result.detail,
      ...(result.code !== undefined ? { code: result.code } : {}),
    };
    if (result.outcome === 'ok') {
      log.info(fields, `replica created with ${result.method}: ${result.detail}`);
      return;
    }
    const next = methods[index + 1]?.name;
    log.warn(
      fields,
      `replica method ${result.method} ${result.outcome}: ${result.detail}${next !== undefined ? `; falling back to ${next}` : '; no method left to try'}`,
    );
  });
}
