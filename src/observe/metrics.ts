// Prometheus metrics of one gateway: a subscriber of its events (events.ts), like the audit log, plus
// gauges read from the pool and the sessions when scraped, like /healthz. A registry of its own, never
// prom-client's global one: several gateways may share a process. Made only when the config has an
// `admin` section, so a gateway without one subscribes to nothing and pays nothing per request.
//
// Labels stay bounded: servers come from the config, methods from MCP's list (anything else is
// "other"), reasons and outcomes are our own words. Users never become labels (the admin page shows them).

import {
  Counter,
  type CounterConfiguration,
  collectDefaultMetrics,
  Gauge,
  Histogram,
  Registry,
} from 'prom-client';
import type { BackendInfo, ServerStats } from '../mux/pool.ts';
import type { SessionsSnapshot } from '../sessions/manager.ts';
import { VERSION } from '../version.ts';
import {
  type AppEvent,
  type AuthFailedEvent,
  appEvents,
  authFailed,
  type BackendEvent,
  backendDown,
  backendStarted,
  backendUnhealthy,
  type EventOwner,
  type RequestRefusedEvent,
  type RequestSettledEvent,
  requestRefused,
  requestSettled,
  type SessionOpenEvent,
  sessionOpened,
} from './events.ts';
import { processUsage } from './proc-stats.ts';

/** What the metrics read of the gateway at scrape time. */
export interface MetricSources {
  servers(): Record<string, ServerStats>;
  sessions(): SessionsSnapshot;
  backends(): BackendInfo[];
  /** Open WebSockets to browser apps per server; undefined when the gateway serves no apps. */
  appSockets: (() => Record<string, number>) | undefined;
  /**
   * With several replicas: requests forwarded each way, the replicas alive, and (when a server is
   * placed on every replica) the change notifications fanned out between them and the resource URIs
   * shared between them.
   */
  cluster?:
    | (() => {
        sent: number;
        received: number;
        alive: number;
        notifications?: { published: number; received: number; dropped: number } | undefined;
        subscriptions?: { announced: number; held: number } | undefined;
      })
    | undefined;
}

/** The requests clients send that MCP names; anything else is counted as "other". */
const KNOWN_METHODS = new Set([
  'initialize',
  'ping',
  'tools/list',
  'tools/call',
  'resources/list',
  'resources/templates/list',
  'resources/read',
  'resources/subscribe',
  'resources/unsubscribe',
  'prompts/list',
  'prompts/get',
  'logging/setLevel',
  'completion/complete',
  'tasks/get',
  'tasks/list',
  'tasks/result',
  'tasks/cancel',
]);

/** Seconds: from a cached tool answer to a long tool run (requestTimeout defaults to 5 minutes). */
const DURATION_BUCKETS = [
  0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300,
];

/** A /proc reading serves the metrics of one scrape, not the next one. */
const USAGE_REUSE_MS = 250;

export const METRICS_CONTENT_TYPE = Registry.PROMETHEUS_CONTENT_TYPE;

export class Metrics {
  readonly registry = new Registry();
  readonly #owner: EventOwner;
  readonly #servers: ReadonlySet<string>;
  readonly #unsubscribe: Array<() => void>;
  /** Per-label-set children, so a request costs a map lookup, not a label hash. */
  readonly #requestChildren = new Map<
    string,
    { count: Counter.Internal; duration: Histogram.Internal<string> }
  >();
  readonly #requests: Counter;
  readonly #durations: Histogram;
  /** CPU seconds of backends gone since, per server, so the counter never goes down when one stops. */
  readonly #retiredCpu = new Map<string, number>();
  readonly #lastCpu = new Map<number, { server: string; seconds: number }>();
  #usage: { at: number; result: Promise<Map<string, { cpu: number; rss: number }>> } | undefined;
  #closed = false;

