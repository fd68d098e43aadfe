// The Streamable HTTP endpoint of one gateway (spec 2025-11-25, also serving 2025-06-18 and 2025-03-26
// clients): header and body rules, session lookup bound to the user, and the POST/GET/DELETE semantics.

import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ClusterRouting } from '../../cluster/routing.ts';
import type { RelayConfig } from '../../config/schema.ts';
import { errorText } from '../../errors.ts';
import { readBody } from '../../http/body.ts';
import { parseJsonBody, refuseNonJsonBody } from '../../http/json-body.ts';
import { sendJson, sendRpcError } from '../../http/replies.ts';
import type { Logger } from '../../log.ts';
import {
  ErrorCode,
  isInvalid,
  isRequest,
  isResponse,
  type JsonRpcMessage,
  type JsonRpcRequest,
  validateMessage,
} from '../../protocol/jsonrpc.ts';
import {
  claimedVersion,
  isModernHeader,
  Meta,
  requestStateOf,
  unknownRequestState,
} from '../../protocol/modern.ts';
import { isSupportedProtocolVersion } from '../../protocol/versions.ts';
import type { SessionManager } from '../../sessions/manager.ts';
import type { Session } from '../../sessions/session.ts';
import type { Identity, SessionClient } from '../../sessions/types.ts';
import { sanitize } from '../../util/sanitize.ts';
import { sessionRefusal } from '../session-refusal.ts';
import { EventStream } from './event-stream.ts';
import { ModernEndpoint } from './modern-endpoint.ts';
import { PostReply } from './post-reply.ts';
import { ReplayLog } from './replay-log.ts';
import {
  accepts,
  header,
  KEEP_ALIVE_HEADER,
  RETRIES_HEADER,
  SESSION_HEADER,
  VERSION_HEADER,
} from './request-headers.ts';

/** The SSE `retry:` streams end with when the gateway shuts down, matching the 503s' Retry-After. */
const SHUTDOWN_RETRY_MS = 5_000;
/** Detached streams kept per session for resumption before the oldest is forgotten. */
const MAX_STREAMS_PER_SESSION = 64;

/** A session's resumable SSE streams by id, and the replay log they share. */
interface SessionStreams {
  streams: Map<string, EventStream>;
  replay: ReplayLog;
}

export class McpEndpoint {
  readonly #config: RelayConfig;
  readonly #sessions: SessionManager;
  readonly #log: Logger;
  /** Resumable SSE streams of each session. */
  readonly #streams = new Map<string, SessionStreams>();
  /** The stateless path, for POSTs that claim 2026-07-28. */
  readonly #modern: ModernEndpoint;

  /** With several replicas: where a session or a backend lives when it is not here. */
  readonly #routing: ClusterRouting | undefined;

  constructor(config: RelayConfig, sessions: SessionManager, log: Logger, routing?: ClusterRouting) {
    this.#config = config;
    this.#sessions = sessions;
    this.#log = log;
    this.#routing = routing;
    this.#modern = new ModernEndpoint(config, sessions, log, routing?.cluster.replica);
  }

  /** Ends the 2026 clients' calls parked for a retry (shutdown). */
  close(): void {
    this.#modern.close();
  }

  async handle(req: IncomingMessage, res: ServerResponse, server: string, identity: Identity): Promise<void> {
    if (req.method !== 'POST' && isModernHeader(header(req, VERSION_HEADER))) {
      // 2026-07-28 has no GET stream and no session to delete.
      sendRpcError(
        res,
        405,
        ErrorCode.InvalidRequest,
        'method not allowed; 2026-07-28 clients use POST only',
        {
          headers: { allow: 'POST' },
        },
      );
      return;
    }
    switch (req.method) {
      case 'POST':
        return this.#post(req, res, server, identity);
      case 'GET':
        return this.#get(req, res, server, identity);
      case 'DELETE':
        return this.#delete(req, res, server, identity);
      default:
        sendRpcError(res, 405, ErrorCode.InvalidRequest, 'method not allowed; use POST, GET or DELETE', {
          headers: { allow: 'GET, POST, DELETE' },
        });
    }
  }

