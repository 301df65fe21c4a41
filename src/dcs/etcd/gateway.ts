// etcd v3 JSON gateway transport over node:http with keep-alive: base64 keys, string int64s, several endpoints with
// failover. node:http rather than fetch: fetch loads undici (~10 MB RSS in an idle agent) and costs several times
// more CPU per call than a request on a kept-alive socket; the agent makes a few such calls every loop_wait.
import { Agent as HttpAgent, request as httpRequest, type ClientRequest, type IncomingMessage, type RequestOptions } from 'node:http';
import { PgwardenError } from '../../util/errors.js';

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

/** Connection-level failures where the request surely never reached etcd: safe to retry on another endpoint. */
function isNotSent(error: unknown): boolean {
  const code = (error as { code?: string }).code ?? (error as { cause?: { code?: string } }).cause?.code;
  return ['ECONNREFUSED', 'ENOTFOUND', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN'].includes(code ?? '');
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
}

const AGENT_OPTIONS = { keepAlive: true, keepAliveMsecs: 10_000, maxSockets: 8, maxFreeSockets: 2, scheduling: 'lifo' } as const;

interface Endpoint {
  readonly url: string;
  readonly isHttps: boolean;
  readonly host: string;
  readonly port: number;
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
    headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
  };
  const sent = transport.request(options);
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

export class EtcdGateway {
  readonly #endpoints: readonly Endpoint[];
  #current = 0;
  readonly #member: string;
  readonly #http: Transport = { request: (options) => httpRequest(options), agent: new HttpAgent(AGENT_OPTIONS) };
  /** node:https and its TLS stack (~1 MB RSS) load with the first https endpoint's first call. */
  #https: Promise<Transport> | undefined;
  #httpsAgent: HttpAgent | undefined;
  /** Aborts every request in flight when the client is closed. */
  readonly #closed: AbortSignal | undefined;

  constructor(endpoints: readonly string[], member: string, closed?: AbortSignal) {
    if (endpoints.length === 0) throw new PgwardenError('PGW_CONFIG_INVALID', 'etcd3.hosts is empty: list at least one etcd endpoint');
    this.#endpoints = endpoints.map((endpoint) => {
      const url = endpoint.replace(/\/+$/, '');
      const parsed = new URL(url);
      const isHttps = parsed.protocol === 'https:';
      return { url, isHttps, host: parsed.hostname.replace(/^\[|\]$/g, ''), port: Number(parsed.port || (isHttps ? 443 : 80)) };
    });
    this.#member = member;
    this.#closed = closed;
  }

  get currentEndpoint(): string {
    return this.#endpoints[this.#current]!.url;
  }

  #transport(endpoint: Endpoint): Transport | Promise<Transport> {
    if (!endpoint.isHttps) return this.#http;
    this.#https ??= import('node:https').then((https) => {
      const agent = new https.Agent(AGENT_OPTIONS);
      this.#httpsAgent = agent;
      return { request: (options: RequestOptions) => https.request(options), agent };
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
        this.#signals(signal),
        (response) => {
          const chunks: Buffer[] = [];
          response.on('data', (chunk: Buffer) => chunks.push(chunk));
          response.once('end', () => settle(undefined, { status: response.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
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
              : error,
          ),
      );
    });
  }

  /**
   * POSTs to the current endpoint; moves on to the next one when the request could not be sent or etcd answered
   * 5xx/unavailable. A timeout is not retried elsewhere: the write may have been applied, and the caller must
   * re-read before acting on it. A kept-alive socket that etcd had closed while idle is retried once, on a new
   * connection to the same endpoint: etcd never read that request.
   */
  async call<T>(path: string, body: unknown, signal: AbortSignal, key?: string): Promise<T> {
    let lastError: unknown;
    const text = JSON.stringify(body);
    let isRetriedStale = false;
    for (let attempt = 0; attempt < this.#endpoints.length; attempt++) {
      const endpoint = this.#endpoints[this.#current]!;
      try {
        const transport = this.#transport(endpoint);
        const response = await this.#post(endpoint, transport instanceof Promise ? await transport : transport, path, text, signal);
        if (response.status >= 200 && response.status < 300) return JSON.parse(response.text) as T;
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
        if (response.status < 500) break;
      } catch (error) {
        if ((error as { staleSocket?: boolean }).staleSocket === true && !isRetriedStale && !signal.aborted) {
          isRetriedStale = true;
          attempt--;
          continue;
        }
        lastError = (error as { staleSocket?: boolean }).staleSocket === true ? (error as { cause?: unknown }).cause : error;
        if (signal.aborted || this.#closed?.aborted === true || !isNotSent(error)) break;
      }
      this.#current = (this.#current + 1) % this.#endpoints.length;
    }
    const isAborted = signal.aborted || this.#closed?.aborted === true;
    const reason = isAborted ? 'no answer before the deadline' : lastError instanceof Error ? lastError.message : String(lastError);
    throw new PgwardenError(
      'PGW_DCS_UNAVAILABLE',
      `etcd is not reachable (${this.#endpoints.map((endpoint) => endpoint.url).join(',')}): ${reason}${key === undefined ? '' : ` [key ${key}]`}`,
      {
        isRetryable: true,
        cause: lastError,
        context: { member: this.#member, ...(key !== undefined ? { key } : {}), endpoint: this.currentEndpoint },
      },
    );
  }

  /**
   * Opens one streaming watch of several key ranges; resolves at the first batch with an interesting key, rejects on
   * abort or a broken stream.
   */
  watchOnce(
    ranges: readonly WatchRange[],
    startRevision: string,
    signal: AbortSignal,
    isInteresting: (key: string) => boolean,
  ): Promise<void> {
    return this.watchStream(ranges, startRevision, signal, (batch) =>
      // A compacted start revision means we missed changes: wake the loop so it re-reads everything.
      batch.isCancelled ? true : batch.events.some((event) => isInteresting(unb64(event.kv?.key))),
    );
  }

  /**
   * A streaming watch of key ranges from `startRevision`, one etcd watch per range on the same stream (the gateway
   * reads one create request per line of the body): every batch of events goes to `onBatch`, and the watch ends
   * (resolves) when it returns true; rejects on abort or a broken stream.
   */
  async watchStream(
    ranges: readonly WatchRange[],
    startRevision: string,
    signal: AbortSignal,
    onBatch: (batch: WatchBatch) => boolean,
  ): Promise<void> {
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
      const settle = (error?: unknown): void => {
        if (isSettled) return;
        isSettled = true;
        cleanup();
        // The stream never ends by itself: closing our side is how a watch is cancelled.
        request?.destroy();
        if (error === undefined) resolve();
        else reject(asError(error));
      };
      cleanup = send(
        endpoint,
        transport,
        true,
        '/v3/watch',
        body,
        this.#signals(signal),
        (response, sent) => {
          request = sent;
          if (response.statusCode !== 200) {
            response.resume();
            settle(
              new PgwardenError('PGW_ETCD_ANSWER', `etcd watch on ${endpoint.url} answered ${response.statusCode ?? 'nothing'}`, {
                isRetryable: true,
                context: { endpoint: endpoint.url, path: '/v3/watch', status: response.statusCode },
              }),
            );
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
                      canceled?: boolean;
                      compact_revision?: string;
                    };
                  };
                  const result = message.result;
                  const batch: WatchBatch = {
                    events: result?.events ?? [],
                    revision: result?.header?.revision,
                    isCancelled: result?.canceled === true || result?.compact_revision !== undefined,
                  };
                  if ((batch.events.length > 0 || batch.isCancelled) && onBatch(batch)) settle();
                  else if (batch.isCancelled)
                    settle(
                      new PgwardenError('PGW_DCS_WATCH_BROKEN', 'etcd cancelled the watch', {
                        isRetryable: true,
                        context: {
                          endpoint: endpoint.url,
                          key: ranges.map((range) => range.key).join(','),
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
        (error) => settle(error),
      );
    });
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
