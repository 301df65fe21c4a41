// `pgwarden events`: the recent HA decisions of every member (GET /events on each REST API), merged by time, so one
// command shows who decided what during a failover.
import { stringify } from 'yaml';
import type { ClusterView, DecisionEvent, MemberRecord } from '../../core/types.js';
import { describeError, PgwardenError } from '../../util/errors.js';
import type { RestClient } from '../../util/rest-client.js';
import { callApi } from '../api-client.js';
import { borderedTable, type OutputFormat } from '../render.js';

const EVENTS_TIMEOUT_MS = 3000;

export interface EventsOptions {
  readonly member?: string;
  readonly format: OutputFormat;
  /** The newest N events of each member. */
  readonly limit: number;
}

async function eventsOf(member: MemberRecord, rest: RestClient, limit: number): Promise<readonly DecisionEvent[]> {
  const reply = await callApi(member, 'GET', `/events?limit=${limit}`, undefined, rest, EVENTS_TIMEOUT_MS);
  if (reply.status !== 200)
    throw new PgwardenError('PGW_API_REQUEST_FAILED', `${member.name}: GET /events answered ${reply.status}: ${reply.text.slice(0, 200)}`, {
      context: { member: member.name, status: reply.status },
    });
  return JSON.parse(reply.text) as DecisionEvent[];
}

/** The merged table (or document) and a line per member that did not answer. */
export async function eventsCommand(
  view: ClusterView,
  rest: RestClient,
  options: EventsOptions,
): Promise<{ readonly output: string; readonly unreachable: readonly string[] }> {
  const members = options.member === undefined ? view.members : view.members.filter((member) => member.name === options.member);
  if (members.length === 0)
    throw new PgwardenError('PGW_CLI_USAGE', `no member named ${options.member ?? ''} in the cluster`, {
      context: { flag: '--member', hint: `one of: ${view.members.map((member) => member.name).join(', ')}` },
    });
  const answers = await Promise.allSettled(members.map((member) => eventsOf(member, rest, options.limit)));
  const unreachable: string[] = [];
  const events: DecisionEvent[] = [];
  answers.forEach((answer, index) => {
    if (answer.status === 'fulfilled') events.push(...answer.value);
    else unreachable.push(`${members[index]!.name}: ${describeError(answer.reason)}`);
  });
  events.sort((a, b) => a.at.localeCompare(b.at) || a.member.localeCompare(b.member) || a.seq - b.seq);
  return { output: render(events, options.format), unreachable };
}

function render(events: readonly DecisionEvent[], format: OutputFormat): string {
  if (format === 'json') return JSON.stringify(events);
  if (format === 'yaml') return stringify(events).trimEnd();
  const header = ['Time', 'Member', 'Role', 'TL', 'Actions', 'Reason'];
  const rows = events.map((event) => [
    event.at,
    event.member,
    event.role,
    event.timeline === undefined ? '' : String(event.timeline),
    event.actions.join(','),
    event.reason,
  ]);
  if (format === 'tsv') return [header, ...rows].map((row) => row.join('\t')).join('\n');
  return borderedTable(header, rows, new Set([3]));
}
