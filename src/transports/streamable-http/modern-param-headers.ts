// SEP-2243 at the gateway: a tool argument whose `inputSchema` property carries `x-mcp-header` is
// mirrored by a 2026-07-28 client into an `Mcp-Param-{Name}` header, and any server that processes
// the body must check the two agree (400, -32020), so intermediaries may act on the header alone. A
// 2025 backend knows nothing of this; the gateway reads the annotations from the backend's tools/list.

import type { IncomingMessage } from 'node:http';
import { header } from './request-headers.ts';

/** The mirrored arguments of one tool: the argument's name and the header (lower case) it travels in. */
export type ParamHeaders = ReadonlyArray<{ param: string; header: string }>;

/** Each listed tool's mirrored arguments (an empty list for a tool with none). */
export function paramHeadersOf(result: unknown): Map<string, ParamHeaders> {
  const headers = new Map<string, ParamHeaders>();
  const tools = isObject(result) && Array.isArray(result.tools) ? result.tools : [];
  for (const tool of tools) {
    if (!isObject(tool) || typeof tool.name !== 'string') continue;
    const schema = tool.inputSchema;
    const properties = isObject(schema) && isObject(schema.properties) ? schema.properties : {};
    const mirrored: Array<{ param: string; header: string }> = [];
    for (const [param, property] of Object.entries(properties)) {
      const name = isObject(property) ? property['x-mcp-header'] : undefined;
      if (typeof name === 'string' && name !== '')
        mirrored.push({ param, header: `mcp-param-${name.toLowerCase()}` });
    }
    headers.set(tool.name, mirrored);
  }
  return headers;
}

/**
 * Why a tools/call's `Mcp-Param-*` headers disagree with its arguments, or undefined when they agree:
 * an argument present in the body needs its header, equal after `=?base64?…?=` decoding (numbers and
 * booleans compared as the body's value written out); a header for an argument the body lacks is a
 * mismatch too.
 */
export function paramHeaderMismatch(
  req: IncomingMessage,
  mirrored: ParamHeaders,
  args: unknown,
): string | undefined {
  for (const { param, header: name } of mirrored) {
    const value = isObject(args) ? args[param] : undefined;
    const sent = header(req, name);
    if (value === undefined || value === null) {
      if (sent !== undefined) return `the ${name} header names an argument the request does not have`;
      continue;
    }
    if (typeof value === 'object') continue;
    if (sent === undefined) return `the ${name} header is required for this tool`;
    const decoded = decodeParam(sent);
    if (decoded === undefined) return `the ${name} header is not valid base64`;
    if (decoded !== String(value)) return `the ${name} header does not match the request’s arguments`;
  }
  return undefined;
}

/** A header's value: literal, or the `=?base64?…?=` form decoded (undefined when its base64 is invalid). */
function decodeParam(value: string): string | undefined {
  const wrapped = /^=\?base64\?(.*)\?=$/.exec(value);
  if (!wrapped) return value.trim();
  const encoded = wrapped[1] as string;
  if (encoded.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(encoded)) return undefined;
  return Buffer.from(encoded, 'base64').toString('utf8');
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
