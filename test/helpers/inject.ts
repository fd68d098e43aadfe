// In-process HTTP for a plain node:http handler: the request goes through node's own HTTP parser and
// response writer over an in-memory stream pair, so no port, no listener and no network are involved.

import { createServer, type RequestListener } from 'node:http';
import { duplexPair } from 'node:stream';
import { httpRequest, parseRawResponse, type RawResponse } from './raw-http.ts';

export interface InjectRequest {
  method?: string;
  url: string;
  /** In order; repeats are sent as given. Host defaults to 127.0.0.1. */
  headers?: ReadonlyArray<readonly [string, string]>;
  body?: string | Buffer;
}

export type InjectResponse = Omit<RawResponse, 'closedByServer' | 'elapsedMs'>;

/** Sends one request to `handler` and resolves with the response once the handler ended it. */
export function inject(handler: RequestListener, request: InjectRequest): Promise<InjectResponse> {
  const server = createServer(handler);
  const [client, connection] = duplexPair();
  server.emit('connection', connection);
  const headers = request.headers ?? [];
  const named = (name: string) => headers.some(([key]) => key.toLowerCase() === name);
  const bytes = httpRequest(
    request.method ?? 'GET',
    request.url,
    [...(named('host') ? [] : [['host', '127.0.0.1'] as const]), ...headers, ['connection', 'close']],
    request.body,
  );
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    client.on('data', (chunk: Buffer) => chunks.push(chunk));
    client.once('error', reject);
    // Connection: close: node ends the stream after the response, which is then whole.
    client.once('end', () => {
      client.destroy();
      resolve(parseRawResponse(Buffer.concat(chunks)));
    });
    client.write(bytes);
  });
}
