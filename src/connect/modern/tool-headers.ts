// `x-mcp-header` (spec server/tools.mdx and basic/transports/streamable-http.mdx, "Custom Headers
// from Tool Parameters"): a tool may ask for some arguments to be mirrored as `Mcp-Param-{Name}`
// headers. The bindings come from the tools/list results the client fetched through the bridge; a
// tool whose annotations break the rules is dropped from those results (the HTTP client's MUST),
// with a warning.

import type { JsonRpcMessage } from '../../protocol/jsonrpc.ts';
import { sanitize } from '../../util/sanitize.ts';
import type { BridgeLog } from '../diagnostics.ts';
import { headerValue } from './envelope.ts';

type HeaderType = 'string' | 'integer' | 'boolean';

export interface HeaderBinding {
  /** The `{Name}` of `Mcp-Param-{Name}`. */
  header: string;
  /** Where the argument sits: a chain of `properties` from the schema root. */
  path: readonly string[];
  type: HeaderType;
}

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const TYPES = new Set<unknown>(['string', 'integer', 'boolean']);
/** Schemas nested deeper than this are not walked (nor are their annotations honored). */
const MAX_DEPTH = 16;
/** Tools remembered; a server listing more is unusual, and the oldest are forgotten. */
const MAX_TOOLS = 4_096;

/** The bindings of one inputSchema, or why the tool must be rejected. */
export function headerBindings(schema: unknown): { bindings: HeaderBinding[] } | { invalid: string } {
  const bindings: HeaderBinding[] = [];
  const seen = new Set<string>();
  const walk = (node: unknown, path: string[]): string | undefined => {
    if (!isObject(node) || path.length > MAX_DEPTH || !isObject(node.properties)) return undefined;
    for (const [key, property] of Object.entries(node.properties)) {
      if (!isObject(property)) continue;
      const here = [...path, key];
      if ('x-mcp-header' in property) {
        const name = property['x-mcp-header'];
        const where = `property "${sanitize(here.join('.'), 80)}"`;
        if (typeof name !== 'string' || !TOKEN.test(name))
          return `${where}: x-mcp-header is not an HTTP field name`;
        if (seen.has(name.toLowerCase())) return `${where}: x-mcp-header "${name}" is used twice`;
        if (!TYPES.has(property.type))
          return `${where}: x-mcp-header on a type other than string, integer or boolean`;
        seen.add(name.toLowerCase());
        bindings.push({ header: name, path: here, type: property.type as HeaderType });
      }
      const nested = walk(property, here);
      if (nested !== undefined) return nested;
    }
    return undefined;
  };
  const invalid = walk(schema, []);
  return invalid === undefined ? { bindings } : { invalid };
}

/** `Mcp-Param-*` headers for one call's arguments; an absent or null argument sends none. */
export function paramHeaders(bindings: readonly HeaderBinding[], args: unknown): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const binding of bindings) {
    let value: unknown = args;
    for (const key of binding.path) value = isObject(value) ? value[key] : undefined;
    const text = headerText(value, binding.type);
    if (text !== undefined) headers[`mcp-param-${binding.header.toLowerCase()}`] = text;
  }
  return headers;
}

function headerText(value: unknown, type: HeaderType): string | undefined {
  if (type === 'string' && typeof value === 'string') return headerValue(value);
  if (type === 'boolean' && typeof value === 'boolean') return String(value);
  if (type === 'integer' && typeof value === 'number' && Number.isSafeInteger(value)) return String(value);
  return undefined;
}

/** What the bridge learned from tools/list: each annotated tool's bindings. */
export class ToolHeaders {
  readonly #bindings = new Map<string, readonly HeaderBinding[]>();
  readonly #log: BridgeLog;

  constructor(log: BridgeLog) {
    this.#log = log;
  }

  /** Headers for a tools/call of a tool seen in a tools/list; none for anything else. */
  headersFor(message: JsonRpcMessage): Record<string, string> {
    if (!('method' in message) || message.method !== 'tools/call') return {};
    const name = message.params?.name;
    const bindings = typeof name === 'string' ? this.#bindings.get(name) : undefined;
    return bindings ? paramHeaders(bindings, message.params?.arguments) : {};
  }

  /**
   * Notes the bindings of a tools/list result and returns it without the tools whose annotations are
   * invalid; undefined when it passes unchanged (so its text may go out as received).
   */
  filterList(message: JsonRpcMessage): JsonRpcMessage | undefined {
    if (!('result' in message) || !Array.isArray(message.result.tools)) return undefined;
    const kept: unknown[] = [];
    for (const tool of message.result.tools as unknown[]) {
      const name = isObject(tool) && typeof tool.name === 'string' ? tool.name : undefined;
      const found = isObject(tool) ? headerBindings(tool.inputSchema) : { bindings: [] };
      if ('invalid' in found) {
        this.#log.warn(`left out tool "${sanitize(name ?? '?', 80)}" from tools/list: ${found.invalid}`);
        continue;
      }
      if (name !== undefined) this.#remember(name, found.bindings);
      kept.push(tool);
    }
    if (kept.length === message.result.tools.length) return undefined;
    return { ...message, result: { ...message.result, tools: kept } };
  }

  #remember(name: string, bindings: readonly HeaderBinding[]): void {
    this.#bindings.delete(name);
    if (bindings.length === 0) return;
    this.#bindings.set(name, bindings);
    if (this.#bindings.size > MAX_TOOLS) {
      const oldest = this.#bindings.keys().next().value;
      if (oldest !== undefined) this.#bindings.delete(oldest);
    }
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
