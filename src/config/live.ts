// The config of a running gateway, which a reload may change in part: policy (allow, tool/prompt/
// resource filters), limits (rate limits, sessionsPerUser, maxBodyBytes), allowedOrigins and audit
// apply at once; anything else (listen address, TLS, auth, servers' commands, adding or
// removing servers…) keeps its startup value and is reported as needing a restart.

import { isDeepStrictEqual } from 'node:util';
import { configSchema, type RelayConfig } from './schema.ts';

/** Keys of each server that apply without a restart. */
const LIVE_SERVER_KEYS = ['allow', 'tools', 'prompts', 'resources', 'requestsPerMinute'] as const;
/** Keys of `limits` that apply without a restart. */
const LIVE_LIMIT_KEYS = ['requestsPerMinute', 'sessionsPerUser', 'maxBodyBytes'] as const;
/** Top-level keys that apply without a restart, whole. */
const LIVE_TOP_KEYS = ['allowedOrigins', 'audit'] as const;

export interface ConfigChange {
  /** The running config after the change: startup values for what needs a restart, new values for the rest. */
  config: RelayConfig;
  /** Dotted keys whose new values are now in effect. */
  applied: string[];
  /** Dotted keys whose new values wait for a restart. */
  restartNeeded: string[];
}

/** Merges what may change live from `next` into `current`, and says what changed and what waits. */
export function mergeLive(current: RelayConfig, next: RelayConfig): ConfigChange {
  const applied: string[] = [];
  const restartNeeded: string[] = [];
  const merged: Record<string, unknown> = { ...current };
  for (const key of new Set([...Object.keys(current), ...Object.keys(next)]) as Set<keyof RelayConfig>) {
    if (key === 'servers' || key === 'limits' || isDeepStrictEqual(current[key], next[key])) continue;
    if ((LIVE_TOP_KEYS as readonly string[]).includes(key)) {
      merged[key] = next[key];
      applied.push(key);
    } else restartNeeded.push(key);
  }
  merged.limits = mergeKeys(current.limits, next.limits, LIVE_LIMIT_KEYS, 'limits', applied, restartNeeded);
  const servers: Record<string, unknown> = {};
  for (const [name, server] of Object.entries(current.servers)) {
    const replacement = next.servers[name];
    if (!replacement) {
      restartNeeded.push(`servers.${name} (removed)`);
      servers[name] = server;
      continue;
    }
    servers[name] = mergeKeys(
      server,
      replacement,
      LIVE_SERVER_KEYS,
      `servers.${name}`,
      applied,
      restartNeeded,
    );
  }
  for (const name of Object.keys(next.servers)) {
    if (!current.servers[name]) restartNeeded.push(`servers.${name} (added)`);
  }
  merged.servers = servers;
  return { config: Object.freeze(merged) as RelayConfig, applied, restartNeeded };
}

function mergeKeys<T extends object>(
  current: T,
  next: T,
  liveKeys: readonly string[],
  prefix: string,
  applied: string[],
  restartNeeded: string[],
): T {
  const merged: Record<string, unknown> = { ...(current as Record<string, unknown>) };
  const keys = new Set([...Object.keys(current), ...Object.keys(next)]);
  for (const key of keys) {
    const before = (current as Record<string, unknown>)[key];
    const after = (next as Record<string, unknown>)[key];
    if (isDeepStrictEqual(before, after)) continue;
    if (liveKeys.includes(key)) {
      merged[key] = after;
      applied.push(`${prefix}.${key}`);
    } else restartNeeded.push(`${prefix}.${key}`);
  }
  return Object.freeze(merged) as T;
}

/**
 * Holds the running config. `view` is handed to the components that read the config per request
 * (sessions, the MCP endpoint, the gateway's checks): each top-level key of it reads the current
 * config, so `view.limits.maxBodyBytes` is the reloaded value while keys that need a restart keep
 * their startup values. Nothing is mutated: a reload swaps one frozen config for another.
 */
export class LiveConfig {
  readonly view: RelayConfig;
  #current: RelayConfig;
  readonly #listeners: Array<(config: RelayConfig, change: ConfigChange) => void> = [];

  constructor(initial: RelayConfig) {
    this.#current = initial;
    const view: Record<string, unknown> = {};
    for (const key of Object.keys(configSchema.shape)) {
      Object.defineProperty(view, key, {
        enumerable: true,
        get: () => this.#current[key as keyof RelayConfig],
      });
    }
    this.view = Object.freeze(view) as RelayConfig;
  }

  get current(): RelayConfig {
    return this.#current;
  }

  /** Applies what may change live from `next`; listeners run only when something was applied. */
  apply(next: RelayConfig): ConfigChange {
    const change = mergeLive(this.#current, next);
    if (change.applied.length > 0) {
      this.#current = change.config;
      for (const listener of this.#listeners) listener(change.config, change);
    }
    return change;
  }

  onChange(listener: (config: RelayConfig, change: ConfigChange) => void): void {
    this.#listeners.push(listener);
  }
}
