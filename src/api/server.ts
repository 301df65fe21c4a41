// node:http wiring of the REST API: health checks (sync, fast), metrics, and authenticated mutations; never dies on bad input.
import { timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type RequestListener, type ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import type { AddressInfo } from 'node:net';
import type { AgentSnapshot } from '../agent/snapshot.js';
import type { Dcs } from '../core/ports.js';
import { describeError } from '../util/errors.js';
import { redactText } from '../util/redact.js';
import type { Log } from '../util/log.js';
import type { Allowlist } from './allowlist.js';
import { backupVisibility } from '../core/backup-visibility.js';
import { handleGetBackup, handleGetBackups, handlePostBackup, type BackupEndpoint } from './backup.js';
import { MetricsExporter } from './metrics.js';
import {
  handleConfigWrite,
  handleDeleteRestart,
  handleDeleteSwitchover,
  handleReinitialize,
  handleRestore,
  handleStop,
  handleRestart,
  handleSwitchover,
  type CommandRunner,
  type MutationContext,
  type RestartScheduler,
} from './mutations.js';
import { isMemberActionPath, planMemberAction, type MemberForwarder } from './member-forward.js';
import { handleBinDir, type BinDirEndpoint } from './bin-dir.js';
import { handleMajorUpgrade, type MajorUpgradeEndpoint } from './major-upgrade.js';
import { handleRequest, type ApiResponse } from './routes.js';
import { UiStream, type UiStreamOptions } from './ui-stream.js';

export interface ApiServerOptions {
  readonly host: string;
  readonly port: number;
  readonly getSnapshot: () => AgentSnapshot;
  /** The snapshot with WAL positions read now, for status requests (getSnapshot when absent). */
  readonly getLiveSnapshot?: (() => Promise<AgentSnapshot>) | undefined;
  /**
   * GET /metrics: positions at most a second old (at most one shared query per second) and the fence and detector
   * state (getLiveSnapshot when absent).
   */
  readonly getMetricsSnapshot?: (() => Promise<AgentSnapshot>) | undefined;
  readonly nowMs: () => number;
  readonly log: Log;
  /** Enables the unsafe endpoints (switchover, failover, config). */
  readonly dcs?: Pick<Dcs, 'loadCluster' | 'setFailover' | 'setConfig'>;
  readonly nudge?: () => void;
  /** Runs a manual restart/reinitialize through the agent's HA loop. */
  readonly runCommand?: CommandRunner;
  readonly restartScheduler?: RestartScheduler;
  readonly fetchPeerStatus?: MutationContext['fetchPeerStatus'];
  /** HTTPS (restapi.certfile/keyfile); verifyClient as Patroni: `required` for every request, `optional` for unsafe ones. */
  readonly tls?:
    | {
        readonly cert: Buffer;
        readonly key: Buffer;
        readonly passphrase?: string | undefined;
        readonly ca?: Buffer | undefined;
        readonly verifyClient: 'none' | 'optional' | 'required';
        /** restapi.ciphers: the OpenSSL cipher list the server offers (Node's default when absent). */
        readonly ciphers?: string | undefined;
      }
    | undefined;
  /** restapi.http_extra_headers (or https_extra_headers under TLS): added to every response with a body. */
  readonly extraHeaders?: Readonly<Record<string, string>> | undefined;
  /** Re-reads the local config file (tags, local GUCs, callbacks). */
  readonly reload?: () => Promise<void>;
  /** restapi.authentication: required (HTTP Basic) for every unsafe method when set. */
  readonly authentication?: { readonly username: string; readonly password?: string | undefined } | undefined;
  /** restapi.allowlist (+ allowlist_include_members): client addresses admitted to unsafe endpoints. */
  readonly allowlist?: Allowlist | undefined;
  /** POST /backup, GET /backup, GET /backups (the `backup:` section); absent: they answer 501. */
  readonly backup?: BackupEndpoint | undefined;
  /** Calls the listener after every HA cycle (the dashboard's live feed, GET /ui/stream); returns the unsubscribe function. */
  readonly subscribeCycles?: UiStreamOptions['subscribe'];
  /** A peer's GET /events (the dashboard shows every member's decisions). */
  readonly fetchPeerEvents?: UiStreamOptions['fetchPeerEvents'];
  /** The leader lock's time left as the DCS counts it (the dashboard's countdown on members not holding it). */
  readonly lockTimeLeft?: UiStreamOptions['lockTimeLeft'];
  /** Relays POST /members/<name>/restart|reinitialize to that member's REST API with the caller's Authorization. */
  readonly forwardToMember?: MemberForwarder | undefined;
  /** POST /bin_dir/check and POST /bin_dir (pgwarden upgrade); absent: they answer 501. */
  readonly binDir?: BinDirEndpoint | undefined;
  /** POST /major_upgrade/<step> (pgwarden upgrade --major); absent: 501. */
  readonly majorUpgrade?: MajorUpgradeEndpoint | undefined;
  /** POST /failsafe (failsafe_mode): a leader without the DCS asks this member to confirm it. */
  readonly receiveFailsafe?:
    ((body: unknown) => { readonly status: number; readonly message: string; readonly lsn: bigint | undefined }) | undefined;
}

export interface ApiServer {
  readonly port: number;
  /** Dashboard streams open now (GET /ui/stream). */
  uiClients(): number;
  close(): Promise<void>;
}

const MAX_BODY_BYTES = 1024 * 1024;
const UNSAFE_METHODS = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

function send(response: ServerResponse, result: ApiResponse, extraHeaders: Readonly<Record<string, string>> = {}): void {
  if (result.body === undefined) {
    response.writeHead(result.status, { 'content-length': '0', ...extraHeaders });
    response.end();
    return;
  }
  // The output boundary of the REST API: JSON bodies were redacted by key (routes.ts), text here (an error quoting a
  // conninfo or a URL with its password). The dashboard page (text/html) is a constant.
  const body = result.contentType.startsWith('text/plain') ? redactText(result.body) : result.body;
  response.writeHead(result.status, {
    'content-type': result.contentType,
    'content-length': Buffer.byteLength(body),
    ...extraHeaders,
  });
  response.end(body);
}

const plain = (status: number, body: string): ApiResponse => ({ status, body, contentType: 'text/plain' });

function isAuthorized(header: string | undefined, expected: NonNullable<ApiServerOptions['authentication']>): boolean {
  if (header === undefined || !header.startsWith('Basic ')) return false;
  const given = Buffer.from(header.slice(6), 'base64');
  const wanted = Buffer.from(`${expected.username}:${expected.password ?? ''}`);
  return given.length === wanted.length && timingSafeEqual(given, wanted);
}

/**
 * The JSON body of an unsafe request. A request without Content-Length or Transfer-Encoding has no body (RFC 9112 6.3), and
 * no body is an empty object: Patroni's documented `curl -XPOST .../restart` and `curl -XDELETE .../switchover` send none.
 * Endpoints that need parameters then say which one is missing.
 */
async function readJsonBody(request: IncomingMessage): Promise<{ body: unknown } | ApiResponse> {
  if (request.headers['content-length'] === undefined && request.headers['transfer-encoding'] === undefined) return { body: {} };
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of request) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY_BYTES) return plain(413, `request body larger than ${MAX_BODY_BYTES} bytes`);
    chunks.push(chunk as Buffer);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  if (text.trim() === '') return { body: {} };
  try {
    return { body: JSON.parse(text) as unknown };
  } catch {
    return plain(400, 'the request body is not valid JSON');
  }
}

