// The CLI's calls to members' REST APIs, through the one REST client (TLS, Basic auth), bounded by a deadline; a
// refusal for want of credentials or a client certificate becomes an error that says which key to set.
import type { MemberRecord } from '../core/types.js';
import { PgwardenError } from '../util/errors.js';
import type { RestClient } from '../util/rest-client.js';

export interface ApiReply {
  readonly status: number;
  readonly text: string;
}

/** 401 and a missing client certificate are configuration problems of this CLI, never a member's answer to show. */
export function authRefusal(member: MemberRecord, reply: ApiReply, rest: RestClient): PgwardenError | undefined {
  if (reply.status === 401) {
    const key = rest.credentialsKey;
    const message =
      key === undefined
        ? `${member.name}: authentication required: set ctl.authentication or restapi.authentication (username and password) in the config file`
        : `${member.name}: authentication failed with the username and password of ${key} (${reply.text}); make them match the members' restapi.authentication`;
    return new PgwardenError('PGW_API_AUTH', message, {
      context: {
        member: member.name,
        status: 401,
        ...(key !== undefined ? { key } : {}),
        hint: key === undefined ? 'set ctl.authentication (or restapi.authentication)' : `check ${key}`,
      },
    });
  }
  if (reply.status === 403 && reply.text === 'client certificate required')
    return new PgwardenError(
      'PGW_API_AUTH',
      `${member.name}: the REST API requires a client certificate: set ctl.certfile and ctl.keyfile (a certificate its restapi.cafile trusts)`,
      { context: { member: member.name, status: 403, hint: 'set ctl.certfile and ctl.keyfile' } },
    );
  return undefined;
}

export async function callApi(
  member: MemberRecord,
  method: string,
  path: string,
  body: unknown,
  rest: RestClient,
  timeoutMs: number,
): Promise<ApiReply> {
  const reply = await rest.callMember(member.api_url, path, { method, body, signal: AbortSignal.timeout(timeoutMs) });
  const refusal = authRefusal(member, reply, rest);
  if (refusal !== undefined) throw refusal;
  return reply;
}
