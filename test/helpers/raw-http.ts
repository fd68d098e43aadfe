// HTTP/1.1 over a raw socket, for tests that must send what no HTTP client would: bytes that are not
// UTF-8, CR/LF inside header values, duplicate or conflicting headers, bodies trickled byte by byte.

import { connect, type Socket } from 'node:net';

export interface RawResponse {
  /** Undefined when the server closed (or the time ran out) before a status line arrived. */
  status: number | undefined;
  headers: Record<string, string>;
  body: string;
  /** The server closed the connection (rather than the deadline ending the exchange). */
  closedByServer: boolean;
  elapsedMs: number;
}

export interface RawRequestOptions {
  /** Give up after this long (the answer then has closedByServer false). Default 10 s. */
  timeoutMs?: number;
  /** Send the request in pieces of this many bytes, waiting `trickleDelayMs` between them. */
  trickleBytes?: number;
  trickleDelayMs?: number;
  /** Send this many bytes at once before trickling the rest (e.g. whole headers, then a slow body). */
  trickleAfter?: number;
  /** Stop sending after this many bytes (the rest never comes). */
  sendLimit?: number;
}

/** A request as bytes; Content-Length is added for a body unless `headers` already has a framing header. */
export function httpRequest(
  method: string,
  path: string,
  headers: ReadonlyArray<readonly [string, string]>,
  body?: string | Buffer,
): Buffer {
  const lines = [`${method} ${path} HTTP/1.1`];
  const names = new Set(headers.map(([name]) => name.toLowerCase()));
  for (const [name, value] of headers) lines.push(`${name}: ${value}`);
  const payload = body === undefined ? Buffer.alloc(0) : Buffer.from(body);
  if (body !== undefined && !names.has('content-length') && !names.has('transfer-encoding')) {
    lines.push(`Content-Length: ${payload.length}`);
  }
  return Buffer.concat([Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'latin1'), payload]);
}

/** Sends `bytes` on a fresh connection and reads one response (or the close, or the deadline). */
export function rawExchange(
  port: number,
  bytes: Buffer,
  options: RawRequestOptions = {},
): Promise<RawResponse> {
  const started = Date.now();
  return new Promise((resolve) => {
    const socket: Socket = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    let settled = false;
    let trickle: NodeJS.Timeout | undefined;
    const finish = (closedByServer: boolean) => {
      if (settled) return;
      settled = true;
      clearTimeout(deadline);
      clearTimeout(trickle);
      socket.destroy();
      resolve({
        ...parseRawResponse(Buffer.concat(chunks)),
        closedByServer,
        elapsedMs: Date.now() - started,
      });
    };
    const deadline = setTimeout(() => finish(false), options.timeoutMs ?? 10_000);
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      if (responseComplete(Buffer.concat(chunks))) finish(false);
    });
    socket.on('end', () => finish(true));
    socket.on('close', () => finish(true));
    socket.on('error', () => finish(true));
    const limit = Math.min(bytes.length, options.sendLimit ?? bytes.length);
    const step = options.trickleBytes;
    socket.once('connect', () => {
      if (step === undefined) {
        socket.write(bytes.subarray(0, limit));
        return;
      }
      let offset = Math.min(limit, options.trickleAfter ?? 0);
      if (offset > 0) socket.write(bytes.subarray(0, offset));
      const next = () => {
        if (settled || offset >= limit || socket.destroyed) return;
        socket.write(bytes.subarray(offset, Math.min(limit, offset + step)));
        offset += step;
        trickle = setTimeout(next, options.trickleDelayMs ?? 100);
      };
      next();
    });
  });
}

/** Whether `data` holds a whole response: headers plus a Content-Length or chunked body. */
function responseComplete(data: Buffer): boolean {
  const end = data.indexOf('\r\n\r\n');
  if (end === -1) return false;
  const head = data.subarray(0, end).toString('latin1');
  const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(head)?.[1]);
  if (status === 100) return responseComplete(data.subarray(end + 4));
  const length = /\r\ncontent-length:\s*(\d+)/i.exec(head)?.[1];
  if (length !== undefined) return data.length - (end + 4) >= Number(length);
  if (/\r\ntransfer-encoding:\s*chunked/i.test(head)) return data.includes('\r\n0\r\n\r\n', end);
  return false;
}

/** One response from raw bytes (after any 100 Continue), its chunked body joined. */
export function parseRawResponse(data: Buffer): Omit<RawResponse, 'closedByServer' | 'elapsedMs'> {
  let start = 0;
  for (;;) {
    const end = data.indexOf('\r\n\r\n', start);
    if (end === -1) return { status: undefined, headers: {}, body: '' };
    const head = data.subarray(start, end).toString('latin1');
    const [statusLine = '', ...headerLines] = head.split('\r\n');
    const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(statusLine)?.[1]);
    if (status === 100) {
      start = end + 4;
      continue;
    }
    const headers: Record<string, string> = {};
    for (const line of headerLines) {
      const colon = line.indexOf(':');
      if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
    }
    const rest = data.subarray(end + 4);
    const body = /chunked/i.test(headers['transfer-encoding'] ?? '') ? dechunk(rest) : rest.toString('utf8');
    return { status: Number.isNaN(status) ? undefined : status, headers, body };
  }
}

function dechunk(data: Buffer): string {
  const parts: Buffer[] = [];
  let offset = 0;
  while (offset < data.length) {
    const lineEnd = data.indexOf('\r\n', offset);
    if (lineEnd === -1) break;
    const size = Number.parseInt(data.subarray(offset, lineEnd).toString('latin1'), 16);
    if (!(size > 0)) break;
    parts.push(data.subarray(lineEnd + 2, lineEnd + 2 + size));
    offset = lineEnd + 2 + size + 2;
  }
  return Buffer.concat(parts).toString('utf8');
}
