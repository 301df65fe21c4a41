// The in-place major upgrade's preflight (`pgwarden upgrade --major --check`) as a pure function: given what the
// primary's agent found (the new binaries, the old cluster, pg_upgrade --check's outcome, the extensions, the disk),
// the verdict and each refusal with its reason. The agent gathers facts and decides nothing; the CLI prints this.
import { AGENT_TOOLS, parseServerVersion, type BinDirReport } from './minor-upgrade.js';

/**
 * What the full run needs from the new bin_dir: pg_upgrade and its helpers, the tools the agent runs after the
 * upgrade (clone, rewind, bootstrap, probe), pg_dumpall/psql for the schema test, vacuumdb for the statistics.
 */
export const MAJOR_UPGRADE_TOOLS = [
  'pg_upgrade',
  'initdb',
  'postgres',
  'pg_ctl',
  'pg_controldata',
  'pg_dump',
  'pg_dumpall',
  'psql',
  'vacuumdb',
  'pg_basebackup',
  'pg_rewind',
] as const;

/** One extension installed in one database of the old cluster, and whether the new binaries can provide it. */
export interface ExtensionFact {
  readonly database: string;
  readonly name: string;
  readonly version: string;
  /** `<share>/extension/<name>.control` exists under the new binaries' share directory. */
  readonly has_new_control: boolean;
}

/** A step the agent ran (pg_upgrade --check, the schema-only restore): its outcome and its own output. */
export interface StepFact {
  readonly ran: boolean;
  readonly ok?: boolean | undefined;
  /** Why it did not run (a missing tool, the server not running). */
  readonly skipped?: string | undefined;
  /** The program's output (a tail), shown as is when it failed. */
  readonly output?: string | undefined;
  readonly seconds?: number | undefined;
}

/** What the primary's agent found (POST /bin_dir/major_check). */
export interface MajorCheckFacts {
  readonly member: string;
  readonly new_bin_dir: string;
  readonly old_bin_dir: string;
  readonly missing_tools: readonly string[];
  /** `postgres --version` of the new bin_dir. */
  readonly new_version_output?: string | undefined;
  readonly new_version_error?: string | undefined;
  /** PG_VERSION of the running data directory. */
  readonly old_major?: number | undefined;
  readonly is_primary_running: boolean;
  readonly encoding?: string | undefined;
  readonly lc_collate?: string | undefined;
  readonly lc_ctype?: string | undefined;
  /** template0's: 'libc', or 'icu <locale>'. */
  readonly locale_provider?: string | undefined;
  readonly data_checksums?: boolean | undefined;
  /** The bootstrap superuser (OID 10): pg_upgrade must run as it, and the new cluster gets it as its install user. */
  readonly install_user?: string | undefined;
  readonly new_share_dir?: string | undefined;
  readonly extensions: readonly ExtensionFact[];
  readonly data_dir: string;
  readonly data_dir_bytes?: number | undefined;
  /** Free bytes where the new data directory goes (beside the old one). */
  readonly free_bytes?: number | undefined;
  /** Old and new data directories on the same file system: `pg_upgrade --link` can hard-link the data files. */
  readonly same_filesystem?: boolean | undefined;
  readonly pg_upgrade_check: StepFact;
  readonly schema_restore: StepFact;
  /** postgresql.auto.conf's settings (carried into the new cluster by the run); absent when NEW has no postgres. */
  readonly alter_system?: AlterSystemFacts | undefined;
}

export interface AlterSystemFacts {
  readonly names: readonly string[];
  /** Names the new server does not know (`postgres --describe-config`). */
  readonly unknown: readonly string[];
  /** Why the new server could not be asked. */
  readonly error?: string | undefined;
}

