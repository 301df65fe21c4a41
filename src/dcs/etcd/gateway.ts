// etcd v3 JSON gateway transport over node:http with keep-alive: base64 keys, string int64s, several endpoints with
// failover, TLS with a client certificate, and etcd authentication tokens. node:http rather than fetch: fetch loads
// undici (~10 MB RSS in an idle agent) and costs several times more CPU per call than a request on a kept-alive
// socket; the agent makes a few such calls every loop_wait.
import { Agent as HttpAgent, request as httpRequest, type ClientRequest, type IncomingMessage, type RequestOptions } from 'node:http';
import { isPgwardenError, PgwardenError } from '../../util/errors.js';
import { etcdErrorText, refusalError, refusalOf, type RefusalKind } from './etcd-refusals.js';
import type { EtcdTls } from './tls-diagnosis.js';

export type { EtcdTls, TlsFile } from './tls-diagnosis.js';

/** etcd user and password (etcd3.username, etcd3.password): every request carries a token obtained with them. */
export interface EtcdAuth {
  readonly username: string;
  readonly password: string;
  /**
   * How long etcd keeps an unused token (its --auth-token-ttl, 300 s by default). The token is renewed in the
   * background at half of this; a token etcd dropped sooner (restart, shorter TTL) is renewed when etcd says so.
   */
  readonly tokenTtlMs?: number;
}

export interface GatewaySecurity {
  readonly tls?: EtcdTls | undefined;
  readonly auth?: EtcdAuth | undefined;
}

/** etcd's default --auth-token-ttl. */
const DEFAULT_TOKEN_TTL_MS = 300_000;
/**
 * After a failed authentication, calls fail with that same error for this long instead of asking etcd again: etcd
 * checks a password with bcrypt (tens of ms of its CPU), and an agent makes several calls per cycle.
 */
const AUTH_FAILURE_HOLD_MS = 2_000;
/** A token request of its own deadline: it is shared by every call waiting for it, each still bound by its own. */
const AUTHENTICATE_TIMEOUT_MS = 10_000;

export const b64 = (text: string): string => Buffer.from(text, 'utf8').toString('base64');
export const unb64 = (text: string | undefined): string => (text === undefined ? '' : Buffer.from(text, 'base64').toString('utf8'));

/** The key just after every key with this prefix (etcd's range_end for a prefix scan). */
export function prefixRangeEnd(prefix: string): string {
  const bytes = Buffer.from(prefix, 'utf8');
  for (let index = bytes.length - 1; index >= 0; index--) {
    if (bytes[index]! < 0xff) {
      bytes[index]! += 1;
      return bytes.subarray(0, index + 1).toString('base64');
    }
  }
  return Buffer.from([0]).toString('base64');
}

/** Collects a response's whole body as text and hands it over once it ended. */
function onceBody(response: IncomingMessage, onText: (text: string) => void): void {
  const chunks: Buffer[] = [];
  response.on('data', (chunk: Buffer) => chunks.push(chunk));
  response.once('end', () => onText(Buffer.concat(chunks).toString('utf8')));
}

const keysOf = (ranges: readonly WatchRange[]): string => ranges.map((range) => range.key).join(',');

/** One key, or keys from `key` up to `rangeEnd` (exclusive; base64, as etcd and prefixRangeEnd give it). */
export interface WatchRange {
  readonly key: string;
  readonly rangeEnd?: string;
}

export interface GatewayKv {
  readonly key?: string;
  readonly value?: string;
  readonly create_revision?: string;
  readonly mod_revision?: string;
  readonly lease?: string;
}

export interface GatewayHeader {
  readonly revision?: string;
}

/** One message of a watch stream: its events (type absent = PUT), and whether etcd cancelled the watch. */
export interface WatchBatch {
  readonly events: readonly { readonly type?: string; readonly kv?: GatewayKv }[];
  readonly revision: string | undefined;
  readonly isCancelled: boolean;
}

/** One endpoint's own view of the raft cluster (leader "0": it knows of none), or why it did not answer. */
export type EndpointStatus =
  | { readonly endpoint: string; readonly leader: string; readonly errors: readonly string[]; readonly failure?: undefined }
  | { readonly endpoint: string; readonly failure: string };

/**
 * "etcd has no quorum" when a member that answers knows no raft leader (etcd says "etcdserver: no leader" once its
 * election timeout passed without a majority), naming every endpoint; undefined when no member says so (all
 * unreachable, or a leader known: the caller's own error then says what failed).
 */
export function describeQuorumLoss(statuses: readonly EndpointStatus[]): string | undefined {
  const leaderless = statuses.filter(
    (status) => status.failure === undefined && (status.leader === '0' || status.errors.some((error) => /no leader/.test(error))),
  );
  if (leaderless.length === 0) return undefined;
  const each = statuses.map((status) =>
    status.failure === undefined
      ? `${status.endpoint}: answers, but knows no raft leader${status.errors.length > 0 ? ` (${status.errors.join(', ')})` : ''}`
      : `${status.endpoint}: ${status.failure}`,
  );
  return (
    `etcd has no quorum (no raft leader): ${each.join('; ')}. Nothing can be read or written until a majority of the ` +
    'etcd members runs and reaches each other again (etcdctl endpoint status --cluster)'
  );
}

