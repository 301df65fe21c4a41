// The rolling minor upgrade as pure functions: what a bin_dir must hold, the preflight's refusals, and the next step as
// a function of the cluster as observed now. The CLI only observes and executes: a re-run after an interruption
// observes where the last one stopped and so continues from there, without a log of what it did.

/**
 * The programs an agent runs from bin_dir (postmaster, clone, rewind, bootstrap, the probe of a stopped server). A
 * bin_dir without one of them works until the day that tool is needed, typically during a failover: refused up front.
 */
export const AGENT_TOOLS = ['postgres', 'initdb', 'pg_controldata', 'pg_basebackup', 'pg_rewind'] as const;

/** Bounds of the preflight. */
export interface UpgradeBounds {
  /** A replica this far behind would take that long to catch up after its restart, and the switchover waits for it. */
  readonly maxLagBytes: number;
  /** A transaction this old would be cut by the switchover (and, if it holds back vacuum, is worth knowing about). */
  readonly maxTransactionSeconds: number;
}

/** 10 MiB: a replica that far behind catches up in well under a second on a LAN once restarted. */
export const DEFAULT_MAX_LAG_BYTES = 10 * 1024 * 1024;
/** A minute: longer transactions are rarely an application's normal work, and the switchover will end them. */
export const DEFAULT_MAX_TRANSACTION_SECONDS = 60;

export interface ServerVersion {
  readonly major: number;
  readonly minor: number;
  /** As server_version_num reports it: 150018 for 15.18. */
  readonly versionNum: number;
  readonly text: string;
}

/** `postgres --version` output, e.g. "postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)"; undefined when not one. */
export function parseServerVersion(output: string): ServerVersion | undefined {
  const match = /\(PostgreSQL\)\s+(\d+)(?:\.(\d+))?/.exec(output);
  if (match === null) return undefined;
  const major = Number(match[1]);
  const minor = Number(match[2] ?? '0');
  if (major < 10) return undefined;
  return { major, minor, versionNum: major * 10000 + minor, text: `${major}.${minor}` };
}

/** server_version_num as a version ("15.18"). */
export function versionText(versionNum: number): string {
  return `${Math.floor(versionNum / 10000)}.${versionNum % 10000}`;
}

/** What an agent found in a bin_dir it was asked about (POST /bin_dir/check). */
export interface BinDirReport {
  readonly bin_dir: string;
  /** `postgres --version`'s output; absent when it could not run. */
  readonly version_output?: string | undefined;
  /** Why `postgres --version` failed. */
  readonly version_error?: string | undefined;
  /** Tools of AGENT_TOOLS that are not executable files in bin_dir. */
  readonly missing: readonly string[];
  /** PG_VERSION of the member's data directory (the major its data files are in). */
  readonly data_major?: number | undefined;
  /** The bin_dir the member runs now. */
  readonly current_bin_dir: string;
  /** A running primary: the age of its oldest open transaction in seconds (0 when none). */
  readonly oldest_transaction_seconds?: number | undefined;
}

/** Why a member cannot switch to the bin_dir of `report`, in words naming the member; empty when it can. */
export function binDirProblems(member: string, report: BinDirReport): string[] {
  const problems: string[] = [];
  if (report.missing.length > 0)
    problems.push(
      `${member}: ${report.bin_dir} lacks ${report.missing.join(', ')} (the agent runs ${AGENT_TOOLS.join(', ')} from bin_dir)`,
    );
  if (report.missing.includes('postgres')) return problems;
  const version = report.version_output === undefined ? undefined : parseServerVersion(report.version_output);
  if (version === undefined) {
    problems.push(
      `${member}: ${report.bin_dir}/postgres --version did not give a PostgreSQL version (${report.version_error ?? report.version_output ?? 'no output'})`,
    );
    return problems;
  }
  if (report.data_major !== undefined && version.major !== report.data_major)
    problems.push(
      `${member}: ${report.bin_dir} holds PostgreSQL ${version.text}, but the data directory is PostgreSQL ${report.data_major}: a minor upgrade keeps the major (pg_upgrade changes it)`,
    );
  return problems;
}

