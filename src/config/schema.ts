// The one schema for relay.yaml. Inner code receives the parsed, defaulted, read-only result.

import { z } from 'zod';
import { isLoopbackAddress } from '../util/loopback.ts';
import { allowedOrigin, auditSchema, limitPolicyKeys, serverPolicyKeys } from './policy-schema.ts';
import { parseDuration, parseSize } from './units.ts';

const duration = z.union([z.string(), z.number()]).transform((value, ctx) => {
  const ms = parseDuration(value);
  if (ms === undefined) {
    ctx.addIssue({
      code: 'custom',
      message: `"${String(value)}" is not a duration (use e.g. 500ms, 30s, 10m, 2h)`,
    });
    return z.NEVER;
  }
  return ms;
});

const size = z.union([z.string(), z.number()]).transform((value, ctx) => {
  const bytes = parseSize(value);
  if (bytes === undefined) {
    ctx.addIssue({
      code: 'custom',
      message: `"${String(value)}" is not a size (use e.g. 4MiB, 512KiB, 1000000)`,
    });
    return z.NEVER;
  }
  return bytes;
});

const envName = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'must be an environment variable name');

export const ISOLATION_MODES = ['shared', 'per-user', 'per-session'] as const;

/** An OAuth scope token (RFC 6749 §3.3: printable ASCII without space, quote or backslash). */
const oauthScope = z
  .string()
  .regex(/^[\x21\x23-\x5b\x5d-\x7e]+$/, 'must be one OAuth scope (no spaces or quotes)');

export const SSH_MODES = ['standalone', 'attached'] as const;

/** A socket's permission bits: 0600 (the gateway's account only) or 0660 (and its group). YAML reads 0600 as 600. */
const socketMode = z.union([z.string(), z.number()]).transform((value, ctx) => {
  const text = String(value)
    .replace(/^0o/, '')
    .replace(/^0(?=\d{3}$)/, '');
  const mode =
    text === '600' || value === 0o600 ? 0o600 : text === '660' || value === 0o660 ? 0o660 : undefined;
  if (mode === undefined) {
    ctx.addIssue({
      code: 'custom',
      message: `"${String(value)}" is not a socket mode (use '0600' or '0660')`,
    });
    return z.NEVER;
  }
  return mode;
});

/** SSH mode: how `mcp-relay ssh-entry` (sshd's forced command) serves a connection. */
const sshSchema = z
  .strictObject({
    /** standalone: a server process per connection; attached: a session of the running gateway. */
    mode: z.enum(SSH_MODES).default('standalone'),
    /** The gateway's Unix socket for attached mode (the gateway listens there when mode is attached). */
    socket: z.string().min(1).optional(),
    socketMode: socketMode.default(0o600),
    /** JSON lines of connection start/end; default: stderr (which ssh hands to the client). */
    logFile: z.string().min(1).optional(),
    /** Where standalone mode counts live connections per user (default ~/.mcp-relay/ssh). */
    stateDir: z.string().min(1).optional(),
  })
  .superRefine((ssh, ctx) => {
    if (ssh.mode === 'attached' && ssh.socket === undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['socket'],
        message: "attached mode needs ssh.socket (the gateway's socket path)",
      });
    }
  });

/** An account or group for a backend: its name, or its numeric id (YAML may give either). */
const accountName = z.union(
  [
    z.string().regex(/^[^\s:]{1,64}$/, 'must be an account name or a numeric id'),
    z.number().int().min(0).max(4_294_967_294),
  ],
  { error: 'must be an account name or a numeric id' },
);