/** Authenticated like every unsafe endpoint; answers as Patroni does: 200 "Accepted" with the `lsn` header, or 500/502 and why. */
async function handleFailsafe(request: IncomingMessage, options: ApiServerOptions): Promise<ApiResponse> {
  const receive = options.receiveFailsafe;
  if (receive === undefined) return plain(501, 'POST /failsafe is not available on this server');
  const parsed = await readJsonBody(request);
  if ('status' in parsed) return parsed;
  const receipt = receive(parsed.body);
  return { ...plain(receipt.status, receipt.message), ...(receipt.lsn !== undefined ? { headers: { lsn: receipt.lsn.toString() } } : {}) };
}

/** A restart or reinitialize of another member, relayed to it (member-forward.ts); this member's own runs here. */
async function handleMemberAction(
  path: string,
  request: IncomingMessage,
  options: ApiServerOptions,
): Promise<ApiResponse | { readonly local: '/restart' | '/reinitialize' }> {
  const snapshot = options.getSnapshot();
  const plan = planMemberAction(path, snapshot.name, snapshot.view);
  if (plan.kind === 'refuse') return plan.response;
  if (plan.kind === 'local') return { local: plan.endpoint };
  const forward = options.forwardToMember;
  if (forward === undefined) return plain(501, `acting on another member is not available on this server: use ${plan.member}'s own API`);
  const parsed = await readJsonBody(request);
  if ('status' in parsed) return parsed;
  try {
    const reply = await forward(plan.apiUrl, plan.endpoint, parsed.body, request.headers.authorization);
    options.log.info(
      { target: plan.member, endpoint: plan.endpoint, status: reply.status },
      'relayed a dashboard action to another member',
    );
    return plain(reply.status, `${plan.member}: ${reply.text.trim()}`);
  } catch (error) {
    return plain(502, `${plan.member} (${plan.apiUrl}) did not answer ${plan.endpoint}: ${describeError(error)}`);
  }
}

