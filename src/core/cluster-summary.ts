// Patroni's `cluster_as_json` from a ClusterView: the data behind GET /cluster and `pgwarden list` (pure).
import { slotNameForMember } from './slot-names.js';
import { standbyClusterOf } from './standby-cluster.js';
import { syncSettingsOf } from './sync-plan.js';
import type { ClusterView, MemberTags } from './types.js';

export interface MemberSummary {
  readonly name: string;
  readonly role: 'leader' | 'standby_leader' | 'sync_standby' | 'quorum_standby' | 'replica';
  readonly state: string;
  readonly api_url: string;
  readonly host: string;
  readonly port: number;
  readonly timeline?: number;
  readonly lag?: number | 'unknown';
  readonly pending_restart?: boolean;
  readonly scheduled_restart?: { readonly schedule: string; readonly [filter: string]: unknown };
  readonly tags?: MemberTags;
  /** Bytes of WAL the leader keeps for this member's slot (optime - the slot's published position; pgwarden addition). */
  readonly slot_retained_bytes?: number;
}

export interface ClusterSummary {
  readonly members: readonly MemberSummary[];
  readonly pause?: boolean;
  readonly scheduled_switchover?: { readonly at: string; readonly from?: string; readonly to?: string };
  /** Permanent slots on the leader and how far each is behind the leader's WAL position (pgwarden addition). */
  readonly slots?: readonly { readonly name: string; readonly behind_bytes: number }[];
  /** Set when synchronous mode cannot give its promise right now (pgwarden addition). */
  readonly synchronous_mode_warning?: string;
}

/** What synchronous mode cannot do right now, judged from the DCS: writes wait (strict) or failover is off. */
export function synchronousModeWarning(view: ClusterView): string | undefined {
  const settings = syncSettingsOf(view.config);
  const leader = view.leader?.name;
  if (settings.mode === 'off' || leader === undefined || view.sync?.leader !== leader) return undefined;
  const listed = (view.sync.sync_standby ?? '').split(',').filter((name) => name !== '');
  const streaming = listed.filter((name) => view.members.find((member) => member.name === name)?.replication_state === 'streaming');
  if (settings.isStrict && streaming.length === 0) return 'strict and no synchronous standby is streaming: writes wait until one is';
  if (!settings.isStrict && listed.length === 0)
    return 'no synchronous standby: commits are asynchronous and automatic failover is disabled';
  return undefined;
}

export function hostPortFromConnUrl(connUrl: string): { host: string; port: number } {
  try {
    const url = new URL(connUrl);
    return { host: url.hostname, port: Number(url.port || '5432') };
  } catch {
    return { host: '', port: 5432 };
  }
}

export function summarizeCluster(view: ClusterView): ClusterSummary {
  const leader = view.leader?.name;
  const isQuorum = syncSettingsOf(view.config).mode === 'quorum';
  // In a standby cluster the lock holder replicates from the remote primary: Patroni calls it the standby leader.
  const leaderRole = standbyClusterOf(view.config) === undefined ? 'leader' : 'standby_leader';
  const syncNames = new Set((view.sync?.sync_standby ?? '').split(',').filter((name) => name !== ''));
  const leaderRecord = view.members.find((member) => member.name === leader);
  const optime = view.optime ?? leaderRecord?.xlog_location;
  const slotBehind = (slot: string): number | undefined => {
    const position = view.statusSlots?.[slot];
    return position === undefined || optime === undefined ? undefined : Math.max(0, optime - position);
  };
  const memberSlots = new Set(view.members.map((member) => slotNameForMember(member.name)));
  const permanent = Object.keys(view.statusSlots ?? {})
    .filter((slot) => !memberSlots.has(slot))
    .sort()
    .map((name) => ({ name, behind_bytes: slotBehind(name) ?? 0 }));
  const members = [...view.members]
    .sort((a, b) => a.name.localeCompare(b.name))
    .map((member): MemberSummary => {
      const role =
        member.name === leader ? leaderRole : syncNames.has(member.name) ? (isQuorum ? 'quorum_standby' : 'sync_standby') : 'replica';
      const { host, port } = hostPortFromConnUrl(member.conn_url);
      const lag =
        role === leaderRole
          ? undefined
          : member.xlog_location === undefined || optime === undefined
            ? 'unknown'
            : Math.max(0, optime - member.xlog_location);
      return {
        name: member.name,
        role,
        state: member.state,
        api_url: member.api_url,
        host,
        port,
        ...(member.timeline !== undefined ? { timeline: member.timeline } : {}),
        ...(lag !== undefined ? { lag } : {}),
        ...(member.pending_restart === true ? { pending_restart: true } : {}),
        ...(member.scheduled_restart !== undefined ? { scheduled_restart: member.scheduled_restart } : {}),
        ...(member.tags !== undefined && Object.keys(member.tags).length > 0 ? { tags: member.tags } : {}),
        ...(role !== leaderRole && slotBehind(slotNameForMember(member.name)) !== undefined
          ? { slot_retained_bytes: slotBehind(slotNameForMember(member.name))! }
          : {}),
      };
    });
  const failover = view.failover;
  const warning = synchronousModeWarning(view);
  return {
    members,
    ...(warning !== undefined ? { synchronous_mode_warning: warning } : {}),
    ...(permanent.length > 0 ? { slots: permanent } : {}),
    ...(view.config?.pause === true ? { pause: true } : {}),
    ...(failover?.scheduled_at !== undefined
      ? {
          scheduled_switchover: {
            at: failover.scheduled_at,
            ...(failover.leader !== undefined ? { from: failover.leader } : {}),
            ...(failover.member !== undefined ? { to: failover.member } : {}),
          },
        }
      : {}),
  };
}
