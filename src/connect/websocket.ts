// MCP over a WebSocket, as a channel: one socket is one session (subprotocol `mcp`, credentials on the
// upgrade request, one JSON-RPC message per text frame). Pings find a dead peer: a socket that answers
// nothing (no pong, no message) for the idle timeout is dropped, and channel-connection.ts recovers.
// Built on `ws`, not Node's global WebSocket (undici's): `ws` takes headers, a CA, a client certificate
// and an http.Agent (the proxy tunnel, ws-tunnel.ts), and can ping and pause reading.

import { randomUUID } from 'node:crypto';
import { rootCertificates } from 'node:tls';
import WebSocket from 'ws';
import { sanitize } from '../util/sanitize.ts';
import type { AuthProvider } from './auth.ts';
import {
  type ChannelOpener,
  type MessageChannel,
  parseServerMessage,
  type Receive,
} from './channel-connection.ts';
import type { BridgeLog } from './diagnostics.ts';
import type { ClientCertificate, ProxySettings } from './dispatcher.ts';
import { GatewayError, statusError } from './errors.ts';
import { closedConnectionHint, networkError } from './gateway-client.ts';
import { proxyAgentFor } from './ws-tunnel.ts';

export interface WebSocketOptions {
  /** ws:// or wss:// */
  url: URL;
  headers: Readonly<Record<string, string>>;
  auth: AuthProvider | undefined;
  ca: string | undefined;
  clientCert?: ClientCertificate | undefined;
  proxy?: ProxySettings | undefined;
  userAgent: string;
  /** A socket that answers no ping for this long is dead; undefined: the default; 0: never ping. */
  idleTimeoutMs?: number | undefined;
}

export const WS_SUBPROTOCOL = 'mcp';
/** Pings every 15 s, dead after three unanswered: the same 45 s as the gateway's keep-alives. */
const DEFAULT_IDLE_MS = 45_000;
const HANDSHAKE_TIMEOUT_MS = 30_000;
const MAX_FRAME_BYTES = 64 * 1024 * 1024;
/** Messages waiting for a slow client before the socket stops reading. */
const MAX_QUEUED = 16;

export class WebSocketOpener implements ChannelOpener {
  readonly transport = 'ws';
  readonly #options: WebSocketOptions;
  readonly #closedHint: string;
  readonly #idleMs: number;

  constructor(options: WebSocketOptions) {
    this.#options = options;
    this.#closedHint = closedConnectionHint(options.url, options.clientCert);
    this.#idleMs = options.idleTimeoutMs ?? DEFAULT_IDLE_MS;
  }

  get displayUrl(): string {
    return `${this.#options.url.origin}${this.#options.url.pathname}`;
  }

