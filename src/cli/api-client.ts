// The CLI's HTTP client for members' REST APIs: Basic auth from ctl/restapi.authentication, bounded by a deadline.
import type { MemberRecord } from '../core/types.js';
import { requestText, type TlsClientOptions } from '../util/http-request.js';

export interface Credentials {
  readonly username: string;
  readonly password?: string | undefined;
}

export interface ApiReply {
  readonly status: number;
  readonly text: string;
}

/** `http://host:port/patroni` -> `http://host:port`. */
export function apiBase(member: MemberRecord): string {
  return member.api_url.replace(/\/patroni\/?$/, '');
}

export async function callApi(
  member: MemberRecord,
  method: string,
  path: string,
  body: unknown,
  credentials: Credentials | undefined,
  timeoutMs: number,
  tls?: TlsClientOptions,
): Promise<ApiReply> {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (credentials !== undefined)
    headers.authorization = `Basic ${Buffer.from(`${credentials.username}:${credentials.password ?? ''}`).toString('base64')}`;
  const hasBody = method !== 'GET' && method !== 'HEAD';
  return requestText(`${apiBase(member)}${path}`, {
    method,
    headers,
    ...(hasBody ? { body: body === undefined ? '{}' : JSON.stringify(body) } : {}),
    signal: AbortSignal.timeout(timeoutMs),
    ...(tls !== undefined ? { tls } : {}),
  });
}