/** One member as the upgrade observes it (its GET /patroni, and the leader key). */
export interface UpgradeMember {
  readonly name: string;
  readonly isLeader: boolean;
  readonly isRunning: boolean;
  /** A replica streaming from its upstream. */
  readonly isStreaming: boolean;
  readonly binDir: string | undefined;
  readonly serverVersionNum: number | undefined;
  /** WAL bytes behind the leader (replicas); undefined when unknown. */
  readonly lagBytes: number | undefined;
  readonly isNoFailover: boolean;
}

export interface PreflightInput {
  readonly members: readonly UpgradeMember[];
  /** Each member's answer about the new bin_dir, or why it gave none. */
  readonly reports: ReadonlyMap<string, BinDirReport | { readonly error: string }>;
  readonly bounds: UpgradeBounds;
}

export interface PreflightResult {
  readonly problems: readonly string[];
  /** The version every member found in the new bin_dir (when they agree). */
  readonly target: ServerVersion | undefined;
}

/**
 * The refusals before any member is touched: no leader, a replica too far behind or not streaming, an old transaction
 * on the primary, a member without the new binaries or with other ones, or a new major.
 */
export function preflight(input: PreflightInput): PreflightResult {
  const problems: string[] = [];
  const { members, reports, bounds } = input;
  const leader = members.find((member) => member.isLeader);
  if (leader === undefined) problems.push('the cluster has no leader: wait until it has one (pgwarden list)');
  const versions = new Map<string, ServerVersion>();
  for (const member of members) {
    const report = reports.get(member.name);
    if (report === undefined || 'error' in report) {
      problems.push(`${member.name}: could not check the new binaries (${report?.error ?? 'no answer'})`);
      continue;
    }
    problems.push(...binDirProblems(member.name, report));
    const version = report.version_output === undefined ? undefined : parseServerVersion(report.version_output);
    if (version !== undefined) versions.set(member.name, version);
    if (member.serverVersionNum !== undefined && version !== undefined && Math.floor(member.serverVersionNum / 10000) !== version.major)
      problems.push(
        `${member.name}: runs PostgreSQL ${versionText(member.serverVersionNum)} and ${report.bin_dir} holds ${version.text}: not the same major`,
      );
    if (member.isLeader) {
      const age = report.oldest_transaction_seconds;
      if (age !== undefined && age > bounds.maxTransactionSeconds)
        problems.push(
          `${member.name}: a transaction has been open for ${Math.round(age)} s (bound ${bounds.maxTransactionSeconds} s): the switchover would cut it; end it or pass a larger --max-transaction-age`,
        );
    } else if (!member.isRunning || !member.isStreaming) {
      problems.push(`${member.name}: is not streaming from the primary: a replica must stream before its restart`);
    } else if (member.lagBytes === undefined || member.lagBytes > bounds.maxLagBytes) {
      problems.push(
        `${member.name}: lags ${member.lagBytes === undefined ? 'an unknown amount' : `${member.lagBytes} bytes`} behind the primary (bound ${bounds.maxLagBytes} bytes); wait for it or pass a larger --max-lag`,
      );
    }
  }
  const distinct = [...new Set([...versions.values()].map((version) => version.text))];
  if (distinct.length > 1)
    problems.push(
      `the new bin_dir holds different versions on different members (${[...versions].map(([name, version]) => `${name}: ${version.text}`).join(', ')})`,
    );
  const target = distinct.length === 1 ? [...versions.values()][0] : undefined;
  return { problems, target };
}

export type UpgradeStep =
  /** Point the member at the new bin_dir and restart it there; it must stream again before the next step. */
  | { readonly kind: 'restart'; readonly member: string; readonly why: string }
  /** A member restarted (or just started) is not streaming yet: wait before touching another. */
  | { readonly kind: 'waitStreaming'; readonly member: string }
  /**
   * Every replica runs the new binaries: point the primary at them too (it starts on them when it rejoins as a replica)
   * and switch over to an upgraded replica.
   */
  | { readonly kind: 'switchover'; readonly from: string; readonly to: string }
  | { readonly kind: 'done' }
  | { readonly kind: 'blocked'; readonly reason: string };

