// Where MCP puts things inside JSON-RPC messages: request ids as map keys, progress tokens in
// `_meta`, the id a cancellation names, log levels, method names. One home, so no caller re-checks types.

import type { JsonRpcId } from './jsonrpc.ts';

/** A progress token: the same two types as a request id. */
export type ProgressToken = string | number;

/** Methods the gateway itself reads or answers. */
export const Method = {
  initialize: 'initialize',
  initialized: 'notifications/initialized',
  ping: 'ping',
  cancelled: 'notifications/cancelled',
  progress: 'notifications/progress',
  message: 'notifications/message',
  setLogLevel: 'logging/setLevel',
  subscribe: 'resources/subscribe',
  unsubscribe: 'resources/unsubscribe',
  resourceUpdated: 'notifications/resources/updated',
  taskStatus: 'notifications/tasks/status',
  toolsListChanged: 'notifications/tools/list_changed',
  resourcesListChanged: 'notifications/resources/list_changed',
  promptsListChanged: 'notifications/prompts/list_changed',
} as const;

/** Whether `value` may be a request id (or a progress token): a string or a number. */
export function isRequestId(value: unknown): value is JsonRpcId {
  return typeof value === 'string' || typeof value === 'number';
}

/** Map key that keeps `1` and `"1"` apart. */
export function idKey(id: JsonRpcId): string {
  return typeof id === 'number' ? `n${id}` : `s${id}`;
}

/** The progress token a request asks progress under (`params._meta.progressToken`), if valid. */
export function progressTokenOf(params: Record<string, unknown> | undefined): ProgressToken | undefined {
  const token = (params?._meta as { progressToken?: unknown } | undefined)?.progressToken;
  return isRequestId(token) ? token : undefined;
}

/** `params` with its `_meta.progressToken` replaced, the rest of `_meta` kept. */
export function withProgressToken(
  params: Record<string, unknown> | undefined,
  token: ProgressToken,
): Record<string, unknown> {
  return {
    ...params,
    _meta: { ...(params?._meta as Record<string, unknown> | undefined), progressToken: token },
  };
}

/** The request a `notifications/cancelled` names (`params.requestId`), if valid. */
export function cancelledRequestId(params: Record<string, unknown> | undefined): JsonRpcId | undefined {
  const requestId = params?.requestId;
  return isRequestId(requestId) ? requestId : undefined;
}

/** RFC 5424 severities as MCP names them, most verbose first. */
export const LOG_LEVELS = ['debug', 'info', 'notice', 'warning', 'error', 'critical', 'alert', 'emergency'];

/** A log level's place in `LOG_LEVELS` (0 is the most verbose); undefined for anything else. */
export function logLevelRank(level: unknown): number | undefined {
  const rank = typeof level === 'string' ? LOG_LEVELS.indexOf(level) : -1;
  return rank === -1 ? undefined : rank;
}
