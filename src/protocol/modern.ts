// MCP 2026-07-28, the stateless era: how a request claims it (the `_meta` envelope), its error codes,
// the header rules of its Streamable HTTP transport, and how a 2025 backend's answers are made into
// what a 2026 client accepts. Pure functions: the endpoint (transports/streamable-http/modern-endpoint.ts) uses them.

import type { JsonRpcErrorObject, JsonRpcId, JsonRpcMessage, JsonRpcResponse } from './jsonrpc.ts';
import { RawJson } from './raw-json.ts';

/** The stateless revisions the gateway serves, newest first. */
export const MODERN_PROTOCOL_VERSIONS = ['2026-07-28'] as const;

/** The reserved `_meta` keys of the 2026 envelope and of results. */
export const Meta = {
  protocolVersion: 'io.modelcontextprotocol/protocolVersion',
  clientCapabilities: 'io.modelcontextprotocol/clientCapabilities',
  clientInfo: 'io.modelcontextprotocol/clientInfo',
  logLevel: 'io.modelcontextprotocol/logLevel',
  serverInfo: 'io.modelcontextprotocol/serverInfo',
  subscriptionId: 'io.modelcontextprotocol/subscriptionId',
} as const;

const RESERVED_META_PREFIX = 'io.modelcontextprotocol/';

/** The error codes 2026-07-28 defines besides JSON-RPC's. */
export const ModernError = {
  /** A required `Mcp-*` header is missing or differs from the body. */
  HeaderMismatch: -32020,
  /** The request needs a capability its `clientCapabilities` does not declare. */
  MissingCapability: -32021,
  /** The protocol version is not one the server speaks. */
  UnsupportedVersion: -32022,
} as const;

/** Methods a 2026 client may send that the gateway forwards to the backend. */
export const FORWARDED_METHODS: ReadonlySet<string> = new Set([
  'tools/list',
  'tools/call',
  'prompts/list',
  'prompts/get',
  'resources/list',
  'resources/read',
  'resources/templates/list',
  'completion/complete',
]);

/** Results a client may cache: they carry `ttlMs` and `cacheScope` (spec server/utilities/caching). */
const CACHEABLE_METHODS: ReadonlySet<string> = new Set([
  'server/discover',
  'tools/list',
  'prompts/list',
  'resources/list',
  'resources/templates/list',
  'resources/read',
]);

/** The methods whose `Mcp-Name` header names a tool, prompt or resource, and the param it mirrors. */
const NAMED_PARAM: Readonly<Record<string, string>> = {
  'tools/call': 'name',
  'prompts/get': 'name',
  'resources/read': 'uri',
};

/** The three methods that may answer `input_required` (MRTR). */
export const INPUT_METHODS: ReadonlySet<string> = new Set(Object.keys(NAMED_PARAM));

/** The server→client requests a 2026 client answers through `inputResponses`, and the capability each needs. */
export const INPUT_REQUEST_CAPABILITY: Readonly<Record<string, string>> = {
  'elicitation/create': 'elicitation',
  'sampling/createMessage': 'sampling',
  'roots/list': 'roots',
};

/** What the envelope of one 2026 request says. */
export interface Envelope {
  version: string;
  capabilities: Record<string, unknown>;
  clientInfo?: { name?: unknown; version?: unknown };
  logLevel?: string;
}

/** The protocol version a message claims in its `_meta` envelope, if it claims one (a 2026 request or notification). */
export function claimedVersion(message: JsonRpcMessage): string | undefined {
  const meta = metaOf(message);
  const version = meta?.[Meta.protocolVersion];
  return typeof version === 'string' ? version : undefined;
}