  constructor(owner: EventOwner, servers: readonly string[], sources: MetricSources) {
    this.#owner = owner;
    this.#servers = new Set(servers);
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry, prefix: 'mcp_relay_' });
    const counter = (config: Omit<CounterConfiguration<string>, 'registers'>) =>
      new Counter({ ...config, registers });

    new Gauge({
      name: 'mcp_relay_build_info',
      help: 'Always 1; the version of mcp-relay in a label.',
      labelNames: ['version'],
      registers,
    }).set({ version: VERSION }, 1);
    this.#requests = counter({
      name: 'mcp_relay_requests_total',
      help: 'Client requests that reached a backend and were answered, by server, MCP method and outcome (ok, error, timeout, cancelled).',
      labelNames: ['server', 'method', 'outcome'],
    });
    this.#durations = new Histogram({
      name: 'mcp_relay_request_duration_seconds',
      help: 'From a request admitted to its answer, by server and MCP method.',
      labelNames: ['server', 'method'],
      buckets: DURATION_BUCKETS,
      registers,
    });
    const refusals = counter({
      name: 'mcp_relay_refusals_total',
      help: 'Sessions and requests the gate refused, by server, reason (not_allowed, rate_limit, policy) and HTTP status ("none" for a JSON-RPC error only).',
      labelNames: ['server', 'reason', 'status'],
    });
    const authFailures = counter({
      name: 'mcp_relay_auth_failures_total',
      help: 'Requests refused because the caller could not be established, by reason (missing, invalid, insufficient-scope, unavailable, certificate) and HTTP status.',
      labelNames: ['reason', 'status'],
    });
    const sessionsOpened = counter({
      name: 'mcp_relay_sessions_opened_total',
      help: 'MCP sessions opened, by server.',
      labelNames: ['server'],
    });
    const backendEvents = counter({
      name: 'mcp_relay_backend_events_total',
      help: 'Backend processes started (first), restarted (restart), gone down (down) or marked unhealthy (unhealthy), by server.',
      labelNames: ['server', 'event'],
    });
    const appCounter = counter({
      name: 'mcp_relay_app_events_total',
      help: 'Browser app sign-ins and app WebSockets opened and closed, by server and event (sign-in, open, close).',
      labelNames: ['server', 'event'],
    });
    this.#collectGauges(sources, registers);

    const mine = <T extends { readonly owner: EventOwner }>(handle: (event: T) => void) => {
      return (event: T) => {
        if (event.owner === this.#owner) handle(event);
      };
    };
    const backend = (kind: (event: BackendEvent) => string) =>
      mine<BackendEvent>((event) =>
        backendEvents.inc({ server: this.#server(event.server), event: kind(event) }),
      );
    this.#unsubscribe = [
      requestSettled.subscribe(mine(this.#settled)),
      requestRefused.subscribe(
        mine((event: RequestRefusedEvent) =>
          refusals.inc({
            server: this.#server(event.server),
            reason: refusalReason(event.status),
            status: event.status === undefined ? 'none' : String(event.status),
          }),
        ),
      ),
      authFailed.subscribe(
        mine((event: AuthFailedEvent) =>
          authFailures.inc({ reason: event.reason, status: String(event.status) }),
        ),
      ),
      sessionOpened.subscribe(
        mine((event: SessionOpenEvent) => sessionsOpened.inc({ server: this.#server(event.server) })),
      ),
      backendStarted.subscribe(backend((event) => (event.restart ? 'restart' : 'first'))),
      backendDown.subscribe(backend(() => 'down')),
      backendUnhealthy.subscribe(backend(() => 'unhealthy')),
      appEvents.subscribe(
        mine((event: AppEvent) => appCounter.inc({ server: this.#server(event.server), event: event.kind })),
      ),
    ];
  }

  /** The exposition text of every metric, gauges read now. */
  async scrape(): Promise<string> {
    return this.registry.metrics();
  }

  /** Stops listening to events. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const unsubscribe of this.#unsubscribe.splice(0)) unsubscribe();
  }

  readonly #settled = (event: RequestSettledEvent): void => {
    const server = this.#server(event.server);
    const method = KNOWN_METHODS.has(event.method) ? event.method : 'other';
    const key = `${server}\0${method}\0${event.outcome}`;
    let children = this.#requestChildren.get(key);
    if (!children) {
      children = {
        count: this.#requests.labels({ server, method, outcome: event.outcome }),
        duration: this.#durations.labels({ server, method }),
      };
      this.#requestChildren.set(key, children);
    }
    children.count.inc();
    children.duration.observe(event.durationMs / 1000);
  };

  /** A server name from the config, else "other" (a label is never a name from elsewhere). */
  #server(name: string | undefined): string {
    return name !== undefined && this.#servers.has(name) ? name : 'other';
  }

  /** Gauges whose values are read from the pool and sessions at each scrape. */
  #collectGauges(sources: MetricSources, registers: Registry[]): void {
    const servers = [...this.#servers];
    const perServer = (
      name: string,
      help: string,
      value: (stats: ServerStats, server: string) => number,
    ): Gauge =>
      new Gauge({
        name,
        help,
        labelNames: ['server'],
        registers,
        collect() {
          const stats = sources.servers();
          for (const server of servers) {
            const entry = stats[server];
            if (entry) this.set({ server }, value(entry, server));
          }
        },
      });
    perServer(
      'mcp_relay_backends',
      'Backend processes (running or restarting), by server.',
      (s) => s.backends,
    );
    perServer(
      'mcp_relay_server_healthy',
      '1 while a server is healthy, 0 while it is crash-looping (its cool-down).',
      (s) => (s.healthy ? 1 : 0),
    );
    perServer(
      'mcp_relay_backends_unresponsive',
      'Backends silent with requests pending and a ping unanswered, about to be replaced.',
      (s) => s.unresponsive,
    );
    new Gauge({
      name: 'mcp_relay_sessions',
      help: 'Open MCP sessions, by server.',
      labelNames: ['server'],
      registers,
      collect() {
        const { byServer } = sources.sessions();
        for (const server of servers) this.set({ server }, byServer[server] ?? 0);
      },
    });
    new Gauge({
      name: 'mcp_relay_requests_in_flight',
      help: 'Client requests in flight across all sessions.',
      registers,
      collect() {
        this.set(sources.sessions().inFlight);
      },
    });
    const { appSockets } = sources;
    if (appSockets) {
      const seen = new Set<string>();
      new Gauge({
        name: 'mcp_relay_app_websockets',
        help: 'Open WebSockets to browser apps, by server.',
        labelNames: ['server'],
        registers,
        collect() {
          const open = appSockets();
          // A server whose last socket closed is absent from `open`: it reads 0, not its last count.
          for (const server of seen) if (!Object.hasOwn(open, server)) this.set({ server }, 0);
          for (const [server, count] of Object.entries(open)) {
            seen.add(server);
            this.set({ server }, count);
          }
        },
      });
    }
    const { cluster } = sources;
    if (cluster) {
      new Counter({
        name: 'mcp_relay_cluster_forwards_total',
        help: 'Requests forwarded over the replica-to-replica hop: sent to their owner, or received from another replica (0 sent in steady state behind a prefix-aware load balancer).',
        labelNames: ['direction'],
        registers,
        collect() {
          const { sent, received } = cluster();
          this.reset();
          this.inc({ direction: 'sent' }, sent);
          this.inc({ direction: 'received' }, received);
        },
      });
      new Counter({
        name: 'mcp_relay_cluster_notifications_total',
        help: "Change notifications of every-replica servers fanned out over Redis: published by this replica's copies, received from the others', or dropped while Redis lagged.",
        labelNames: ['direction'],
        registers,
        collect() {
          const notifications = cluster().notifications;
          this.reset();
          if (!notifications) return;
          this.inc({ direction: 'published' }, notifications.published);
          this.inc({ direction: 'received' }, notifications.received);
          this.inc({ direction: 'dropped' }, notifications.dropped);
        },
      });
      new Gauge({
        name: 'mcp_relay_cluster_subscriptions',
        help: "Resource URIs of every-replica servers shared across the cluster: announced for this replica's sessions, or held by this replica's copies for the other replicas' sessions.",
        labelNames: ['kind'],
        registers,
        collect() {
          const subscriptions = cluster().subscriptions;
          this.reset();
          if (!subscriptions) return;
          this.set({ kind: 'announced' }, subscriptions.announced);
          this.set({ kind: 'held' }, subscriptions.held);
        },
      });
      new Gauge({
        name: 'mcp_relay_cluster_replicas_alive',
        help: 'Replicas of the cluster whose heartbeat this replica sees, itself included.',
        registers,
        collect() {
          this.set(cluster().alive);
        },
      });
    }
    const usage = (): Promise<Map<string, { cpu: number; rss: number }>> => this.#usageOfScrape(sources);
    new Gauge({
      name: 'mcp_relay_backend_resident_memory_bytes',
      help: 'Resident memory of the backend processes, summed by server (Linux; the process the gateway started, not its children).',
      labelNames: ['server'],
      registers,
      async collect() {
        const now = await usage();
        for (const server of servers) this.set({ server }, now.get(server)?.rss ?? 0);
      },
    });
    const retired = this.#retiredCpu;
    new Counter({
      name: 'mcp_relay_backend_cpu_seconds_total',
      help: 'User and system CPU time of the backend processes, summed by server, those stopped since included (Linux; up to their last scrape).',
      labelNames: ['server'],
      registers,
      async collect() {
        const now = await usage();
        this.reset();
        for (const server of servers)
          this.inc({ server }, (now.get(server)?.cpu ?? 0) + (retired.get(server) ?? 0));
      },
    });
  }

  /** One reading of /proc per scrape, shared by the CPU and memory metrics (both collect within it). */
  #usageOfScrape(sources: MetricSources): Promise<Map<string, { cpu: number; rss: number }>> {
    const now = Date.now();
    if (this.#usage === undefined || now - this.#usage.at > USAGE_REUSE_MS) {
      this.#usage = { at: now, result: this.#backendUsage(sources.backends()) };
    }
    return this.#usage.result;
  }

  /** CPU and RSS per server of the backends running now; the CPU of those gone is kept as retired. */
  async #backendUsage(backends: BackendInfo[]): Promise<Map<string, { cpu: number; rss: number }>> {
    const totals = new Map<string, { cpu: number; rss: number }>();
    const seen = new Set<number>();
    await Promise.all(
      backends.map(async ({ server, pid }) => {
        if (pid === undefined) return;
        const used = await processUsage(pid);
        if (!used) return;
        seen.add(pid);
        this.#lastCpu.set(pid, { server, seconds: used.cpuSeconds });
        const entry = totals.get(server) ?? { cpu: 0, rss: 0 };
        entry.cpu += used.cpuSeconds;
        entry.rss += used.rssBytes;
        totals.set(server, entry);
      }),
    );
    for (const [pid, last] of this.#lastCpu) {
      if (seen.has(pid)) continue;
      this.#lastCpu.delete(pid);
      this.#retiredCpu.set(last.server, (this.#retiredCpu.get(last.server) ?? 0) + last.seconds);
    }
    return totals;
  }
}

/** A refusal's reason as a word: by its HTTP status, since the messages name users and tools. */
function refusalReason(status: number | undefined): string {
  if (status === 429) return 'rate_limit';
  if (status === 403) return 'not_allowed';
  return 'policy';
}
