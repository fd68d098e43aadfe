// Reads relay.yaml once at the edge: YAML → ${VAR} substitution → schema → absolute paths → frozen value.
// Every error names the key and its line so the user can fix the file without guessing.

import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { isMap, isScalar, LineCounter, type Node, parseDocument, visit } from 'yaml';
import type { z } from 'zod';
import { RelayError } from '../errors.ts';
import { envValue } from './env-secrets.ts';
import { configSchema, listenTls, type RelayConfig, type SshConfig } from './schema.ts';

export interface LoadedConfig {
  config: RelayConfig;
  /** Absolute path of the file, or undefined for a config built in memory. */
  path: string | undefined;
  /** The variables the file's `${VAR}`s name (set or not), for the gateway to take out of its environment. */
  envNames: readonly string[];
}

export function loadConfigFile(path: string, env: NodeJS.ProcessEnv = process.env): LoadedConfig {
  const absolute = resolve(path);
  let text: string;
  try {
    text = readFileSync(absolute, 'utf8');
  } catch (cause) {
    throw new RelayError('CONFIG_NOT_FOUND', `cannot read config ${absolute}: ${(cause as Error).message}`);
  }
  return { ...parseConfig(text, absolute, env), path: absolute };
}

/** Parses config text; relative paths inside it are resolved against the file's folder. */
export function parseConfigText(
  text: string,
  file: string,
  env: NodeJS.ProcessEnv = process.env,
): RelayConfig {
  return parseConfig(text, file, env).config;
}

function parseConfig(
  text: string,
  file: string,
  env: NodeJS.ProcessEnv,
): { config: RelayConfig; envNames: string[] } {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  const where = (offset: number | undefined) =>
    offset === undefined ? file : `${file}:${lineCounter.linePos(offset).line}`;
  const firstError = doc.errors[0];
  if (firstError) {
    throw new RelayError(
      'CONFIG_INVALID',
      `${where(firstError.pos[0])}: invalid YAML: ${firstError.message}`,
    );
  }
  const envNames = substituteEnv(doc, env, where);
  const result = configSchema.safeParse(doc.toJS() ?? {});
  if (!result.success) {
    throw new RelayError('CONFIG_INVALID', describeIssues(result.error.issues, doc, where));
  }
  return { config: deepFreeze(resolvePaths(result.data, dirname(file))), envNames };
}

/** Builds a config from a plain object (the quick `serve -- cmd` form and tests) through the same schema. */
export function buildConfig(input: unknown, baseDir: string = process.cwd()): RelayConfig {
  const result = configSchema.safeParse(input);
  if (!result.success) {
    throw new RelayError(
      'CONFIG_INVALID',
      describeIssues(result.error.issues, undefined, () => 'config'),
    );
  }
  return deepFreeze(resolvePaths(result.data, baseDir));
}

const ENV_REFERENCE = /\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g;

/** Replaces each `${VAR}` in the document; returns the names it read. */
function substituteEnv(
  doc: ReturnType<typeof parseDocument>,
  env: NodeJS.ProcessEnv,
  where: (offset: number | undefined) => string,
): string[] {
  const names = new Set<string>();
  visit(doc, {
    Scalar(_key, node) {
      if (typeof node.value !== 'string' || !node.value.includes('${')) return;
      node.value = node.value.replace(ENV_REFERENCE, (_match, name: string, fallback: string | undefined) => {
        names.add(name);
        const value = envValue(env, name);
        if (value !== undefined) return value;
        if (fallback !== undefined) return fallback;
        throw new RelayError(
          'CONFIG_ENV_UNSET',
          `${where(node.range?.[0])}: environment variable ${name} is not set (write \${${name}:-default} for a default)`,
        );
      });
    },
  });
  return [...names];
}

