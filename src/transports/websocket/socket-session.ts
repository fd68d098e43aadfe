// One MCP session over one WebSocket: each text frame is one JSON-RPC message into the session, and
// everything the session sends (responses, progress, server→client requests, notifications) goes out
// as one text frame. The socket is both the reply of every request and the session's stream, so a
// Session needs nothing else from this front.

import { randomBytes } from 'node:crypto';
import type { WebSocket } from 'ws';
import { parseJsonBody } from '../../http/json-body.ts';
import type { Logger } from '../../log.ts';
import {
  ErrorCode,
  errorResponse,
  isInvalid,
  isRequest,
  type JsonRpcId,
  type JsonRpcMessage,
  type JsonRpcRequest,
  type JsonRpcResponse,
  validateMessage,
} from '../../protocol/jsonrpc.ts';
import { Method } from '../../protocol/mcp.ts';
import { encodeMessage } from '../../protocol/raw-json.ts';
import type { Session } from '../../sessions/session.ts';
import type { MessageSink, Refusal, ReplyTarget } from '../../sessions/types.ts';
import { ALREADY_INITIALIZED } from '../session-refusal.ts';

/** Close codes (RFC 6455 §7.4.1) this front sends; 1009 (too big) is sent by `ws` itself past maxPayload. */
export const CloseCode = {
  /** The gateway shuts down. */
  goingAway: 1001,
  /** A binary frame: this front carries JSON text only. */
  unsupportedData: 1003,
  /** The gateway ended the session by its rules: key revoked or expired, access withdrawn, initialize refused. */
  policy: 1008,
  /** The backend could not start the session (its initialize failed). */
  internalError: 1011,
  /** The client does not read what it is sent (limits.streamBufferBytes). */
  tryAgainLater: 1013,
} as const;

/** How long a client that stopped reading gets to take its close frame before its connection is cut. */
const CLOSE_GRACE_MS = 1_000;

/** Pings whose pong still counts (the last few: a slow reader may answer an older one first). */
const PINGS_KEPT = 4;

/** The longest delay a timer takes (2^31-1 ms, about 24.8 days); a later expiry is waited for in steps. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** The session's end, and the close reason's cause, when the socket's credential expires. */
export const CREDENTIAL_EXPIRED = 'credential expired';

export interface SocketSessionOptions {
  /** What the socket may hold unsent (bytes) before the client counts as one that does not read. */
  bufferBytes: number;
  /** Whether the gateway is shutting down, for the close code of a session it ends. */
  draining(): boolean;
  log: Logger;
  /**
   * When the credential of the upgrade stops being accepted (epoch ms): the session ends then, as when
   * the key is revoked, since nothing on the socket presents a credential again.
   */
  expiresAt?: number;
}

export class SocketSession implements ReplyTarget, MessageSink {
  readonly session: Session;
  readonly openedAt = Date.now();
  /**
   * Set by each pong that answers one of our pings (an unsolicited pong, or one with a payload we never
   * sent, proves nothing: a peer that does not read never sees our pings); a peer silent for two ping
   * intervals is cut off (ws-front.ts).
   */
  lastPong = Date.now();
  readonly #socket: WebSocket;
  readonly #options: SocketSessionOptions;
  #ended = false;
  /** An initialize came: the gate admits every initialize (it was counted with the session), so one is the limit here. */
  #initialized = false;
  #expiry: NodeJS.Timeout | undefined;
  /** The payloads (hex) of our latest pings, oldest first. */
  #pings: string[] = [];
  /** What the socket held unsent at the last ping tick, for `closeIfStalled`. */
  #heldAtTick: number | undefined;

