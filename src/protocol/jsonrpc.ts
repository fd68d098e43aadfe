// JSON-RPC 2.0 wire types and the checks every hop applies to a message before routing it.
// Nothing here knows about HTTP or processes; both sides of the gateway share these.

export type JsonRpcId = string | number;

export interface JsonRpcRequest {
  jsonrpc: '2.0';
  id: JsonRpcId;
  method: string;
  params?: Record<string, unknown>;
}

export interface JsonRpcNotification {
  jsonrpc: '2.0';
  method: string;
  params?: Record<string, unknown>;
}

export interface JsonRpcErrorObject {
  code: number;
  message: string;
  data?: unknown;
}

export interface JsonRpcResultResponse {
  jsonrpc: '2.0';
  id: JsonRpcId;
  result: Record<string, unknown>;
}

export interface JsonRpcErrorResponse {
  jsonrpc: '2.0';
  id: JsonRpcId | null;
  error: JsonRpcErrorObject;
}

export type JsonRpcResponse = JsonRpcResultResponse | JsonRpcErrorResponse;
export type JsonRpcMessage = JsonRpcRequest | JsonRpcNotification | JsonRpcResponse;

/** Standard JSON-RPC codes plus the implementation-defined ones mcp-relay answers with. */
export const ErrorCode = {
  ParseError: -32700,
  InvalidRequest: -32600,
  MethodNotFound: -32601,
  InvalidParams: -32602,
  InternalError: -32603,
  /** The backend process exited or could not be started. */
  BackendUnavailable: -32000,
  /** The request was not answered within the server's requestTimeout. */
  RequestTimeout: -32001,
  /** The session is unknown, ended, or belongs to someone else. */
  SessionNotFound: -32002,
  /** The gateway refused the request (authentication, limits, policy). */
  Refused: -32003,
} as const;

export function isRequest(message: JsonRpcMessage): message is JsonRpcRequest {
  return 'method' in message && 'id' in message;
}

export function isNotification(message: JsonRpcMessage): message is JsonRpcNotification {
  return 'method' in message && !('id' in message);
}

export function isResponse(message: JsonRpcMessage): message is JsonRpcResponse {
  return !('method' in message);
}

export function errorResponse(
  id: JsonRpcId | null,
  code: number,
  message: string,
  data?: unknown,
): JsonRpcErrorResponse {
  const error: JsonRpcErrorObject = data === undefined ? { code, message } : { code, message, data };
  return { jsonrpc: '2.0', id, error };
}

/** Why a parsed value is not a JSON-RPC message; `id` is echoed when the value carried a usable one. */
export interface InvalidMessage {
  reason: string;
  id: JsonRpcId | null;
}

function isValidId(value: unknown): value is JsonRpcId {
  return (
    (typeof value === 'string' && value.length <= 512) ||
    (typeof value === 'number' && Number.isSafeInteger(value))
  );
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Checks the JSON-RPC 2.0 envelope of one already-parsed value. Returns the message or the reason
 * it is not one. Params must be an object (MCP never uses positional params).
 */
export function validateMessage(value: unknown): JsonRpcMessage | InvalidMessage {
  if (!isPlainObject(value)) return { reason: 'a JSON-RPC message must be a JSON object', id: null };
  const id = 'id' in value && isValidId(value.id) ? value.id : null;
  if (value.jsonrpc !== '2.0') return { reason: 'jsonrpc must be "2.0"', id };
  if ('id' in value && !isValidId(value.id) && !('error' in value && value.id === null)) {
    return { reason: 'id must be a string or an integer', id: null };
  }
  if ('method' in value) {
    if (typeof value.method !== 'string' || value.method.length === 0 || value.method.length > 256) {
      return { reason: 'method must be a non-empty string', id };
    }
    if ('params' in value && value.params !== undefined && !isPlainObject(value.params)) {
      return { reason: 'params must be an object', id };
    }
    if ('result' in value || 'error' in value)
      return { reason: 'a request cannot carry result or error', id };
    return value as unknown as JsonRpcRequest | JsonRpcNotification;
  }
  if (!('id' in value)) return { reason: 'a message needs a method or an id', id: null };
  const hasResult = 'result' in value;
  const hasError = 'error' in value;
  if (hasResult === hasError) return { reason: 'a response carries exactly one of result and error', id };
  if (hasError) {
    const error = value.error;
    if (!isPlainObject(error) || typeof error.code !== 'number' || typeof error.message !== 'string') {
      return { reason: 'error must have a numeric code and a string message', id };
    }
  } else if (!isPlainObject(value.result)) {
    return { reason: 'result must be an object', id };
  }
  return value as unknown as JsonRpcResponse;
}

export function isInvalid(value: JsonRpcMessage | InvalidMessage): value is InvalidMessage {
  return 'reason' in value && !('jsonrpc' in value);
}
