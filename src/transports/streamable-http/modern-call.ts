// One 2026-07-28 client call on its way through a 2025 backend, across the HTTP requests it takes: the
// first POST, and one retry per round of input (MRTR) when the backend asks the client something
// (elicitation, sampling, roots) while it works. The backend's call stays open between rounds; the
// client sees only results, never a server→client request.

import type { ServerResponse } from 'node:http';
import { sendJson } from '../../http/replies.ts';
import type { JsonRpcId, JsonRpcMessage, JsonRpcRequest, JsonRpcResponse } from '../../protocol/jsonrpc.ts';
import { isRequest } from '../../protocol/jsonrpc.ts';
import { logLevelRank, Method, type ProgressToken } from '../../protocol/mcp.ts';
import {
  declares,
  type Envelope,
  errorObject,
  INPUT_METHODS,
  INPUT_REQUEST_CAPABILITY,
  ModernError,
  modernResponse,
  requiredCapabilities,
  statusForError,
} from '../../protocol/modern.ts';
import { encodeMessage } from '../../protocol/raw-json.ts';
import type { Refusal, ReplyTarget } from '../../sessions/types.ts';

/**
 * How long a call waits after a backend's first ask for the others it sends with it (a server that
 * awaits elicitation, sampling and roots together writes three requests at once), so the client gets
 * them in one round rather than one round each.
 */
const ASK_GATHER_MS = 20;

/** What a call needs of the endpoint that made it. */
export interface CallHost {
  /** The backend's `serverInfo`, named in every result's `_meta`. */
  readonly serverInfo: unknown;
  /** Unsent bytes an SSE reply may hold before the connection is closed as not reading. */
  readonly bufferBytes: number;
  /** Answers one of the backend's server→client requests (the session forwards it). */
  answerBackend(response: JsonRpcResponse): void;
  /** Cancels the call at the backend (`notifications/cancelled` for the gateway's id). */
  cancel(reason: string): void;
  /** Parks the call for a retry: the unguessable `requestState` that names it. */
  park(call: ModernCall): string;
  /** The call no longer waits for a retry (answered, cancelled or expired). */
  unpark(call: ModernCall): void;
}

/** One server→client request the client is asked to fulfil. */
interface InputAsk {
  backendId: JsonRpcId;
  method: string;
  params: Record<string, unknown> | undefined;
}

export class ModernCall implements ReplyTarget {
  readonly method: string;
  /** The name or URI the call is about, and a digest of its arguments: a retry must match both. */
  readonly subject: string;
  readonly #host: CallHost;
  #res: ServerResponse | undefined;
  #clientId: JsonRpcId;
  #clientToken: ProgressToken | undefined;
  /** The URI a resources/read asked for, named in a not-found error. */
  readonly #uri: string | undefined;
  #envelope: Envelope;
  #sse = false;
  /** Input requests not answered yet, by the key the client answers under. */
  readonly #asks = new Map<string, InputAsk>();
  #asked = 0;
  /** Set while the asks that arrive together are gathered into one `InputRequiredResult`. */
  #gathering: NodeJS.Timeout | undefined;
  /** The answer, kept when it came while the call waited for a retry. */
  #final: JsonRpcResponse | undefined;
  #done = false;

  constructor(
    host: CallHost,
    request: { method: string; subject: string; id: JsonRpcId; progressToken?: ProgressToken; uri?: string },
    res: ServerResponse,
    envelope: Envelope,
  ) {
    this.#host = host;
    this.method = request.method;
    this.subject = request.subject;
    this.#uri = this.method === 'resources/read' ? request.uri : undefined;
    this.#clientId = request.id;
    this.#clientToken = request.progressToken;
    this.#envelope = envelope;
    this.#attach(res);
  }

  /** Whether the call is parked: its backend call open, waiting for the client to retry with inputs. */
  get waiting(): boolean {
    return this.#res === undefined && !this.#done;
  }