const serverSchema = z.strictObject({
  command: z.string().min(1),
  args: z.array(z.string()).default([]),
  env: z.record(envName, z.string()).default({}),
  /** Extra variables copied from the gateway's own environment (on top of the built-in allowlist). */
  envPassthrough: z.array(envName).default([]),
  cwd: z.string().optional(),
  /** Run the server as this account (from /etc/passwd); the gateway must run as root to switch. */
  user: accountName.optional(),
  /** ...and with this group (from /etc/group); default: the account's primary group. */
  group: accountName.optional(),
  isolation: z.enum(ISOLATION_MODES).default('per-user'),
  /** Processes this server may run at once (per-user: users, per-session: sessions). */
  maxInstances: z.number().int().positive().default(100),
  idleTimeout: duration.default(600_000),
  requestTimeout: duration.default(300_000),
  /**
   * How long a backend may write nothing while requests are pending before it counts as hung: it is
   * pinged after half of this, then killed and replaced, its calls failed. 0: never.
   */
  livenessTimeout: duration.default(60_000),
  /**
   * A graceful restart of the server's backends (SIGUSR2, `watch`): how long the old process may take
   * to finish its calls in flight once new ones go to the new process; what is left then fails.
   */
  drainTimeout: duration.default(30_000),
  /**
   * Files or directories whose change restarts the server's running backends gracefully (relative to
   * the config file's folder); a directory is watched with everything in it.
   */
  watch: z.array(z.string().min(1)).default([]),
  app: z.strictObject({ portEnv: envName }).optional(),
  /**
   * dual: 2025 clients get sessions and 2026-07-28 clients the stateless path, on the same URL;
   * legacy: the 2025 path only (2026 clients are refused in a way that makes dual-era ones fall back).
   */
  protocol: z.enum(['dual', 'legacy']).default('dual'),
  /**
   * With several replicas (cluster), where a shared server runs: single, one copy in the cluster
   * (one scene for everybody); every-replica, a copy on each (for servers whose state lives elsewhere).
   */
  placement: z.enum(['single', 'every-replica']).default('single'),
  /** OAuth scopes a token must carry to use this server; replaces auth.oidc.scopes for it. */
  scopes: z.array(oauthScope).optional(),
  /** allow, tools, prompts, resources, requestsPerMinute: see policy-schema.ts. */
  ...serverPolicyKeys,
});

export const CLIENT_CERT_MODES = ['required', 'optional'] as const;
export const CLIENT_CERT_USER_FROM = ['cn', 'san-email', 'san-dns', 'san-uri'] as const;

const tlsSchema = z
  .strictObject({
    cert: z.string(),
    key: z.string(),
    /** CA certificate(s) (PEM) that sign client certificates: setting it turns on mTLS. */
    clientCa: z.string().optional(),
    /** Revocation lists (PEM) of the client CAs: a revoked client certificate fails the handshake. */
    crl: z.union([z.string(), z.array(z.string()).min(1)]).optional(),
    /** required: no valid client certificate, no connection. Default: required unless auth has keys or OIDC. */
    clientCert: z.enum(CLIENT_CERT_MODES).optional(),
  })
  .superRefine((tls, ctx) => {
    for (const key of ['crl', 'clientCert'] as const) {
      if (tls[key] !== undefined && tls.clientCa === undefined) {
        ctx.addIssue({ code: 'custom', path: [key], message: 'needs listen.tls.clientCa (the client CA)' });
      }
    }
  });

const clientCertAuthSchema = z
  .strictObject({
    /** Which part of the certificate names the user. */
    userFrom: z.enum(CLIENT_CERT_USER_FROM).default('cn'),
    /** With san-uri: only URIs starting with this count, and the rest is the user name. */
    uriPrefix: z.string().min(1).optional(),
    /** ou: each OU of the subject is a group; none: no groups from certificates. */
    groupsFrom: z.enum(['ou', 'none']).default('ou'),
  })
  .superRefine((cert, ctx) => {
    if (cert.userFrom === 'san-uri' && cert.uriPrefix === undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['uriPrefix'],
        message: 'userFrom san-uri needs uriPrefix (e.g. spiffe://example.org/user/)',
      });
    }
  });

/** OAuth 2.1 resource server: JWT access tokens from one issuer (see README "OAuth"). */
const oidcSchema = z.strictObject({
  /** The issuer exactly as in its tokens' `iss` and its discovery document. */
  issuer: z.url(),
  /** Accepted `aud` values instead of the endpoint's resource URL (for IdPs that ignore RFC 8707). */
  audience: z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]).optional(),
  /** Where the signing keys are; default: `jwks_uri` from the issuer's discovery document. */
  jwksUri: z.url().optional(),
  /** Scopes every token must carry (servers.<name>.scopes overrides per server). */
  scopes: z.array(oauthScope).default([]),
  /** The claim naming the user. */
  userClaim: z.string().min(1).default('sub'),
  /** The claim listing the user's groups (an array, or a space/comma separated string; a.b reads nested claims). */
  groupsClaim: z.string().min(1).default('groups'),
  /** Allowed clock difference with the issuer for exp/nbf/iat. */
  clockTolerance: duration.default(30_000),
  /** After fetching the keys, wait this long before fetching again for an unknown key id. */
  jwksCooldown: duration.default(30_000),
  /** Fetched keys are fresh this long; a token arriving later has them fetched again (removed keys stop working). */
  jwksRefresh: duration.default(60_000),
  /** While the provider cannot be reached, stale keys stay in use this much longer; then tokens get 503. */
  jwksMaxStale: duration.default(300_000),
});