function describeIssues(
  issues: readonly z.core.$ZodIssue[],
  doc: ReturnType<typeof parseDocument> | undefined,
  where: (offset: number | undefined) => string,
): string {
  const lines = issues
    .flatMap(closestAlternative)
    .slice(0, 10)
    .map((issue) => {
      const path = issue.path.map(String);
      if (issue.code === 'unrecognized_keys') {
        return issue.keys
          .map((key) => {
            const offset = doc ? keyOffset(doc, path, key) : undefined;
            const dotted = [...path, key].join('.');
            return `${where(offset)}: unknown key "${dotted}"`;
          })
          .join('\n');
      }
      const offset = doc ? nodeOffset(doc, path) : undefined;
      const dotted = path.length > 0 ? path.join('.') : '(top level)';
      return `${where(offset)}: ${dotted}: ${issue.message}`;
    });
  return `invalid config:\n  ${lines.join('\n  ')}`;
}

/**
 * For a value that fits none of a union's shapes, the problems of the shape it came closest to (the
 * deepest path), so `listen: { port: "x" }` names listen.port rather than "listen: invalid input".
 */
function closestAlternative(issue: z.core.$ZodIssue): z.core.$ZodIssue[] {
  if (issue.code !== 'invalid_union') return [issue];
  let closest: z.core.$ZodIssue[] = [];
  let depth = 0;
  for (const alternative of issue.errors) {
    const deepest = Math.max(0, ...alternative.map((inner) => inner.path.length));
    if (deepest > depth) [closest, depth] = [alternative, deepest];
  }
  if (depth === 0) return [issue];
  return closest.flatMap((inner) => closestAlternative({ ...inner, path: [...issue.path, ...inner.path] }));
}

function nodeOffset(doc: ReturnType<typeof parseDocument>, path: string[]): number | undefined {
  // A missing key has no node: fall back to the nearest ancestor that exists.
  for (let depth = path.length; depth >= 0; depth--) {
    const node = doc.getIn(path.slice(0, depth), true) as Node | undefined;
    if (node && typeof node === 'object' && 'range' in node && node.range) return node.range[0];
  }
  return undefined;
}

function keyOffset(doc: ReturnType<typeof parseDocument>, path: string[], key: string): number | undefined {
  const parent = path.length === 0 ? doc.contents : doc.getIn(path, true);
  if (isMap(parent)) {
    for (const pair of parent.items) {
      if (isScalar(pair.key) && String(pair.key.value) === key) return pair.key.range?.[0];
    }
  }
  return nodeOffset(doc, path);
}

function resolvePaths(config: RelayConfig, baseDir: string): RelayConfig {
  const absolute = (path: string) => (isAbsolute(path) ? path : resolve(baseDir, path));
  const servers = Object.fromEntries(
    Object.entries(config.servers).map(([name, server]) => [
      name,
      { ...server, cwd: absolute(server.cwd ?? '.'), watch: server.watch.map(absolute) },
    ]),
  );
  const tls = listenTls(config);
  return {
    ...config,
    listen: config.listen && {
      ...config.listen,
      tls: tls && {
        ...tls,
        cert: absolute(tls.cert),
        key: absolute(tls.key),
        ...(tls.clientCa ? { clientCa: absolute(tls.clientCa) } : {}),
        ...(tls.crl ? { crl: typeof tls.crl === 'string' ? absolute(tls.crl) : tls.crl.map(absolute) } : {}),
      },
    },
    ...(config.stateDir === undefined ? {} : { stateDir: absolute(config.stateDir) }),
    servers,
    ssh: config.ssh && resolveSshPaths(config.ssh, absolute),
    audit:
      config.audit?.file && config.audit.file !== '-'
        ? { ...config.audit, file: absolute(config.audit.file) }
        : config.audit,
    auth: { ...config.auth, apiKeys: config.auth.apiKeys && { file: absolute(config.auth.apiKeys.file) } },
  };
}

/** SSH mode's socket, log file and state folder, relative to the config's folder like every path. */
function resolveSshPaths(ssh: SshConfig, absolute: (path: string) => string): SshConfig {
  return {
    ...ssh,
    ...(ssh.socket ? { socket: absolute(ssh.socket) } : {}),
    ...(ssh.logFile ? { logFile: absolute(ssh.logFile) } : {}),
    ...(ssh.stateDir ? { stateDir: absolute(ssh.stateDir) } : {}),
  };
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}