export interface UpgradeTarget {
  readonly binDir: string;
  readonly versionNum: number;
}

export function isUpgraded(member: UpgradeMember, target: UpgradeTarget): boolean {
  return member.isRunning && member.binDir === target.binDir && member.serverVersionNum === target.versionNum;
}

/**
 * The next step of a rolling minor upgrade. Replicas one at a time (by name, so a re-run picks the same order), each
 * streaming again before the next; then a switchover to an upgraded replica (the only write pause); the old primary
 * is upgraded when it rejoins. A member that does not stream blocks the plan rather than being restarted too: two
 * replicas down at once would leave no failover candidate.
 */
export function nextUpgradeStep(members: readonly UpgradeMember[], target: UpgradeTarget): UpgradeStep {
  const leader = members.find((member) => member.isLeader);
  if (leader === undefined) return { kind: 'blocked', reason: 'the cluster has no leader' };
  const replicas = [...members.filter((member) => !member.isLeader)].sort((a, b) => a.name.localeCompare(b.name));
  const notStreaming = replicas.find((member) => !member.isRunning || !member.isStreaming);
  if (notStreaming !== undefined) return { kind: 'waitStreaming', member: notStreaming.name };
  const pending = replicas.find((member) => !isUpgraded(member, target));
  if (pending !== undefined)
    return {
      kind: 'restart',
      member: pending.name,
      why: pending.binDir === target.binDir ? 'points at the new binaries but still runs the old ones' : 'a replica on the old binaries',
    };
  if (isUpgraded(leader, target)) return { kind: 'done' };
  if (replicas.length === 0)
    return { kind: 'restart', member: leader.name, why: 'the only member: restarted in place (writes pause for the restart)' };
  const candidate = replicas.find((member) => !member.isNoFailover);
  if (candidate === undefined)
    return { kind: 'blocked', reason: 'every upgraded replica is tagged nofailover: no member can take over from the primary' };
  return { kind: 'switchover', from: leader.name, to: candidate.name };
}

/** The upgrade's record in the DCS (`<namespace>/<scope>/upgrade`): what a re-run continues. */
export interface UpgradeRecord {
  readonly kind: 'minor';
  readonly bin_dir: string;
  /** The version in bin_dir, e.g. "15.18". */
  readonly version: string;
  readonly version_num: number;
  /** Wall-clock ISO-8601 time the upgrade started. */
  readonly started: string;
  /** The steps done so far, one line each (what `pgwarden upgrade` printed). */
  readonly steps: readonly string[];
}

export function describeStep(step: UpgradeStep, target: UpgradeTarget): string {
  switch (step.kind) {
    case 'restart':
      return `restart ${step.member} on ${target.binDir} (${step.why})`;
    case 'waitStreaming':
      return `wait for ${step.member} to stream from the primary`;
    case 'switchover':
      return `switchover from ${step.from} to ${step.to} (${step.from} rejoins as a replica on ${target.binDir})`;
    case 'done':
      return 'every member runs the new binaries';
    case 'blocked':
      return `blocked: ${step.reason}`;
  }
}

/** The bin_dir a member keeps across agent restarts after POST /bin_dir (a file beside its data directory). */
export interface PersistedBinDir {
  readonly bin_dir: string;
  /** postgresql.bin_dir of the config file when it was set: a config changed since then wins over the file. */
  readonly overrides: string;
  readonly set_at: string;
}

/**
 * The bin_dir an agent starts with: the persisted one while the config file still says what it said when that was set
 * (the upgrade outranks the stale file), the config file's once an operator changed it (the newer intent wins).
 */
export function effectiveBinDir(
  configBinDir: string,
  persisted: PersistedBinDir | undefined,
): { readonly binDir: string; readonly source: 'config' | 'persisted' | 'config-changed' } {
  if (persisted === undefined) return { binDir: configBinDir, source: 'config' };
  if (persisted.overrides !== configBinDir) return { binDir: configBinDir, source: 'config-changed' };
  return { binDir: persisted.bin_dir, source: 'persisted' };
}