async function handleUnsafe(method: string, path: string, request: IncomingMessage, options: ApiServerOptions): Promise<ApiResponse> {
  const auth = options.authentication;
  if (auth !== undefined) {
    const header = request.headers.authorization;
    if (header === undefined) return plain(401, 'no auth header received');
    if (!isAuthorized(header, auth)) return plain(401, 'not authenticated');
  }
  let segment = `/${path.split('/')[1] ?? ''}`;
  if (isMemberActionPath(path)) {
    if (method !== 'POST') return plain(405, `${method} ${path}: only POST`);
    const action = await handleMemberAction(path, request, options);
    if ('status' in action) return action;
    segment = action.local;
  }
  if (method === 'POST' && segment === '/failsafe') return handleFailsafe(request, options);
  if (method === 'POST' && segment === '/bin_dir') {
    const body = await readJsonBody(request);
    return 'status' in body ? body : handleBinDir(path, body.body, options.binDir, options.getSnapshot().name);
  }
  if (method === 'POST' && segment === '/major_upgrade') {
    const body = await readJsonBody(request);
    return 'status' in body ? body : handleMajorUpgrade(path, body.body, options.majorUpgrade, options.getSnapshot().name);
  }
  if (method === 'POST' && segment === '/backup') {
    const body = await readJsonBody(request);
    return 'status' in body ? body : handlePostBackup(body.body, options.backup);
  }
  const dcs = options.dcs;
  if (dcs === undefined) return plain(501, `${method} ${segment} is not available on this server`);
  const parsed = await readJsonBody(request);
  if ('status' in parsed) return parsed;
  const context: MutationContext = {
    snapshot: options.getSnapshot(),
    dcs,
    wallNowMs: () => Date.now(),
    sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
    nudge: options.nudge ?? (() => undefined),
    fetchPeerStatus: options.fetchPeerStatus,
  };
  const route = `${method} ${segment}`;
  switch (route) {
    case 'POST /switchover':
      return handleSwitchover('switchover', parsed.body, context);
    case 'POST /failover':
      return handleSwitchover('failover', parsed.body, context);
    case 'DELETE /switchover':
      return handleDeleteSwitchover(context);
    case 'PATCH /config':
      return handleConfigWrite('PATCH', parsed.body, context);
    case 'PUT /config':
      return handleConfigWrite('PUT', parsed.body, context);
    case 'POST /reload': {
      const reload = options.reload;
      if (reload === undefined) return plain(501, 'reload is not available');
      // Patroni answers 202 at once and applies the file in the background; failures are logged with the reason.
      reload().catch((error: unknown) =>
        options.log.error({ error: describeError(error) }, 'reload failed; keeping the previous configuration'),
      );
      return plain(202, 'reload scheduled');
    }
    case 'POST /restart':
      return options.runCommand === undefined
        ? plain(501, 'restart is not available')
        : handleRestart(parsed.body, context.snapshot, options.runCommand, options.restartScheduler);
    case 'DELETE /restart':
      return handleDeleteRestart(options.restartScheduler);
    case 'POST /stop':
      return options.runCommand === undefined
        ? plain(501, 'stop is not available')
        : handleStop(parsed.body, context.snapshot, options.runCommand);
    case 'POST /restore':
      if (options.runCommand === undefined) return plain(501, 'restore is not available');
      if (options.backup === undefined)
        return plain(501, 'no backup: section is configured on this member, so it has nothing to restore from');
      return handleRestore(parsed.body, context.snapshot, options.runCommand);
    case 'POST /reinitialize':
      return options.runCommand === undefined
        ? plain(501, 'reinitialize is not available')
        : handleReinitialize(parsed.body, context.snapshot, options.runCommand);
    default:
      return plain(501, `${route} is not implemented`);
  }
}