/** The envelope of a message that claims a version, or why it is malformed (answered 400 `-32602`). */
export function envelopeOf(message: JsonRpcMessage): Envelope | string {
  const meta = metaOf(message) ?? {};
  const version = meta[Meta.protocolVersion];
  const capabilities = meta[Meta.clientCapabilities];
  if (typeof version !== 'string') return `_meta["${Meta.protocolVersion}"] must be a string`;
  if (!isObject(capabilities)) return `_meta["${Meta.clientCapabilities}"] is required and must be an object`;
  const info = meta[Meta.clientInfo];
  const level = meta[Meta.logLevel];
  return {
    version,
    capabilities,
    ...(isObject(info) ? { clientInfo: info } : {}),
    ...(typeof level === 'string' ? { logLevel: level } : {}),
  };
}

export function isModernVersion(version: string | undefined): boolean {
  return version !== undefined && (MODERN_PROTOCOL_VERSIONS as readonly string[]).includes(version);
}

/**
 * Whether an `MCP-Protocol-Version` header names the stateless era: a version the gateway serves
 * that way, or any later date (which only a 2026-or-newer client sends).
 */
export function isModernHeader(version: string | undefined): boolean {
  return version !== undefined && version >= '2026-07-28' && /^\d{4}-\d{2}-\d{2}$/.test(version);
}

/** The name a request's `Mcp-Name` header must carry (tools/call's tool, prompts/get's prompt, resources/read's URI). */
export function requestName(method: string, params: Record<string, unknown> | undefined): string | undefined {
  const param = NAMED_PARAM[method];
  if (param === undefined) return undefined;
  const value = params?.[param];
  return typeof value === 'string' ? value : undefined;
}

/** Whether `method` must carry an `Mcp-Name` header. */
export function needsName(method: string): boolean {
  return NAMED_PARAM[method] !== undefined;
}

/** An `Mcp-Name` header's value, decoded from the `=?base64?…?=` form the spec uses for names headers cannot carry. */
export function decodeHeaderValue(value: string): string {
  const match = /^=\?base64\?([A-Za-z0-9+/]*={0,2})\?=$/.exec(value);
  return match ? Buffer.from(match[1] as string, 'base64').toString('utf8') : value;
}

/** `params` without the reserved `io.modelcontextprotocol/*` keys of its `_meta` (a 2025 backend never sees them). */
export function withoutEnvelope(params: Record<string, unknown> | undefined): Record<string, unknown> {
  const meta = params?._meta;
  if (!isObject(meta)) return { ...params };
  const kept: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(meta))
    if (!key.startsWith(RESERVED_META_PREFIX)) kept[key] = value;
  const { _meta, ...rest } = params ?? {};
  return Object.keys(kept).length === 0 ? rest : { ...rest, _meta: kept };
}

/**
 * A 2025 backend's result as a 2026 client must see it: `resultType`, cache hints where the method is
 * cacheable, the server named in `_meta`, and no 2025-only task fields. A result passed through as
 * bytes (a large one) gets the first two without being parsed.
 */
export function modernResult(
  method: string,
  result: Record<string, unknown>,
  serverInfo: unknown,
): Record<string, unknown> {
  const cache = CACHEABLE_METHODS.has(method) ? { ttlMs: 0, cacheScope: 'private' } : {};
  if (result instanceof RawJson) return withLeadingFields(result, { resultType: 'complete', ...cache });
  const meta = isObject(result._meta) ? result._meta : {};
  const translated: Record<string, unknown> = {
    ...result,
    resultType: typeof result.resultType === 'string' ? result.resultType : 'complete',
    ...cache,
    _meta: serverInfo === undefined ? meta : { ...meta, [Meta.serverInfo]: serverInfo },
  };
  if (method === 'tools/list' && Array.isArray(result.tools)) translated.tools = modernTools(result.tools);
  return translated;
}

/** Tools without the 2025 `execution` field; a tool that can run only as a task is hidden (2026 has no tasks). */
function modernTools(tools: unknown[]): unknown[] {
  const kept: unknown[] = [];
  for (const tool of tools) {
    if (!isObject(tool)) continue;
    const { execution, ...rest } = tool;
    if (isObject(execution) && execution.taskSupport === 'required') continue;
    kept.push(rest);
  }
  return kept;
}

