// One renderer for the member table in patronictl's shapes: pretty (bordered), tsv, json and yaml.
import { stringify } from 'yaml';
import type { ClusterSummary, MemberSummary } from '../core/cluster-summary.js';

export type OutputFormat = 'pretty' | 'tsv' | 'json' | 'yaml';

interface Column {
  readonly title: string;
  readonly isRightAligned: boolean;
  readonly value: (member: MemberSummary) => string;
}

function titleCase(role: string): string {
  return role
    .split('_')
    .map((word) => (word === '' ? word : word[0]!.toUpperCase() + word.slice(1)))
    .join(' ');
}

function lagInMb(member: MemberSummary): string {
  if (member.lag === undefined) return '';
  if (member.lag === 'unknown') return 'unknown';
  return String(Math.round(member.lag / 1024 / 1024));
}

function columns(summary: ClusterSummary, isExtended: boolean): Column[] {
  const hosts = summary.members.map((member) => member.host);
  const showPort = summary.members.some((member) => member.port !== 5432) || new Set(hosts).size !== hosts.length;
  const list: Column[] = [
    { title: 'Member', isRightAligned: false, value: (m) => m.name },
    { title: 'Host', isRightAligned: false, value: (m) => (showPort ? `${m.host}:${m.port}` : m.host) },
    { title: 'Role', isRightAligned: false, value: (m) => titleCase(m.role) },
    { title: 'State', isRightAligned: false, value: (m) => m.state },
    { title: 'TL', isRightAligned: true, value: (m) => (m.timeline === undefined ? '' : String(m.timeline)) },
    { title: 'Lag in MB', isRightAligned: true, value: lagInMb },
  ];
  const hasPending = summary.members.some((member) => member.pending_restart === true);
  const hasTags = summary.members.some((member) => member.tags !== undefined);
  if (isExtended || hasPending)
    list.push({ title: 'Pending restart', isRightAligned: false, value: (m) => (m.pending_restart === true ? '*' : '') });
  const hasScheduled = summary.members.some((member) => member.scheduled_restart !== undefined);
  if (isExtended || hasScheduled)
    list.push({ title: 'Scheduled restart', isRightAligned: false, value: (m) => m.scheduled_restart?.schedule ?? '' });
  if (isExtended || hasTags)
    list.push({
      title: 'Tags',
      isRightAligned: false,
      value: (m) =>
        m.tags === undefined
          ? ''
          : Object.entries(m.tags)
              .map(([key, value]) => `${key}: ${String(value)}`)
              .join(', '),
    });
  // Last, so scripts that split patronictl's extended columns by position keep working.
  if (isExtended)
    list.push({
      title: 'Slot WAL in MB',
      isRightAligned: true,
      value: (m) => (m.slot_retained_bytes === undefined ? '' : String(Math.round(m.slot_retained_bytes / 1024 / 1024))),
    });
  return list;
}

/** patronictl's bordered table with the cluster name embedded in the top border. */
function pretty(scope: string, summary: ClusterSummary, isExtended: boolean): string {
  const cols = columns(summary, isExtended);
  const rows = summary.members.map((member) => cols.map((column) => column.value(member)));
  const widths = cols.map((column, index) => Math.max(column.title.length, ...rows.map((row) => row[index]!.length)));
  const border = `+${widths.map((width) => '-'.repeat(width + 2)).join('+')}+`;
  const title = `+ Cluster: ${scope} `;
  const top = title.length < border.length ? title + border.slice(title.length) : `${title}+`;
  const line = (cells: readonly string[]): string =>
    `| ${cells.map((cell, index) => (cols[index]!.isRightAligned ? cell.padStart(widths[index]!) : cell.padEnd(widths[index]!))).join(' | ')} |`;
  const header = `| ${cols.map((column, index) => column.title.padEnd(widths[index]!)).join(' | ')} |`;
  const out = [top, header, border, ...rows.map(line), border];
  if (summary.pause === true) out.push(' Maintenance mode: on');
  if (isExtended)
    for (const slot of summary.slots ?? [])
      out.push(` Slot ${slot.name}: ${Math.round(slot.behind_bytes / 1024 / 1024)} MB behind the leader`);
  if (summary.synchronous_mode_warning !== undefined) out.push(` Synchronous mode: ${summary.synchronous_mode_warning}`);
  if (summary.scheduled_switchover !== undefined) {
    out.push(` Switchover scheduled at: ${summary.scheduled_switchover.at}`);
    if (summary.scheduled_switchover.from !== undefined) out.push(`                    from: ${summary.scheduled_switchover.from}`);
    if (summary.scheduled_switchover.to !== undefined) out.push(`                      to: ${summary.scheduled_switchover.to}`);
  }
  return out.join('\n');
}

/** patronictl topology: the leader first, replicas indented under it with `+ `. */
export function renderTopology(scope: string, summary: ClusterSummary): string {
  const isLeader = (member: MemberSummary): boolean => member.role === 'leader' || member.role === 'standby_leader';
  const leader = summary.members.filter(isLeader);
  const others = summary.members.filter((member) => !isLeader(member)).map((member) => ({ ...member, name: `+ ${member.name}` }));
  return pretty(scope, { ...summary, members: [...leader, ...others] }, false);
}

export function renderMemberTable(scope: string, summary: ClusterSummary, format: OutputFormat, isExtended = false): string {
  const cols = columns(summary, isExtended);
  if (format === 'pretty') return pretty(scope, summary, isExtended);
  if (format === 'tsv') {
    return [
      ['Cluster', ...cols.map((column) => column.title)].join('\t'),
      ...summary.members.map((member) => [scope, ...cols.map((column) => column.value(member))].join('\t')),
    ].join('\n');
  }
  const objects = summary.members.map((member) => {
    const entry: Record<string, string | number> = { Cluster: scope };
    for (const column of cols) {
      const value = column.value(member);
      if (value === '') continue;
      entry[column.title] = /^\d+$/.test(value) && column.isRightAligned ? Number(value) : value;
    }
    return entry;
  });
  return format === 'json' ? JSON.stringify(objects) : stringify(objects).trimEnd();
}

/** patronictl's bordered table (no title): `rightAligned` columns (by index) pad on the left, header included. */
export function borderedTable(
  header: readonly string[],
  rows: readonly (readonly string[])[],
  rightAligned: ReadonlySet<number> = new Set(),
): string {
  const widths = header.map((title, index) => Math.max(title.length, ...rows.map((row) => (row[index] ?? '').length)));
  const border = `+${widths.map((width) => '-'.repeat(width + 2)).join('+')}+`;
  const line = (cells: readonly string[]): string =>
    `| ${cells.map((cell, index) => (rightAligned.has(index) ? cell.padStart(widths[index]!) : cell.padEnd(widths[index]!))).join(' | ')} |`;
  return [border, line(header), border, ...rows.map(line), border].join('\n');
}
