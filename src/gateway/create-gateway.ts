// `mcp-relay serve` assembled: the running config, the gate, the backend pool, the sessions, the
// routes of the HTTP edge and its listeners, what a reload or a revoked key ends, /healthz, and the
// shutdown order. Everything the gateway owns is built and closed here.

import type { AddressInfo } from 'node:net';
import { AdminRoutes } from '../admin/admin-routes.ts';
import { MetricsListener } from '../admin/metrics-listener.ts';
import { statusReport } from '../admin/status.ts';
import { AppTickets } from '../auth/app-ticket.ts';
import { ClientCertificates } from '../auth/client-cert.ts';
import { GatewayAuth } from '../auth/gateway-auth.ts';
import { identifier } from '../auth/identify.ts';
import { PRM_PATH } from '../auth/protected-resource.ts';
import { BackendLauncher } from '../backends/launcher.ts';
import { Cluster } from '../cluster/cluster.ts';
import { NotifyFanout } from '../cluster/notify-fanout.ts';
import { configHash, PeerListener } from '../cluster/peer-listener.ts';
import { Revocations } from '../cluster/revocations.ts';
import { ClusterRouting } from '../cluster/routing.ts';
import { SessionLeases } from '../cluster/session-leases.ts';
import { SharedSubscriptions } from '../cluster/shared-subscriptions.ts';
import { type ConfigChange, LiveConfig } from '../config/live.ts';
import { hostPort, type RelayConfig } from '../config/schema.ts';
import { RelayError } from '../errors.ts';
import { createListener, type UpgradeListener } from '../http/listener.ts';
import { type Refusal, refuseSocket } from '../http/refusal.ts';
import { refusalLog } from '../http/refusal-log.ts';
import { sendJson, sendRpcError } from '../http/replies.ts';
import {
  foreignPageGuard,
  type Guard,
  hostGuard,
  originGuard,
  singleHeaders,
} from '../http/request-guards.ts';
import { anyPath, exact, type OpenRoute, param, prefix, type Route, routeRequests } from '../http/routes.ts';
import { resourceMetadata } from '../http/well-known.ts';
import type { Logger } from '../log.ts';
import { BackendPool, type InstanceRestart } from '../mux/pool.ts';
import { Activity } from '../observe/activity.ts';
import { Audit } from '../observe/audit.ts';
import { publishAuthFailed } from '../observe/events.ts';
import { Metrics } from '../observe/metrics.ts';
import { Gatekeeper } from '../policy/gatekeeper.ts';
import { ErrorCode } from '../protocol/jsonrpc.ts';
import { SessionManager } from '../sessions/manager.ts';
import { AppLinkGates, appLinkSource } from '../transports/apps/app-links.ts';
import { APPS_PREFIX } from '../transports/apps/app-path.ts';
import { AppProxy } from '../transports/apps/app-proxy.ts';
import { LegacySseEndpoint } from '../transports/legacy-sse/endpoint.ts';
import {
  legacyPath,
  MESSAGES_SUFFIX,
  opensLegacyStream,
  STREAM_SUFFIX,
} from '../transports/legacy-sse/paths.ts';
import { McpEndpoint } from '../transports/streamable-http/endpoint.ts';
import { WebSocketFront } from '../transports/websocket/ws-front.ts';
import { isLoopbackAddress } from '../util/loopback.ts';
import { VERSION } from '../version.ts';
import { CodeWatch } from './code-watch.ts';
import { healthReport } from './health.ts';

export interface GatewayOptions {
  config: RelayConfig;
  log: Logger;
  /** Environment the backends inherit their allowlisted variables from. */
  env?: NodeJS.ProcessEnv;
}

export interface Gateway {
  /** Starts listening; resolves with the bound TCP address (undefined with `listen: false`: the SSH socket only). */
  listen(): Promise<AddressInfo | undefined>;
  /** The base URL (scheme, host, port) once listening on TCP. */
  readonly url: string;
  /** The base URL of the unauthenticated loopback metrics listener (admin.metrics.listen), once listening. */
  readonly metricsUrl: string | undefined;
  /**
   * Stops accepting, refuses new sessions and requests (`503`), lets calls in flight finish for up to
   * `drainMs` (default 0: none), then ends every session (what is left gets an error) and backend. Idempotent.
   */
  close(options?: { drainMs?: number }): Promise<void>;
  /** Applies a new config to the running gateway: what may change live at once, the rest after a restart. */
  reload(next: RelayConfig): ConfigChange;
  /**
   * Restarts the running backends of `server` (only `user`'s, when given) gracefully, to run new code
   * without failing a call: see BackendPool.restart. Resolves, when every old process is stopped, with
   * what happened to each instance (restarted, failed with the reason and stderr, skipped and why).
   */
  restartBackends(
    server: string,
    options?: { user?: string; startTimeoutMs?: number },
  ): Promise<BackendRestart>;
}