/** The row for ALTER SYSTEM's settings: carried over by the run, refused where the new server would not start. */
export function alterSystemRow(facts: AlterSystemFacts | undefined, newBinDir: string): CheckRow {
  const check = 'ALTER SYSTEM';
  if (facts === undefined) return { check, outcome: 'skipped', detail: `${newBinDir} has no postgres to ask` };
  if (facts.names.length === 0) return { check, outcome: 'ok', detail: 'postgresql.auto.conf sets nothing' };
  if (facts.error !== undefined)
    return { check, outcome: 'refused', detail: `${newBinDir}/postgres --describe-config failed: ${facts.error}` };
  if (facts.unknown.length > 0)
    return {
      check,
      outcome: 'refused',
      detail: `postgresql.auto.conf sets ${facts.unknown.join(', ')}, unknown to ${newBinDir}/postgres: the new cluster would not start; ALTER SYSTEM RESET ${facts.unknown.length === 1 ? 'it' : 'each'} first`,
    };
  return { check, outcome: 'ok', detail: `carried into the new cluster: ${facts.names.join(', ')}` };
}

/** A replica's answer about NEW on its host (POST /bin_dir/check), or why it gave none. */
export type ReplicaBinDirAnswer = BinDirReport | { readonly error: string };

export interface MajorCheckOptions {
  readonly to: number;
  /**
   * Every replica's look at NEW on its own host: replicas are rebuilt and run from NEW after the upgrade, so each
   * needs it too. Absent: the row is skipped.
   */
  readonly replicas?: ReadonlyMap<string, ReplicaBinDirAnswer> | undefined;
  /** 15 -> 15 with Debian's pg_upgrade: the same orchestration as across majors, for tests only. */
  readonly allowSameMajor: boolean;
}

export type CheckOutcome = 'ok' | 'refused' | 'warning' | 'skipped';

export interface CheckRow {
  readonly check: string;
  readonly outcome: CheckOutcome;
  readonly detail: string;
}

export interface MajorCheckVerdict {
  readonly isOk: boolean;
  readonly rows: readonly CheckRow[];
  /** Every refused row, as sentences naming the member. */
  readonly refusals: readonly string[];
}

/**
 * With --link, pg_upgrade writes the new catalogs and hard-links the data files: a few percent of the data directory,
 * and at least 64 MiB for the new cluster's WAL and catalogs. A copy (different file systems) needs the size again.
 */
export const LINK_MIN_FREE_BYTES = 64 * 1024 * 1024;
export const LINK_FREE_FRACTION = 0.1;

export function linkNeedsBytes(dataDirBytes: number): number {
  return Math.max(LINK_MIN_FREE_BYTES, Math.ceil(dataDirBytes * LINK_FREE_FRACTION));
}

/** A byte count as people read it: 1.5 GiB, 12.0 MiB. */
export function humanBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return unit === 0 ? `${bytes} B` : `${value.toFixed(1)} ${units[unit]!}`;
}

function stepRow(check: string, fact: StepFact, okDetail: string, isOutputShownOnSuccess = false): CheckRow {
  if (!fact.ran) return { check, outcome: 'skipped', detail: fact.skipped ?? 'not run' };
  const took = fact.seconds === undefined ? '' : ` (${fact.seconds.toFixed(1)} s)`;
  if (fact.ok === true)
    return {
      check,
      outcome: 'ok',
      detail: `${okDetail}${isOutputShownOnSuccess && fact.output !== undefined ? `: ${fact.output}` : ''}${took}`,
    };
  return { check, outcome: 'refused', detail: `failed${took}:\n${(fact.output ?? 'no output').trim()}` };
}

