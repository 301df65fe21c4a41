// Backups as commands (the `backup:` section), the pure parts: which member takes a backup, what pgBackRest's `info`
// JSON lists, and when a running backup must stop because the member's place in the cluster changed.
import type { ClusterView, MemberRecord } from './types.js';

export const BACKUP_TYPES = ['full', 'diff', 'incr'] as const;
export type BackupType = (typeof BACKUP_TYPES)[number];
export type BackupSource = 'standby' | 'primary';

export const isBackupType = (value: unknown): value is BackupType => BACKUP_TYPES.includes(value as BackupType);

/** A member that can take a backup from its own data dir while streaming from the leader. */
function isStreamingReplica(member: MemberRecord, leader: string | undefined): boolean {
  return (
    member.name !== leader &&
    member.role === 'replica' &&
    member.state === 'running' &&
    (member.replication_state === undefined || member.replication_state === 'streaming') &&
    member.tags?.nobackup !== true
  );
}

/**
 * The member to take a backup: with `from` standby or unset, the streaming replica closest to the leader (as CloudNativePG
 * prefers a standby, sparing the primary the reads); unset and no such replica, the leader. `from` primary: the leader.
 */
export function chooseBackupMember(
  view: ClusterView,
  from: BackupSource | undefined,
): { readonly member: MemberRecord; readonly isStandby: boolean } | { readonly problem: string } {
  const leaderName = view.leader?.name;
  const leader = view.members.find((member) => member.name === leaderName);
  if (leaderName === undefined || leader === undefined)
    return { problem: 'the cluster has no leader: a backup needs a running primary (pgBackRest reads its WAL position)' };
  if (from !== 'primary') {
    const position = (member: MemberRecord): number => member.receive_lsn ?? member.xlog_location ?? member.replay_lsn ?? 0;
    const replicas = view.members
      .filter((member) => isStreamingReplica(member, leaderName))
      .sort((a, b) => position(b) - position(a) || a.name.localeCompare(b.name));
    const best = replicas[0];
    if (best !== undefined) return { member: best, isStandby: true };
    if (from === 'standby')
      return {
        problem: `no streaming standby to take the backup from (members: ${view.members.map((m) => `${m.name} ${m.role} ${m.state}`).join(', ')}); use --from primary`,
      };
  }
  return { member: leader, isStandby: false };
}

/** What a member's backup depends on: its role and the cluster's leader; a change of either ends the backup. */
export function backupLayoutOf(role: string | undefined, leader: string | undefined): string {
  return `${role ?? 'down'}@${leader ?? 'none'}`;
}

/** One backup as `pgwarden backup list` shows it. */
export interface BackupRow {
  readonly label: string;
  readonly type: string;
  /** ISO-8601 UTC. */
  readonly start: string | undefined;
  readonly stop: string | undefined;
  /** The database size the backup covers, bytes. */
  readonly sizeBytes: number | undefined;
  /** What it takes in the repository (compressed, this backup's own files), bytes. */
  readonly repoSizeBytes: number | undefined;
  readonly walStart: string | undefined;
  readonly walStop: string | undefined;
  /** The backup a diff or incr builds on. */
  readonly prior: string | undefined;
  readonly isError: boolean;
}

const num = (value: unknown): number | undefined => (typeof value === 'number' && Number.isFinite(value) ? value : undefined);
const str = (value: unknown): string | undefined => (typeof value === 'string' ? value : undefined);
const obj = (value: unknown): Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : {};
const iso = (epochS: number | undefined): string | undefined =>
  epochS === undefined ? undefined : new Date(epochS * 1000).toISOString().replace('.000Z', 'Z');

/** The backups of `stanza` in `pgbackrest info --output=json` (already parsed), oldest first. */
export function backupRows(info: unknown, stanza: string): BackupRow[] {
  if (!Array.isArray(info)) return [];
  const entry = obj(info.find((item: unknown) => obj(item).name === stanza));
  const backups = Array.isArray(entry.backup) ? (entry.backup as unknown[]) : [];
  return backups.map((raw) => {
    const backup = obj(raw);
    const timestamp = obj(backup.timestamp);
    const details = obj(backup.info);
    const archive = obj(backup.archive);
    return {
      label: str(backup.label) ?? '?',
      type: str(backup.type) ?? '?',
      start: iso(num(timestamp.start)),
      stop: iso(num(timestamp.stop)),
      sizeBytes: num(details.size),
      repoSizeBytes: num(obj(details.repository).delta),
      walStart: str(archive.start),
      walStop: str(archive.stop),
      prior: str(backup.prior),
      isError: backup.error === true,
    };
  });
}
