// One HTTP(S) request with a deadline and optional CA/client certificate: fetch cannot trust a private CA on Node 20.
import { request as httpRequest, type Agent as HttpAgent, type IncomingMessage } from 'node:http';
import type * as Https from 'node:https';

/** node:https and its TLS stack (~1.2 MB RSS) load with the first https request, not with every agent. */
let httpsModule: Promise<typeof Https> | undefined;

export interface TlsClientOptions {
  /** PEM CA bundle to trust (restapi.cafile / ctl.cacert). */
  readonly ca?: Buffer | undefined;
  readonly cert?: Buffer | undefined;
  readonly key?: Buffer | undefined;
  /** Decrypts `key` (ctl.keyfile_password). */
  readonly passphrase?: string | undefined;
  /** ctl.insecure: accept any server certificate. */
  readonly isInsecure?: boolean | undefined;
  /** ctl.insecure with a client certificate: the chain is verified, the host name is not (as Patroni does). */
  readonly isHostnameUnchecked?: boolean | undefined;
}

export interface HttpReply {
  readonly status: number;
  readonly text: string;
}

export async function requestText(
  url: string,
  options: {
    readonly method?: string;
    readonly headers?: Readonly<Record<string, string>>;
    readonly body?: string;
    readonly signal: AbortSignal;
    readonly tls?: TlsClientOptions;
    /** A kept-alive connection pool (node:http's or node:https's Agent). */
    readonly agent?: HttpAgent;
  },
): Promise<HttpReply> {
  const parsed = new URL(url);
  const isHttps = parsed.protocol === 'https:';
  if (!isHttps) return send(parsed, options, undefined);
  httpsModule ??= import('node:https');
  return httpsModule.then((https) => send(parsed, options, https.request));
}

function send(parsed: URL, options: Parameters<typeof requestText>[1], httpsRequest: typeof Https.request | undefined): Promise<HttpReply> {
  return new Promise((resolve, reject) => {
    const tls = options.tls;
    const common = {
      method: options.method ?? 'GET',
      headers: { ...options.headers, ...(options.body !== undefined ? { 'content-length': String(Buffer.byteLength(options.body)) } : {}) },
      signal: options.signal,
      ...(options.agent !== undefined ? { agent: options.agent } : {}),
    };
    const onResponse = (response: IncomingMessage): void => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
      response.on('error', reject);
    };
    const req =
      httpsRequest !== undefined
        ? httpsRequest(
            parsed,
            {
              ...common,
              ca: tls?.ca,
              cert: tls?.cert,
              key: tls?.key,
              passphrase: tls?.passphrase,
              rejectUnauthorized: tls?.isInsecure !== true,
              ...(tls?.isHostnameUnchecked === true ? { checkServerIdentity: () => undefined } : {}),
            },
            onResponse,
          )
        : httpRequest(parsed, common, onResponse);
    req.on('error', reject);
    req.end(options.body);
  });
}
