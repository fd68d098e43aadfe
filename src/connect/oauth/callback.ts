// The loopback redirect target of a login (RFC 8252 §7.3): an HTTP server on 127.0.0.1 that waits
// for the browser to bring back `?code=…&state=…`, checks the state, and tells the user to return.

import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { sanitize } from '../../util/sanitize.ts';
import { OAuthError } from './http.ts';

export interface CallbackResult {
  code: string;
  /** RFC 9207 `iss`, when the authorization server sends it. */
  iss: string | undefined;
}

export interface CallbackServer {
  /** `http://127.0.0.1:<port>/callback` */
  readonly redirectUri: string;
  /** Resolves with the code for `state`; rejects on an error response, abort or close. */
  wait(state: string, signal: AbortSignal): Promise<CallbackResult>;
  close(): Promise<void>;
}

const PAGE = (title: string, text: string) =>
  `<!doctype html><meta charset="utf-8"><title>${title}</title>` +
  `<body style="font-family:system-ui,sans-serif;margin:3em"><h1>${title}</h1><p>${text}</p></body>`;

/**
 * Listens on 127.0.0.1:`port` (0: any free port). When `port` is taken, falls back to a free one if
 * `fallback` is set (the caller then registers the new redirect URI), else fails.
 */
export async function startCallbackServer(port: number, fallback: boolean): Promise<CallbackServer> {
  let deliver: ((query: URLSearchParams) => void) | undefined;
  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    if (url.pathname !== '/callback' || (!url.searchParams.has('code') && !url.searchParams.has('error'))) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
      return;
    }
    const failed = url.searchParams.has('error');
    res
      .writeHead(failed ? 400 : 200, {
        'content-type': 'text/html; charset=utf-8',
        'cache-control': 'no-store',
      })
      .end(
        failed
          ? PAGE('Sign-in failed', 'mcp-relay could not sign you in. The details are in its log.')
          : PAGE('Signed in', 'mcp-relay is signed in. You can close this tab and return to your app.'),
      );
    deliver?.(url.searchParams);
  });
  const address = await listen(server, port).catch(async (error: NodeJS.ErrnoException) => {
    if (error.code === 'EADDRINUSE' && fallback && port !== 0) return listen(server, 0);
    throw new OAuthError(
      `cannot listen on 127.0.0.1:${port} for the sign-in callback (${error.code ?? error.message})`,
    );
  });
  return {
    redirectUri: `http://127.0.0.1:${address.port}/callback`,
    wait(state, signal) {
      return new Promise<CallbackResult>((resolve, reject) => {
        const onAbort = () => reject(signal.reason ?? new OAuthError('sign-in cancelled'));
        if (signal.aborted) return onAbort();
        signal.addEventListener('abort', onAbort, { once: true });
        deliver = (query) => {
          // A stale tab from an earlier attempt (another state) is ignored, not an error.
          if (query.get('state') !== state) return;
          signal.removeEventListener('abort', onAbort);
          const error = query.get('error');
          if (error) {
            const description = sanitize(query.get('error_description') ?? '', 200);
            const code = sanitize(error, 60);
            reject(
              new OAuthError(
                `the authorization server refused: ${code}${description ? `: ${description}` : ''}`,
                {
                  code,
                },
              ),
            );
            return;
          }
          resolve({ code: query.get('code') ?? '', iss: query.get('iss') ?? undefined });
        };
      });
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

function listen(server: Server, port: number): Promise<AddressInfo> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => {
      server.off('error', reject);
      resolve(server.address() as AddressInfo);
    });
  });
}