  constructor(socket: WebSocket, session: Session, options: SocketSessionOptions) {
    this.#socket = socket;
    this.session = session;
    this.#options = options;
    socket.on('message', (data, isBinary) => this.#receive(data as Buffer, isBinary));
    socket.on('pong', (data) => this.#pong(data));
    socket.on('close', () => {
      clearTimeout(this.#expiry);
      this.#ended = true;
      void session.close('WebSocket closed');
    });
    socket.on('error', (error) => options.log.debug({ err: error.message }, 'WebSocket error'));
    // The socket is the session's stream: unsolicited messages (and those queued so far) go out on it,
    // and the session counts as attended while it is open (the idle reaper leaves it alone).
    session.setStandalone(this);
    session.onClose((_session, reason) => {
      clearTimeout(this.#expiry);
      this.#sessionEnded(reason);
    });
    if (options.expiresAt !== undefined) this.#endAt(options.expiresAt);
  }

  get open(): boolean {
    return !this.#ended;
  }

  send(message: JsonRpcMessage): void {
    this.#write(message);
  }

  finish(response: JsonRpcResponse): string | undefined {
    return this.#write(response);
  }

  /** No HTTP status after the upgrade: a refused request is answered by its JSON-RPC error alone. */
  refuse(_refusal: Refusal, response: JsonRpcResponse): void {
    this.#write(response);
  }

  /** A ping with a payload of our own, so that only its answer counts as the peer being alive. */
  ping(): void {
    if (this.#ended) return;
    const payload = randomBytes(8);
    this.#pings.push(payload.toString('hex'));
    if (this.#pings.length > PINGS_KEPT) this.#pings.shift();
    this.#socket.ping(payload);
  }

  /**
   * At each ping tick: a socket holding more than the bound unsent, and no less than at the previous
   * tick, belongs to a peer that does not read; it is closed as one (1013). The check before each write
   * alone would let a peer that stopped reading after one large message hold it for ever. Returns
   * whether it closed the socket.
   */
  closeIfStalled(): boolean {
    if (this.#ended) return false;
    const held = this.#socket.bufferedAmount;
    const before = this.#heldAtTick;
    this.#heldAtTick = held;
    if (before === undefined || held <= this.#options.bufferBytes || held < before) return false;
    this.#notReading(held);
    return true;
  }

  /** Cuts the connection without a close handshake (a peer that stopped answering pings). */
  terminate(): void {
    this.#ended = true;
    this.#socket.terminate();
  }

  close(code: number, reason: string): void {
    if (this.#ended) return;
    this.#ended = true;
    // The reason of a close frame holds at most 123 bytes.
    this.#socket.close(code, Buffer.from(reason).subarray(0, 123).toString());
    const cut = setTimeout(() => this.#socket.terminate(), CLOSE_GRACE_MS);
    cut.unref();
    this.#socket.once('close', () => clearTimeout(cut));
  }

  /** Ends the session at `deadline`, in steps of at most MAX_TIMER_MS; the timer keeps no process alive. */
  #endAt(deadline: number): void {
    const wait = deadline - Date.now();
    if (wait <= 0) {
      this.#options.log.info({ session: this.session.id }, 'WebSocket credential expired; session ended');
      void this.session.close(CREDENTIAL_EXPIRED);
      return;
    }
    this.#expiry = setTimeout(() => this.#endAt(deadline), Math.min(wait, MAX_TIMER_MS));
    this.#expiry.unref();
  }

  #receive(data: Buffer, isBinary: boolean): void {
    if (this.#ended) return;
    if (isBinary) {
      this.close(CloseCode.unsupportedData, 'binary frames are not supported: send JSON-RPC as text frames');
      return;
    }
    const json = parseJsonBody(data);
    if (!json.ok) {
      this.#error(null, json.code, json.message.replace(/^body/, 'message'));
      return;
    }
    if (Array.isArray(json.value)) {
      this.#error(
        null,
        ErrorCode.InvalidRequest,
        'batches are not supported; send one JSON-RPC message per frame',
      );
      return;
    }
    const message = validateMessage(json.value);
    if (isInvalid(message)) {
      this.#error(
        message.id ?? null,
        ErrorCode.InvalidRequest,
        `invalid JSON-RPC message: ${message.reason}`,
      );
      return;
    }
    if (isRequest(message)) {
      if (message.method === Method.initialize) {
        if (this.#initialized) {
          this.#error(message.id, ErrorCode.InvalidRequest, ALREADY_INITIALIZED);
          return;
        }
        this.#initialized = true;
      }
      this.session.request(message, this);
      return;
    }
    const refused = this.session.post(message as Exclude<JsonRpcMessage, JsonRpcRequest>);
    if (refused !== undefined) this.#error(null, ErrorCode.InvalidRequest, refused);
  }

  #error(id: JsonRpcId | null, code: number, message: string): void {
    this.#write(errorResponse(id, code, message));
  }

  /**
   * One text frame per message; a result passed through as the backend's bytes goes out as fragments
   * of one message, never joined or re-encoded. A client that left more than the bound unread is closed.
   * Returns the text sent, when it was one string.
   */
  #write(message: JsonRpcMessage): string | undefined {
    if (this.#ended) return undefined;
    if (this.#socket.bufferedAmount > this.#options.bufferBytes) {
      this.#notReading(this.#socket.bufferedAmount);
      return undefined;
    }
    const encoded = encodeMessage(message);
    if (typeof encoded === 'string') {
      this.#socket.send(encoded, { binary: false });
      return encoded;
    }
    const last = encoded.length - 1;
    encoded.forEach((part, index) => {
      this.#socket.send(part, { binary: false, fin: index === last });
    });
    return undefined;
  }

  #notReading(held: number): void {
    this.#options.log.warn(
      { session: this.session.id, held },
      'WebSocket client does not read; connection closed (limits.streamBufferBytes)',
    );
    this.close(CloseCode.tryAgainLater, 'client does not read its messages (limits.streamBufferBytes)');
  }

  #pong(data: Buffer): void {
    const answered = this.#pings.indexOf(data.toString('hex'));
    if (answered === -1) return;
    this.lastPong = Date.now();
    // Older pings were sent before it: a peer that answered this one read past them.
    this.#pings.splice(0, answered + 1);
  }

  /** The gateway ended the session: the socket is closed with a code that says why. */
  #sessionEnded(reason: string): void {
    if (this.#ended) return;
    this.close(closeCodeFor(reason, this.#options.draining()), `session ended: ${reason}`);
  }
}

/**
 * The close code of a session the gateway ended: going away at shutdown, an internal error when the
 * backend failed the session's initialize (Session's reason 'initialize failed'), else policy (a revoked
 * or expired credential, access withdrawn in a reload, a refused initialize).
 */
export function closeCodeFor(reason: string, draining: boolean): number {
  if (draining) return CloseCode.goingAway;
  return reason === 'initialize failed' ? CloseCode.internalError : CloseCode.policy;
}