/** Connection-level failures where the request surely never reached etcd: safe to retry on another endpoint. */
function isNotSent(error: unknown): boolean {
  const code = (error as { code?: string }).code ?? (error as { cause?: { code?: string } }).cause?.code;
  return ['ECONNREFUSED', 'ENOTFOUND', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN'].includes(code ?? '');
}

/** What went wrong with one endpoint, in words an operator can act on (refused vs unknown host vs timeout). */
export function endpointFailureCause(error: unknown, isAborted: boolean): string {
  const code = (error as { code?: string }).code ?? (error as { cause?: { code?: string } }).cause?.code ?? '';
  switch (code) {
    case 'ECONNREFUSED':
      return 'connection refused (ECONNREFUSED): is etcd running and listening on this address?';
    case 'ENOTFOUND':
      return 'host name not found (ENOTFOUND): check the name in etcd3.hosts and DNS';
    case 'EAI_AGAIN':
      return 'DNS lookup failed for now (EAI_AGAIN)';
    case 'EHOSTUNREACH':
      return 'host unreachable (EHOSTUNREACH)';
    case 'ENETUNREACH':
      return 'network unreachable (ENETUNREACH)';
    case 'ETIMEDOUT':
      return 'connect timed out (ETIMEDOUT)';
    case 'ECONNRESET':
      return 'connection reset (ECONNRESET)';
    default:
      if (isAborted) return 'timeout: no answer before the deadline';
      return error instanceof Error ? error.message : String(error);
  }
}

const asError = (value: unknown): Error =>
  value instanceof Error ? value : new PgwardenError('PGW_DCS_UNAVAILABLE', 'etcd request aborted', { cause: value, isRetryable: true });

/** The one reason of whichever signal fired. */
function abortReason(signals: readonly AbortSignal[]): unknown {
  return (
    signals.find((signal) => signal.aborted)?.reason ??
    new PgwardenError('PGW_DCS_UNAVAILABLE', 'etcd request aborted', { isRetryable: true })
  );
}

/** How requests reach one kind of endpoint: node:http, or node:https (loaded only for https endpoints). */
interface Transport {
  readonly request: (options: RequestOptions) => ClientRequest;
  /** Kept-alive connections for unary calls; a watch gets a connection of its own (it streams until cancelled). */
  readonly agent: HttpAgent;
  /** CA, client certificate and key: in the agent for unary calls, in the request for a watch. */
  readonly tlsOptions: Readonly<Record<string, Buffer | string>>;
  /** The one clear error a failed TLS connection is (undefined for plain http, or when it is not a TLS failure). */
  readonly diagnose: (endpoint: string, error: unknown) => PgwardenError | undefined;
}

const AGENT_OPTIONS = { keepAlive: true, keepAliveMsecs: 10_000, maxSockets: 8, maxFreeSockets: 2, scheduling: 'lifo' } as const;

interface Endpoint {
  readonly url: string;
  readonly isHttps: boolean;
  readonly host: string;
  readonly port: number;
}

/** An etcd refusal of this kind (refusalError puts the kind in the context). */
function isRefusal(error: unknown, ...kinds: readonly RefusalKind[]): boolean {
  return isPgwardenError(error) && kinds.includes(error.context.refusal as RefusalKind);
}

/** Waits for `promise` (shared with other callers), or rejects when this caller's own `signal` fires first. */
function untilAborted<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(asError(signal.reason));
  return new Promise((resolve, reject) => {
    const onAbort = (): void => reject(asError(signal.reason));
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(asError(error));
      },
    );
  });
}

/**
 * One request to etcd, aborted by any of `signals` (listeners removed when it settles: no AbortSignal.any chain per
 * call). The error of a request that reused a kept-alive socket which etcd had already closed is marked, so the
 * caller can send it again on a fresh connection.
 */
function send(
  endpoint: Endpoint,
  transport: Transport,
  isStreaming: boolean,
  path: string,
  body: string,
  authorization: string | undefined,
  signals: readonly AbortSignal[],
  onResponse: (response: IncomingMessage, request: ClientRequest) => void,
  onError: (error: unknown, isStaleSocket: boolean) => void,
): () => void {
  if (signals.some((signal) => signal.aborted)) {
    onError(abortReason(signals), false);
    return () => undefined;
  }
  const options = {
    host: endpoint.host,
    port: endpoint.port,
    path,
    method: 'POST',
    agent: isStreaming ? false : transport.agent,
    ...(isStreaming ? transport.tlsOptions : {}),
    headers: {
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(body),
      // etcd's gateway takes the bare token, without a "Bearer" prefix.
      ...(authorization !== undefined ? { authorization } : {}),
    },
  };
  let sent: ClientRequest;
  try {
    sent = transport.request(options);
  } catch (error) {
    // A CA, certificate or key that OpenSSL cannot use fails here, before any connection.
    onError(error, false);
    return () => undefined;
  }
  const abort = (): void => void sent.destroy(asError(abortReason(signals)));
  const cleanup = (): void => {
    for (const signal of signals) signal.removeEventListener('abort', abort);
  };
  let hasFailed = false;
  sent.once('response', (response) => onResponse(response, sent));
  sent.on('error', (error: NodeJS.ErrnoException) => {
    if (hasFailed) return;
    hasFailed = true;
    cleanup();
    onError(error, sent.reusedSocket && (error.code === 'ECONNRESET' || error.code === 'EPIPE'));
  });
  for (const signal of signals) signal.addEventListener('abort', abort, { once: true });
  sent.end(body);
  return cleanup;
}

