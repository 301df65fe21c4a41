// etcd v3 JSON gateway transport over fetch: base64 keys, string int64s, several endpoints with failover.
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

/** Connection-level failures where the request surely never reached etcd: safe to retry on another endpoint. */
function isNotSent(error: unknown): boolean {
  const cause = (error as { cause?: { code?: string } }).cause;
  return ['ECONNREFUSED', 'ENOTFOUND', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN'].includes(cause?.code ?? '');
}

export class EtcdGateway {
  readonly #endpoints: readonly string[];
  #current = 0;
  readonly #member: string;

  constructor(endpoints: readonly string[], member: string) {
    if (endpoints.length === 0) throw new PgwardenError('PGW_CONFIG_INVALID', 'etcd3.hosts is empty: list at least one etcd endpoint');
    this.#endpoints = endpoints.map((endpoint) => endpoint.replace(/\/+$/, ''));
    this.#member = member;
  }

  get currentEndpoint(): string {
    return this.#endpoints[this.#current]!;
  }

  /**
   * POSTs to the current endpoint; moves on to the next one when the request could not be sent or etcd answered
   * 5xx/unavailable. A timeout is not retried elsewhere: the write may have been applied, and the caller must
   * re-read before acting on it.
   */
  async call<T>(path: string, body: unknown, signal: AbortSignal, key?: string): Promise<T> {
    let lastError: unknown;
    for (let attempt = 0; attempt < this.#endpoints.length; attempt++) {
      const endpoint = this.#endpoints[this.#current]!;
      try {
        const response = await fetch(`${endpoint}${path}`, {
          method: 'POST',
          body: JSON.stringify(body),
          headers: { 'content-type': 'application/json' },
          signal,
        });
        const text = await response.text();
        if (response.ok) return JSON.parse(text) as T;
        lastError = new PgwardenError('PGW_ETCD_ANSWER', `etcd ${endpoint}${path} answered ${response.status}: ${text.slice(0, 200)}`, {
          isRetryable: response.status >= 500,
          context: {
            member: this.#member,
            ...(key !== undefined ? { key } : {}),
            endpoint,
            path,
            status: response.status,
            hint:
              response.status >= 500
                ? 'etcd is unhealthy: check etcdctl endpoint health'
                : 'etcd refused the request (its answer says why): check the etcd version and authentication',
          },
        });
        if (response.status < 500) break;
      } catch (error) {
        lastError = error;
        if (signal.aborted || !isNotSent(error)) break;
      }
      this.#current = (this.#current + 1) % this.#endpoints.length;
    }
    const reason = signal.aborted ? 'no answer before the deadline' : lastError instanceof Error ? lastError.message : String(lastError);
    throw new PgwardenError(
      'PGW_DCS_UNAVAILABLE',
      `etcd is not reachable (${this.#endpoints.join(',')}): ${reason}${key === undefined ? '' : ` [key ${key}]`}`,
      {
        isRetryable: true,
        cause: lastError,
        context: { member: this.#member, ...(key !== undefined ? { key } : {}), endpoint: this.currentEndpoint },
      },
    );
  }

  /** Opens a streaming watch; resolves at the first event batch, rejects on abort or a broken stream. */
  async watchOnce(keyPrefix: string, startRevision: string, signal: AbortSignal, isInteresting: (key: string) => boolean): Promise<void> {
    const endpoint = this.currentEndpoint;
    const response = await fetch(`${endpoint}/v3/watch`, {
      method: 'POST',
      body: JSON.stringify({
        create_request: { key: b64(keyPrefix), range_end: prefixRangeEnd(keyPrefix), start_revision: startRevision },
      }),
      headers: { 'content-type': 'application/json' },
      signal,
    });
    if (!response.ok || response.body === null)
      throw new PgwardenError('PGW_ETCD_ANSWER', `etcd watch on ${endpoint} answered ${response.status}`, {
        isRetryable: true,
        context: { member: this.#member, key: keyPrefix, endpoint, path: '/v3/watch', status: response.status },
      });
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffered = '';
    try {
      for (;;) {
        const { value, done } = (await reader.read()) as { value?: Uint8Array; done: boolean };
        if (done)
          throw new PgwardenError('PGW_DCS_WATCH_BROKEN', 'etcd watch stream ended', {
            isRetryable: true,
            context: { member: this.#member, key: keyPrefix, endpoint, hint: 'etcd closed the watch: watch again from the last revision' },
          });
        buffered += decoder.decode(value, { stream: true });
        let newline = buffered.indexOf('\n');
        while (newline >= 0) {
          const line = buffered.slice(0, newline).trim();
          buffered = buffered.slice(newline + 1);
          if (line !== '') {
            const message = JSON.parse(line) as {
              result?: { events?: { kv?: GatewayKv }[]; canceled?: boolean; compact_revision?: string };
            };
            if ((message.result?.events ?? []).some((event) => isInteresting(unb64(event.kv?.key)))) return;
            // A compacted start revision means we missed changes: wake the loop so it re-reads everything.
            if (message.result?.canceled === true || message.result?.compact_revision !== undefined) return;
          }
          newline = buffered.indexOf('\n');
        }
      }
    } finally {
      await reader.cancel().catch(() => undefined);
    }
  }
}
