// The 2026-07-28 era as the bridge's stdio client shows it: a request whose `_meta` carries the
// protocol-version claim is modern; and the routing headers every modern POST carries, derived
// from the message itself (spec basic/transports/streamable-http.mdx, "Request headers").

import type { JsonRpcMessage, JsonRpcRequest } from '../../protocol/jsonrpc.ts';

export const PROTOCOL_VERSION_META_KEY = 'io.modelcontextprotocol/protocolVersion';
export const SUBSCRIPTION_ID_META_KEY = 'io.modelcontextprotocol/subscriptionId';

const SENTINEL_PREFIX = '=?base64?';
const SENTINEL_SUFFIX = '?=';
/** Printable ASCII, space included; anything else in a header value goes base64. */
const PLAIN_HEADER_VALUE = /^[\x20-\x7e]+$/;
/** A header value longer than this is left out, as the spec tells clients to (and servers cap headers). */
const MAX_HEADER_VALUE_CHARS = 8_192;

/** The protocol version a message claims in `params._meta`, or undefined for a 2025-era message. */
export function claimedVersion(message: JsonRpcMessage): string | undefined {
  if (!('method' in message)) return undefined;
  const meta = message.params?._meta;
  if (typeof meta !== 'object' || meta === null || Array.isArray(meta)) return undefined;
  const version = (meta as Record<string, unknown>)[PROTOCOL_VERSION_META_KEY];
  return typeof version === 'string' && version !== '' ? version : undefined;
}

/** The parameter `Mcp-Name` mirrors for each method that has one. */
const NAME_PARAMS: Readonly<Record<string, string>> = {
  'tools/call': 'name',
  'prompts/get': 'name',
  'resources/read': 'uri',
};

/**
 * `MCP-Protocol-Version`, `Mcp-Method` and, where the method names a target, `Mcp-Name`. The version
 * is the message's own claim: the server checks the header against the body, so they must agree.
 */
export function routingHeaders(message: JsonRpcMessage, version: string): Record<string, string> {
  const headers: Record<string, string> = { 'mcp-protocol-version': headerValue(version) ?? version };
  if (!('method' in message)) return headers;
  headers['mcp-method'] = headerValue(message.method) ?? message.method;
  const param = NAME_PARAMS[message.method];
  const name = param === undefined ? undefined : message.params?.[param];
  if (typeof name === 'string') {
    const value = headerValue(name);
    if (value !== undefined) headers['mcp-name'] = value;
  }
  return headers;
}

/**
 * A value as an HTTP header carries it: as it is when it is plain printable ASCII with no space at
 * either end and does not look like the sentinel, else `=?base64?<UTF-8 bytes>?=`; undefined when
 * even that is too long to send.
 */
export function headerValue(value: string): string | undefined {
  const plain =
    PLAIN_HEADER_VALUE.test(value) && value.trim() === value && !value.startsWith(SENTINEL_PREFIX);
  const encoded = plain
    ? value
    : `${SENTINEL_PREFIX}${Buffer.from(value, 'utf8').toString('base64')}${SENTINEL_SUFFIX}`;
  return encoded.length > MAX_HEADER_VALUE_CHARS ? undefined : encoded;
}

/** The request id a `subscriptions/listen` stream's notifications are tagged with, if any. */
export function subscriptionIdOf(message: JsonRpcMessage): unknown {
  if (!('method' in message)) return undefined;
  const meta = message.params?._meta;
  if (typeof meta !== 'object' || meta === null) return undefined;
  return (meta as Record<string, unknown>)[SUBSCRIPTION_ID_META_KEY];
}

export function isListen(request: JsonRpcRequest): boolean {
  return request.method === 'subscriptions/listen';
}
