// The one client of members' REST APIs (CLI, peer agents, proxy): TLS with a CA, a client certificate or none, and
// HTTP Basic credentials, built from RestClientSettings (config/rest-client-settings.ts reads them as patronictl does).
import { readFileSync } from 'node:fs';
import { Agent as HttpAgent } from 'node:http';
import type * as Https from 'node:https';
import { PgwardenError } from './errors.js';
import { requestText, type HttpReply, type TlsClientOptions } from './http-request.js';

export interface RestCredentials {
  readonly username: string;
  readonly password?: string | undefined;
}

/** Paths and flags, each with the config key it came from (named in errors: "set ctl.cacert"). */
export interface RestClientSettings {
  /** PEM CA bundle that signed the members' REST certificates (ctl.cacert, else restapi.cafile). */
  readonly cacert?: { readonly path: string; readonly key: string } | undefined;
  /** Client certificate (ctl.certfile, else restapi.certfile) and its key (same section; the certfile when absent). */
  readonly certfile?: { readonly path: string; readonly key: string } | undefined;
  readonly keyfile?: { readonly path: string; readonly key: string } | undefined;
  readonly keyfilePassword?: string | undefined;
  /** Skip server certificate checks (-k, ctl.insecure); with a client certificate only the host name check, as Patroni. */
  readonly isInsecure?: boolean | undefined;
  readonly credentials?: (RestCredentials & { readonly key: string }) | undefined;
}

export interface RestRequest {
  readonly method?: string;
  /** Sent as JSON ({} for a POST without one). */
  readonly body?: unknown;
  readonly signal: AbortSignal;
  /**
   * Sent on behalf of another caller (a dashboard action relayed to another member): this Authorization header (or none)
   * instead of the client's own credentials, so the target judges the caller, not this process.
   */
  readonly onBehalfOf?: { readonly authorization: string | undefined } | undefined;
}

export interface RestClient {
  /** One request to a full URL; credentials go with unsafe methods only (GETs are never protected by them). */
  request(url: string, request: RestRequest): Promise<HttpReply>;
  /** `endpoint` (e.g. "/switchover") on the member whose REST API is `apiUrl` (…/patroni), as Patroni's get_endpoint_url. */
  callMember(apiUrl: string, endpoint: string, request: RestRequest): Promise<HttpReply>;
  /** The config key the credentials came from, undefined when none are set (for "authentication required" hints). */
  readonly credentialsKey: string | undefined;
  /** Closes kept-alive connections. */
  close(): void;
}

const UNSAFE_METHODS: ReadonlySet<string> = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

/** TLS failures that mean "the server certificate is not trusted" rather than "nobody answered". */
const UNTRUSTED_CERTIFICATE_CODES: ReadonlySet<string> = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_UNTRUSTED',
  'CERT_SIGNATURE_FAILURE',
  'CERT_HAS_EXPIRED',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);

function readSetting(setting: { readonly path: string; readonly key: string }): Buffer {
  try {
    return readFileSync(setting.path);
  } catch (error) {
    throw new PgwardenError(
      'PGW_CONFIG_UNREADABLE',
      `${setting.key}: cannot read ${setting.path} (${(error as NodeJS.ErrnoException).code ?? String(error)}); fix the path or remove the key`,
      { cause: error, context: { key: setting.key, path: setting.path, hint: 'fix the path or remove the key' } },
    );
  }
}

/** Where a member's REST API answers `endpoint` (a path, optionally with a query): its api_url with both replaced. */
export function memberEndpointUrl(apiUrl: string, endpoint: string): string {
  const url = new URL(apiUrl);
  const queryAt = endpoint.indexOf('?');
  const path = queryAt < 0 ? endpoint : endpoint.slice(0, queryAt);
  url.pathname = path.startsWith('/') ? path : `/${path}`;
  url.search = queryAt < 0 ? '' : endpoint.slice(queryAt);
  return url.toString();
}

