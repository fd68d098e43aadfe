// The stateless path of the Streamable HTTP endpoint (MCP 2026-07-28), beside the session path on the
// same URL: a POST whose body claims 2026-07-28 in its `_meta` comes here. No initialize and no
// session for the client; each user (credential) gets one stand-in session per server, made and
// initialized by the gateway, so policy, rate limits, audit, isolation and the multiplexer are the
// ones every other client goes through. Results are translated to the 2026 shapes (protocol/modern.ts);
// a backend's elicitation, sampling or roots request becomes an `InputRequiredResult` (modern-call.ts).

import { createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { RelayConfig } from '../../config/schema.ts';
import { errorText } from '../../errors.ts';
import { sendJson, sendRpcError } from '../../http/replies.ts';
import type { Logger } from '../../log.ts';
import {
  isRequest,
  type JsonRpcId,
  type JsonRpcNotification,
  type JsonRpcRequest,
  type JsonRpcResponse,
} from '../../protocol/jsonrpc.ts';
import { Method, progressTokenOf, withProgressToken } from '../../protocol/mcp.ts';
import {
  decodeHeaderValue,
  type Envelope,
  envelopeOf,
  errorObject,
  FORWARDED_METHODS,
  INPUT_METHODS,
  isModernVersion,
  Meta,
  MODERN_PROTOCOL_VERSIONS,
  ModernError,
  needsName,
  requestName,
  requestStateOf,
  unknownRequestState,
  withoutEnvelope,
} from '../../protocol/modern.ts';
import { LATEST_PROTOCOL_VERSION } from '../../protocol/versions.ts';
import type { SessionManager } from '../../sessions/manager.ts';
import type { Session } from '../../sessions/session.ts';
import type { Identity, MessageSink } from '../../sessions/types.ts';
import { sanitize } from '../../util/sanitize.ts';
import { VERSION } from '../../version.ts';
import { sessionRefusal } from '../session-refusal.ts';
import { Continuations } from './continuations.ts';
import { honoredFilter, type ListenFilter, ListenStream } from './listen-stream.ts';
import { ModernCall } from './modern-call.ts';
import { type ParamHeaders, paramHeaderMismatch, paramHeadersOf } from './modern-param-headers.ts';
import { header, VERSION_HEADER } from './request-headers.ts';

export const METHOD_HEADER = 'mcp-method';
export const NAME_HEADER = 'mcp-name';

/** What the gateway declares to a 2025 backend for its 2026 clients: what it can turn into input requests. */
const STAND_IN_CAPABILITIES = {
  roots: { listChanged: true },
  sampling: {},
  elicitation: { form: {}, url: {} },
};
/** Open `subscriptions/listen` streams one user may have on one server. */
const MAX_LISTENS = 8;

let nextId = 0;
/** Ids the gateway gives 2026 requests toward the backend: unique, so two clients' ids never meet. */
function gatewayId(): string {
  nextId++;
  return `m${nextId}`;
}

/** A user's stand-in session on one server, the backend's initialize result, and its open listens. */
class Principal implements MessageSink {
  readonly session: Session;
  readonly result: Record<string, unknown>;
  readonly listens = new Set<ListenStream>();
  /** Resource URIs the listens hold backend subscriptions for, with how many listens hold each. */
  readonly #subscribed = new Map<string, number>();
  /** The mirrored (`x-mcp-header`) arguments of each tool, from the backend's tools/list. */
  #paramHeaders: Promise<Map<string, ParamHeaders>> | undefined;

  constructor(session: Session, result: Record<string, unknown>) {
    this.session = session;
    this.result = result;
    session.onClose(() => {
      for (const listen of this.listens) listen.end();
      this.listens.clear();
    });
  }

  get serverInfo(): unknown {
    return this.result.serverInfo;
  }

  get capabilities(): Record<string, unknown> {
    const capabilities = this.result.capabilities;
    return typeof capabilities === 'object' && capabilities !== null
      ? (capabilities as Record<string, unknown>)
      : {};
  }

  /** The session's unsolicited messages (list changes, resource updates) go to the listens that want them. */
  send(message: Parameters<MessageSink['send']>[0]): void {
    for (const listen of this.listens) listen.offer(message);
  }

  addListen(listen: ListenStream): void {
    this.listens.add(listen);
    this.session.setStandalone(this);
    for (const uri of listen.filter.resourceSubscriptions ?? []) this.#subscription(uri, +1);
    listen.onClose(() => {
      if (!this.listens.delete(listen)) return;
      for (const uri of listen.filter.resourceSubscriptions ?? []) this.#subscription(uri, -1);
      if (this.listens.size === 0) this.session.setStandalone(undefined);
    });
  }

  /**
   * The mirrored arguments of `tool`, from a tools/list the gateway asks for on first need and again
   * when a tool it has not seen is called (a server that added one).
   */
  async paramHeaders(tool: string): Promise<ParamHeaders> {
    let known = await this.#listTools();
    if (!known.has(tool)) {
      this.#paramHeaders = undefined;
      known = await this.#listTools();
    }
    return known.get(tool) ?? [];
  }

  #listTools(): Promise<Map<string, ParamHeaders>> {
    if (this.#paramHeaders) return this.#paramHeaders;
    const listed = new Promise<Map<string, ParamHeaders>>((resolve) => {
      this.session.request(
        { jsonrpc: '2.0', id: gatewayId(), method: 'tools/list', params: {} },
        {
          send() {},
          finish: (response) => {
            // A failed list is not kept: the next call asks again.
            if ('error' in response && this.#paramHeaders === listed) this.#paramHeaders = undefined;
            resolve('result' in response ? paramHeadersOf(response.result) : new Map());
            return undefined;
          },
        },
      );
    });
    this.#paramHeaders = listed;
    return listed;
  }

  /** Holds a backend subscription while any listen wants the URI (the multiplexer counts across sessions). */
  #subscription(uri: string, change: 1 | -1): void {
    const count = (this.#subscribed.get(uri) ?? 0) + change;
    if (count > 0) this.#subscribed.set(uri, count);
    else this.#subscribed.delete(uri);
    if (!(count === 1 && change === 1) && count !== 0) return;
    if (this.session.closed) return;
    this.session.request(
      {
        jsonrpc: '2.0',
        id: gatewayId(),
        method: change === 1 ? Method.subscribe : Method.unsubscribe,
        params: { uri },
      },
      { send() {}, finish: () => undefined },
    );
  }
}

type PrincipalResult =
  | { ok: true; principal: Principal }
  | { ok: false; answer: (res: ServerResponse, id: JsonRpcId) => void };

export class ModernEndpoint {
  readonly #config: RelayConfig;
  readonly #sessions: SessionManager;
  readonly #log: Logger;
  readonly #principals = new Map<string, Promise<PrincipalResult>>();
  readonly #continuations: Continuations;

  /** `replica`: in a cluster, this replica's id, which names it in the `requestState` of calls parked here. */
  constructor(config: RelayConfig, sessions: SessionManager, log: Logger, replica?: string) {
    this.#config = config;
    this.#sessions = sessions;
    this.#log = log;
    this.#continuations = new Continuations({ replica });
  }

  /** Parked calls waiting for a client's retry (for tests and the admin page). */
  get parkedCalls(): number {
    return this.#continuations.size;
  }

  /** One POSTed message that claims 2026-07-28 (or a later revision) in its `_meta`. */
  async handle(
    req: IncomingMessage,
    res: ServerResponse,
    server: string,
    identity: Identity,
    message: JsonRpcRequest | JsonRpcNotification,
  ): Promise<void> {
    const id = isRequest(message) ? message.id : null;
    const envelope = envelopeOf(message);
    if (typeof envelope === 'string') {
      sendRpcError(res, 400, -32602, `invalid request envelope: ${envelope}`, { id });
      return;
    }
    const mismatch = headerMismatch(req, message, envelope);
    if (mismatch) {
      sendRpcError(res, 400, ModernError.HeaderMismatch, mismatch, { id });
      return;
    }
    if (!isModernVersion(envelope.version)) {
      sendJson(
        res,
        400,
        errorObject(id, ModernError.UnsupportedVersion, 'Unsupported protocol version', {
          supported: [...MODERN_PROTOCOL_VERSIONS],
          requested: envelope.version,
        }),
      );
      return;
    }
    if (!isRequest(message)) {
      // Cancellation over HTTP is closing the request's response; other notifications have no effect here.
      res.writeHead(202).end();
      return;
    }
    switch (message.method) {
      case 'server/discover':
        return this.#discover(req, res, server, identity, message, envelope);
      case 'subscriptions/listen':
        return this.#listen(req, res, server, identity, message, envelope);
    }
    if (!FORWARDED_METHODS.has(message.method)) {
      sendRpcError(res, 404, -32601, `Method not found: ${sanitize(message.method, 100)}`, { id });
      return;
    }
    const params = message.params ?? {};
    if (params.inputResponses !== undefined && !isPlainObject(params.inputResponses)) {
      sendJson(res, 200, errorObject(message.id, -32602, 'inputResponses must be an object'));
      return;
    }
    if (params.requestState !== undefined) {
      this.#retry(res, server, identity, message, envelope);
      return;
    }
    const principal = await this.#principalOrAnswer(req, res, server, identity, message, envelope);
    if (!principal) return;
    if (message.method === 'tools/call' && typeof params.name === 'string') {
      const mirrored = await principal.paramHeaders(params.name);
      const mismatch = paramHeaderMismatch(req, mirrored, params.arguments);
      if (mismatch) {
        sendRpcError(res, 400, ModernError.HeaderMismatch, mismatch, { id });
        return;
      }
    }
    // `inputResponses` without a `requestState` answer nothing the gateway asked: a new call, and the
    // answers are information it does not recognize, which a server ignores (SEP-2322).
    this.#forward(res, server, identity, principal, withoutInputResponses(message), envelope);
  }

  /** Ends every parked call (the gateway is shutting down); stand-in sessions end with the others. */
  close(): void {
    this.#continuations.clear();
  }

  #forward(
    res: ServerResponse,
    server: string,
    identity: Identity,
    principal: Principal,
    message: JsonRpcRequest,
    envelope: Envelope,
  ): void {
    const { session } = principal;
    const id = gatewayId();
    const token = progressTokenOf(message.params);
    let params = withoutEnvelope(message.params);
    if (token !== undefined) params = withProgressToken(params, id);
    const owner = ownerKey(server, identity);
    const call = new ModernCall(
      {
        serverInfo: principal.serverInfo,
        bufferBytes: this.#config.limits.streamBufferBytes,
        answerBackend: (response) => session.post(response),
        cancel: (reason) =>
          session.post({ jsonrpc: '2.0', method: Method.cancelled, params: { requestId: id, reason } }),
        park: (parked) => this.#continuations.park(parked, owner),
        unpark: (parked) => this.#continuations.unpark(parked),
      },
      {
        method: message.method,
        subject: subjectOf(message),
        id: message.id,
        ...(token === undefined ? {} : { progressToken: token }),
        ...(typeof params.uri === 'string' ? { uri: params.uri } : {}),
      },
      res,
      envelope,
    );
    session.request({ jsonrpc: '2.0', id, method: message.method, params }, call);
  }

  /** A retry with `inputResponses` and the `requestState` of a parked call: the call carries on. */
  #retry(
    res: ServerResponse,
    server: string,
    identity: Identity,
    message: JsonRpcRequest,
    envelope: Envelope,
  ): void {
    const params = message.params ?? {};
    const state = requestStateOf(message);
    const call =
      state !== undefined && INPUT_METHODS.has(message.method)
        ? this.#continuations.take(state, ownerKey(server, identity), message.method, subjectOf(message))
        : undefined;
    if (!call) {
      sendJson(res, 200, unknownRequestState(message.id));
      return;
    }
    const responses = params.inputResponses;
    call.resume(
      res,
      message.id,
      envelope,
      typeof responses === 'object' && responses !== null ? (responses as Record<string, unknown>) : {},
    );
  }

  async #discover(
    req: IncomingMessage,
    res: ServerResponse,
    server: string,
    identity: Identity,
    message: JsonRpcRequest,
    envelope: Envelope,
  ): Promise<void> {
    const principal = await this.#principalOrAnswer(req, res, server, identity, message, envelope);
    if (!principal) return;
    const { tasks, ...capabilities } = principal.capabilities;
    const instructions = principal.result.instructions;
    sendJson(res, 200, {
      jsonrpc: '2.0',
      id: message.id,
      result: {
        resultType: 'complete',
        supportedVersions: [...MODERN_PROTOCOL_VERSIONS],
        capabilities,
        ...(typeof instructions === 'string' ? { instructions } : {}),
        ttlMs: 0,
        cacheScope: 'private',
        _meta: principal.serverInfo === undefined ? {} : { [Meta.serverInfo]: principal.serverInfo },
      },
    });
  }

  async #listen(
    req: IncomingMessage,
    res: ServerResponse,
    server: string,
    identity: Identity,
    message: JsonRpcRequest,
    envelope: Envelope,
  ): Promise<void> {
    const principal = await this.#principalOrAnswer(req, res, server, identity, message, envelope);
    if (!principal) return;
    if (principal.listens.size >= MAX_LISTENS) {
      sendJson(
        res,
        200,
        errorObject(message.id, -32603, `Subscription limit reached (${MAX_LISTENS} per user and server)`),
      );
      return;
    }
    const filter: ListenFilter = honoredFilter(message.params?.notifications, principal.capabilities);
    const listen = new ListenStream(res, message.id, filter, {
      keepAliveMs: this.#config.sse.keepAlive,
      bufferBytes: this.#config.limits.streamBufferBytes,
    });
    principal.addListen(listen);
  }

  /** The stand-in, or undefined once the client was told why there is none. */
  async #principalOrAnswer(
    req: IncomingMessage,
    res: ServerResponse,
    server: string,
    identity: Identity,
    message: JsonRpcRequest,
    envelope: Envelope,
  ): Promise<Principal | undefined> {
    const found = await this.#principal(req, server, identity, envelope);
    if (found.ok) return found.principal;
    found.answer(res, message.id);
    return undefined;
  }

  /** The user's stand-in session on `server`, made and initialized on first use. */
  #principal(
    req: IncomingMessage,
    server: string,
    identity: Identity,
    envelope: Envelope,
  ): Promise<PrincipalResult> {
    const key = ownerKey(server, identity);
    const known = this.#principals.get(key);
    // A stand-in whose session just ended (idle, a failed backend) is forgotten by its onClose: made anew.
    if (known)
      return known.then((result) =>
        result.ok && result.principal.session.closed
          ? this.#principal(req, server, identity, envelope)
          : result,
      );
    const made = this.#makePrincipal(req, server, identity, envelope).then((result) => {
      if (!result.ok) this.#principals.delete(key);
      else
        result.principal.session.onClose(() => {
          if (this.#principals.get(key) === made) this.#principals.delete(key);
        });
      return result;
    });
    this.#principals.set(key, made);
    return made;
  }

  async #makePrincipal(
    req: IncomingMessage,
    server: string,
    identity: Identity,
    envelope: Envelope,
  ): Promise<PrincipalResult> {
    const name =
      typeof envelope.clientInfo?.name === 'string' ? sanitize(envelope.clientInfo.name, 64) : undefined;
    const version =
      typeof envelope.clientInfo?.version === 'string'
        ? sanitize(envelope.clientInfo.version, 64)
        : undefined;
    const address = req.socket.remoteAddress;
    let created: Awaited<ReturnType<SessionManager['create']>>;
    try {
      created = await this.#sessions.create(
        server,
        identity,
        {
          ...(address === undefined ? {} : { address }),
          name: `${name ?? 'client'} (2026-07-28)`,
          ...(version === undefined ? {} : { version }),
        },
        { stateless: true },
      );
    } catch (error) {
      this.#log.error(
        { err: errorText(error), server },
        'could not start a stand-in session for 2026-07-28 clients',
      );
      return refused(503, -32000, 'the server could not be started; see the gateway log');
    }
    if (!created.ok) {
      if (created.reason === 'capacity')
        this.#log.error({ err: created.message, server }, 'could not start a session');
      const refusal = sessionRefusal(created);
      return {
        ok: false,
        answer: (res, id) =>
          sendRpcError(res, refusal.status, refusal.code, refusal.message, { id, headers: refusal.headers }),
      };
    }
    const { session } = created;
    const answer = await new Promise<JsonRpcResponse>((resolve) => {
      session.request(
        {
          jsonrpc: '2.0',
          id: gatewayId(),
          method: Method.initialize,
          params: {
            protocolVersion: LATEST_PROTOCOL_VERSION,
            capabilities: STAND_IN_CAPABILITIES,
            clientInfo: { name: 'mcp-relay (for 2026-07-28 clients)', version: VERSION },
          },
        },
        {
          send() {},
          finish: (response) => {
            resolve(response);
            return undefined;
          },
          refuse: (_refusal, response) => resolve(response),
        },
      );
    });
    if ('error' in answer) {
      await session.close('initialize failed');
      return refused(503, answer.error.code, answer.error.message);
    }
    session.post({ jsonrpc: '2.0', method: Method.initialized });
    return { ok: true, principal: new Principal(session, answer.result) };
  }
}

