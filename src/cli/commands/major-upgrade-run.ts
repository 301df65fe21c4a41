// `pgwarden upgrade --major --to N --bin-dir NEW` (without --check): the check, then core/major-upgrade.ts's steps, each
// applied through a member's REST API, waited for and printed, and recorded in the DCS before and after it runs. A
// failure before the point of no return rolls back (the old primary runs again, untouched); after it, a re-run
// continues from the record.
import {
  describeMajorStep,
  describeRollbackStep,
  isPastNoReturn,
  majorUpgradeSteps,
  nextMajorStep,
  recordDone,
  rollbackSteps,
  stepId,
  type MajorStep,
  type MajorUpgradeRecord,
  type RollbackStep,
} from '../../core/major-upgrade.js';
import type { UpgradeLedger } from '../../core/ports.js';
import { permanentSlots } from '../../core/slot-plan.js';
import type { ClusterView, MemberRecord } from '../../core/types.js';
import { describeError, isPgwardenError, PgwardenError } from '../../util/errors.js';
import { callApi, type ApiReply } from '../api-client.js';
import { backupCommand } from './backup.js';
import { majorCheckCommand, majorTarget, type MajorCheckCommandOptions, type MajorCheckContext } from './upgrade-major.js';

export interface MajorRunContext extends MajorCheckContext {
  readonly ledger: UpgradeLedger;
  readonly sleep: (ms: number) => Promise<void>;
  readonly nowMs: () => number;
  readonly wallNow: () => Date;
}

export interface MajorRunOptions extends MajorCheckCommandOptions {
  /** Roll back the upgrade in progress (refused past the point of no return). */
  readonly isRollback: boolean;
  /** How long a re-clone or pg_upgrade may take, seconds. */
  readonly timeoutS: number;
}

const DCS_MS = 5000;
const POLL_MS = 250;
/** A clean shutdown flushes shared_buffers (a checkpoint): minutes with a large cache and slow disks. */
const STOP_MS = 300_000;
/** Proxies see the record through their etcd watch within milliseconds; their own DCS read bound is seconds. */
const PROXY_MS = 20_000;

interface PatroniStatus {
  readonly state?: string;
  readonly role?: string;
  readonly replication_state?: string;
  readonly database_system_identifier?: string;
  readonly xlog?: { readonly replayed_location?: number; readonly received_location?: number };
}

function failed(message: string, member: string | undefined, hint: string): PgwardenError {
  return new PgwardenError('PGW_UPGRADE_FAILED', message, {
    context: { command: ['pgwarden', 'upgrade', '--major'], ...(member !== undefined ? { member } : {}), hint },
  });
}

/** "0/3000028" as a byte position. */
function lsnBytes(lsn: string): number {
  const [high, low] = lsn.split('/');
  return Number.parseInt(high ?? '0', 16) * 2 ** 32 + Number.parseInt(low ?? '0', 16);
}

/** A reply's error: the `error` field of a JSON body (its newlines kept, so pg_upgrade's output reads as it printed it). */
function errorOf(reply: ApiReply): string {
  try {
    const parsed = JSON.parse(reply.text) as { error?: unknown };
    if (typeof parsed.error === 'string') return parsed.error;
  } catch {
    // not JSON: the text as it came
  }
  return reply.text.trim();
}

class MajorRunner {
  readonly #context: MajorRunContext;
  readonly #timeoutMs: number;
  #record: MajorUpgradeRecord;
  #revision: string;
  /** When this run made the proxies hold writes (monotonic ms), for the write pause it prints. */
  #heldAtMs: number | undefined;

  constructor(context: MajorRunContext, record: MajorUpgradeRecord, revision: string, timeoutMs: number) {
    this.#context = context;
    this.#record = record;
    this.#revision = revision;
    this.#timeoutMs = timeoutMs;
  }

  get record(): MajorUpgradeRecord {
    return this.#record;
  }