/** Every replica must hold NEW with the agent's tools and the primary's NEW major (its data stays on the old one). */
function replicaRow(
  facts: MajorCheckFacts,
  newMajor: number | undefined,
  replicas: ReadonlyMap<string, ReplicaBinDirAnswer> | undefined,
): CheckRow {
  if (replicas === undefined) return { check: 'replicas', outcome: 'skipped', detail: 'not asked' };
  if (replicas.size === 0) return { check: 'replicas', outcome: 'ok', detail: 'none (a single-member cluster)' };
  const problems: string[] = [];
  const found: string[] = [];
  for (const [name, answer] of [...replicas].sort(([a], [b]) => a.localeCompare(b))) {
    if ('error' in answer) {
      problems.push(`${name} did not answer about ${facts.new_bin_dir}: ${answer.error}`);
      continue;
    }
    if (answer.missing.length > 0)
      problems.push(`${name}: ${facts.new_bin_dir} lacks ${answer.missing.join(', ')} (the agent runs ${AGENT_TOOLS.join(', ')})`);
    const version = answer.version_output === undefined ? undefined : parseServerVersion(answer.version_output);
    if (version === undefined) {
      if (!answer.missing.includes('postgres'))
        problems.push(
          `${name}: ${facts.new_bin_dir}/postgres --version gave no version (${answer.version_error ?? answer.version_output ?? 'no output'})`,
        );
    } else if (newMajor !== undefined && version.major !== newMajor)
      problems.push(`${name}: ${facts.new_bin_dir} holds PostgreSQL ${version.text}, the primary's holds ${newMajor}`);
    else found.push(`${name} ${version.text}`);
  }
  return problems.length > 0
    ? { check: 'replicas', outcome: 'refused', detail: problems.join('; ') }
    : { check: 'replicas', outcome: 'ok', detail: `NEW found on every replica: ${found.join(', ')}` };
}