  send(message: JsonRpcMessage): void {
    if (this.#done) return;
    if (isRequest(message)) {
      this.#backendAsks(message);
      return;
    }
    if (!this.#res || !('method' in message)) return;
    if (message.method === Method.progress) {
      if (this.#clientToken === undefined) return;
      this.#event({ ...message, params: { ...message.params, progressToken: this.#clientToken } });
      return;
    }
    // Logs only for a request that asked for them (its `logLevel`), at that level or above.
    if (message.method === Method.message) {
      const wanted = logLevelRank(this.#envelope.logLevel);
      const level = logLevelRank(message.params?.level);
      if (wanted !== undefined && level !== undefined && level >= wanted) this.#event(message);
    }
  }

  /** Nothing is kept for a retry on this path (its ids are the gateway's), so no text is returned. */
  finish(response: JsonRpcResponse): undefined {
    if (this.#done) return undefined;
    this.#final = response;
    if (this.#res) this.#deliverFinal();
    return undefined;
  }

  refuse(refusal: Refusal, response: JsonRpcResponse): void {
    if (this.#done) return;
    this.#done = true;
    clearTimeout(this.#gathering);
    const res = this.#res;
    if (!res || res.writableEnded || res.destroyed) return;
    if (this.#sse) {
      this.#event(this.#forClient(response));
      res.end();
      return;
    }
    const retryAfter: Record<string, string> =
      refusal.retryAfterSeconds === undefined ? {} : { 'retry-after': String(refusal.retryAfterSeconds) };
    sendJson(res, refusal.status ?? 200, this.#forClient(response), retryAfter);
  }

  /**
   * The client's retry with its inputs: each answered ask goes to the backend as the result of its
   * request, and the call carries on on this POST. Asks left unanswered are asked again.
   */
  resume(res: ServerResponse, id: JsonRpcId, envelope: Envelope, responses: Record<string, unknown>): void {
    this.#clientId = id;
    this.#envelope = envelope;
    this.#sse = false;
    for (const [key, ask] of this.#asks) {
      const answer = responses[key];
      if (answer === undefined || typeof answer !== 'object' || answer === null) continue;
      this.#asks.delete(key);
      this.#host.answerBackend({
        jsonrpc: '2.0',
        id: ask.backendId,
        result: answer as Record<string, unknown>,
      });
    }
    this.#attach(res);
    if (this.#final) this.#deliverFinal();
    else if (this.#asks.size > 0) this.#askClient();
  }

  /** The retry never came in time: the backend is told no, and the call is cancelled. */
  expire(): void {
    if (this.#done) return;
    this.#done = true;
    clearTimeout(this.#gathering);
    this.#declineAsks('the client did not retry with the input in time');
    this.#host.cancel('the 2026-07-28 client did not retry with the requested input');
  }

  #attach(res: ServerResponse): void {
    this.#res = res;
    res.once('close', () => {
      if (this.#res !== res || this.#done) return;
      // The client closed its response before the answer: that is a cancellation (2026-07-28).
      this.#res = undefined;
      if (res.writableFinished) return;
      this.#done = true;
      clearTimeout(this.#gathering);
      this.#host.unpark(this);
      this.#declineAsks('the client cancelled the call');
      this.#host.cancel('the 2026-07-28 client closed its request');
    });
  }

  /** A backend request while this call runs: one of the three MRTR asks, or refused. */
  #backendAsks(request: JsonRpcRequest): void {
    if (request.method === Method.ping) {
      this.#host.answerBackend({ jsonrpc: '2.0', id: request.id, result: {} });
      return;
    }
    if (!INPUT_METHODS.has(this.method) || INPUT_REQUEST_CAPABILITY[request.method] === undefined) {
      this.#host.answerBackend(
        errorObject(
          request.id,
          -32601,
          `${request.method.slice(0, 64)} cannot reach a 2026-07-28 client during ${this.method}`,
        ),
      );
      return;
    }
    if (!declares(this.#envelope.capabilities, request.method, request.params)) {
      this.#host.answerBackend(
        errorObject(request.id, -32601, 'the client does not declare this capability'),
      );
      const data = { requiredCapabilities: requiredCapabilities(request.method, request.params) };
      this.#final = errorObject(
        this.#clientId,
        ModernError.MissingCapability,
        'Missing required client capability',
        data,
      );
      if (this.#res) this.#deliverFinal();
      this.#host.cancel('the 2026-07-28 client lacks a capability the server asked for');
      return;
    }
    this.#asked++;
    this.#asks.set(`r${this.#asked}`, {
      backendId: request.id,
      method: request.method,
      params: request.params,
    });
    if (this.#res && !this.#gathering) {
      this.#gathering = setTimeout(() => {
        this.#gathering = undefined;
        this.#askClient();
      }, ASK_GATHER_MS);
    }
  }

  /** Ends this POST with an `InputRequiredResult` naming the open asks; the call waits for the retry. */
  #askClient(): void {
    const res = this.#res;
    if (!res || this.#done || this.#asks.size === 0) return;
    const inputRequests: Record<string, unknown> = {};
    for (const [key, ask] of this.#asks)
      inputRequests[key] = { method: ask.method, params: stripElicitationId(ask) };
    const requestState = this.#host.park(this);
    this.#res = undefined;
    this.#write(
      res,
      {
        jsonrpc: '2.0',
        id: this.#clientId,
        result: {
          resultType: 'input_required',
          inputRequests,
          requestState,
          _meta: serverMeta(this.#host.serverInfo),
        },
      },
      200,
    );
  }

  #deliverFinal(): void {
    const res = this.#res;
    const final = this.#final;
    if (!res || !final) return;
    this.#done = true;
    clearTimeout(this.#gathering);
    this.#host.unpark(this);
    const response = this.#forClient(final);
    this.#write(res, response, 'error' in response ? statusForError(response.error.code) : 200);
  }

  #forClient(response: JsonRpcResponse): JsonRpcResponse {
    const answer = modernResponse(this.method, { ...response, id: this.#clientId }, this.#host.serverInfo);
    // A resource not found names its URI in `data` (SEP-2164); 2025 servers (SDK 1.x: -32602, bare) do not.
    if (
      'error' in answer &&
      this.#uri !== undefined &&
      answer.error.code === -32602 &&
      answer.error.data === undefined
    )
      return { ...answer, error: { ...answer.error, data: { uri: this.#uri } } };
    return answer;
  }

  #declineAsks(reason: string): void {
    for (const ask of this.#asks.values()) {
      this.#host.answerBackend(
        ask.method === 'elicitation/create'
          ? { jsonrpc: '2.0', id: ask.backendId, result: { action: 'cancel' } }
          : errorObject(ask.backendId, -32603, reason),
      );
    }
    this.#asks.clear();
  }

  /** The last message of this POST: a JSON body, or the final event of its SSE stream. */
  #write(res: ServerResponse, message: JsonRpcResponse, status: number): void {
    if (res.writableEnded || res.destroyed) return;
    if (this.#sse) {
      writeEvent(res, message);
      res.end();
      return;
    }
    sendJson(res, status, message);
  }

  /** A message before the answer (progress, a log line): the reply becomes an SSE stream. */
  #event(message: JsonRpcMessage): void {
    const res = this.#res;
    if (!res || res.writableEnded || res.destroyed) return;
    if (!this.#sse) {
      this.#sse = true;
      res.writeHead(200, {
        'content-type': 'text/event-stream',
        'cache-control': 'no-cache, no-transform',
        'x-accel-buffering': 'no',
      });
    }
    if (res.writableLength > this.#host.bufferBytes) {
      // A client that does not read its stream is cut off (the call is cancelled with it), never buffered for.
      res.destroy();
      return;
    }
    writeEvent(res, message);
  }
}

function writeEvent(res: ServerResponse, message: JsonRpcMessage): void {
  const encoded = encodeMessage(message);
  if (typeof encoded === 'string') {
    res.write(`event: message\ndata: ${encoded}\n\n`);
    return;
  }
  res.cork();
  res.write('event: message\ndata: ');
  for (const part of encoded) res.write(part);
  res.write('\n\n');
  res.uncork();
}

function serverMeta(serverInfo: unknown): Record<string, unknown> {
  return serverInfo === undefined ? {} : { 'io.modelcontextprotocol/serverInfo': serverInfo };
}

/** 2026 URL-mode elicitation has no `elicitationId` (its completion notification is gone). */
function stripElicitationId(ask: InputAsk): Record<string, unknown> | undefined {
  if (ask.method !== 'elicitation/create' || !ask.params) return ask.params;
  const { elicitationId, ...rest } = ask.params;
  return rest;
}