  #stamp(): string {
    return this.#context.wallNow().toISOString();
  }

  async save(next: MajorUpgradeRecord): Promise<void> {
    const { ledger } = this.#context;
    if (!(await ledger.writeUpgrade(next, this.#revision, AbortSignal.timeout(DCS_MS))))
      throw failed(
        'the upgrade record in the DCS changed under this run (another pgwarden upgrade?)',
        undefined,
        'run only one pgwarden upgrade at a time; run it again to continue',
      );
    this.#record = next;
    this.#revision = (await ledger.readUpgrade(AbortSignal.timeout(DCS_MS)))?.revision ?? this.#revision;
  }

  async #member(name: string): Promise<MemberRecord> {
    const view = await this.#context.reload();
    const member = view.members.find((candidate) => candidate.name === name);
    if (member === undefined) throw new Error(`${name} has no member key (its agent is not running?)`);
    return member;
  }

  async #post(name: string, path: string, body: unknown, timeoutMs: number): Promise<ApiReply> {
    const member = await this.#member(name);
    return callApi(member, 'POST', path, body, this.#context.rest, timeoutMs);
  }

  async #ok(name: string, path: string, body: unknown, timeoutMs: number, expected = [200]): Promise<Record<string, unknown>> {
    const reply = await this.#post(name, path, body, timeoutMs);
    if (!expected.includes(reply.status)) throw new Error(`${name} answered POST ${path} with ${reply.status}: ${errorOf(reply)}`);
    try {
      return JSON.parse(reply.text) as Record<string, unknown>;
    } catch {
      return { text: reply.text.trim() };
    }
  }

  async #status(name: string): Promise<PatroniStatus | undefined> {
    try {
      const member = await this.#member(name);
      const reply = await callApi(member, 'GET', '/patroni', undefined, this.#context.rest, 5000);
      return reply.text === '' ? undefined : (JSON.parse(reply.text) as PatroniStatus);
    } catch (error) {
      if (isPgwardenError(error, 'PGW_API_AUTH')) throw error;
      return undefined;
    }
  }

  /** Polls `check` until it says done (a sentence) or the deadline passes; the error says what was seen last. */
  async #waitFor(
    what: string,
    timeoutMs: number,
    check: () => Promise<string | undefined>,
    last: () => string = () => '',
  ): Promise<string> {
    const deadline = this.#context.nowMs() + timeoutMs;
    for (;;) {
      const done = await check();
      if (done !== undefined) return done;
      if (this.#context.nowMs() > deadline) throw new Error(`${what} did not happen within ${Math.round(timeoutMs / 1000)} s${last()}`);
      await this.#context.sleep(POLL_MS);
    }
  }

  async #setPause(isPause: boolean): Promise<string> {
    const view = await this.#context.reload();
    if ((view.config?.pause === true) !== isPause) {
      const ordered = [...view.members].sort((a, b) => Number(b.name === view.leader?.name) - Number(a.name === view.leader?.name));
      const problems: string[] = [];
      let reply: ApiReply | undefined;
      for (const member of ordered) {
        reply = await callApi(member, 'PATCH', '/config', { pause: isPause ? true : null }, this.#context.rest, 10_000).catch(
          (error: unknown) => {
            if (isPgwardenError(error, 'PGW_API_AUTH')) throw error;
            problems.push(`${member.name}: ${describeError(error)}`);
            return undefined;
          },
        );
        if (reply !== undefined) break;
      }
      if (reply === undefined) throw new Error(`no member's REST API answered (${problems.join('; ')})`);
      if (reply.status !== 200) throw new Error(`PATCH /config answered ${reply.status} ${reply.text.trim()}`);
    }
    return this.#waitFor(`every member ${isPause ? 'paused' : 'resumed'}`, 60_000, async () => {
      const now = await this.#context.reload();
      return now.members.every((member) => (member.pause === true) === isPause)
        ? `${now.members.length} members ${isPause ? 'paused' : 'resumed'}`
        : undefined;
    });
  }

  /** Every proxy following the cluster shows the hold (or routes again): its own record in the DCS says so. */
  async #proxies(isHeld: boolean): Promise<string> {
    let seen: ClusterView | undefined;
    return this.#waitFor(
      `every proxy ${isHeld ? 'holding' : 'routing'} primary connections`,
      PROXY_MS,
      async () => {
        seen = await this.#context.reload();
        const proxies = seen.proxies ?? [];
        const isDone = proxies.every((proxy) => (isHeld ? proxy.primary === undefined : proxy.primary !== undefined));
        if (!isDone) return undefined;
        if (proxies.length === 0) return 'no pgwarden proxy follows the cluster';
        return `${proxies.map((proxy) => proxy.name).join(', ')} ${isHeld ? 'hold new primary connections' : `route to ${proxies[0]!.primary!}`}`;
      },
      () => ` (${(seen?.proxies ?? []).map((proxy) => `${proxy.name}: ${proxy.primary ?? `held: ${proxy.held ?? '?'}`}`).join('; ')})`,
    );
  }

  async #setHold(isHeld: boolean): Promise<void> {
    if (this.#record.hold_writes !== isHeld) await this.save({ ...this.#record, hold_writes: isHeld });
  }

  /** The member runs as primary with `sysid` (the new cluster's, or the old one's after a rollback). */
  async #waitPrimary(name: string, sysid: string | undefined): Promise<string> {
    let last: PatroniStatus | undefined;
    return this.#waitFor(
      `${name} running as primary`,
      180_000,
      async () => {
        last = await this.#status(name);
        const isPrimary = last?.state === 'running' && (last.role === 'master' || last.role === 'primary');
        return isPrimary && (sysid === undefined || last?.database_system_identifier === sysid)
          ? `${name} runs as primary, system identifier ${last?.database_system_identifier ?? '?'}`
          : undefined;
      },
      () => ` (last seen: ${JSON.stringify(last ?? null)})`,
    );
  }

  async runStep(step: MajorStep): Promise<string> {
    const record = this.#record;
    const binDir = record.bin_dir;
    switch (step.kind) {
      case 'pause':
        return this.#setPause(true);
      case 'prepare': {
        const result = await this.#ok(step.member, '/major_upgrade/prepare', { bin_dir: binDir }, 600_000);
        return `${String(result.new_data_dir)} initdb'd in ${String(result.seconds)} s (install user ${String(result.install_user)})`;
      }
      case 'holdWrites': {
        await this.#setHold(true);
        this.#heldAtMs = this.#context.nowMs();
        return this.#proxies(true);
      }
      case 'stopPrimary': {
        const status = await this.#status(step.member);
        if (status?.state === 'running') await this.#ok(step.member, '/stop', {}, STOP_MS);
        const inspect = await this.#ok(step.member, '/major_upgrade/inspect', {}, 30_000);
        if (inspect.state !== 'shut down')
          throw new Error(`${step.member}'s data directory is "${String(inspect.state)}" after the stop, not "shut down"`);
        const checkpoint = String(inspect.checkpoint_lsn);
        await this.save({ ...this.#record, checkpoint_lsn: checkpoint });
        return `${step.member} shut down cleanly; shutdown checkpoint at ${checkpoint}`;
      }
      case 'verifyReplicas': {
        const checkpoint = lsnBytes(record.checkpoint_lsn ?? '0/0');
        const lines: string[] = [];
        for (const name of step.members) {
          let last: PatroniStatus | undefined;
          lines.push(
            await this.#waitFor(
              `${name} replaying past the shutdown checkpoint ${record.checkpoint_lsn ?? '?'}`,
              60_000,
              async () => {
                last = await this.#status(name);
                const replayed = last?.xlog?.replayed_location;
                // The replay position is the end of the last record replayed: past the checkpoint record's start.
                return replayed !== undefined && replayed > checkpoint ? `${name} replayed to ${replayed}` : undefined;
              },
              () =>
                ` (${name}: ${JSON.stringify(last?.xlog ?? null)}; a replica behind the old primary would lose those commits on a rollback)`,
            ),
          );
        }
        return lines.length === 0 ? 'no replicas' : lines.join('; ');
      }
      case 'pgUpgrade': {
        const result = await this.#ok(step.member, '/major_upgrade/link', { bin_dir: binDir }, this.#timeoutMs);
        const carried = Array.isArray(result.alter_system) ? result.alter_system.map(String) : [];
        return `pg_upgrade --link took ${String(result.seconds)} s; new system identifier ${String(result.new_sysid)}${carried.length > 0 ? `; ALTER SYSTEM settings carried over: ${carried.join(', ')}` : ''}`;
      }
      case 'swap': {
        const result = await this.#ok(step.member, '/major_upgrade/swap', { bin_dir: binDir }, 120_000);
        const sysid = String(result.sysid);
        await this.save({ ...this.#record, new_sysid: sysid });
        return `the data directory holds the new cluster (system identifier ${sysid}, now in the DCS's initialize key), the old one is at ${String(result.old_data_dir)}; bin_dir ${String(result.bin_dir)}`;
      }
      case 'startPrimary': {
        const status = await this.#status(step.member);
        if (status?.state !== 'running') await this.#ok(step.member, '/restart', {}, 180_000);
        return this.#waitPrimary(step.member, record.new_sysid);
      }
      case 'releaseHold': {
        await this.#setHold(false);
        const routed = await this.#proxies(false);
        const pause =
          this.#heldAtMs === undefined ? '' : `; writes were held ${((this.#context.nowMs() - this.#heldAtMs) / 1000).toFixed(1)} s`;
        return `${routed}${pause}`;
      }
      case 'createSlots': {
        const result = await this.#ok(step.member, '/major_upgrade/slots', {}, 60_000);
        const slots = Array.isArray(result.slots) ? result.slots.map(String) : [];
        return slots.length === 0 ? 'no slots to create' : `${slots.join(', ')} on ${step.member}`;
      }
      case 'reinitReplica': {
        await this.#ok(step.member, '/bin_dir', { bin_dir: binDir, major_upgrade: true }, 20_000);
        const status = await this.#status(step.member);
        if (status?.database_system_identifier !== record.new_sysid || status?.state !== 'running')
          await this.#ok(step.member, '/reinitialize', { force: true }, 60_000);
        let last: PatroniStatus | undefined;
        return this.#waitFor(
          `the re-clone of ${step.member}`,
          this.#timeoutMs,
          async () => {
            last = await this.#status(step.member);
            return last?.state === 'running' &&
              last.replication_state === 'streaming' &&
              last.database_system_identifier === record.new_sysid
              ? `${step.member} streams from ${step.from} (system identifier ${record.new_sysid ?? '?'})`
              : undefined;
          },
          () => ` (last seen: ${JSON.stringify(last ?? null)})`,
        );
      }
      case 'resume':
        return this.#setPause(false);
      case 'analyze': {
        const result = await this.#ok(step.member, '/major_upgrade/analyze', { bin_dir: binDir }, this.#timeoutMs);
        return `vacuumdb --analyze-in-stages took ${String(result.seconds)} s`;
      }
      case 'slots': {
        let seen: ClusterView | undefined;
        return this.#waitFor(
          `the permanent slots ${step.names.join(', ')} on ${step.member}`,
          60_000,
          async () => {
            seen = await this.#context.reload();
            const published = seen.statusSlots ?? {};
            return step.names.every((name) => name in published) ? `${step.names.join(', ')} exist again` : undefined;
          },
          () => ` (the leader publishes ${Object.keys(seen?.statusSlots ?? {}).join(', ') || 'no slots'})`,
        );
      }
      case 'stanzaUpgrade': {
        const result = await this.#ok(step.member, '/major_upgrade/stanza', {}, 180_000);
        return `stanza ${String(result.stanza)} in ${String(result.repository)} holds the new cluster`;
      }
      case 'backup': {
        const lines: string[] = [];
        const view = await this.#context.reload();
        await backupCommand(
          { type: 'full', wait: true, timeoutS: this.#timeoutMs / 1000, sleep: this.#context.sleep },
          { scope: this.#context.scope, view, rest: this.#context.rest, out: (line) => lines.push(line), isForced: true },
        );
        return lines.join('; ');
      }
    }
  }

  async runRollbackStep(step: RollbackStep): Promise<string> {
    switch (step.kind) {
      case 'discardNew': {
        // An interrupted run may have left a step running on the agent (pg_upgrade): the rollback waits for its end.
        let result: Record<string, unknown> | undefined;
        let busy = '';
        await this.#waitFor(
          `the end of the step still running on ${step.member}`,
          this.#timeoutMs,
          async () => {
            const reply = await this.#post(step.member, '/major_upgrade/rollback', {}, 120_000);
            busy = errorOf(reply);
            if (reply.status === 500 && busy.includes('is still running')) return undefined;
            if (reply.status !== 200) throw new Error(`${step.member} answered POST /major_upgrade/rollback with ${reply.status}: ${busy}`);
            result = JSON.parse(reply.text) as Record<string, unknown>;
            return 'done';
          },
          () => ` (${busy})`,
        );
        result ??= {};
        return `new cluster removed${result.pg_control_restored === true ? ', global/pg_control.old renamed back to pg_control' : ''}; the old data directory is "${String(result.state)}" (system identifier ${String(result.sysid)})`;
      }
      case 'startOld': {
        const status = await this.#status(step.member);
        if (status?.state !== 'running') await this.#ok(step.member, '/restart', {}, 180_000);
        return this.#waitPrimary(step.member, this.#record.old_sysid);
      }
      case 'releaseHold':
        await this.#setHold(false);
        return this.#proxies(false);
      case 'resume':
        return this.#setPause(false);
    }
  }

  async runAll(): Promise<void> {
    const out = this.#context.out;
    const total = majorUpgradeSteps(this.#record).length;
    for (let step = nextMajorStep(this.#record); step !== undefined; step = nextMajorStep(this.#record)) {
      const id = stepId(step);
      const index = majorUpgradeSteps(this.#record).findIndex((candidate) => stepId(candidate) === id) + 1;
      const label = `[${index}/${total}] ${describeMajorStep(step, this.#record)}`;
      if (step.kind === 'swap')
        out(`${this.#stamp()} POINT OF NO RETURN: from here on the old cluster cannot be rolled back to (a re-run continues)`);
      // Recorded before it runs: an interrupted step is known to have begun (rollback undoes it, or a re-run repeats it).
      await this.save({ ...this.#record, current: id });
      out(`${this.#stamp()} ${label} ...`);
      const startedMs = this.#context.nowMs();
      const detail = await this.runStep(step);
      const took = ((this.#context.nowMs() - startedMs) / 1000).toFixed(1);
      await this.save(recordDone(this.#record, id, `${this.#stamp()} ${label}: ${detail}`));
      out(`${this.#stamp()} ${label}: ok in ${took} s (${detail})`);
    }
  }

  async rollBack(): Promise<void> {
    const steps = rollbackSteps(this.#record);
    if (steps === undefined)
      throw failed(
        `the upgrade is past its point of no return (${this.#record.leader}'s data directories were swapped): it cannot be rolled back`,
        this.#record.leader,
        'run pgwarden upgrade --major again to finish it, or restore the old cluster from a backup',
      );
    if (this.#record.rolling_back !== true) await this.save({ ...this.#record, rolling_back: true });
    for (const [index, step] of steps.entries()) {
      const label = `[rollback ${index + 1}/${steps.length}] ${describeRollbackStep(step)}`;
      this.#context.out(`${this.#stamp()} ${label} ...`);
      const detail = await this.runRollbackStep(step);
      this.#context.out(`${this.#stamp()} ${label}: ok (${detail})`);
    }
    await this.#context.ledger.deleteUpgrade(AbortSignal.timeout(DCS_MS));
  }
}

/** The whole command without --check: a new upgrade, a resumed one, or a rollback. */
export async function majorUpgradeCommand(options: MajorRunOptions, context: MajorRunContext): Promise<void> {
  const read = await context.ledger.readUpgrade(AbortSignal.timeout(DCS_MS));
  if (read !== undefined && read.record.kind !== 'major')
    throw failed(
      `a minor upgrade to ${read.record.version} is in progress since ${read.record.started}`,
      undefined,
      'finish it with pgwarden upgrade --minor, or forget it with pgwarden upgrade --abort',
    );
  const found = read === undefined || read.record.kind !== 'major' ? undefined : { record: read.record, revision: read.revision };
  const stamp = (): string => context.wallNow().toISOString();
  const timeoutMs = options.timeoutS * 1000;
  if (options.isRollback) {
    if (found === undefined) {
      context.out('No major upgrade in progress: nothing to roll back');
      return;
    }
    context.out(`${stamp()} rolling back the upgrade to PostgreSQL ${found.record.to} started ${found.record.started}`);
    await new MajorRunner(context, found.record, found.revision, timeoutMs).rollBack();
    context.out(`${stamp()} rolled back: ${found.record.leader} runs the old cluster again`);
    return;
  }
  let runner: MajorRunner;
  if (found !== undefined) {
    const { to, binDir } = majorTarget(options);
    if (found.record.to !== to || found.record.bin_dir !== binDir)
      throw failed(
        `an upgrade to PostgreSQL ${found.record.to} from ${found.record.bin_dir} is in progress since ${found.record.started}`,
        undefined,
        `run pgwarden upgrade --major --to ${found.record.to} --bin-dir ${found.record.bin_dir} to continue it${isPastNoReturn(found.record) ? '' : ', or --rollback'}`,
      );
    runner = new MajorRunner(context, found.record, found.revision, timeoutMs);
    if (found.record.rolling_back === true) {
      context.out(`${stamp()} continuing the rollback of the upgrade started ${found.record.started}`);
      await runner.rollBack();
      context.out(`${stamp()} rolled back: ${found.record.leader} runs the old cluster again`);
      return;
    }
    context.out(
      `${stamp()} resuming the upgrade to PostgreSQL ${to} started ${found.record.started} (${found.record.done.length} step(s) done${found.record.current !== undefined ? `, ${found.record.current} begun` : ''})`,
    );
  } else {
    const { to, binDir } = majorTarget(options);
    await majorCheckCommand(options, context);
    const view = await context.reload();
    const leader = view.leader?.name;
    const leaderStatus = view.members.find((member) => member.name === leader);
    if (leader === undefined || leaderStatus === undefined)
      throw failed('the cluster has no leader', undefined, 'nothing was changed; wait for a leader and run again');
    const reply = await callApi(leaderStatus, 'GET', '/patroni', undefined, context.rest, 5000);
    const status = JSON.parse(reply.text) as PatroniStatus & { readonly bin_dir?: string };
    if (view.initialize === undefined || view.initialize === '' || status.bin_dir === undefined)
      throw failed('the DCS has no system identifier or the leader no bin_dir', leader, 'nothing was changed; wait for a healthy cluster');
    // With a backup: section the repository must learn the new cluster (stanza-upgrade) and get a full backup of it.
    const backupStatus = await callApi(leaderStatus, 'GET', '/backup', undefined, context.rest, 5000);
    // pg_upgrade (before 17) carries no slots over: the resumed leader makes the permanent ones again.
    const slots = permanentSlots(view.config)
      .filter((slot) => slot.type === 'physical')
      .map((slot) => slot.name)
      .sort();
    const record: MajorUpgradeRecord = {
      kind: 'major',
      bin_dir: binDir,
      to,
      old_bin_dir: status.bin_dir,
      leader,
      replicas: view.members.map((member) => member.name).filter((name) => name !== leader),
      old_sysid: view.initialize,
      was_paused: view.config?.pause === true,
      permanent_slots: slots,
      has_backup: backupStatus.status === 200,
      hold_writes: false,
      started: stamp(),
      done: [],
      steps: [],
    };
    if (!(await context.ledger.writeUpgrade(record, '0', AbortSignal.timeout(DCS_MS))))
      throw failed('another pgwarden upgrade started meanwhile', undefined, 'run pgwarden upgrade again to continue that one');
    const revision = (await context.ledger.readUpgrade(AbortSignal.timeout(DCS_MS)))?.revision ?? '0';
    runner = new MajorRunner(context, record, revision, timeoutMs);
    context.out(
      `${stamp()} upgrading ${leader} in place to PostgreSQL ${to} (${binDir}); replicas re-cloned: ${record.replicas.join(', ') || 'none'}`,
    );
  }
  try {
    await runner.runAll();
  } catch (error) {
    const record = runner.record;
    const at = record.current ?? 'unknown step';
    context.out(`${stamp()} FAILED at ${at}: ${describeError(error)}`);
    if (isPgwardenError(error, 'PGW_API_AUTH') || isPastNoReturn(record))
      throw failed(
        `the major upgrade stopped at ${at}: ${describeError(error)}`,
        record.leader,
        isPastNoReturn(record)
          ? 'past the point of no return: fix the cause (the member agent logs say more) and run the same pgwarden upgrade --major again to continue'
          : 'fix the cause and run pgwarden upgrade --major again, or roll back with --rollback',
      );
    context.out(`${stamp()} before the point of no return: rolling back`);
    try {
      await runner.rollBack();
    } catch (rollbackError) {
      throw failed(
        `the major upgrade failed at ${at} (${describeError(error)}) and its rollback failed too: ${describeError(rollbackError)}`,
        record.leader,
        'fix the cause and run pgwarden upgrade --major --rollback again',
      );
    }
    throw failed(
      `the major upgrade failed at ${at} and was rolled back: ${describeError(error)}`,
      record.leader,
      `${record.leader} runs the old cluster again, untouched; fix the cause and run the upgrade again`,
    );
  }
  const done = runner.record;
  await context.ledger.deleteUpgrade(AbortSignal.timeout(DCS_MS));
  context.out(
    `${stamp()} done: ${done.leader} runs PostgreSQL ${done.to} from ${done.bin_dir} (system identifier ${done.new_sysid ?? '?'}, was ${done.old_sysid}); the old cluster is kept beside ${done.leader}'s data directory (<data_dir>.pg_upgrade_old: its catalogs, the data files are hard links shared with the new one) until you remove it; the next major upgrade asks for that`,
  );
}