const listenSchema = z.strictObject({
  host: z.string().default('127.0.0.1'),
  port: z.number().int().min(0).max(65_535).default(8787),
  tls: tlsSchema.optional(),
});

const authSchema = z
  .strictObject({
    apiKeys: z.strictObject({ file: z.string() }).optional(),
    /** OAuth 2.1: accept JWT access tokens from an OpenID provider. */
    oidc: oidcSchema.optional(),
    /** How a client certificate (listen.tls.clientCa) becomes a user and groups. */
    clientCert: clientCertAuthSchema.optional(),
    /** No authentication, on purpose: every local account that reaches the loopback port is user "local". */
    none: z.boolean().optional(),
  })
  .superRefine((auth, ctx) => {
    if (auth.none !== true) return;
    for (const key of ['apiKeys', 'oidc', 'clientCert'] as const) {
      if (auth[key] !== undefined) {
        ctx.addIssue({ code: 'custom', path: ['none'], message: `cannot be true next to auth.${key}` });
      }
    }
  });

/** `host:port` (IPv6 in brackets: `[::1]:9464`) as its parts, or undefined when it is not one. */
export function hostPort(value: string): { host: string; port: number } | undefined {
  const match = /^(\[[^\]]+\]|[^:]+):(\d{1,5})$/.exec(value);
  const port = match ? Number(match[2]) : Number.NaN;
  const host = match?.[1]?.replace(/^\[|\]$/g, '');
  return host !== undefined && port >= 0 && port <= 65_535 ? { host, port } : undefined;
}

/**
 * `host:port` of a listener that must stay on this machine; kept as text (the parsed config is parsed
 * again on reload, so what the schema outputs must pass it again).
 */
const loopbackAddress = z.string().superRefine((value, ctx) => {
  const address = hostPort(value);
  if (address === undefined) {
    ctx.addIssue({ code: 'custom', message: `"${value}" is not host:port (e.g. 127.0.0.1:9464)` });
  } else if (!isLoopbackAddress(address.host)) {
    ctx.addIssue({
      code: 'custom',
      message: `"${value}" is not a loopback address: the metrics listener has no authentication, so it serves this machine only`,
    });
  }
});

/** `host:port` kept as text, for a listener that may face other machines (the cluster's peer hop). */
const address = z.string().superRefine((value, ctx) => {
  if (hostPort(value) === undefined)
    ctx.addIssue({ code: 'custom', message: `"${value}" is not host:port (e.g. 10.0.0.5:8788)` });
});