/** The verdict on `facts` for an upgrade to major `options.to`. */
export function majorCheckVerdict(facts: MajorCheckFacts, options: MajorCheckOptions): MajorCheckVerdict {
  const rows: CheckRow[] = [];
  const member = facts.member;

  rows.push(
    facts.missing_tools.length === 0
      ? { check: 'tools', outcome: 'ok', detail: `${facts.new_bin_dir} holds ${MAJOR_UPGRADE_TOOLS.join(', ')}` }
      : {
          check: 'tools',
          outcome: 'refused',
          detail: `${facts.new_bin_dir} lacks ${facts.missing_tools.join(', ')} (the upgrade runs ${MAJOR_UPGRADE_TOOLS.join(', ')} from it)`,
        },
  );

  const version = facts.new_version_output === undefined ? undefined : parseServerVersion(facts.new_version_output);
  if (version === undefined)
    rows.push({
      check: 'new major',
      outcome: 'refused',
      detail: `${facts.new_bin_dir}/postgres --version did not give a PostgreSQL version (${facts.new_version_error ?? facts.new_version_output ?? 'no output'})`,
    });
  else if (version.major !== options.to)
    rows.push({
      check: 'new major',
      outcome: 'refused',
      detail: `${facts.new_bin_dir} holds PostgreSQL ${version.text}, not ${options.to}`,
    });
  else if (facts.old_major === undefined)
    rows.push({ check: 'new major', outcome: 'refused', detail: 'the data directory has no readable PG_VERSION' });
  else if (version.major < facts.old_major)
    rows.push({
      check: 'new major',
      outcome: 'refused',
      detail: `PostgreSQL ${version.major} is older than the cluster's ${facts.old_major}: pg_upgrade only goes forward`,
    });
  else if (version.major === facts.old_major && !options.allowSameMajor)
    rows.push({
      check: 'new major',
      outcome: 'refused',
      detail: `the cluster already runs PostgreSQL ${facts.old_major}: a same-major pg_upgrade is a test path (--allow-same-major); use upgrade --minor for new minors`,
    });
  else
    rows.push({
      check: 'new major',
      outcome: version.major === facts.old_major ? 'warning' : 'ok',
      detail: `${facts.old_major} -> ${version.text}${version.major === facts.old_major ? ' (same major: test path, --allow-same-major)' : ''}`,
    });

  rows.push(
    facts.is_primary_running
      ? {
          check: 'old cluster',
          outcome: 'ok',
          detail: `${member}: PostgreSQL ${facts.old_major ?? '?'}, encoding ${facts.encoding ?? '?'}, lc_collate ${facts.lc_collate ?? '?'}, lc_ctype ${facts.lc_ctype ?? '?'}, locale provider ${facts.locale_provider ?? '?'}, data checksums ${facts.data_checksums === undefined ? '?' : facts.data_checksums ? 'on' : 'off'}, install user ${facts.install_user ?? '?'}`,
        }
      : { check: 'old cluster', outcome: 'refused', detail: `${member} is not a running primary: the check runs against the live leader` },
  );

  rows.push(stepRow('pg_upgrade --check', facts.pg_upgrade_check, 'clusters are compatible'));
  rows.push(alterSystemRow(facts.alter_system, facts.new_bin_dir));

  const missingControl = facts.extensions.filter((extension) => !extension.has_new_control);
  const listed = facts.extensions.map((extension) => `${extension.database}.${extension.name} ${extension.version}`).join(', ');
  if (facts.new_share_dir === undefined && facts.extensions.length > 0)
    rows.push({ check: 'extensions', outcome: 'refused', detail: `the share directory of ${facts.new_bin_dir} was not found (${listed})` });
  else if (missingControl.length > 0)
    rows.push({
      check: 'extensions',
      outcome: 'refused',
      detail: `no control file in ${facts.new_share_dir ?? '?'}/extension for ${missingControl.map((extension) => `${extension.name} ${extension.version} (database ${extension.database})`).join(', ')}: install the extension's package for the new major`,
    });
  else
    rows.push({
      check: 'extensions',
      outcome: 'ok',
      detail: facts.extensions.length === 0 ? 'none installed' : `all found in the new share directory: ${listed}`,
    });

  if (facts.data_dir_bytes === undefined || facts.free_bytes === undefined)
    rows.push({ check: 'disk', outcome: 'refused', detail: `the size of ${facts.data_dir} or the free space beside it could not be read` });
  else {
    const need = linkNeedsBytes(facts.data_dir_bytes);
    const copy = facts.data_dir_bytes;
    const sizes = `data directory ${humanBytes(facts.data_dir_bytes)}, free ${humanBytes(facts.free_bytes)}`;
    if (facts.free_bytes < need)
      rows.push({ check: 'disk', outcome: 'refused', detail: `${sizes}: --link needs about ${humanBytes(need)}` });
    else
      rows.push({
        check: 'disk',
        outcome: facts.free_bytes < copy ? 'warning' : 'ok',
        detail: `${sizes}: enough for --link (about ${humanBytes(need)}); a copy would need about ${humanBytes(copy)}${facts.free_bytes < copy ? ', which is not free' : ''}`,
      });
  }
  rows.push(
    facts.same_filesystem === true
      ? { check: 'hard links', outcome: 'ok', detail: `the new data directory beside ${facts.data_dir} is on the same file system` }
      : {
          check: 'hard links',
          outcome: 'refused',
          detail:
            facts.same_filesystem === false
              ? `${facts.data_dir} is on another file system than its parent directory (a mount point): pg_upgrade --link cannot hard-link across file systems; mount the parent instead`
              : `could not tell whether ${facts.data_dir} and its parent share a file system`,
        },
  );

  rows.push(replicaRow(facts, version?.major, options.replicas));

  rows.push(stepRow('schema-only restore', facts.schema_restore, 'pg_dumpall --schema-only restored into a scratch new server', true));

  const refusals = rows.filter((row) => row.outcome === 'refused').map((row) => `${member}: ${row.check}: ${row.detail}`);
  return { isOk: refusals.length === 0, rows, refusals };
}

/** The rows as a text table: check, outcome, and the detail (multi-line details indented under their row). */
export function renderCheckTable(rows: readonly CheckRow[]): string {
  const checkWidth = Math.max('CHECK'.length, ...rows.map((row) => row.check.length));
  const outcomeWidth = Math.max('RESULT'.length, ...rows.map((row) => row.outcome.length));
  const lines = [`${'CHECK'.padEnd(checkWidth)}  ${'RESULT'.padEnd(outcomeWidth)}  DETAIL`];
  for (const row of rows) {
    const [first, ...rest] = row.detail.split('\n');
    lines.push(`${row.check.padEnd(checkWidth)}  ${row.outcome.padEnd(outcomeWidth)}  ${first ?? ''}`);
    for (const line of rest) lines.push(`${' '.repeat(checkWidth + outcomeWidth + 4)}| ${line}`);
  }
  return lines.join('\n');
}
