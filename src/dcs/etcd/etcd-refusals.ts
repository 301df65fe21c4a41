// What etcd's answers about authentication mean (etcd 3.4 gRPC gateway: HTTP status plus JSON {error, code}), and the
// one clear error each refusal becomes. Pure: text in, a kind or a PgwardenError out.
import { PgwardenError } from '../../util/errors.js';

/**
 * invalidToken: the token expired (simple tokens live --auth-token-ttl, 300 s by default, after their last use),
 * etcd restarted, or the auth revision moved on (JWT): authenticate again and retry once.
 */
export type RefusalKind =
  'invalidToken' | 'badCredentials' | 'authDisabled' | 'needCredentials' | 'permissionDenied' | 'needsTls' | 'commonNameRefused';

/** The refusal an etcd answer (or a watch's cancel_reason) is, if it is one of those pgwarden handles by name. */
export function refusalOf(text: string): RefusalKind | undefined {
  // Gateway answers are {"error":"etcdserver: invalid auth token","message":...,"code":16} with HTTP 401; a watch
  // says the same in its cancel_reason ("rpc error: code = Unauthenticated desc = etcdserver: invalid auth token").
  if (/invalid auth token|revision of auth store is old/.test(text)) return 'invalidToken';
  if (/authentication failed, invalid user ID or password/.test(text)) return 'badCredentials';
  if (/authentication is not enabled/.test(text)) return 'authDisabled';
  if (/user name is empty/.test(text)) return 'needCredentials';
  if (/permission denied/.test(text)) return 'permissionDenied';
  // etcd (embed/serve.go, since CVE-2018-16886) answers 400 to every gateway request whose client certificate has a
  // CommonName while --client-cert-auth and authentication are both on: it cannot carry that identity through.
  if (/CommonName of client sending a request against gateway/.test(text)) return 'commonNameRefused';
  // Go's TLS server answers plain HTTP with this 400.
  if (/Client sent an HTTP request to an HTTPS server/.test(text)) return 'needsTls';
  return undefined;
}

/** The error etcd's own text carries ("etcdserver: permission denied"), for the message. */
export function etcdErrorText(text: string): string {
  try {
    const parsed = JSON.parse(text) as { error?: unknown; message?: unknown };
    if (typeof parsed.error === 'string') return parsed.error;
    if (typeof parsed.message === 'string') return parsed.message;
  } catch {
    // not JSON: the raw text below
  }
  return text.trim().slice(0, 200);
}

export interface RefusalContext {
  readonly endpoint: string;
  readonly member: string;
  readonly username: string | undefined;
  readonly path: string;
  readonly key?: string | undefined;
  readonly etcdText: string;
}

/** One PgwardenError per refusal, naming the endpoint and what to change. Never carries the password. */
export function refusalError(kind: RefusalKind, context: RefusalContext): PgwardenError {
  const user = context.username === undefined ? undefined : `'${context.username}'`;
  const base = {
    member: context.member,
    endpoint: context.endpoint,
    path: context.path,
    ...(context.key !== undefined ? { key: context.key } : {}),
    ...(context.username !== undefined ? { username: context.username } : {}),
    etcdError: context.etcdText,
    refusal: kind,
  };
  const make = (code: 'PGW_DCS_AUTH' | 'PGW_DCS_TLS', message: string, hint: string): PgwardenError =>
    new PgwardenError(code, `etcd ${context.endpoint}: ${message}`, { context: { ...base, hint } });
  switch (kind) {
    case 'badCredentials':
      return make(
        'PGW_DCS_AUTH',
        `authentication failed for user ${user ?? '(none)'}: wrong password or unknown user (${context.etcdText})`,
        'check etcd3.username and etcd3.password (or PATRONI_ETCD3_USERNAME / PATRONI_ETCD3_PASSWORD) against `etcdctl user get`',
      );
    case 'needCredentials':
      return make(
        'PGW_DCS_AUTH',
        `etcd has authentication enabled and no etcd3.username is configured (${context.etcdText})`,
        'set etcd3.username and etcd3.password, or a client certificate whose CN is an etcd user',
      );
    case 'permissionDenied':
      return make(
        'PGW_DCS_AUTH',
        `user ${user ?? '(from the client certificate CN)'} may not ${context.path} ${context.key ?? ''} (${context.etcdText})`.replace(
          / +\(/,
          ' (',
        ),
        'grant its role readwrite on the cluster prefix: etcdctl role grant-permission <role> --prefix=true readwrite <namespace>/<scope>/',
      );
    case 'invalidToken':
      return make(
        'PGW_DCS_AUTH',
        `etcd rejected the token it had just issued to user ${user ?? '(none)'} (${context.etcdText})`,
        'check --auth-token on every etcd member (they must share the same token type and, for JWT, the same keys)',
      );
    case 'authDisabled':
      return make(
        'PGW_DCS_AUTH',
        `authentication is not enabled on etcd (${context.etcdText})`,
        'remove etcd3.username or run etcdctl auth enable',
      );
    case 'commonNameRefused':
      return make(
        'PGW_DCS_TLS',
        `etcd refuses the client certificate because it has a CommonName: with --client-cert-auth and authentication both on, etcd's JSON gateway accepts only client certificates without a CN (${context.etcdText})`,
        'issue etcd3.cert without a CN (e.g. openssl req -subj /O=pgwarden) and authenticate with etcd3.username/password',
      );
    case 'needsTls':
      return make(
        'PGW_DCS_TLS',
        'this endpoint speaks TLS but was called over plain http',
        'set etcd3.protocol: https (or https:// endpoints) and etcd3.cacert',
      );
  }
}
