// Where tool, prompt and resource names sit in MCP messages: which item a request names (so a hidden
// one can be refused before it reaches the server) and which list results to filter for a session.

import type { JsonRpcNotification, JsonRpcRequest, JsonRpcResponse } from '../protocol/jsonrpc.ts';
import type { ItemKind, ItemVisibility } from './policy.ts';

/** A list method → the kind it lists, the result's array key, and the key naming each entry. */
const LISTS: Record<string, { kind: ItemKind; array: string; key: string }> = {
  'tools/list': { kind: 'tool', array: 'tools', key: 'name' },
  'prompts/list': { kind: 'prompt', array: 'prompts', key: 'name' },
  'resources/list': { kind: 'resource', array: 'resources', key: 'uri' },
  // A template is matched by its URI template text, e.g. "file:///{path}" by "file:///*".
  'resources/templates/list': { kind: 'resource', array: 'resourceTemplates', key: 'uriTemplate' },
};

/** A request method → the kind of item it uses and the params key naming it. */
const USES: Record<string, { kind: ItemKind; key: string }> = {
  'tools/call': { kind: 'tool', key: 'name' },
  'prompts/get': { kind: 'prompt', key: 'name' },
  'resources/read': { kind: 'resource', key: 'uri' },
  'resources/subscribe': { kind: 'resource', key: 'uri' },
};

export interface NamedItem {
  kind: ItemKind;
  name: string;
}

/** Whether responses to `method` are lists this module filters. */
export function isFilteredList(method: string): boolean {
  return method in LISTS;
}

/** The item a request uses (tools/call's tool, prompts/get's prompt, a read's URI, a completion's ref). */
export function itemOfRequest(request: JsonRpcRequest): NamedItem | undefined {
  const params = request.params ?? {};
  const use = USES[request.method];
  if (use) {
    const name = params[use.key];
    return typeof name === 'string' ? { kind: use.kind, name } : undefined;
  }
  if (request.method === 'completion/complete') {
    const ref = params.ref as { type?: unknown; name?: unknown; uri?: unknown } | undefined;
    if (ref?.type === 'ref/prompt' && typeof ref.name === 'string') return { kind: 'prompt', name: ref.name };
    if (ref?.type === 'ref/resource' && typeof ref.uri === 'string')
      return { kind: 'resource', name: ref.uri };
  }
  return undefined;
}

/**
 * Whether a request that names an item names it with something other than a string (e.g. a tools/call
 * with `"name": ["secret"]`). Such a name cannot be checked against the policy, and a lenient server
 * might still turn it into the hidden item's name, so with filters in place it is refused.
 */
export function namesItemBadly(request: JsonRpcRequest): boolean {
  const params = request.params ?? {};
  const use = USES[request.method];
  if (use) return typeof params[use.key] !== 'string';
  if (request.method === 'completion/complete') {
    const ref = params.ref as { type?: unknown; name?: unknown; uri?: unknown } | undefined;
    if (ref?.type === 'ref/prompt') return typeof ref.name !== 'string';
    if (ref?.type === 'ref/resource') return typeof ref.uri !== 'string';
  }
  return false;
}

/** The list response with the entries the session may not see removed (each page on its own). */
export function filterListResponse(
  method: string,
  response: JsonRpcResponse,
  visibility: ItemVisibility,
): JsonRpcResponse {
  const list = LISTS[method];
  if (!list || !('result' in response)) return response;
  const entries = response.result[list.array];
  if (!Array.isArray(entries)) return response;
  const kept = entries.filter((entry: unknown) => {
    const name = (entry as Record<string, unknown> | null)?.[list.key];
    // An entry without a usable name cannot be matched against the policy: hide it rather than guess.
    return typeof name === 'string' && visibility.visible(list.kind, name);
  });
  if (kept.length === entries.length) return response;
  return { ...response, result: { ...response.result, [list.array]: kept } };
}

/** Whether a server notification may reach the session (resources/updated of a hidden resource may not). */
export function notificationVisible(message: JsonRpcNotification, visibility: ItemVisibility): boolean {
  if (message.method !== 'notifications/resources/updated') return true;
  const uri = message.params?.uri;
  return typeof uri !== 'string' || visibility.visible('resource', uri);
}

/** The one-line refusal for a hidden item; the name is client input, so it is quoted and bounded. */
export function hiddenItemMessage(item: NamedItem): string {
  const shown = JSON.stringify(item.name.length > 200 ? `${item.name.slice(0, 200)}…` : item.name);
  return `${item.kind} ${shown} is not available: the gateway's policy does not allow it for this user`;
}
