// POST /members/<name>/restart and /members/<name>/reinitialize: the dashboard acts on any member from whichever
// member's page is open. The serving agent relays the request to the named member's REST API with the caller's own
// Authorization header (never the agent's credentials), so the target checks the caller exactly as it checks the CLI.
// Not an open proxy: the target must be a member of this agent's DCS view (its api_url from its member key), and only
// these two fixed paths are relayed.
import type { ClusterView } from '../core/types.js';
import type { ApiResponse } from './routes.js';

export type ForwardedAction = '/restart' | '/reinitialize';

export type ForwardPlan =
  | { readonly kind: 'local'; readonly endpoint: ForwardedAction }
  | { readonly kind: 'forward'; readonly member: string; readonly apiUrl: string; readonly endpoint: ForwardedAction }
  | { readonly kind: 'refuse'; readonly response: ApiResponse };

/** The relayed request: what the target is asked and with whose credentials. */
export type MemberForwarder = (
  apiUrl: string,
  endpoint: ForwardedAction,
  body: unknown,
  authorization: string | undefined,
) => Promise<{ readonly status: number; readonly text: string }>;

const PATH = /^\/members\/([^/]+)\/(restart|reinitialize)$/;

const refuse = (status: number, text: string): ForwardPlan => ({
  kind: 'refuse',
  response: { status, body: `${text}\n`, contentType: 'text/plain' },
});

/** Whether `path` is a member action path (so other unsafe routes are left alone). */
export const isMemberActionPath = (path: string): boolean => path.startsWith('/members/');

/** Pure: where `POST <path>` goes, given this member's name and DCS view. */
export function planMemberAction(path: string, self: string, view: ClusterView | undefined): ForwardPlan {
  const match = PATH.exec(path);
  if (match === null) return refuse(404, `${path}: expected /members/<name>/restart or /members/<name>/reinitialize`);
  let name: string;
  try {
    name = decodeURIComponent(match[1] ?? '');
  } catch {
    return refuse(400, `${path}: the member name is not valid URL encoding`);
  }
  const endpoint: ForwardedAction = match[2] === 'restart' ? '/restart' : '/reinitialize';
  if (name === self) return { kind: 'local', endpoint };
  if (view === undefined) return refuse(503, `no DCS view yet: cannot tell whether ${name} is a member; retry, or use ${name}'s own API`);
  const member = view.members.find((candidate) => candidate.name === name);
  if (member === undefined)
    return refuse(
      404,
      `${name} is not a member of this cluster in the DCS (members: ${view.members.map((m) => m.name).join(', ') || 'none'})`,
    );
  let url: URL;
  try {
    url = new URL(member.api_url);
  } catch {
    return refuse(502, `${name}'s member key has no usable api_url (${JSON.stringify(member.api_url)}); act on its own API instead`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    return refuse(502, `${name}'s api_url is not http(s) (${member.api_url}); act on its own API instead`);
  return { kind: 'forward', member: name, apiUrl: member.api_url, endpoint };
}