  async #post(req: IncomingMessage, res: ServerResponse, server: string, identity: Identity): Promise<void> {
    if (!accepts(req, 'application/json') || !accepts(req, 'text/event-stream')) {
      sendRpcError(
        res,
        406,
        ErrorCode.InvalidRequest,
        'Accept must list application/json and text/event-stream',
      );
      return;
    }
    if (refuseNonJsonBody(req, res)) return;
    const body = await readBody(req, this.#config.limits.maxBodyBytes);
    if (!body.ok) {
      if (body.reason === 'too-large') {
        // The connection stays open while the rest of the body is discarded (body.ts), so the client reads this.
        sendRpcError(
          res,
          413,
          ErrorCode.InvalidRequest,
          `body exceeds ${this.#config.limits.maxBodyBytes} bytes`,
        );
      }
      return;
    }
    const json = parseJsonBody(body.body);
    if (!json.ok) {
      sendRpcError(res, 400, json.code, json.message);
      return;
    }
    const parsed = json.value;
    if (Array.isArray(parsed)) {
      sendRpcError(
        res,
        400,
        ErrorCode.InvalidRequest,
        'batches are not supported; send one JSON-RPC message per POST',
      );
      return;
    }
    const message = validateMessage(parsed);
    if (isInvalid(message)) {
      sendRpcError(res, 400, ErrorCode.InvalidRequest, `invalid JSON-RPC message: ${message.reason}`, {
        id: message.id,
      });
      return;
    }
    if (this.#config.servers[server]?.protocol !== 'legacy' && !isResponse(message)) {
      // The era is the body's: a 2026-07-28 request claims it in its _meta (protocol/modern.ts).
      if (claimedVersion(message) !== undefined) {
        // A retry goes where its call is parked (the replica its requestState names); others are placed.
        const state = requestStateOf(message);
        if (state !== undefined && (await this.#forwardRetry(req, res, message, state, body.body))) return;
        if (await this.#routing?.placeElsewhere(req, res, server, identity.user, body.body)) return;
        await this.#modern.handle(req, res, server, identity, message);
        return;
      }
      if (isModernHeader(header(req, VERSION_HEADER))) {
        sendRpcError(
          res,
          400,
          ErrorCode.InvalidParams,
          `the request is missing the required _meta envelope (${Meta.protocolVersion}, ${Meta.clientCapabilities})`,
          { id: isRequest(message) ? message.id : null },
        );
        return;
      }
    }
    if (!this.#checkVersionHeader(req, res, server, identity)) return;
    if (isRequest(message)) this.#advertise(res);
    if (isRequest(message) && message.method === 'initialize') {
      if (await this.#routing?.placeElsewhere(req, res, server, identity.user, body.body)) return;
      await this.#initialize(message, res, server, identity, clientOf(req, message));
      return;
    }
    if (await this.#elsewhere(req, res, server, identity, body.body)) return;
    const session = this.#findSession(req, res, server, identity, isRequest(message) ? message.id : null);
    if (!session) return;
    if (isRequest(message)) {
      session.request(message, this.#replyFor(res, session));
      return;
    }
    const refused = session.post(message as Exclude<JsonRpcMessage, JsonRpcRequest>);
    if (refused !== undefined) {
      sendRpcError(res, 400, ErrorCode.InvalidRequest, refused);
      return;
    }
    res.writeHead(202).end();
  }

  async #initialize(
    message: JsonRpcRequest,
    res: ServerResponse,
    server: string,
    identity: Identity,
    client: SessionClient,
  ): Promise<void> {
    let created: Awaited<ReturnType<SessionManager['create']>>;
    try {
      created = await this.#sessions.create(server, identity, client);
    } catch (error) {
      // Our fault, not the client's: the details stay in the log.
      this.#log.error({ err: errorText(error), server }, 'could not start a session');
      this.#unavailable(res, message.id, 'the session could not be started; see the gateway log');
      return;
    }
    if (!created.ok) {
      // No room for another backend is the expected refusal, logged as before.
      if (created.reason === 'capacity')
        this.#log.error({ err: created.message, server }, 'could not start a session');
      const refusal = sessionRefusal(created);
      const close: Record<string, string> = created.reason === 'shutting-down' ? { connection: 'close' } : {};
      sendRpcError(res, refusal.status, refusal.code, refusal.message, {
        id: message.id,
        headers: { ...refusal.headers, ...close },
      });
      return;
    }
    const { session } = created;
    const { replayBytes, replayAge } = this.#config.sse;
    this.#streams.set(session.id, {
      streams: new Map(),
      replay: new ReplayLog({ maxBytes: replayBytes, maxAgeMs: replayAge }),
    });
    session.onClose(() => this.#dropStreams(session.id));
    session.request(message, this.#replyFor(res, session));
  }

  async #get(req: IncomingMessage, res: ServerResponse, server: string, identity: Identity): Promise<void> {
    if (!accepts(req, 'text/event-stream')) {
      sendRpcError(res, 406, ErrorCode.InvalidRequest, 'Accept must list text/event-stream');
      return;
    }
    if (!this.#checkVersionHeader(req, res, server, identity)) return;
    if (await this.#elsewhere(req, res, server, identity)) return;
    const session = this.#findSession(req, res, server, identity, null);
    if (!session) return;
    const lastEventId = header(req, 'last-event-id');
    const resume = lastEventId ? EventStream.parseEventId(lastEventId) : undefined;
    const live = this.#streams.get(session.id)?.streams.get(standaloneId(session));
    // A resumption, or a GET that replaces the open one, is a request like any other for the rate limits.
    if (lastEventId !== undefined || live?.attached) {
      const refusal = await this.#sessions.admitStream(session);
      if (refusal) {
        const retryAfter = refusal.retryAfterSeconds;
        sendRpcError(res, refusal.status ?? 429, refusal.code, refusal.message, {
          headers: retryAfter === undefined ? {} : { 'retry-after': String(retryAfter) },
        });
        return;
      }
    }
    const streams = this.#streams.get(session.id)?.streams;
    if (!streams || session.closed) {
      sendRpcError(res, 404, ErrorCode.SessionNotFound, 'session not found; initialize a new session');
      return;
    }
    const resumed = resume ? streams.get(resume.stream) : undefined;
    if (resume && resumed) {
      // attach() ends a connection the stream already had: one live connection per stream.
      resumed.attach(res, resume.seq);
      if (resumed.id === standaloneId(session) && resumed.attached) session.setStandalone(resumed);
      return;
    }
    const stream = streams.get(standaloneId(session)) ?? this.#openStream(session, standaloneId(session));
    stream.ondetach = () => session.setStandalone(undefined);
    stream.attach(res);
    session.setStandalone(stream);
  }

  async #delete(
    req: IncomingMessage,
    res: ServerResponse,
    server: string,
    identity: Identity,
  ): Promise<void> {
    if (await this.#elsewhere(req, res, server, identity)) return;
    const session = this.#findSession(req, res, server, identity, null);
    if (!session) return;
    await session.close('deleted by the client');
    res.writeHead(204).end();
  }

  /** A session of another replica (its id names it): the request is forwarded there; true when answered. */
  /** A 2026 retry whose call is parked on another replica: forwarded there (true: answered). */
  #forwardRetry(
    req: IncomingMessage,
    res: ServerResponse,
    message: JsonRpcMessage,
    state: string,
    body: Buffer,
  ): Promise<boolean> {
    if (!this.#routing) return Promise.resolve(false);
    const id = isRequest(message) ? message.id : null;
    return this.#routing.forwardContinuation(req, res, state, body, (gone) =>
      sendJson(gone, 200, unknownRequestState(id)),
    );
  }

  async #elsewhere(
    req: IncomingMessage,
    res: ServerResponse,
    server: string,
    identity: Identity,
    body?: Buffer,
  ): Promise<boolean> {
    const sessionId = header(req, SESSION_HEADER);
    if (!this.#routing || !sessionId || this.#sessions.get(sessionId, identity, server)) return false;
    return this.#routing.forwardSession(req, res, sessionId, body);
  }

  #unavailable(res: ServerResponse, id: JsonRpcRequest['id'], text: string): void {
    sendRpcError(res, 503, ErrorCode.BackendUnavailable, text, { id, headers: { 'retry-after': '30' } });
  }

  /** Sets the headers that tell `connect` what this gateway does for lost answers and silent streams. */
  #advertise(res: ServerResponse): void {
    const { limits, sse } = this.#config;
    if (limits.retryAnswers > 0 && limits.retryAnswerAge >= 1_000)
      res.setHeader(RETRIES_HEADER, String(Math.floor(limits.retryAnswerAge / 1_000)));
    if (sse.keepAlive > 0) res.setHeader(KEEP_ALIVE_HEADER, String(sse.keepAlive / 1_000));
  }

  #replyFor(res: ServerResponse, session: Session): PostReply {
    const headers = { [SESSION_HEADER]: session.id };
    return new PostReply(res, headers, () => this.#openStream(session, randomBytes(6).toString('hex')));
  }

  #openStream(session: Session, id: string): EventStream {
    const entry = this.#streams.get(session.id);
    const stream = new EventStream({
      id,
      keepAliveMs: this.#config.sse.keepAlive,
      replayEvents: this.#config.sse.replayEvents,
      replay: entry?.replay ?? new ReplayLog({ maxBytes: 0, maxAgeMs: 0 }),
      bufferBytes: this.#config.limits.streamBufferBytes,
      onoverflow: (held) =>
        this.#log.warn(
          { session: session.id, stream: id, held },
          'SSE client does not read; connection closed (limits.streamBufferBytes), the stream stays resumable',
        ),
      headers: { [SESSION_HEADER]: session.id },
      prime: (session.protocolVersion ?? '') >= '2025-11-25',
    });
    if (entry) {
      const { streams } = entry;
      if (streams.size >= MAX_STREAMS_PER_SESSION) {
        for (const [key, old] of streams) {
          if (old.ended || !old.attached) {
            streams.delete(key);
            old.close();
            break;
          }
        }
      }
      streams.set(id, stream);
    }
    return stream;
  }

  #dropStreams(sessionId: string): void {
    const entry = this.#streams.get(sessionId);
    this.#streams.delete(sessionId);
    // At shutdown, clients are told to wait before they reconnect to the gateway's replacement.
    const retryAfterMs = this.#sessions.draining ? SHUTDOWN_RETRY_MS : undefined;
    for (const stream of entry?.streams.values() ?? []) stream.close(retryAfterMs);
    entry?.replay.clear();
  }

  #findSession(
    req: IncomingMessage,
    res: ServerResponse,
    server: string,
    identity: Identity,
    id: JsonRpcRequest['id'] | null,
  ): Session | undefined {
    const sessionId = header(req, SESSION_HEADER);
    if (!sessionId) {
      sendRpcError(
        res,
        400,
        ErrorCode.InvalidRequest,
        'Mcp-Session-Id header is required (initialize first)',
        { id },
      );
      return undefined;
    }
    const session = this.#sessions.get(sessionId, identity, server);
    if (!session) {
      sendRpcError(res, 404, ErrorCode.SessionNotFound, 'session not found; initialize a new session', {
        id,
      });
      return undefined;
    }
    return session;
  }