  async open(
    receive: Receive,
    signal: AbortSignal,
    log: BridgeLog,
    authRetries = 0,
  ): Promise<MessageChannel> {
    const socket = await this.#connect(signal);
    if (socket instanceof UpgradeRefusal) {
      if (socket.status === 401 && this.#options.auth) {
        const outcome = await this.#options.auth.unauthorized({
          wwwAuthenticate: socket.challenge,
          url: this.#options.url,
          status: 401,
        });
        if (outcome.retry && authRetries < 2) return this.open(receive, signal, log, authRetries + 1);
        throw new GatewayError(
          'unauthorized',
          outcome.retry ? 'the server refused the new credentials (401)' : outcome.hint,
          { status: 401 },
        );
      }
      throw socket.error(this.displayUrl);
    }
    if (socket.protocol !== WS_SUBPROTOCOL) {
      log.debug(`the server chose no "${WS_SUBPROTOCOL}" subprotocol; speaking MCP anyway`);
    }
    return this.#channel(socket, receive, signal, log);
  }

  async close(): Promise<void> {
    // Sockets belong to their channels; there is no pool to release.
  }

  #connect(signal: AbortSignal): Promise<WebSocket | UpgradeRefusal> {
    return (async () => {
      const headers: Record<string, string> = { 'user-agent': this.#options.userAgent };
      if (this.#options.auth) Object.assign(headers, await this.#options.auth.headers());
      Object.assign(headers, this.#options.headers);
      const { ca, clientCert, proxy, url } = this.#options;
      const agent = proxyAgentFor(url, proxy, { ca, clientCert });
      const socket = new WebSocket(url, [WS_SUBPROTOCOL], {
        headers,
        ...(ca === undefined ? {} : { ca: [...rootCertificates, ca] }),
        ...(clientCert ?? {}),
        ...(agent === undefined ? {} : { agent }),
        // A black-holed upgrade is as dead as a silent socket.
        handshakeTimeout:
          this.#idleMs > 0 ? Math.min(this.#idleMs, HANDSHAKE_TIMEOUT_MS) : HANDSHAKE_TIMEOUT_MS,
        perMessageDeflate: false,
        maxPayload: MAX_FRAME_BYTES,
        followRedirects: false,
      });
      return new Promise<WebSocket | UpgradeRefusal>((resolve, reject) => {
        const onAbort = () => socket.terminate();
        signal.addEventListener('abort', onAbort, { once: true });
        const settle = () => {
          signal.removeEventListener('abort', onAbort);
          socket.off('open', onOpen);
          socket.off('unexpected-response', onRefused);
        };
        const onOpen = () => {
          settle();
          resolve(socket);
        };
        const onRefused = (_request: unknown, response: import('node:http').IncomingMessage) => {
          settle();
          const refusal = new UpgradeRefusal(
            response.statusCode ?? 0,
            firstHeader(response.headers['www-authenticate']),
          );
          response.resume();
          socket.terminate();
          resolve(refusal);
        };
        socket.on('open', onOpen);
        socket.on('unexpected-response', onRefused);
        socket.once('error', (error) => {
          settle();
          reject(
            signal.aborted
              ? signal.reason
              : networkError(error, {
                  displayUrl: this.displayUrl,
                  idleTimeoutMs: this.#idleMs,
                  closedHint: this.#closedHint,
                }),
          );
        });
      });
    })();
  }

  #channel(socket: WebSocket, receive: Receive, signal: AbortSignal, log: BridgeLog): MessageChannel {
    let resolveEnded!: (reason: string) => void;
    const ended = new Promise<string>((resolve) => {
      resolveEnded = resolve;
    });
    let why: string | undefined;
    let lastHeard = Date.now();
    const heard = () => {
      lastHeard = Date.now();
    };
    const idleMs = this.#idleMs;
    const pinger =
      idleMs > 0
        ? setInterval(
            () => {
              if (Date.now() - lastHeard > idleMs) {
                why = `no answer to pings for ${Math.round(idleMs / 1000)} s`;
                socket.terminate();
                return;
              }
              socket.ping();
            },
            Math.max(1_000, Math.floor(idleMs / 3)),
          )
        : undefined;
    pinger?.unref();
    // Messages reach the client in order; while it lags, the socket stops reading.
    let queue: Promise<void> = Promise.resolve();
    let queued = 0;
    socket.on('pong', heard);
    socket.on('ping', heard);
    socket.on('message', (data, isBinary) => {
      heard();
      if (isBinary) {
        log.debug('skipped a binary frame from the server');
        return;
      }
      const text = rawText(data);
      const message = parseServerMessage(text, log);
      if (!message) return;
      queued++;
      if (queued > MAX_QUEUED && !socket.isPaused) socket.pause();
      queue = queue
        .then(() => receive(message, text))
        .catch((error: unknown) => log.debug(`a server message was not passed on: ${String(error)}`))
        .finally(() => {
          queued--;
          if (queued === 0 && socket.isPaused) socket.resume();
        });
    });
    socket.on('error', (error) => {
      why ??= sanitize(error.message, 120);
    });
    socket.once('close', (code, reason) => {
      clearInterval(pinger);
      signal.removeEventListener('abort', onAbort);
      const said = reason.length > 0 ? `: ${sanitize(reason.toString('utf8'), 80)}` : '';
      resolveEnded(why ?? `closed by the server (${code}${said})`);
    });
    const onAbort = () => socket.close(1001);
    signal.addEventListener('abort', onAbort, { once: true });
    const close = () => {
      why ??= 'closed';
      if (socket.readyState === WebSocket.OPEN) socket.close(1000);
      else socket.terminate();
    };
    return {
      sessionId: randomUUID(),
      ended,
      close,
      send: (text) =>
        new Promise<void>((resolve, reject) => {
          if (socket.readyState !== WebSocket.OPEN) {
            reject(
              new GatewayError('session-expired', 'the WebSocket closed; the session ended with it', {
                unsent: true,
              }),
            );
            return;
          }
          socket.send(text, (error) => {
            if (!error) resolve();
            else
              reject(
                new GatewayError(
                  'unreachable',
                  `the WebSocket broke while sending: ${sanitize(error.message, 120)}`,
                ),
              );
          });
        }),
    };
  }
}

/** A refused upgrade (no 101): what the server answered instead. */
class UpgradeRefusal {
  readonly status: number;
  readonly challenge: string | undefined;

  constructor(status: number, challenge: string | undefined) {
    this.status = status;
    this.challenge = challenge;
  }

  error(displayUrl: string): GatewayError {
    // No socket, no session, no message: trying again soon is safe.
    return statusError(this.status, {
      peer: 'server',
      displayUrl,
      unsent: true,
      endpoint: 'WebSocket MCP endpoint',
      refused: 'the WebSocket upgrade',
    });
  }
}

function rawText(data: WebSocket.RawData): string {
  if (Array.isArray(data)) return Buffer.concat(data).toString('utf8');
  if (data instanceof ArrayBuffer) return Buffer.from(data).toString('utf8');
  return data.toString('utf8');
}

function firstHeader(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}