/** What `restartBackends` did to one server's backends. */
export interface BackendRestart {
  server: string;
  /** One entry per running instance; empty when none ran (the next one starts with the new code). */
  instances: InstanceRestart[];
}

const NO_SUCH_SERVER: Refusal = Object.freeze({
  status: 404,
  code: ErrorCode.InvalidRequest,
  message: 'no such MCP server on this gateway',
});

/** An upgrade anywhere else, e.g. the brief's proxy.js pointed at /mcp (Streamable HTTP, no WebSocket). */
const NO_UPGRADE = 'not found: MCP over WebSocket is served at /ws/<server>';

export function createGateway({ config, log, env = process.env }: GatewayOptions): Gateway {
  const tcp = config.listen === false ? undefined : config.listen;
  // The socket's clients (ssh-entry) address the gateway as localhost, so the Host guard stays on.
  const loopback = tcp === undefined || isLoopbackAddress(tcp.host);
  // Client certificates (listen.tls.clientCa) count as authentication too.
  const clientCerts = ClientCertificates.enabled(config) ? new ClientCertificates(config) : undefined;
  // API keys and OAuth; its base URL for OAuth resource identifiers is publicUrl, else where we listen.
  // Several replicas on Redis (cluster/): session ids name this replica, misrouted requests are forwarded,
  // and rate limits, sessions per user and key revocations are shared through Redis.
  const cluster = config.cluster ? new Cluster(config.cluster, log) : undefined;
  const revocations = cluster && new Revocations(cluster.redis, log);
  const leases = cluster && new SessionLeases(cluster.redis, log);
  const gatewayAuth = new GatewayAuth(config, log, () => config.publicUrl ?? listener.url, revocations);
  refuseUnprotectedListen(config, gatewayAuth.configured || clientCerts !== undefined);

  // Policy, limits, origins and audit are read per request from `live`, so a reload applies at once.
  const live = new LiveConfig(config);
  // The token in this gateway's events (observe/events.ts): the audit log writes only its own.
  const owner = Symbol('gateway');
  const gatekeeper = new Gatekeeper(
    config,
    log,
    owner,
    cluster && {
      redis: cluster.redis,
      replicas: () => cluster.aliveReplicas().length || 1,
    },
  );
  const audit = new Audit(config, log, owner);
  // Browser apps (servers with `app`): one ticket secret for the links in tool results and /app-links.
  const withApp = Object.keys(config.servers).filter((name) => config.servers[name]?.app !== undefined);
  const appTickets = new AppTickets();
  const appGatewayUrl = (): string | undefined => config.publicUrl ?? (tcp ? listener.url : undefined);
  const appLinks = appLinkSource({ tickets: appTickets, modeOf: appMode, gatewayUrl: appGatewayUrl });
  const pool = new BackendPool(
    config,
    new BackendLauncher(config.servers, log, env, {
      maxMessageBytes: config.limits.maxBackendMessageBytes,
      // Backends start after listen(), so the listening address is known by then.
      gatewayUrl: appGatewayUrl,
      stateDir: config.stateDir,
    }),
    log,
    owner,
  );
  const routing =
    cluster &&
    new ClusterRouting(
      cluster,
      () => live.current,
      log,
      (s, u) => pool.runs(s, u),
    );
  if (routing) pool.onstopped = (server, user) => routing.released(server, user);
  // Each replica runs its own copy of an every-replica server: their list changes and resource updates
  // reach the listeners of every replica.
  const fanout =
    cluster &&
    new NotifyFanout(
      cluster.redis,
      cluster.replica,
      () => live.current,
      log,
      (server, notification) => pool.deliverChange(server, notification),
    );
  if (fanout) pool.onchange = (server, notification) => fanout.publish(server, notification);
  // A resource subscribed on one replica is subscribed on every replica's copy, so an update made
  // through any of them is sent, and fanned out to the subscriber's replica.
  const sharedSubscriptions =
    cluster &&
    new SharedSubscriptions(
      cluster.redis,
      cluster.replica,
      () => live.current,
      log,
      (server, uris) => pool.holdSubscriptions(server, uris),
    );
  if (sharedSubscriptions)
    pool.onsubscriptions = (server, uris) => sharedSubscriptions.announce(server, uris);
  const sessions = new SessionManager(
    live.view,
    log,
    (server, session) => pool.place(server, session),
    withApp.length === 0 ? gatekeeper : new AppLinkGates(gatekeeper, appLinks),
    owner,
    cluster && (() => cluster.newSessionId()),
    leases,
  );
  live.onChange((next) => {
    audit.update(next);
    gatekeeper.update(next);
    // A user who lost access keeps no session (nor its backend): their client's next request gets 404,
    // and its re-initialize the 403 that explains why.
    void sessions
      .closeWhere((session) => !gatekeeper.allows(session.server, session.identity), 'access withdrawn')
      .then((closed) => {
        if (closed > 0) log.info({ sessions: closed }, 'closed sessions whose user lost access in a reload');
      });
  });
  // A revoked (or edited) API key ends its sessions at once, rather than at their next request.
  gatewayAuth.onKeysChanged(() => {
    void sessions
      .closeWhere((session) => !gatewayAuth.stillValid(session.identity), 'API key revoked or changed')
      .then((closed) => {
        if (closed > 0) log.info({ sessions: closed }, 'closed sessions of revoked or changed API keys');
      });
  });

  // Another replica took over a backend this one runs (while it could not reach Redis): its sessions
  // here end (their clients re-initialize and are placed at the new owner), then the backend stops.
  if (cluster && routing)
    cluster.onlost = (server, user) => {
      routing.lost(server, user);
      void sessions.closeWhere(
        (session) => session.server === server && (user === undefined || session.identity.user === user),
        'its backend moved to another replica',
      );
      pool.evict(server, user);
    };

  const endpoint = new McpEndpoint(live.view, sessions, log, routing);
  // The 2024-11-05 HTTP+SSE transport, for clients that speak nothing newer.
  const legacy = new LegacySseEndpoint(live.view, sessions, log, routing);
  const serverNames = Object.keys(config.servers);
  const publicUrl = config.publicUrl ? new URL(config.publicUrl) : undefined;
  const startedAt = Date.now();
  let closing: Promise<void> | undefined;
  let codeWatch: CodeWatch | undefined;

  async function restartBackends(
    server: string,
    options: { user?: string; startTimeoutMs?: number } = {},
  ): Promise<BackendRestart> {
    if (!Object.hasOwn(config.servers, server))
      throw new RelayError('BACKEND_RESTART', `no server named ${JSON.stringify(server)}`);
    const instances = await pool.restart(server, options);
    for (const instance of instances) {
      const fields = { server, ...instance };
      if (instance.status === 'failed')
        log.error(fields, 'backend restart failed; the old process goes on serving');
      else log.info(fields, `backend restart: ${instance.status}`);
    }
    if (instances.length === 0) log.info({ server }, 'backend restart: none running');
    return { server, instances };
  }

  /** "/mcp" alone names the only server, when there is one; own keys only, so "constructor" names none. */
  const serverNamed = (name: string | undefined): string | null => {
    if (name === undefined) return serverNames.length === 1 ? (serverNames[0] ?? null) : null;
    return Object.hasOwn(config.servers, name) ? name : null;
  };
  // Every row starts with these, so a repeated header or a foreign Host is refused before any path is served.
  const edge: Guard[] = [singleHeaders, hostGuard(loopback, config.publicUrl)];
  const scheme = tcp?.tls ? 'https' : 'http';
  const origins = originGuard(scheme, () => live.current.allowedOrigins, publicUrl?.origin);
  // MCP routes: every one of edge's, the Origin's, and no request another site's page caused.
  const mcpGuards: Guard[] = [...edge, origins, foreignPageGuard];
  // Requests refused at the edge (Host, Origin, credentials), logged with the client's address.
  const logRefusal = refusalLog(log, config.publicUrl);
  const apps = appRoutes(origins);
  const appSockets = apps && (() => apps.proxy.openSockets());
  const admin = adminParts();
  const health: OpenRoute['handle'] = (_req, res) => {
    const report = healthReport(
      pool,
      sessions,
      startedAt,
      closing !== undefined,
      appSockets,
      () => webSockets.openSockets,
      cluster &&
        (() => ({
          replica: cluster.replica,
          alive: cluster.aliveReplicas(),
          forwardsSent: cluster.forwardsSent,
          forwardsReceived: cluster.forwardsReceived,
          // every-replica servers' change notifications: published here, heard from others, dropped.
          notifications: fanout?.counts,
          // every-replica servers' resource URIs subscribed here, and held here for other replicas.
          subscriptions: sharedSubscriptions?.counts,
          redis: cluster.redis.ready,
        })),
    );
    sendJson(res, report.status, report.body, report.headers);
  };
  const routes: Route[] = [
    { match: exact('/healthz'), guards: edge, handle: health },
    // The brief's name for the same report.
    { match: exact('/health'), guards: edge, handle: health },
    { match: prefix(PRM_PATH), guards: edge, handle: resourceMetadata(gatewayAuth.resource) },
    {
      match: legacyPath(STREAM_SUFFIX, serverNamed),
      guards: mcpGuards,
      caller: true,
      unknown: NO_SUCH_SERVER,
      handle: (req, res, server, identity) => legacy.open(req, res, server, identity),
    },
    {
      match: legacyPath(MESSAGES_SUFFIX, serverNamed),
      guards: mcpGuards,
      caller: true,
      unknown: NO_SUCH_SERVER,
      handle: (req, res, server, identity) => legacy.post(req, res, server, identity),
    },
    {
      match: param('/mcp/:server', serverNamed),
      guards: mcpGuards,
      caller: true,
      unknown: NO_SUCH_SERVER,
      // A GET for an event stream naming no session is a legacy client falling back (2025-03-26).
      handle: (req, res, server, identity) =>
        opensLegacyStream(req)
          ? legacy.open(req, res, server, identity)
          : endpoint.handle(req, res, server, identity),
    },
    {
      // Only an upgrade is served there (the upgrade listener below); a plain request is told so.
      match: param('/ws/:server', serverNamed),
      guards: mcpGuards,
      caller: true,
      unknown: NO_SUCH_SERVER,
      handle: async (_req, res) =>
        sendRpcError(res, 426, ErrorCode.InvalidRequest, 'this endpoint is a WebSocket: send an upgrade', {
          headers: { upgrade: 'websocket', connection: 'Upgrade' },
        }),
    },
    ...(apps?.routes ?? []),
    ...(admin?.routes ?? []),
    {
      match: anyPath,
      guards: edge,
      handle(_req, res) {
        sendJson(res, 404, { error: 'not found' });
      },
    },
  ];
  const identify = identifier({
    certificates: clientCerts,
    tokens: gatewayAuth,
    onRefused: (failure) => publishAuthFailed(owner, failure.reason ?? 'invalid', failure.status),
  });
  const webSockets = new WebSocketFront({
    config: live.view,
    sessions,
    log,
    guards: mcpGuards,
    onRefused: logRefusal,
    identify,
    serverNamed,
    ...(routing ? { routing } : {}),
  });
  // Upgrades: app WebSockets below /apps/, MCP sessions below /ws, nothing else.
  const upgrade: UpgradeListener = (req, socket, head) => {
    if (apps && (req.url ?? '/').startsWith(APPS_PREFIX)) apps.proxy.upgrade(req, socket, head);
    else if (webSockets.serves(req.url)) webSockets.upgrade(req, socket, head);
    else refuseSocket(socket, { status: 404, code: ErrorCode.InvalidRequest, message: NO_UPGRADE });
  };
  const handleRequest = routeRequests(routes, identify, log, logRefusal);
  const listener = createListener(config, handleRequest, log, upgrade);
  // The replica-to-replica hop's listener: signed requests and upgrades only, then the same routes.
  const peer =
    cluster && config.cluster && new PeerListener(config.cluster, handleRequest, upgrade, cluster, log);

  /**
   * Servers with an `app`: their browser apps at /apps/<server>/ (HTTP and WebSocket), and the endpoint
   * an authenticated client asks for a sign-in link; none of it exists without such a server.
   */
  function appRoutes(originCheck: Guard) {
    if (withApp.length === 0) return undefined;
    const proxy = new AppProxy({
      tickets: appTickets,
      // Browsers reach apps where links point: publicUrl when set (behind a TLS-terminating proxy its
      // https is what the browser used, whatever the proxy's hop to us), else where we listen.
      secure: (publicUrl?.protocol ?? `${scheme}:`) === 'https:',
      links: appLinks,
      maxBodyBytes: () => live.current.limits.maxBodyBytes,
      upgradeGuards: [...edge, originCheck],
      onRefused: logRefusal,
      log,
      owner,
      modeOf: appMode,
      allowed: (server, identity) => gatekeeper.allows(server, identity) && gatewayAuth.stillValid(identity),
      hasSession: (server, identity, id) => sessions.get(id, identity, server) !== undefined,
      portFor: (server, user, session) => pool.appPortFor(server, user, session),
    });
    const appNamed = (name: string | undefined): string | null =>
      name !== undefined && withApp.includes(name) ? name : null;
    const rows: Route[] = [
      {
        match: param('/app-links/:server', appNamed),
        methods: ['POST'],
        guards: [...edge, originCheck],
        caller: true,
        unknown: NO_SUCH_SERVER,
        handle: async (req, res, server, identity) => {
          // A header that must come once (the edge guard refuses a repeated one): a string or absent.
          const session = req.headers['mcp-session-id'];
          proxy.mintLink(res, server, identity, typeof session === 'string' ? session : undefined);
        },
      },
      {
        match: prefix('/apps'),
        guards: [...edge, originCheck],
        handle: (req, res) => proxy.handle(req, res),
      },
    ];
    return { routes: rows, proxy };
  }

  /**
   * With an `admin` section: the metrics and the activity the admin page shows (subscribers of this
   * gateway's events, made only then), their routes, and the loopback metrics listener if configured.
   */
  function adminParts() {
    const adminConfig = config.admin;
    if (!adminConfig) return undefined;
    const metrics = new Metrics(owner, serverNames, {
      servers: () => pool.stats(),
      sessions: () => sessions.snapshot(),
      backends: () => pool.backends(),
      appSockets,
      cluster:
        cluster &&
        (() => ({
          sent: cluster.forwardsSent,
          received: cluster.forwardsReceived,
          alive: cluster.aliveReplicas().length,
          notifications: fanout?.counts,
          subscriptions: sharedSubscriptions?.counts,
        })),
    });
    const activity = new Activity(owner);
    const handlers = new AdminRoutes({
      config: adminConfig,
      identify: (caller) => identify(caller),
      stillValid: (identity) => gatewayAuth.stillValid(identity),
      metrics,
      restart: (server, options) => restartBackends(server, options),
      status: () =>
        statusReport({
          sessions: () => sessions.list(),
          backends: () => pool.backends(),
          servers: () => pool.stats(),
          activity: () => activity.report(),
          appSockets,
          startedAt,
        }),
      // The Host the admin's client used (checked by the edge's Host guard) reaches the gateway from there,
      // where the listening address (0.0.0.0, a container's) may not.
      baseUrl: (req) =>
        (config.publicUrl ?? (req.headers.host ? `${scheme}://${req.headers.host}` : listener.url)).replace(
          /\/+$/,
          '',
        ),
      secure: (publicUrl?.protocol ?? `${scheme}:`) === 'https:',
    });
    // Only the gateway's own origin (or publicUrl's): the MCP allowlist does not reach the admin pages.
    const ownOrigin = originGuard(scheme, () => [], publicUrl?.origin);
    const routes: Route[] = [
      { match: exact('/metrics'), methods: ['GET', 'HEAD'], guards: edge, handle: handlers.metrics },
      { match: exact('/admin/link'), methods: ['POST'], guards: [...edge, ownOrigin], handle: handlers.link },
      { match: exact('/admin/api/status'), guards: [...edge, ownOrigin], handle: handlers.status },
      {
        match: param('/admin/api/restart/:server', serverNamed),
        methods: ['POST'],
        guards: [...edge, ownOrigin],
        unknown: NO_SUCH_SERVER,
        handle: handlers.restart,
      },
      { match: prefix('/admin'), guards: [...edge, ownOrigin], handle: handlers.page },
    ];
    // The schema checked it is a loopback host:port.
    const address =
      adminConfig.metrics.listen === undefined ? undefined : hostPort(adminConfig.metrics.listen);
    const metricsListener = address && new MetricsListener(address, metrics, log);
    return {
      routes,
      metricsListener,
      close() {
        metricsListener?.close();
        metrics.close();
        activity.close();
      },
    };
  }

  /** The isolation mode of a server with an app, else undefined. */
  function appMode(server: string) {
    return withApp.includes(server) ? config.servers[server]?.isolation : undefined;
  }

  return {
    get url() {
      return listener.url;
    },
    get metricsUrl() {
      const address = admin?.metricsListener?.address;
      if (!address) return undefined;
      const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
      return `http://${host}:${address.port}`;
    },
    reload(next) {
      // A reload is how an admin says "fixed": servers in a crash-loop cool-down are tried at the next request.
      pool.endCooldowns();
      return live.apply(next);
    },
    restartBackends,
    async listen() {
      await gatewayAuth.open();
      if (cluster && peer) {
        await cluster.join(
          { sessions: () => sessions.size, backends: () => pool.size },
          {
            configHash: configHash(config),
            version: VERSION,
            address: () => {
              try {
                return new URL(listener.url).host;
              } catch {
                return ''; // not listening yet (or no TCP listener)
              }
            },
          },
        );
        await peer.listen();
        await revocations?.start();
        fanout?.start();
        sharedSubscriptions?.start();
        leases?.start();
      }
      const address = await listener.listen();
      await cluster?.announce().catch(() => {});
      await admin?.metricsListener?.listen();
      const watched: Record<string, readonly string[]> = {};
      for (const name of serverNames) {
        const paths = config.servers[name]?.watch ?? [];
        if (paths.length > 0) watched[name] = paths;
      }
      if (Object.keys(watched).length > 0 && !closing)
        codeWatch ??= new CodeWatch({
          paths: watched,
          restart: async (server) => {
            await restartBackends(server);
          },
          log,
        });
      if (address === undefined) {
        log.info({ servers: serverNames, tcp: false }, 'gateway listening on the SSH socket only');
      } else {
        log.info(
          { url: listener.url, servers: serverNames, auth: gatewayAuth.describe },
          'gateway listening',
        );
        // Links to apps are built on publicUrl, else on this address, which browsers elsewhere cannot use.
        if (withApp.length > 0 && config.publicUrl === undefined && !isLoopbackAddress(address.address))
          log.warn(
            { apps: withApp, url: listener.url },
            'servers with an app but no publicUrl: app links name the listening address; set publicUrl to the address users reach',
          );
      }
      return address;
    },
    close({ drainMs = 0 } = {}) {
      closing ??= (async () => {
        codeWatch?.close();
        const stopped = listener.stopAccepting();
        // 2026 calls parked for a client's retry would hold the drain for a person: cancelled now.
        endpoint.close();
        // From here a bridge's re-initialize (on a kept-alive connection) gets 503, not a new backend.
        const left = await sessions.drain(drainMs);
        if (drainMs > 0) log.info({ drainMs, unfinished: left }, 'drained calls in flight');
        await sessions.closeAll(
          left > 0
            ? 'gateway shut down before the answer came; the request may have run'
            : 'gateway shutting down',
        );
        await pool.stopAll();
        await peer?.close();
        leases?.close();
        await revocations?.close();
        await fanout?.close();
        await sharedSubscriptions?.close();
        await cluster?.leave();
        apps?.proxy.close();
        routing?.close();
        await webSockets.close();
        listener.dropConnections();
        await stopped;
        gatewayAuth.close();
        listener.close();
        audit.close();
        admin?.close();
        log.info('gateway stopped');
      })();
      return closing;
    },
  };
}

/**
 * Refuses to start a gateway anyone could use: beyond loopback without authentication, or over TCP
 * without authentication next to an SSH socket whose permissions were chosen to keep other accounts out.
 */
function refuseUnprotectedListen(config: RelayConfig, authConfigured: boolean): void {
  const tcp = config.listen === false ? undefined : config.listen;
  if (tcp && !isLoopbackAddress(tcp.host) && !authConfigured) {
    throw new RelayError(
      'LISTEN_REFUSED',
      `refusing to listen on ${tcp.host} without authentication: configure auth.apiKeys, auth.oidc or listen.tls.clientCa, or listen on 127.0.0.1`,
    );
  }
  // Unauthenticated loopback makes every local account user "local". Fine for one person's machine,
  // not next to an SSH socket whose file permissions were chosen to keep other accounts out.
  if (tcp && config.ssh?.mode === 'attached' && !authConfigured && config.auth.none !== true) {
    throw new RelayError(
      'LISTEN_REFUSED',
      `refusing to start: ssh.mode attached without authentication would let every local account in over TCP ${tcp.host}:${tcp.port} as user "local"; set listen: false to serve only the SSH socket, or auth: { none: true } to allow that on purpose`,
    );
  }
}
