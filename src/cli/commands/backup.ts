// `pgwarden backup` and `pgwarden backup list`: start a backup on a member (a streaming standby by default) through its
// REST API, optionally wait for it; list the repository's backups from any member's GET /backups.
import { backupRows, chooseBackupMember, type BackupRow, type BackupSource, type BackupType } from '../../core/backup-plan.js';
import type { MemberRecord } from '../../core/types.js';
import { describeError, isPgwardenError, PgwardenError } from '../../util/errors.js';
import { callApi, type ApiReply } from '../api-client.js';
import { borderedTable } from '../render.js';
import type { ControlContext } from './control.js';

export interface BackupOptions {
  readonly type: BackupType;
  readonly from?: BackupSource | undefined;
  readonly wait?: boolean | undefined;
  /** How long --wait waits, seconds. */
  readonly timeoutS: number;
  readonly sleep?: ((ms: number) => Promise<void>) | undefined;
}

interface LockRecord {
  readonly member: string;
  readonly type: string;
  readonly started: string;
}

interface BackupStatus {
  readonly running: LockRecord | null;
  readonly here: LockRecord | null;
  readonly last: (LockRecord & { outcome: string; label?: string; sizeBytes?: number; durationS: number; detail: string }) | null;
}

const errorOf = (reply: ApiReply): string => {
  try {
    const parsed = JSON.parse(reply.text) as { error?: unknown };
    return typeof parsed.error === 'string' ? parsed.error : reply.text;
  } catch {
    return reply.text;
  }
};

function notConfigured(member: MemberRecord): PgwardenError {
  return new PgwardenError('PGW_CONFIG_INVALID', `${member.name}: no backup: section is configured, so it takes no backups`, {
    context: { member: member.name, key: 'backup', hint: 'add a backup: section (README, Backups) to every member and restart them' },
  });
}

function failed(member: MemberRecord, path: string, reply: ApiReply): PgwardenError {
  if (reply.status === 501) return notConfigured(member);
  return new PgwardenError('PGW_API_REQUEST_FAILED', `${member.name}: ${path} answered ${reply.status}: ${errorOf(reply)}`, {
    context: { member: member.name, path, status: reply.status },
  });
}

export const formatBytes = (bytes: number | undefined): string => {
  if (bytes === undefined) return '';
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${unit === 0 ? value : value.toFixed(1)} ${units[unit]!}`;
};

/** Starts a backup on the chosen member; with --wait, returns once it finished (or throws how it ended). */
export async function backupCommand(options: BackupOptions, context: ControlContext): Promise<void> {
  const chosen = chooseBackupMember(context.view, options.from);
  if ('problem' in chosen)
    throw new PgwardenError('PGW_CLI_CLUSTER_STATE', `cannot take a backup: ${chosen.problem}`, {
      context: { scope: context.scope, hint: 'pgwarden list shows the members' },
    });
  const member = chosen.member;
  let reply: ApiReply;
  try {
    reply = await callApi(member, 'POST', '/backup', { type: options.type }, context.rest, 15_000);
  } catch (error) {
    if (isPgwardenError(error, 'PGW_API_AUTH')) throw error;
    throw new PgwardenError('PGW_API_UNREACHABLE', `${member.name} did not answer POST /backup: ${describeError(error)}`, {
      context: { member: member.name, hint: `is ${member.name}'s agent running? --from primary picks the leader instead` },
      cause: error,
    });
  }
  if (reply.status === 409) {
    const running = (JSON.parse(reply.text) as { running?: LockRecord }).running;
    throw new PgwardenError('PGW_BACKUP_RUNNING', errorOf(reply), {
      context: { member: running?.member ?? member.name, hint: 'one backup at a time in the cluster: wait for it (pgwarden backup list)' },
    });
  }
  if (reply.status !== 202) throw failed(member, 'POST /backup', reply);
  const started = JSON.parse(reply.text) as LockRecord & { from: string; id: string };
  context.out(`Backup started: ${started.type} on ${started.member} (${started.from}), id ${started.id}`);
  if (options.wait !== true) return;
  const sleep = options.sleep ?? ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)));
  const deadline = Date.now() + options.timeoutS * 1000;
  while (Date.now() < deadline) {
    await sleep(1000);
    const status = await callApi(member, 'GET', '/backup', undefined, context.rest, 5000).catch(() => undefined);
    if (status?.status !== 200) continue;
    const parsed = JSON.parse(status.text) as BackupStatus;
    const last = parsed.last;
    if (parsed.here !== null || last === null || last.started !== started.started) continue;
    if (last.outcome === 'ok') {
      context.out(`Backup finished: ${last.label ?? '?'} (${last.type}, ${formatBytes(last.sizeBytes)}, ${last.durationS} s)`);
      return;
    }
    throw new PgwardenError('PGW_BACKUP_FAILED', `the ${last.type} backup on ${member.name} ${last.outcome}: ${last.detail}`, {
      context: { member: member.name, type: last.type, outcome: last.outcome, hint: `the agent log of ${member.name} says more` },
    });
  }
  throw new PgwardenError('PGW_CLI_TIMEOUT', `the backup on ${member.name} did not finish in ${options.timeoutS} s; it goes on`, {
    context: { member: member.name, hint: 'pgwarden backup list shows it once it finished; --timeout waits longer' },
  });
}

/** The backups as rows, from the first member whose GET /backups answers (the leader first). */
export async function fetchBackupRows(context: ControlContext): Promise<{ rows: BackupRow[]; member: string }> {
  const leader = context.view.leader?.name;
  const members = [...context.view.members].sort((a, b) => Number(b.name === leader) - Number(a.name === leader));
  const problems: string[] = [];
  for (const member of members) {
    const reply = await callApi(member, 'GET', '/backups', undefined, context.rest, 60_000).catch((error: unknown) => {
      if (isPgwardenError(error, 'PGW_API_AUTH')) throw error;
      problems.push(`${member.name}: ${describeError(error)}`);
      return undefined;
    });
    if (reply === undefined) continue;
    if (reply.status === 501) throw notConfigured(member);
    if (reply.status !== 200) {
      problems.push(`${member.name}: ${reply.status} ${errorOf(reply)}`);
      continue;
    }
    const info = JSON.parse(reply.text) as unknown;
    const stanzas = Array.isArray(info)
      ? info.map((entry) => (entry as { name?: unknown }).name).filter((name) => typeof name === 'string')
      : [];
    const stanza = stanzas.includes(context.scope) ? context.scope : (stanzas[0] ?? context.scope);
    return { rows: backupRows(info, stanza), member: member.name };
  }
  throw new PgwardenError(
    'PGW_API_UNREACHABLE',
    `no member could list the backups${problems.length > 0 ? `: ${problems.join('; ')}` : ' (the cluster has no members)'}`,
    { context: { scope: context.scope, hint: 'is any agent running? pgwarden list shows the members' } },
  );
}

export function renderBackupRows(rows: readonly BackupRow[], format: 'pretty' | 'json'): string {
  if (format === 'json') return JSON.stringify(rows);
  return borderedTable(
    ['Label', 'Type', 'Start', 'Stop', 'Size', 'Repo size', 'WAL start', 'WAL stop'],
    rows.map((row) => [
      `${row.label}${row.isError ? ' (error)' : ''}`,
      row.type,
      row.start ?? '',
      row.stop ?? '',
      formatBytes(row.sizeBytes),
      formatBytes(row.repoSizeBytes),
      row.walStart ?? '',
      row.walStop ?? '',
    ]),
    new Set([4, 5]),
  );
}