function refused(status: number, code: number, message: string): PrincipalResult {
  return {
    ok: false,
    answer: (res, id) => sendRpcError(res, status, code, message, { id, headers: { 'retry-after': '30' } }),
  };
}

/** Who a parked call or a stand-in session belongs to: the server and the exact credential. */
function ownerKey(server: string, identity: Identity): string {
  return `${server}\u0000${identity.user}\u0000${identity.credential}`;
}

/**
 * What a retry must repeat: the method's name or URI and a digest of its arguments, so a
 * `requestState` cannot carry one call's inputs into another.
 */
function subjectOf(message: JsonRpcRequest): string {
  if (!INPUT_METHODS.has(message.method)) return '';
  const params = message.params ?? {};
  const digest = createHash('sha256')
    .update(JSON.stringify([params.name ?? null, params.uri ?? null, params.arguments ?? null]))
    .digest('base64url');
  return `${String(params.name ?? params.uri)}\u0000${digest}`;
}

/**
 * The 2026 header rules: `MCP-Protocol-Version` and `Mcp-Method` present and equal to the body, and
 * `Mcp-Name` for the methods that name something. The reason when one fails (400 `-32020`).
 */
function headerMismatch(
  req: IncomingMessage,
  message: JsonRpcRequest | JsonRpcNotification,
  envelope: Envelope,
): string | undefined {
  const version = header(req, VERSION_HEADER);
  if (version === undefined) return 'the MCP-Protocol-Version header is required';
  if (version !== envelope.version)
    return 'the MCP-Protocol-Version header does not match the request’s _meta';
  const method = header(req, METHOD_HEADER);
  if (method === undefined) return 'the Mcp-Method header is required';
  if (method !== message.method) return 'the Mcp-Method header does not match the request’s method';
  if (!needsName(message.method)) return undefined;
  const name = header(req, NAME_HEADER);
  if (name === undefined) return `the Mcp-Name header is required for ${message.method}`;
  if (decodeHeaderValue(name) !== requestName(message.method, message.params))
    return 'the Mcp-Name header does not match the request’s params';
  return undefined;
}

/** The request without `inputResponses`, which a 2025 backend would not understand. */
function withoutInputResponses(message: JsonRpcRequest): JsonRpcRequest {
  if (message.params?.inputResponses === undefined) return message;
  const { inputResponses, ...params } = message.params;
  return { ...message, params };
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
