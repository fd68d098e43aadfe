// The one schema for relay.yaml. Inner code receives the parsed, defaulted, read-only result.

import { z } from 'zod';
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

const serverSchema = z.strictObject({
  command: z.string().min(1),
  args: z.array(z.string()).default([]),
  env: z.record(envName, z.string()).default({}),
  /** Extra variables copied from the gateway's own environment (on top of the built-in allowlist). */
  envPassthrough: z.array(envName).default([]),
  cwd: z.string().optional(),
  isolation: z.enum(ISOLATION_MODES).default('per-user'),
  /** Processes this server may run at once (per-user: users, per-session: sessions). */
  maxInstances: z.number().int().positive().default(100),
  idleTimeout: duration.default(600_000),
  requestTimeout: duration.default(300_000),
  app: z.strictObject({ portEnv: envName }).optional(),
});

const tlsSchema = z.strictObject({
  cert: z.string(),
  key: z.string(),
  clientCa: z.string().optional(),
});

export const configSchema = z.strictObject({
  listen: z
    .strictObject({
      host: z.string().default('127.0.0.1'),
      port: z.number().int().min(0).max(65_535).default(8787),
      tls: tlsSchema.optional(),
    })
    .default({ host: '127.0.0.1', port: 8787 }),
  publicUrl: z.url().optional(),
  /** Browser origins allowed to call the MCP endpoints; requests with any other Origin get 403. */
  allowedOrigins: z.array(z.string()).default([]),
  servers: z
    .record(
      z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, 'server names are letters, digits, . _ -'),
      serverSchema,
    )
    .refine((servers) => Object.keys(servers).length > 0, 'at least one server is needed'),
  auth: z
    .strictObject({
      apiKeys: z.strictObject({ file: z.string() }).optional(),
    })
    .default({}),
  limits: z
    .strictObject({
      sessionsPerUser: z.number().int().positive().default(10),
      maxBodyBytes: size.default(4 * 1_048_576),
      /** Backend processes of all servers together. */
      maxBackends: z.number().int().positive().default(200),
    })
    .default({ sessionsPerUser: 10, maxBodyBytes: 4 * 1_048_576, maxBackends: 200 }),
  sse: z
    .strictObject({
      /** Interval of the comment lines that keep idle proxies from cutting a stream. */
      keepAlive: duration.default(15_000),
      /** How many events each stream keeps for resumption with Last-Event-ID. */
      replayEvents: z.number().int().min(0).max(100_000).default(512),
    })
    .default({ keepAlive: 15_000, replayEvents: 512 }),
  logLevel: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info'),
});

export type RelayConfig = z.output<typeof configSchema>;
export type ServerConfig = RelayConfig['servers'][string];
export type IsolationMode = (typeof ISOLATION_MODES)[number];