  /** A version is fine when the gateway speaks it, or when it is the one this session agreed on (an old backend's). */
  #checkVersionHeader(
    req: IncomingMessage,
    res: ServerResponse,
    server: string,
    identity: Identity,
  ): boolean {
    const version = header(req, VERSION_HEADER);
    if (version === undefined || isSupportedProtocolVersion(version)) return true;
    const sessionId = header(req, SESSION_HEADER);
    if (sessionId && this.#sessions.get(sessionId, identity, server)?.protocolVersion === version)
      return true;
    sendRpcError(res, 400, ErrorCode.InvalidRequest, 'unsupported MCP-Protocol-Version');
    return false;
  }
}

function standaloneId(session: Session): string {
  return `g${session.id.slice(0, 8)}`;
}

/** Who the client says it is (initialize's clientInfo, bounded) and where it connects from, for the admin page. */
function clientOf(req: IncomingMessage, initialize: JsonRpcRequest): SessionClient {
  const info = initialize.params?.clientInfo as { name?: unknown; version?: unknown } | undefined;
  const text = (value: unknown) => (typeof value === 'string' ? sanitize(value, 64) : undefined);
  const name = text(info?.name);
  const version = text(info?.version);
  const address = req.socket.remoteAddress;
  return {
    ...(address === undefined ? {} : { address }),
    ...(name === undefined ? {} : { name }),
    ...(version === undefined ? {} : { version }),
  };
}
