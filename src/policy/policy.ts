// Who may use which server, and which of its tools, prompts and resources each user sees: compiled
// once per config (at start and on every reload), then pure and cheap per request.

import type { ItemFilterConfig } from '../config/policy-schema.ts';
import type { RelayConfig, ServerConfig } from '../config/schema.ts';
import type { Identity } from '../sessions/types.ts';
import { compileGlobs } from '../util/glob.ts';

/** The three kinds of item a server offers that the config can filter. */
export type ItemKind = 'tool' | 'prompt' | 'resource';

/** What one identity may see of one server: `visible` is asked for each name (tools, prompts) or URI. */
export interface ItemVisibility {
  visible(kind: ItemKind, name: string): boolean;
}

type Matcher = (value: string) => boolean;

interface CompiledFilter {
  allow: Matcher;
  deny: Matcher;
  groups: ReadonlyMap<string, { allow: Matcher; deny: Matcher }>;
}

const CONFIG_KEY: Record<ItemKind, 'tools' | 'prompts' | 'resources'> = {
  tool: 'tools',
  prompt: 'prompts',
  resource: 'resources',
};

function compileFilter(filter: ItemFilterConfig): CompiledFilter {
  return {
    allow: filter.allow === undefined ? () => true : compileGlobs(filter.allow),
    deny: compileGlobs(filter.deny),
    groups: new Map(
      Object.entries(filter.groups).map(([group, rules]) => [
        group,
        { allow: compileGlobs(rules.allow), deny: compileGlobs(rules.deny) },
      ]),
    ),
  };
}

/**
 * The rule of precedence (README "Policy"): a deny that applies to the user — the server's own or
 * one of the user's groups' — always wins; otherwise the server's allow (absent = everything) or
 * one of the user's groups' allow must match.
 */
function filterVisible(filter: CompiledFilter, groups: readonly string[], value: string): boolean {
  if (filter.deny(value)) return false;
  const rules = groups.flatMap((group) => filter.groups.get(group) ?? []);
  if (rules.some((rule) => rule.deny(value))) return false;
  return filter.allow(value) || rules.some((rule) => rule.allow(value));
}

export class ServerPolicy {
  readonly #users: ReadonlySet<string> | undefined;
  readonly #groups: ReadonlySet<string> | undefined;
  readonly #filters: Partial<Record<ItemKind, CompiledFilter>> = {};
  readonly #filtered: boolean;

  constructor(config: ServerConfig) {
    this.#users = config.allow && new Set(config.allow.users);
    this.#groups = config.allow && new Set(config.allow.groups);
    for (const kind of Object.keys(CONFIG_KEY) as ItemKind[]) {
      const filter = config[CONFIG_KEY[kind]];
      if (filter) this.#filters[kind] = compileFilter(filter);
    }
    this.#filtered = Object.keys(this.#filters).length > 0;
  }

  /** Whether the identity may use this server at all (`servers.<name>.allow`; absent = everyone). */
  allows(identity: Identity): boolean {
    if (!this.#users || !this.#groups) return true;
    return this.#users.has(identity.user) || identity.groups.some((group) => this.#groups?.has(group));
  }

  /** What the identity sees of this server's items; undefined when no filter is configured (all visible). */
  visibilityFor(identity: Identity): ItemVisibility | undefined {
    if (!this.#filtered) return undefined;
    const filters = this.#filters;
    const groups = identity.groups;
    return {
      visible(kind, name) {
        const filter = filters[kind];
        if (filter === undefined) return true;
        if (kind !== 'resource') return filterVisible(filter, groups, name);
        const spellings = uriSpellings(name);
        // A URI the gateway cannot read as the server would is refused rather than guessed.
        return spellings?.every((spelling) => filterVisible(filter, groups, spelling)) === true;
      },
    };
  }
}

/**
 * The spellings of one resource URI a server may take to mean the same resource: as written, as the
 * URL parser normalizes it ("..", "." and "%2e" segments, letter case of scheme and host, for `file:`
 * also repeated slashes and a `localhost` authority), and percent-decoded then normalized. A URI is
 * visible only when every spelling is, so neither "file:///public/../secret" passes an allow of
 * "file:///public/*" nor "FILE:///secret/x", "file:///s%65cret/x" or "file:////secret/x" gets past a
 * deny of "file:///secret/*". Undefined when a spelling cannot be parsed, or is a `file:` URI naming
 * another host (which a server may read as a network path).
 */
function uriSpellings(uri: string): string[] | undefined {
  const normalized = normalizeUri(uri);
  if (normalized === undefined) return undefined;
  const spellings = new Set([uri, normalized]);
  let decoded: string | undefined;
  try {
    decoded = decodeURIComponent(uri);
  } catch {
    return undefined; // Not valid percent-encoding: no telling what a server makes of it.
  }
  if (decoded !== uri) {
    const normalizedDecoded = normalizeUri(decoded);
    if (normalizedDecoded === undefined) return undefined;
    spellings.add(normalizedDecoded);
  }
  return [...spellings];
}

function normalizeUri(uri: string): string | undefined {
  if (!URL.canParse(uri)) return undefined;
  const url = new URL(uri);
  if (url.protocol !== 'file:') return url.href;
  // fileURLToPath reads "file:////etc/x" and "file://localhost/etc/x" as /etc/x; another host is a network path.
  if (url.hostname !== '' && url.hostname !== 'localhost') return undefined;
  return new URL(`file://${url.pathname.replace(/\/{2,}/g, '/')}${url.search}${url.hash}`).href;
}

/** The compiled policy of every server of one config. */
export class Policy {
  readonly #servers: ReadonlyMap<string, ServerPolicy>;

  constructor(config: RelayConfig) {
    this.#servers = new Map(
      Object.entries(config.servers).map(([name, server]) => [name, new ServerPolicy(server)]),
    );
  }

  server(name: string): ServerPolicy | undefined {
    return this.#servers.get(name);
  }
}
