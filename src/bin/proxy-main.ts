// Composition root of `pgwarden proxy`: config, etcd, the agents' REST API as the writable-primary probe, signals.
import { trimWorkingSetLater } from './working-set-report.js';
import { loadProxyConfig, type ProxyConfig } from '../config/proxy-config.js';
import type { MemberRecord } from '../core/types.js';
import { etcdConnection, openEtcdDcs, openPositionReader } from './adapters.js';
import { createLogger } from '../obs/logger.js';
import type { PrimaryProbe } from '../proxy/cluster-feed.js';
import { ProxyServer } from '../proxy/proxy-server.js';
import { ScopeRedirectSource } from '../proxy/scope-redirect.js';
import { serveDashboard } from '../api/ui-http.js';
import { UiStream } from '../api/ui-stream.js';
import { HttpPeerClient } from '../peers/http-peer-client.js';
import { SystemClock } from '../util/clock.js';
import { createRestClient } from '../util/rest-client.js';
import { describeError, PgwardenError } from '../util/errors.js';

/** GET <member's REST API>/primary over a kept-alive connection of the one REST client: 200 only on the writable lock holder. */
function primaryProbe(config: ProxyConfig): PrimaryProbe {
  const rest = createRestClient(config.rest, { isKeptAlive: true });
  return async (member: MemberRecord, signal: AbortSignal) => {
    try {
      return (await rest.callMember(member.api_url, '/primary', { signal })).status === 200;
    } catch {
      return false;
    }
  };
}

export async function runProxy(configPath: string): Promise<void> {
  const config = loadProxyConfig(configPath);
  const log = createLogger({ member: 'proxy', scope: config.scope });
  for (const warning of config.warnings) log.warn({ config: configPath }, warning);
  const clock = new SystemClock();
  const dcs = openEtcdDcs({
    ...etcdConnection(config.etcd),
    namespace: config.namespace,
    scope: config.scope,
    member: '__pgwarden_proxy',
    log,
  });
  // A logical major upgrade redirects this scope's proxies to another scope of the same DCS (its `redirect` key).
  const otherScopes: { close(): Promise<void> }[] = [];
  const source = new ScopeRedirectSource(
    dcs,
    (scope) => {
      const other = openEtcdDcs({ ...etcdConnection(config.etcd), namespace: config.namespace, scope, member: '__pgwarden_proxy', log });
      otherScopes.push(other);
      return other;
    },
    log,
  );
  const monitor = config.proxy.monitor;
  // The dashboard on the API port: the same page as the members', fed by this proxy's DCS watch, read-only.
  // (built once the server knows its ports and name; a request before that is answered by the proxy's own routes)
  const ui: { stream: UiStream | undefined } = { stream: undefined };
  const server = await ProxyServer.start({
    section: config.proxy,
    scope: config.scope,
    source,
    probe: primaryProbe(config),
    ...(monitor === undefined ? {} : { positionReader: openPositionReader(monitor) }),
    nowMs: () => clock.nowMs(),
    log,
    publish: { registry: dcs },
    httpExtension: (request, response) => ui.stream !== undefined && serveDashboard(ui.stream, request, response),
  });
  const peers = new HttpPeerClient(createRestClient(config.rest));
  ui.stream = new UiStream({
    getSnapshot: () => ({
      name: `proxy ${server.name}`,
      scope: config.scope,
      view: server.view(),
      isDcsReachable: server.view() !== undefined,
      lockDeadlineMs: undefined,
      readOnly: `this is proxy ${server.name}'s page; open a member's /ui to act`,
    }),
    nowMs: () => clock.nowMs(),
    subscribe: (listener) => server.onViewChange(listener),
    fetchPeerEvents: (apiUrl, since, limit) => peers.fetchEvents(apiUrl, since, limit, AbortSignal.timeout(2000)),
    lockTimeLeft: (signal) => dcs.leaderLockTimeLeft(signal),
  });
  log.info(
    {
      primary: `${config.proxy.primary_listen.host}:${server.ports.primary}`,
      data_path: config.proxy.data_path,
      replica: server.ports.replica ?? null,
      api: server.ports.api ?? null,
      split: server.ports.split ?? null,
    },
    'pgwarden proxy started',
  );
  trimWorkingSetLater(log);

  let isStopping = false;
  const shutdown = (signal: string): void => {
    if (isStopping) return;
    isStopping = true;
    log.info({ signal, grace_s: config.proxy.shutdown_grace }, 'shutting down: no new connections; open ones get the grace period');
    ui.stream?.close();
    server
      .stop()
      .then(() => Promise.all([dcs, ...otherScopes].map((client) => client.close())))
      .catch((error: unknown) => log.error({ error: describeError(error) }, 'shutdown failed'))
      .finally(() => process.exit(0));
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
  process.on('SIGHUP', () => {
    try {
      const reloaded = loadProxyConfig(configPath);
      if (reloaded.scope !== config.scope || reloaded.namespace !== config.namespace)
        throw new PgwardenError('PGW_CONFIG_INVALID', 'scope and namespace cannot change on reload: restart the proxy', {
          context: {
            path: configPath,
            scope: config.scope,
            namespace: config.namespace,
            reloaded: { scope: reloaded.scope, namespace: reloaded.namespace },
            hint: 'restart the proxy to follow another cluster, or put the old values back',
          },
        });
      server
        .reload(reloaded.proxy)
        .then(() => log.info({ primary: server.ports.primary, replica: server.ports.replica ?? null }, 'proxy configuration reloaded'))
        .catch((error: unknown) => log.error({ error: describeError(error) }, 'reload failed; keeping the previous listeners'));
    } catch (error) {
      log.error({ error: describeError(error) }, 'reload failed; keeping the previous configuration');
    }
  });
}
