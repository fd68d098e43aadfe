// The legacy HTTP+SSE transport (MCP 2024-11-05) for old clients: a GET opens a session and its one
// event stream, whose first event names the URL to POST messages to; each POST is answered 202 and its
// reply goes on the stream. Sessions are made by the same SessionManager as Streamable HTTP's (policy,
// limits, caps, audit), bound to the caller's credential, and end when their stream's connection does.
// In a cluster the GET is placed as an initialize is (a per-user or single-copy backend's owner serves
// it, its stream piped through the hop), and a POST naming another replica's session is forwarded there.

import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ClusterRouting } from '../../cluster/routing.ts';
import type { RelayConfig } from '../../config/schema.ts';
import { errorText } from '../../errors.ts';
import { readBody } from '../../http/body.ts';
import { parseJsonBody, refuseNonJsonBody } from '../../http/json-body.ts';
import { sendRpcError } from '../../http/replies.ts';
import type { Logger } from '../../log.ts';
import {
  ErrorCode,
  isInvalid,
  isRequest,
  type JsonRpcMessage,
  type JsonRpcRequest,
  validateMessage,
} from '../../protocol/jsonrpc.ts';
import { Method } from '../../protocol/mcp.ts';
import type { SessionManager } from '../../sessions/manager.ts';
import type { Session } from '../../sessions/session.ts';
import type { Identity } from '../../sessions/types.ts';
import { ALREADY_INITIALIZED, type NoSession, sessionRefusal } from '../session-refusal.ts';
import { accepts } from '../streamable-http/request-headers.ts';
import { messagesUrl, sessionIdOf } from './paths.ts';
import { SessionStream } from './session-stream.ts';

/** The SSE `retry:` a stream ends with when the gateway shuts down (as Streamable HTTP's streams). */
const SHUTDOWN_RETRY_MS = 5_000;

/** A legacy session: its stream, and whether its client has initialized it (only once per session). */
interface LegacySession {
  stream: SessionStream;
  initialized: boolean;
}

export class LegacySseEndpoint {
  readonly #config: RelayConfig;
  readonly #sessions: SessionManager;
  readonly #log: Logger;
  /** publicUrl's own path ('' without one), before the paths the `endpoint` event names. */
  readonly #base: string;
  /** Only these sessions take legacy POSTs: a Streamable HTTP session's id is unknown here. */
  readonly #open = new Map<string, LegacySession>();
  readonly #routing: ClusterRouting | undefined;

  constructor(config: RelayConfig, sessions: SessionManager, log: Logger, routing?: ClusterRouting) {
    this.#config = config;
    this.#sessions = sessions;
    this.#log = log;
    this.#routing = routing;
    this.#base = config.publicUrl ? new URL(config.publicUrl).pathname.replace(/\/+$/, '') : '';
  }