/** How one watch stream ended when it did not end the watch: etcd dropped our token, so open it again. */
interface WatchReopen {
  readonly nextRevision: string;
  /** The stream had been accepted (created, not cancelled) before the token was refused. */
  readonly hasProgressed: boolean;
  readonly refusal: RefusalKind;
  /** What etcd said (cancel_reason or the answer), for the error if the watch is not reopened. */
  readonly etcdText: string;
}

export class EtcdGateway {
  readonly #endpoints: readonly Endpoint[];
  #current = 0;
  /**
   * When each endpoint last answered a unary call (performance.now()). Every call pgwarden makes is linearizable (puts,
   * transactions, lease calls, ranges without `serializable`), so an answer proves that member was then in touch with
   * etcd's quorum: a watch on it was not stalled behind a partition.
   */
  readonly #answeredAtMs = new Map<string, number>();
  readonly #member: string;
  readonly #http: Transport = {
    request: (options) => httpRequest(options),
    agent: new HttpAgent(AGENT_OPTIONS),
    tlsOptions: {},
    diagnose: () => undefined,
  };
  /** node:https and its TLS stack (~1 MB RSS) load with the first https endpoint's first call. */
  #https: Promise<Transport> | undefined;
  #httpsAgent: HttpAgent | undefined;
  /** Aborts every request in flight when the client is closed. */
  readonly #closed: AbortSignal | undefined;
  readonly #tls: EtcdTls;
  readonly #auth: EtcdAuth | undefined;
  readonly #refreshAfterMs: number;
  /** The current token; '' when etcd said authentication is not enabled (no header is sent then). */
  #token: string | undefined;
  /** performance.now() when the current token was asked for; renewed from #refreshAtMs on. */
  #refreshAtMs = 0;
  /** The token request in flight, shared by every caller that needs one. */
  #authenticating: Promise<string> | undefined;
  /** The last failed token request, repeated to callers for AUTH_FAILURE_HOLD_MS. */
  #authFailure: { readonly error: unknown; readonly atMs: number } | undefined;
  /**
   * The last TLS failure (untrusted etcd, refused certificate), repeated to new watches for AUTH_FAILURE_HOLD_MS: the
   * agent re-opens a failed watch every 500 ms, and each attempt would cost a handshake (and an etcd log line).
   */
  #tlsFailure: { readonly error: PgwardenError; readonly atMs: number } | undefined;

  constructor(endpoints: readonly string[], member: string, closed?: AbortSignal, security: GatewaySecurity = {}) {
    if (endpoints.length === 0) throw new PgwardenError('PGW_CONFIG_INVALID', 'etcd3.hosts is empty: list at least one etcd endpoint');
    this.#endpoints = endpoints.map((endpoint) => {
      const url = endpoint.replace(/\/+$/, '');
      const parsed = new URL(url);
      const isHttps = parsed.protocol === 'https:';
      return { url, isHttps, host: parsed.hostname.replace(/^\[|\]$/g, ''), port: Number(parsed.port || (isHttps ? 443 : 80)) };
    });
    this.#member = member;
    this.#closed = closed;
    this.#tls = security.tls ?? {};
    this.#auth = security.auth;
    this.#refreshAfterMs = (security.auth?.tokenTtlMs ?? DEFAULT_TOKEN_TTL_MS) / 2;
  }

  /** Whether `url` answered a unary call within the last `withinMs`, and no call to it failed since. */
  hasAnsweredWithin(url: string, withinMs: number): boolean {
    const at = this.#answeredAtMs.get(url);
    return at !== undefined && performance.now() - at <= withinMs;
  }

  get currentEndpoint(): string {
    return this.#endpoints[this.#current]!.url;
  }

  #transport(endpoint: Endpoint): Transport | Promise<Transport> {
    if (!endpoint.isHttps) return this.#http;
    this.#https ??= Promise.all([import('node:https'), import('./tls-diagnosis.js')]).then(([https, diagnosis]) => {
      const tls = this.#tls;
      const tlsOptions: Record<string, Buffer | string> = {
        ...(tls.ca !== undefined ? { ca: tls.ca.pem } : {}),
        ...(tls.cert !== undefined ? { cert: tls.cert.pem } : {}),
        ...(tls.key !== undefined ? { key: tls.key.pem } : {}),
        ...(tls.keyPassphrase !== undefined ? { passphrase: tls.keyPassphrase } : {}),
      };
      const agent = new https.Agent({ ...AGENT_OPTIONS, ...tlsOptions });
      this.#httpsAgent = agent;
      return {
        request: (options: RequestOptions) => https.request(options),
        agent,
        tlsOptions,
        diagnose: (url: string, error: unknown) => diagnosis.diagnoseTlsFailure(url, this.#member, error, tls),
      };
    });
    return this.#https;
  }

  #signals(signal: AbortSignal): AbortSignal[] {
    return this.#closed === undefined ? [signal] : [signal, this.#closed];
  }

  /** One POST and its whole answer; rejects with the transport error (marked `staleSocket` when etcd had closed it). */
  #post(
    endpoint: Endpoint,
    transport: Transport,
    path: string,
    body: string,
    authorization: string | undefined,
    signal: AbortSignal,
  ): Promise<{ status: number; text: string }> {
    return new Promise((resolve, reject) => {
      let isSettled = false;
      let cleanup = (): void => undefined;
      const settle = (error: unknown, reply?: { status: number; text: string }): void => {
        if (isSettled) return;
        isSettled = true;
        cleanup();
        if (reply !== undefined) resolve(reply);
        else reject(asError(error));
      };
      cleanup = send(
        endpoint,
        transport,
        false,
        path,
        body,
        authorization,
        this.#signals(signal),
        (response) => {
          onceBody(response, (text) => settle(undefined, { status: response.statusCode ?? 0, text }));
          response.on('error', (error) => settle(error));
          // Checked before building the error: 'close' follows every 'end', and an Error captures a stack.
          response.once('close', () => {
            if (!isSettled)
              settle(
                new PgwardenError('PGW_DCS_UNAVAILABLE', `etcd ${endpoint.url}${path}: connection closed before the answer ended`, {
                  isRetryable: true,
                  context: { endpoint: endpoint.url, path },
                }),
              );
          });
        },
        (error, isStaleSocket) =>
          settle(
            isStaleSocket
              ? Object.assign(new PgwardenError('PGW_DCS_UNAVAILABLE', 'stale kept-alive socket', { isRetryable: true, cause: error }), {
                  staleSocket: true,
                })
              : (transport.diagnose(endpoint.url, error) ?? error),
          ),
      );
    });
  }

  /** The error an etcd refusal (auth, permission, TLS-only port) is, with its kind in the context. */
  #refusal(kind: RefusalKind, endpoint: Endpoint, path: string, text: string, key: string | undefined): PgwardenError {
    return refusalError(kind, {
      endpoint: endpoint.url,
      member: this.#member,
      username: this.#auth?.username,
      path,
      key,
      etcdText: etcdErrorText(text),
    });
  }

  /**
   * POSTs to the current endpoint; moves on to the next one when the request could not be sent (refused, or TLS
   * failed) or etcd answered 5xx/unavailable. A timeout is not retried elsewhere: the write may have been applied, and
   * the caller must re-read before acting on it. A kept-alive socket that etcd had closed while idle is retried once,
   * on a new connection to the same endpoint: etcd never read that request. A TLS or authentication failure wins over
   * other errors in what is thrown: it is the one the user must fix.
   */
  async #request<T>(
    path: string,
    text: string,
    signal: AbortSignal,
    key: string | undefined,
    authorization: string | undefined,
  ): Promise<T> {
    let lastError: unknown;
    let refusedError: PgwardenError | undefined;
    let isRetriedStale = false;
    /** Each endpoint tried and why it failed, in the order tried: the error names every one. */
    const failures = new Map<string, string>();
    for (let attempt = 0; attempt < this.#endpoints.length; attempt++) {
      const endpoint = this.#endpoints[this.#current]!;
      try {
        const transport = this.#transport(endpoint);
        const response = await this.#post(
          endpoint,
          transport instanceof Promise ? await transport : transport,
          path,
          text,
          authorization,
          signal,
        );
        if (response.status >= 200 && response.status < 300) {
          this.#tlsFailure = undefined;
          this.#answeredAtMs.set(endpoint.url, performance.now());
          return JSON.parse(response.text) as T;
        }
        const refusal = response.status < 500 ? refusalOf(response.text) : undefined;
        // The same on every member (users and tokens are replicated): no use asking the next one.
        if (refusal !== undefined) throw this.#refusal(refusal, endpoint, path, response.text, key);
        lastError = new PgwardenError(
          'PGW_ETCD_ANSWER',
          `etcd ${endpoint.url}${path} answered ${response.status}: ${response.text.slice(0, 200)}`,
          {
            isRetryable: response.status >= 500,
            context: {
              member: this.#member,
              ...(key !== undefined ? { key } : {}),
              endpoint: endpoint.url,
              path,
              status: response.status,
              hint:
                response.status >= 500
                  ? 'etcd is unhealthy: check etcdctl endpoint health'
                  : 'etcd refused the request (its answer says why): check the etcd version and authentication',
            },
          },
        );
        failures.set(endpoint.url, `answered ${response.status}`);
        this.#answeredAtMs.delete(endpoint.url);
        if (response.status < 500) break;
      } catch (error) {
        if (isPgwardenError(error, 'PGW_DCS_AUTH') || (isPgwardenError(error, 'PGW_DCS_TLS') && error.context.refusal !== undefined))
          throw error;
        if ((error as { staleSocket?: boolean }).staleSocket === true && !isRetriedStale && !signal.aborted) {
          isRetriedStale = true;
          attempt--;
          continue;
        }
        lastError = (error as { staleSocket?: boolean }).staleSocket === true ? (error as { cause?: unknown }).cause : error;
        // The last word of this endpoint is a failure: a watch on it no longer counts as current.
        this.#answeredAtMs.delete(endpoint.url);
        failures.set(endpoint.url, endpointFailureCause(lastError, signal.aborted || this.#closed?.aborted === true));
        if (isPgwardenError(error, 'PGW_DCS_TLS')) {
          // The handshake failed: nothing was sent. Another member may have a certificate we trust.
          refusedError ??= error;
        } else if (signal.aborted || this.#closed?.aborted === true || !isNotSent(error)) break;
      }
      this.#current = (this.#current + 1) % this.#endpoints.length;
    }
    if (refusedError !== undefined) {
      this.#tlsFailure = { error: refusedError, atMs: performance.now() };
      throw refusedError;
    }
    const isAborted = signal.aborted || this.#closed?.aborted === true;
    if (failures.size === 0 && lastError !== undefined) failures.set(this.currentEndpoint, endpointFailureCause(lastError, isAborted));
    // Endpoints never tried: the deadline came first, or the last one failed in a way another could not help.
    const perEndpoint = this.#endpoints.map(
      (endpoint) => `${endpoint.url}: ${failures.get(endpoint.url) ?? (isAborted ? 'not tried before the deadline' : 'not tried')}`,
    );
    throw new PgwardenError(
      'PGW_DCS_UNAVAILABLE',
      `etcd is not reachable: ${perEndpoint.join('; ')}${key === undefined ? '' : ` [key ${key}]`}`,
      {
        isRetryable: true,
        cause: lastError,
        context: {
          member: this.#member,
          ...(key !== undefined ? { key } : {}),
          endpoint: this.currentEndpoint,
          endpoints: Object.fromEntries(this.#endpoints.map((endpoint) => [endpoint.url, failures.get(endpoint.url) ?? 'not tried'])),
        },
      },
    );
  }

  /**
   * Each endpoint's own status (/v3/maintenance/status, answered by the member itself, without quorum and without a
   * token), or why it did not answer: what tells a quorum-less etcd from an unreachable one after a call timed out.
   */
  async endpointStatuses(timeoutMs: number): Promise<EndpointStatus[]> {
    return Promise.all(
      this.#endpoints.map(async (endpoint): Promise<EndpointStatus> => {
        const signal = AbortSignal.timeout(timeoutMs);
        try {
          const transport = this.#transport(endpoint);
          const reply = await this.#post(
            endpoint,
            transport instanceof Promise ? await transport : transport,
            '/v3/maintenance/status',
            '{}',
            undefined,
            signal,
          );
          if (reply.status !== 200) return { endpoint: endpoint.url, failure: `answered ${reply.status}` };
          const status = JSON.parse(reply.text) as { leader?: string; errors?: string[] };
          return { endpoint: endpoint.url, leader: status.leader ?? '0', errors: status.errors ?? [] };
        } catch (error) {
          return { endpoint: endpoint.url, failure: endpointFailureCause(error, signal.aborted) };
        }
      }),
    );
  }

  /**
   * POSTs `body` to `path` with the current token (obtained first if there is none). A token etcd no longer knows
   * (expired, etcd restarted) is replaced and the request sent once more: the caller never sees that. Sending a
   * write again is safe: etcd checks the token before it proposes the request, so a refused one was never applied.
   */
  async call<T>(path: string, body: unknown, signal: AbortSignal, key?: string): Promise<T> {
    const text = JSON.stringify(body);
    const token = await this.#authorization(signal);
    try {
      return await this.#request<T>(path, text, signal, key, token);
    } catch (error) {
      if (!this.#isTokenRefusal(error, token)) throw error;
      this.#dropToken(token);
      return this.#request<T>(path, text, signal, key, await this.#authorization(signal));
    }
  }

  /** etcd refused the token we sent (or, having enabled authentication since, wants one): a new token may do. */
  #isTokenRefusal(error: unknown, token: string | undefined): boolean {
    if (this.#auth === undefined) return false;
    return isRefusal(error, 'invalidToken') || (token === undefined && isRefusal(error, 'needCredentials'));
  }

  /** Forgets `token` unless another caller already replaced it. */
  #dropToken(token: string | undefined): void {
    if (this.#token === (token ?? '')) this.#token = undefined;
  }

  /** The Authorization header value: the current token, a new one if there is none; renewed in the background when old. */
  async #authorization(signal: AbortSignal): Promise<string | undefined> {
    if (this.#auth === undefined) return undefined;
    const nowMs = performance.now();
    if (this.#token !== undefined) {
      if (nowMs >= this.#refreshAtMs && this.#authenticating === undefined) this.#refreshInBackground();
      return this.#token === '' ? undefined : this.#token;
    }
    const failure = this.#authFailure;
    if (failure !== undefined && nowMs - failure.atMs < AUTH_FAILURE_HOLD_MS) throw failure.error;
    const token = await untilAborted(this.#authenticate(), signal);
    return token === '' ? undefined : token;
  }

  /** The token request in flight, or a new one. */
  #authenticate(): Promise<string> {
    this.#authenticating ??= this.#obtainToken().finally(() => {
      this.#authenticating = undefined;
    });
    return this.#authenticating;
  }

  /** Proactive renewal: the current token stays in use until the new one arrives; a failure is retried later. */
  #refreshInBackground(): void {
    this.#refreshAtMs = performance.now() + AUTH_FAILURE_HOLD_MS;
    this.#authenticate().catch(() => undefined);
  }

  /** POST /v3/auth/authenticate {name, password} -> {token}. */
  async #obtainToken(): Promise<string> {
    const auth = this.#auth!;
    const askedAtMs = performance.now();
    try {
      const reply = await this.#request<{ token?: string }>(
        '/v3/auth/authenticate',
        JSON.stringify({ name: auth.username, password: auth.password }),
        AbortSignal.timeout(AUTHENTICATE_TIMEOUT_MS),
        undefined,
        undefined,
      );
      this.#token = reply.token ?? '';
    } catch (error) {
      if (!isRefusal(error, 'authDisabled')) {
        if (isPgwardenError(error, 'PGW_DCS_AUTH') || isPgwardenError(error, 'PGW_DCS_TLS'))
          this.#authFailure = { error, atMs: performance.now() };
        throw error;
      }
      // Credentials configured, authentication off in etcd: send no token (and ask again at the next renewal).
      this.#token = '';
    }
    this.#authFailure = undefined;
    this.#refreshAtMs = askedAtMs + this.#refreshAfterMs;
    return this.#token;
  }

  /**
   * A streaming watch of key ranges from `startRevision`, one etcd watch per range on the same stream (the gateway
   * reads one create request per line of the body): every batch of events goes to `onBatch`, and the watch ends
   * (resolves) when it returns true; rejects on abort or a broken stream.
   * When etcd cancels the stream because our token is no longer valid, the watch is opened again with a new token
   * from the revision after the last one delivered; a new token refused at once is an error, not a loop.
   */
  async watchStream(
    ranges: readonly WatchRange[],
    startRevision: string,
    signal: AbortSignal,
    onBatch: (batch: WatchBatch) => boolean,
    onCreated?: (endpointUrl: string) => void,
  ): Promise<void> {
    let start = startRevision;
    let hasReopened = false;
    const tlsFailure = this.#tlsFailure;
    if (tlsFailure !== undefined && performance.now() - tlsFailure.atMs < AUTH_FAILURE_HOLD_MS) throw tlsFailure.error;
    for (;;) {
      const token = await this.#authorization(signal);
      const reopen = await this.#watchOpen(ranges, start, signal, onBatch, token, onCreated);
      if (reopen === undefined) return;
      const isTokenRefusal =
        this.#auth !== undefined && (reopen.refusal === 'invalidToken' || (token === undefined && reopen.refusal === 'needCredentials'));
      // A stream refused before it was ever accepted, with the token just obtained for it: say so rather than loop.
      if (!isTokenRefusal || (hasReopened && !reopen.hasProgressed))
        throw this.#refusal(reopen.refusal, this.#endpoints[this.#current]!, '/v3/watch', reopen.etcdText, keysOf(ranges));
      hasReopened = true;
      this.#dropToken(token);
      start = reopen.nextRevision;
    }
  }

  /** One watch stream; resolves undefined when the watch is done, or how to reopen it when etcd refused our token. */
  async #watchOpen(
    ranges: readonly WatchRange[],
    startRevision: string,
    signal: AbortSignal,
    onBatch: (batch: WatchBatch) => boolean,
    token: string | undefined,
    onCreated?: (endpointUrl: string) => void,
  ): Promise<WatchReopen | undefined> {
    const endpoint = this.#endpoints[this.#current]!;
    const transport = await this.#transport(endpoint);
    const body = ranges
      .map(({ key, rangeEnd }) =>
        JSON.stringify({
          create_request: { key: b64(key), ...(rangeEnd !== undefined ? { range_end: rangeEnd } : {}), start_revision: startRevision },
        }),
      )
      .join('\n');
    return new Promise((resolve, reject) => {
      let isSettled = false;
      let request: ClientRequest | undefined;
      let cleanup = (): void => undefined;
      let nextRevision = startRevision;
      let hasProgressed = false;
      let created = 0;
      const settle = (error?: unknown, reopen?: WatchReopen): void => {
        if (isSettled) return;
        isSettled = true;
        cleanup();
        // The stream never ends by itself: closing our side is how a watch is cancelled.
        request?.destroy();
        if (error === undefined) resolve(reopen);
        else reject(asError(error));
      };
      cleanup = send(
        endpoint,
        transport,
        true,
        '/v3/watch',
        body,
        token,
        this.#signals(signal),
        (response, sent) => {
          request = sent;
          if (response.statusCode !== 200) {
            onceBody(response, (text) => {
              const refusal = refusalOf(text);
              if (refusal === 'invalidToken' || refusal === 'needCredentials')
                settle(undefined, { nextRevision, hasProgressed, refusal, etcdText: text });
              else
                settle(
                  refusal !== undefined
                    ? this.#refusal(refusal, endpoint, '/v3/watch', text, keysOf(ranges))
                    : new PgwardenError('PGW_ETCD_ANSWER', `etcd watch on ${endpoint.url} answered ${response.statusCode ?? 'nothing'}`, {
                        isRetryable: true,
                        context: { endpoint: endpoint.url, path: '/v3/watch', status: response.statusCode },
                      }),
                );
            });
            response.on('error', (error) => settle(error));
            return;
          }
          let buffered = '';
          response.setEncoding('utf8');
          response.on('data', (chunk: string) => {
            buffered += chunk;
            let newline = buffered.indexOf('\n');
            while (newline >= 0 && !isSettled) {
              const line = buffered.slice(0, newline).trim();
              buffered = buffered.slice(newline + 1);
              if (line !== '') {
                try {
                  const message = JSON.parse(line) as {
                    result?: {
                      header?: GatewayHeader;
                      events?: { type?: string; kv?: GatewayKv }[];
                      created?: boolean;
                      canceled?: boolean;
                      cancel_reason?: string;
                      compact_revision?: string;
                    };
                    error?: { message?: string };
                  };
                  const result = message.result;
                  // etcd cancels a watch opened (or, in some versions, held) with a token it no longer knows.
                  const reason = result?.cancel_reason ?? message.error?.message ?? '';
                  const refusal = refusalOf(reason);
                  if (refusal === 'invalidToken' || refusal === 'needCredentials') {
                    settle(undefined, { nextRevision, hasProgressed, refusal, etcdText: reason });
                    break;
                  }
                  if (refusal !== undefined) {
                    settle(this.#refusal(refusal, endpoint, '/v3/watch', reason, keysOf(ranges)));
                    break;
                  }
                  if (result?.created === true && result.canceled !== true) {
                    hasProgressed = true;
                    // One create answer per range: the stream covers every range once all of them were accepted.
                    created += 1;
                    if (created === ranges.length) onCreated?.(endpoint.url);
                  }
                  const batch: WatchBatch = {
                    events: result?.events ?? [],
                    revision: result?.header?.revision,
                    isCancelled: result?.canceled === true || result?.compact_revision !== undefined,
                  };
                  for (const event of batch.events) {
                    const revision = BigInt(event.kv?.mod_revision ?? '0') + 1n;
                    if (revision > BigInt(nextRevision)) nextRevision = revision.toString();
                  }
                  if ((batch.events.length > 0 || batch.isCancelled) && onBatch(batch)) settle();
                  else if (batch.isCancelled)
                    settle(
                      new PgwardenError('PGW_DCS_WATCH_BROKEN', 'etcd cancelled the watch', {
                        isRetryable: true,
                        context: {
                          endpoint: endpoint.url,
                          key: keysOf(ranges),
                          hint: 'watch again from a current revision',
                        },
                      }),
                    );
                } catch (error) {
                  settle(error);
                }
              }
              newline = buffered.indexOf('\n');
            }
          });
          response.once('end', () =>
            settle(
              new PgwardenError('PGW_DCS_WATCH_BROKEN', 'etcd watch stream ended', {
                isRetryable: true,
                context: { endpoint: endpoint.url, hint: 'etcd closed the watch: watch again from the last revision' },
              }),
            ),
          );
          response.on('error', (error) => settle(error));
          response.once('close', () => {
            if (!isSettled)
              settle(
                new PgwardenError('PGW_DCS_WATCH_BROKEN', 'etcd watch stream closed', {
                  isRetryable: true,
                  context: { endpoint: endpoint.url },
                }),
              );
          });
        },
        (error) => {
          const tlsError = transport.diagnose(endpoint.url, error);
          if (tlsError !== undefined) this.#tlsFailure = { error: tlsError, atMs: performance.now() };
          settle(tlsError ?? error);
        },
      );
    });
  }

  /**
   * etcd's Maintenance.Snapshot through the gateway (/v3/maintenance/snapshot): a stream of JSON lines, each with a
   * base64 `blob`; etcd sends the bolt database and then its SHA-256 as the last blob (what etcdctl snapshot restore
   * checks). Every blob goes to `onBlob` in order. The first endpoint that accepts the connection serves the whole
   * snapshot (it cannot be resumed on another member); its URL is returned.
   */
  async snapshot(signal: AbortSignal, onBlob: (blob: Buffer) => void): Promise<string> {
    const token = await this.#authorization(signal);
    const failures: string[] = [];
    for (let attempt = 0; attempt < this.#endpoints.length; attempt++) {
      const endpoint = this.#endpoints[this.#current]!;
      try {
        await this.#snapshotFrom(endpoint, token, signal, onBlob);
        return endpoint.url;
      } catch (error) {
        if (!isNotSent(error) || signal.aborted) throw error;
        failures.push(`${endpoint.url}: ${endpointFailureCause(error, false)}`);
        this.#current = (this.#current + 1) % this.#endpoints.length;
      }
    }
    throw new PgwardenError('PGW_DCS_UNAVAILABLE', `etcd is not reachable: ${failures.join('; ')}`, {
      isRetryable: true,
      context: { member: this.#member, path: '/v3/maintenance/snapshot', hint: 'check that etcd runs and etcd3.hosts names it' },
    });
  }

  async #snapshotFrom(endpoint: Endpoint, token: string | undefined, signal: AbortSignal, onBlob: (blob: Buffer) => void): Promise<void> {
    const transport = await this.#transport(endpoint);
    const path = '/v3/maintenance/snapshot';
    await new Promise<void>((resolve, reject) => {
      let isSettled = false;
      let cleanup = (): void => undefined;
      let request: ClientRequest | undefined;
      const settle = (error?: unknown): void => {
        if (isSettled) return;
        isSettled = true;
        cleanup();
        if (error === undefined) resolve();
        else {
          request?.destroy();
          reject(asError(error));
        }
      };
      cleanup = send(
        endpoint,
        transport,
        true,
        path,
        '{}',
        token,
        this.#signals(signal),
        (response, sent) => {
          request = sent;
          if (response.statusCode !== 200) {
            onceBody(response, (text) => {
              const refusal = refusalOf(text);
              settle(
                refusal !== undefined
                  ? this.#refusal(refusal, endpoint, path, text, undefined)
                  : new PgwardenError(
                      'PGW_ETCD_ANSWER',
                      `etcd ${endpoint.url}${path} answered ${response.statusCode ?? 'nothing'}: ${text.slice(0, 200)}`,
                      {
                        isRetryable: true,
                        context: { endpoint: endpoint.url, path, status: response.statusCode },
                      },
                    ),
              );
            });
            response.on('error', (error) => settle(error));
            return;
          }
          let buffered = '';
          const take = (line: string): void => {
            if (line === '') return;
            const message = JSON.parse(line) as { result?: { blob?: string }; error?: { message?: string; grpc_code?: number } };
            if (message.error !== undefined)
              throw new PgwardenError(
                'PGW_ETCD_ANSWER',
                `etcd ${endpoint.url} broke off the snapshot: ${message.error.message ?? line.slice(0, 200)}`,
                {
                  isRetryable: true,
                  context: { endpoint: endpoint.url, path },
                },
              );
            if (message.result?.blob !== undefined) onBlob(Buffer.from(message.result.blob, 'base64'));
          };
          response.setEncoding('utf8');
          response.on('data', (chunk: string) => {
            if (isSettled) return;
            buffered += chunk;
            try {
              let newline = buffered.indexOf('\n');
              while (newline >= 0) {
                take(buffered.slice(0, newline).trim());
                buffered = buffered.slice(newline + 1);
                newline = buffered.indexOf('\n');
              }
            } catch (error) {
              settle(error);
            }
          });
          response.once('end', () => {
            try {
              take(buffered.trim());
              settle();
            } catch (error) {
              settle(error);
            }
          });
          response.on('error', (error) => settle(error));
          response.once('close', () => {
            if (!isSettled)
              settle(
                new PgwardenError('PGW_DCS_UNAVAILABLE', `etcd ${endpoint.url}${path}: connection closed before the snapshot ended`, {
                  isRetryable: true,
                  context: { endpoint: endpoint.url, path },
                }),
              );
          });
        },
        (error) => settle(transport.diagnose(endpoint.url, error) ?? error),
      );
    });
  }

  /** The revision etcd is at, as `endpoint` answers /v3/maintenance/status (its header). */
  async revisionAt(endpoint: string, signal: AbortSignal): Promise<string | undefined> {
    const target = this.#endpoints.find((candidate) => candidate.url === endpoint) ?? this.#endpoints[this.#current]!;
    const transport = await this.#transport(target);
    const reply = await this.#post(target, transport, '/v3/maintenance/status', '{}', await this.#authorization(signal), signal);
    if (reply.status !== 200) return undefined;
    return (JSON.parse(reply.text) as { header?: GatewayHeader }).header?.revision;
  }

  /** Moves on to the next endpoint (after a call that timed out where another member might answer). */
  rotate(): void {
    this.#current = (this.#current + 1) % this.#endpoints.length;
  }

  /** Closes idle kept-alive connections (requests in flight end with the `closed` signal). */
  close(): void {
    this.#http.agent.destroy();
    this.#httpsAgent?.destroy();
  }
}