/** The TLS options of `settings` (files read now: an unreadable one is an error naming its key). */
export function tlsOptionsOf(settings: RestClientSettings): TlsClientOptions {
  const cert = settings.certfile === undefined ? undefined : readSetting(settings.certfile);
  const key = cert === undefined ? undefined : readSetting(settings.keyfile ?? settings.certfile!);
  return {
    ...(settings.cacert !== undefined ? { ca: readSetting(settings.cacert) } : {}),
    ...(cert !== undefined && key !== undefined ? { cert, key } : {}),
    ...(cert !== undefined && settings.keyfilePassword !== undefined ? { passphrase: settings.keyfilePassword } : {}),
    // Patroni: with a client certificate, insecure still verifies the chain (the server verifies ours) but not the name.
    ...(settings.isInsecure === true ? (cert !== undefined ? { isHostnameUnchecked: true } : { isInsecure: true }) : {}),
  };
}

export function createRestClient(settings: RestClientSettings, options: { readonly isKeptAlive?: boolean } = {}): RestClient {
  const tls = tlsOptionsOf(settings);
  const credentials = settings.credentials;
  const authorization =
    credentials === undefined
      ? undefined
      : `Basic ${Buffer.from(`${credentials.username}:${credentials.password ?? ''}`).toString('base64')}`;
  // Kept-alive pools for frequent probes (the proxy); node:https loads with the first https request only.
  const httpAgent = options.isKeptAlive === true ? new HttpAgent({ keepAlive: true, maxSockets: 4 }) : undefined;
  let httpsAgent: Promise<Https.Agent> | undefined;
  const agentFor = async (url: string): Promise<HttpAgent | Https.Agent | undefined> => {
    if (options.isKeptAlive !== true) return undefined;
    if (!url.startsWith('https:')) return httpAgent;
    httpsAgent ??= import('node:https').then((https) => new https.Agent({ keepAlive: true, maxSockets: 4 }));
    return httpsAgent;
  };
  const request = async (url: string, { method = 'GET', body, signal, onBehalfOf }: RestRequest): Promise<HttpReply> => {
    const isUnsafe = UNSAFE_METHODS.has(method);
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    const sentAuthorization = onBehalfOf === undefined ? authorization : onBehalfOf.authorization;
    if (isUnsafe && sentAuthorization !== undefined) headers.authorization = sentAuthorization;
    const agent = await agentFor(url);
    try {
      return await requestText(url, {
        method,
        headers,
        ...(isUnsafe ? { body: body === undefined ? '{}' : JSON.stringify(body) } : {}),
        signal,
        tls,
        ...(agent !== undefined ? { agent } : {}),
      });
    } catch (error) {
      throw translateTlsError(error, url, settings);
    }
  };
  return {
    request,
    callMember: (apiUrl, endpoint, options) => request(memberEndpointUrl(apiUrl, endpoint), options),
    credentialsKey: credentials?.key,
    close: () => {
      httpAgent?.destroy();
      void httpsAgent?.then((agent) => agent.destroy());
    },
  };
}

/** An untrusted server certificate says which key to set; other errors pass unchanged. */
function translateTlsError(error: unknown, url: string, settings: RestClientSettings): unknown {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  if (code === undefined || !UNTRUSTED_CERTIFICATE_CODES.has(code)) return error;
  const caKey = settings.cacert?.key;
  const hint =
    caKey === undefined
      ? 'set ctl.cacert (or restapi.cafile) to the CA that signed the REST API certificates, or ctl.insecure: true (-k) to skip the check'
      : `${caKey} (${settings.cacert!.path}) did not sign it: point ${caKey} at the right CA, or ctl.insecure: true (-k) to skip the check`;
  return new PgwardenError(
    'PGW_API_UNREACHABLE',
    `${new URL(url).host}: the REST API's TLS certificate is not trusted (${code}); ${hint}`,
    {
      cause: error,
      isRetryable: false,
      context: { url, tlsCode: code, ...(caKey !== undefined ? { key: caKey } : {}), hint },
    },
  );
}