/**
 * A 2025 error as a 2026 client may see it: `-32002` (resource not found, and the gateway's own
 * "session ended") becomes `-32602`; codes 2026 reserves but does not define become `-32603` with the
 * original kept in `data`.
 */
export function modernError(error: JsonRpcErrorObject): JsonRpcErrorObject {
  if (error.code === -32002) return { ...error, code: -32602 };
  const defined = (Object.values(ModernError) as number[]).includes(error.code);
  if (error.code <= -32020 && error.code >= -32099 && !defined)
    return { code: -32603, message: error.message, data: { code: error.code, data: error.data } };
  return error;
}

/** The HTTP status a 2026 error answer carries: 404 for an unknown method, 400 for a missing capability, else 200. */
export function statusForError(code: number): number {
  if (code === -32601) return 404;
  if (code === ModernError.MissingCapability) return 400;
  return 200;
}

/** A response in the 2026 shapes, for a request of `method`. */
export function modernResponse(
  method: string,
  response: JsonRpcResponse,
  serverInfo: unknown,
): JsonRpcResponse {
  if ('error' in response) return { jsonrpc: '2.0', id: response.id, error: modernError(response.error) };
  return { jsonrpc: '2.0', id: response.id, result: modernResult(method, response.result, serverInfo) };
}

/** Whether a 2026 request's `clientCapabilities` declares what a server→client request needs. */
export function declares(capabilities: Record<string, unknown>, method: string, params: unknown): boolean {
  const name = INPUT_REQUEST_CAPABILITY[method];
  if (name === undefined) return false;
  const declared = capabilities[name];
  if (!isObject(declared)) return false;
  if (method === 'elicitation/create' && isObject(params) && params.mode === 'url')
    return isObject(declared.url);
  return true;
}

/** What a missing capability error names in `data.requiredCapabilities` (an object, as the spec has it). */
export function requiredCapabilities(method: string, params: unknown): Record<string, unknown> {
  const name = INPUT_REQUEST_CAPABILITY[method] ?? method;
  if (method === 'elicitation/create' && isObject(params) && params.mode === 'url')
    return { elicitation: { url: {} } };
  return { [name]: {} };
}

export function errorObject(
  id: JsonRpcId | null,
  code: number,
  message: string,
  data?: unknown,
): JsonRpcResponse {
  return { jsonrpc: '2.0', id, error: data === undefined ? { code, message } : { code, message, data } };
}

/** The `requestState` a 2026-07-28 retry carries (the handle of its parked call), if it is a string. */
export function requestStateOf(message: JsonRpcMessage): string | undefined {
  const state = (message as { params?: { requestState?: unknown } }).params?.requestState;
  return typeof state === 'string' ? state : undefined;
}

/**
 * The answer to a retry whose `requestState` names no parked call (expired, used, another user's or
 * call's, or parked on a replica that is gone): the client calls again without it.
 */
export function unknownRequestState(id: JsonRpcId | null): JsonRpcResponse {
  return errorObject(
    id,
    -32602,
    'requestState is expired, already used or not this call’s; call again without it',
  );
}

function metaOf(message: JsonRpcMessage): Record<string, unknown> | undefined {
  const params = (message as { params?: unknown }).params;
  const meta = isObject(params) ? params._meta : undefined;
  return isObject(meta) ? meta : undefined;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** A passed-through result with fields written in front of its own (a large result is never parsed). */
function withLeadingFields(raw: RawJson, fields: Record<string, unknown>): RawJson {
  const [first, ...rest] = raw.parts;
  if (!first) return raw;
  const brace = first.indexOf(0x7b);
  const lead = JSON.stringify(fields).slice(0, -1);
  return new RawJson([Buffer.from(`${lead},`), first.subarray(brace + 1), ...rest]);
}