export async function startApiServer(options: ApiServerOptions): Promise<ApiServer> {
  const metrics = new MetricsExporter();
  const verifyClient = options.tls?.verifyClient ?? 'none';
  /** A client certificate signed by our CA (the TLS layer checked it; we only read the verdict). */
  const hasClientCertificate = (request: IncomingMessage): boolean => (request.socket as TLSSocket).authorized === true;
  const uiStream = new UiStream({
    getSnapshot: options.getSnapshot,
    nowMs: options.nowMs,
    subscribe: options.subscribeCycles,
    fetchPeerEvents: options.fetchPeerEvents,
    lockTimeLeft: options.lockTimeLeft,
  });
  const liveSnapshot = async (): Promise<AgentSnapshot> => (await options.getLiveSnapshot?.()) ?? options.getSnapshot();
  const onRequest = async (request: IncomingMessage, response: ServerResponse): Promise<void> => {
    const url = new URL(request.url ?? '/', 'http://localhost');
    const method = request.method ?? 'GET';
    const allowlist = options.allowlist;
    if (UNSAFE_METHODS.has(method) && allowlist !== undefined && !allowlist.isOpen) {
      const memberUrls = options.getSnapshot().view?.members.map((member) => member.api_url) ?? [];
      if (!(await allowlist.allows(request.socket.remoteAddress ?? '', memberUrls))) {
        options.log.warn(
          { client: request.socket.remoteAddress ?? '', method, url: request.url ?? '' },
          'unsafe request refused: client not in restapi.allowlist',
        );
        send(response, plain(403, 'Access is denied'));
        return;
      }
    }
    const needsCertificate = verifyClient === 'required' || (verifyClient === 'optional' && UNSAFE_METHODS.has(method));
    if (needsCertificate && !hasClientCertificate(request)) {
      send(response, plain(403, 'client certificate required'));
      return;
    }
    const segment = `/${url.pathname.split('/')[1] ?? ''}`;
    if (method === 'GET' && segment === '/metrics') {
      response.writeHead(200, { 'content-type': metrics.contentType });
      response.end(await metrics.render((await options.getMetricsSnapshot?.()) ?? (await liveSnapshot())));
      return;
    }
    if (method === 'GET' && (url.pathname === '/backup' || url.pathname === '/backups')) {
      const result =
        url.pathname === '/backup'
          ? await handleGetBackup(options.backup, backupVisibility((await liveSnapshot()).pg, Date.now() / 1000))
          : await handleGetBackups(options.backup);
      send(response, result, options.extraHeaders);
      return;
    }
    if (UNSAFE_METHODS.has(method)) {
      const result = await handleUnsafe(method, url.pathname, request, options);
      send(response, result, {
        ...options.extraHeaders,
        ...result.headers,
        // Not to the dashboard (it asks itself): the browser's own login dialog would hold its request.
        ...(result.status === 401 && request.headers['x-pgwarden-ui'] === undefined ? { 'www-authenticate': 'Basic realm="Patroni"' } : {}),
      });
      return;
    }
    if (method === 'GET' && url.pathname === '/ui/stream') {
      uiStream.attach(request, response);
      return;
    }
    const result = handleRequest(
      { method, path: url.pathname, query: url.searchParams },
      { snapshot: await liveSnapshot(), nowMs: options.nowMs() },
    );
    // Status-only replies (HEAD, OPTIONS, probes) stay bare, as HAProxy and Patroni expect.
    send(response, result, result.body === undefined ? {} : { ...options.extraHeaders, ...result.headers });
  };
  const listener: RequestListener = (request, response) => {
    onRequest(request, response).catch((error: unknown) => {
      options.log.error({ error: describeError(error), url: request.url ?? '' }, 'REST request failed');
      if (!response.headersSent) response.writeHead(500, { 'content-type': 'text/plain' });
      response.end('internal error');
    });
  };
  const httpOptions = { requestTimeout: 60_000, headersTimeout: 5_000, maxHeaderSize: 16 * 1024 };
  const tls = options.tls;
  // node:https (and its TLS stack, ~1 MB RSS) is loaded only for restapi.certfile.
  const server =
    tls === undefined
      ? createServer(httpOptions, listener)
      : (await import('node:https')).createServer(
          {
            ...httpOptions,
            cert: tls.cert,
            key: tls.key,
            passphrase: tls.passphrase,
            ca: tls.ca,
            requestCert: tls.verifyClient !== 'none',
            ...(tls.ciphers !== undefined ? { ciphers: tls.ciphers } : {}),
            rejectUnauthorized: false,
          },
          listener,
        );
  // Garbage on the socket (bad request lines, oversized headers) gets a 400 and a closed connection, never a crash.
  server.on('clientError', (_error, socket) => {
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
    else socket.destroy();
  });
  server.keepAliveTimeout = 5000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: options.host, port: options.port }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    uiClients: () => uiStream.clientCount,
    close: () =>
      new Promise<void>((resolve) => {
        uiStream.close();
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