  /** The stream URL (`GET …/sse`, or a GET of the Streamable HTTP URL with no session). */
  async open(req: IncomingMessage, res: ServerResponse, server: string, identity: Identity): Promise<void> {
    if (req.method !== 'GET') {
      sendRpcError(res, 405, ErrorCode.InvalidRequest, 'method not allowed; GET opens the event stream', {
        headers: { allow: 'GET' },
      });
      return;
    }
    if (!accepts(req, 'text/event-stream')) {
      sendRpcError(res, 406, ErrorCode.InvalidRequest, 'Accept must list text/event-stream');
      return;
    }
    if (await this.#routing?.placeElsewhere(req, res, server, identity.user)) return;
    let created: Awaited<ReturnType<SessionManager['create']>>;
    try {
      created = await this.#sessions.create(server, identity);
    } catch (error) {
      this.#log.error({ err: errorText(error), server }, 'could not start a session');
      this.#unavailable(res, 'the session could not be started; see the gateway log');
      return;
    }
    if (!created.ok) {
      this.#refuse(res, server, created);
      return;
    }
    const { session } = created;
    // The client may have left while the session was being made: it ends at once, having never streamed.
    if (res.destroyed || req.socket.destroyed) {
      await session.close('legacy SSE client left before its stream opened');
      return;
    }
    const stream = new SessionStream({
      keepAliveMs: this.#config.sse.keepAlive,
      bufferBytes: this.#config.limits.streamBufferBytes,
      onoverflow: (held) =>
        this.#log.warn(
          { session: session.id, held },
          'legacy SSE client does not read; stream closed and its session ended (limits.streamBufferBytes)',
        ),
      onclose: () => void session.close('legacy SSE stream closed'),
    });
    this.#open.set(session.id, { stream, initialized: false });
    session.onClose(() => {
      this.#open.delete(session.id);
      stream.close(this.#sessions.draining ? SHUTDOWN_RETRY_MS : undefined);
    });
    stream.open(res, messagesUrl(this.#base, server, session.id));
    // Everything the session has for the client that is not a reply (and what queued before) goes here too.
    session.setStandalone(stream);
  }

  /** `POST …/messages?sessionId=…`: one JSON-RPC message of an open legacy session, answered 202. */
  async post(req: IncomingMessage, res: ServerResponse, server: string, identity: Identity): Promise<void> {
    if (req.method !== 'POST') {
      sendRpcError(res, 405, ErrorCode.InvalidRequest, 'method not allowed; POST messages here', {
        headers: { allow: 'POST' },
      });
      return;
    }
    if (refuseNonJsonBody(req, res)) return;
    // The session is looked up before the body is read: a stranger's POST costs no body buffer.
    const found = this.#find(req, server, identity);
    if (!found) {
      // Another replica's session (its id names it): the body streams through to that replica.
      const id = sessionIdOf(req);
      if (id !== undefined && (await this.#routing?.forwardSession(req, res, id, req))) return;
      sendRpcError(res, 404, ErrorCode.SessionNotFound, 'session not found; open a new event stream');
      return;
    }
    const { session, legacy } = found;
    const { maxBodyBytes } = this.#config.limits;
    const body = await readBody(req, maxBodyBytes);
    if (!body.ok) {
      if (body.reason === 'too-large')
        sendRpcError(res, 413, ErrorCode.InvalidRequest, `body exceeds ${maxBodyBytes} bytes`);
      return;
    }
    // What cannot be read as one JSON-RPC message has no id to answer on the stream: the POST says so (400).
    const json = parseJsonBody(body.body);
    if (!json.ok) {
      sendRpcError(res, 400, json.code, json.message);
      return;
    }
    if (Array.isArray(json.value)) {
      sendRpcError(
        res,
        400,
        ErrorCode.InvalidRequest,
        'batches are not supported; send one JSON-RPC message per POST',
      );
      return;
    }
    const message = validateMessage(json.value);
    if (isInvalid(message)) {
      sendRpcError(res, 400, ErrorCode.InvalidRequest, `invalid JSON-RPC message: ${message.reason}`, {
        id: message.id,
      });
      return;
    }
    if (isRequest(message)) {
      if (message.method === Method.initialize) {
        // One initialize per session, as with Streamable HTTP (where an initialize makes a new session).
        if (legacy.initialized) {
          sendRpcError(res, 400, ErrorCode.InvalidRequest, ALREADY_INITIALIZED, {
            id: message.id,
          });
          return;
        }
        legacy.initialized = true;
      }
      res.writeHead(202).end();
      session.request(message, legacy.stream);
      return;
    }
    const refused = session.post(message as Exclude<JsonRpcMessage, JsonRpcRequest>);
    if (refused !== undefined) {
      sendRpcError(res, 400, ErrorCode.InvalidRequest, refused);
      return;
    }
    res.writeHead(202).end();
  }

  /** The legacy session this POST names, opened with the caller's own credential for this server. */
  #find(
    req: IncomingMessage,
    server: string,
    identity: Identity,
  ): { session: Session; legacy: LegacySession } | undefined {
    const id = sessionIdOf(req);
    if (id === undefined) return undefined;
    const legacy = this.#open.get(id);
    const session = legacy && this.#sessions.get(id, identity, server);
    return legacy && session ? { session, legacy } : undefined;
  }

  #refuse(res: ServerResponse, server: string, created: NoSession): void {
    if (created.reason === 'capacity')
      this.#log.error({ err: created.message, server }, 'could not start a session');
    const refusal = sessionRefusal(created);
    const close: Record<string, string> = created.reason === 'shutting-down' ? { connection: 'close' } : {};
    sendRpcError(res, refusal.status, refusal.code, refusal.message, {
      headers: { ...refusal.headers, ...close },
    });
  }

  #unavailable(res: ServerResponse, text: string): void {
    sendRpcError(res, 503, ErrorCode.BackendUnavailable, text, { headers: { 'retry-after': '30' } });
  }
}