/** Several replicas on Redis (see README "Several replicas"); absent: one process, nothing shared. */
const clusterSchema = z.strictObject({
  /** This replica's id, unique in the cluster: the prefix of its session ids. */
  replica: z.string().regex(/^[a-z0-9]{1,15}$/, 'must be 1–15 lowercase letters or digits'),
  /** redis://[user:password@]host:port[/db] */
  redis: z.string().regex(/^rediss?:\/\//, 'must be a redis:// or rediss:// URL'),
  /** Prefix of every Redis key, so several clusters can share one Redis. */
  keyPrefix: z.string().max(64).default('mcp-relay:'),
  /** Shared by all replicas (at least 32 characters): signs the replica-to-replica hop. */
  secret: z.string().min(32, 'must be at least 32 characters'),
  peer: z.strictObject({
    /** The listener other replicas forward misrouted requests to (a private interface). */
    listen: address,
    /** How the other replicas reach it (default: http://<listen>). */
    url: z.url().optional(),
  }),
});

/** Seeing what runs: /metrics and /admin/ for users in the admin groups (see README "Seeing what runs"). */
const adminSchema = z.strictObject({
  /** Users in any of these groups (API key, OAuth or certificate groups) may read /metrics and /admin/. */
  groups: z.array(z.string().min(1)).min(1),
  metrics: z
    .strictObject({
      /** A second listener serving only /metrics without authentication, on loopback (a local Prometheus). */
      listen: loopbackAddress.optional(),
    })
    .default({}),
});

/** relay.yaml's keys; configSchema adds the rules that span several of them. */
const configKeys = z.strictObject({
  /** false: no TCP listener at all; the gateway serves only the SSH attached-mode socket. */
  listen: z
    .union([z.literal(false), listenSchema], {
      error: 'must be false (no TCP port: only the SSH socket) or a map with host, port, tls',
    })
    .default({ host: '127.0.0.1', port: 8787 }),
  publicUrl: z.url().optional(),
  /** Browser origins allowed to call the MCP endpoints; requests with any other Origin get 403. */
  allowedOrigins: z.array(allowedOrigin).default([]),
  servers: z
    .record(
      z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, 'server names are letters, digits, . _ -'),
      serverSchema,
    )
    .refine((servers) => Object.keys(servers).length > 0, 'at least one server is needed'),
  auth: authSchema.default({}),
  limits: z
    .strictObject({
      sessionsPerUser: z.number().int().positive().default(10),
      maxBodyBytes: size.default(4 * 1_048_576),
      /** Longest message a backend may write (one stdio line); a longer one becomes an error for its request. */
      maxBackendMessageBytes: size.default(64 * 1_048_576),
      /** Backend processes of all servers together. */
      maxBackends: z.number().int().positive().default(200),
      /** Bytes one SSE connection may hold unsent (a client that does not read); past it the connection is closed. */
      streamBufferBytes: size.default(4 * 1_048_576),
      ...limitPolicyKeys,
      /** A client must send its request headers within this (slowloris guard); then 408 and close. */
      headersTimeout: duration.default(20_000),
      /** A client must send its whole request, headers and body, within this (SSE replies are not limited). */
      receiveTimeout: duration.default(60_000),
      /** Finished answers each session keeps, so a retry of the same request id is answered again, not run again. */
      retryAnswers: z.number().int().min(0).max(10_000).default(64),
      /** Their total size per session; a bigger answer is not kept (its retry runs again). */
      retryAnswerBytes: size.default(1_048_576),
      /** How long they are kept. */
      retryAnswerAge: duration.default(300_000),
    })
    .default({
      sessionsPerUser: 10,
      maxBodyBytes: 4 * 1_048_576,
      maxBackendMessageBytes: 64 * 1_048_576,
      maxBackends: 200,
      streamBufferBytes: 4 * 1_048_576,
      headersTimeout: 20_000,
      receiveTimeout: 60_000,
      retryAnswers: 64,
      retryAnswerBytes: 1_048_576,
      retryAnswerAge: 300_000,
    }),
  sse: z
    .strictObject({
      /** Interval of the comment lines that keep idle proxies from cutting a stream. */
      keepAlive: duration.default(15_000),
      /** How many events each stream keeps for resumption with Last-Event-ID. */
      replayEvents: z.number().int().min(0).max(100_000).default(512),
      /** Bytes of events one session keeps for resumption, all its streams together; a bigger event is not kept. */
      replayBytes: size.default(2 * 1_048_576),
      /** How long an event stays available for resumption. */
      replayAge: duration.default(120_000),
    })
    .default({ keepAlive: 15_000, replayEvents: 512, replayBytes: 2 * 1_048_576, replayAge: 120_000 }),
  ssh: sshSchema.optional(),
  audit: auditSchema.optional(),
  /** /metrics and the /admin/ page; absent: neither exists and nothing is counted. */
  admin: adminSchema.optional(),
  cluster: clusterSchema.optional(),
  /**
   * A folder for state that outlives backend processes: each backend instance gets its own folder
   * below it in MCP_RELAY_STATE_DIR (<stateDir>/<server>/shared | user-<name> | session-<id>).
   */
  stateDir: z.string().min(1).optional(),
  /** On SIGTERM/SIGINT, how long calls in flight may take to finish before they are ended with an error. */
  shutdownTimeout: duration.default(10_000),
  logLevel: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info'),
});

export const configSchema = configKeys.superRefine((config, ctx) => {
  if (config.listen === false && config.ssh?.mode !== 'attached') {
    ctx.addIssue({
      code: 'custom',
      path: ['listen'],
      message: 'false leaves nothing to serve without ssh.mode attached (the SSH socket)',
    });
  }
  if (config.auth.none === true && config.listen !== false && config.listen.tls?.clientCa !== undefined) {
    ctx.addIssue({
      code: 'custom',
      path: ['auth', 'none'],
      message: 'cannot be true next to listen.tls.clientCa (client certificates)',
    });
  }
});

export type RelayConfig = z.output<typeof configSchema>;
/** The TCP listener's settings (absent with `listen: false`). */
export type ListenConfig = Exclude<RelayConfig['listen'], false>;
export type TlsConfig = NonNullable<ListenConfig['tls']>;
export type ServerConfig = RelayConfig['servers'][string];
export type IsolationMode = (typeof ISOLATION_MODES)[number];
export type SshConfig = NonNullable<RelayConfig['ssh']>;
export type AdminConfig = NonNullable<RelayConfig['admin']>;
export type ClusterConfig = NonNullable<RelayConfig['cluster']>;

/** The TCP listener's TLS settings; undefined without TLS or without a TCP listener. */
export function listenTls(config: RelayConfig): TlsConfig | undefined {
  return config.listen === false ? undefined : config.listen.tls;
}
