// The gateway's log of requests refused at its edge: a foreign Host (421), a foreign Origin (403), a
// credential missing or refused (401/403). Each line names the client's address, the path and the
// reason the client was told, never the credential. A distinct refusal is logged once an hour (a Host
// once per Host, whoever sends it; the rest once per reason and address), and at most 50 distinct ones
// an hour, so a scanner or a client retrying with a revoked key cannot flood the log.

import type { IncomingMessage } from 'node:http';
import type { Logger } from '../log.ts';
import { quoteHost } from './request-guards.ts';

/** Distinct refusals logged in one window; past them, one line says the rest go unlogged. */
const DISTINCT_PER_WINDOW = 50;
const WINDOW_MS = 3_600_000;

/** What the edge refused, as the log shows it. */
export interface EdgeRefusal {
  status: number;
  /** What the client was told (no secrets: the refusals' own words). */
  message: string;
  /** The TCP peer (a proxy's, behind one); undefined on the SSH socket. */
  address: string | undefined;
  path: string;
  /** The Host header as the 421 message quotes it (request-guards.ts `quoteHost`). */
  host: string | undefined;
}

/** What the log shows of `req` refused with `status` and `message`. */
export function edgeRefusal(req: IncomingMessage, status: number, message: string): EdgeRefusal {
  const url = req.url ?? '/';
  const query = url.indexOf('?');
  return {
    status,
    message,
    address: req.socket.remoteAddress,
    path: query === -1 ? url : url.slice(0, query),
    host: req.headers.host === undefined ? undefined : quoteHost(req.headers.host),
  };
}

/** The `onRefused` of the edge (http/routes.ts, upgrades): warns about each distinct refusal once a window. */
export function refusalLog(
  log: Logger,
  publicUrl: string | undefined,
  now: () => number = Date.now,
): (refusal: EdgeRefusal) => void {
  const seen = new Set<string>();
  let windowStart = now();
  let overflowLogged = false;
  return function logRefusal(refusal) {
    if (now() - windowStart >= WINDOW_MS) {
      seen.clear();
      overflowLogged = false;
      windowStart = now();
    }
    const wrongHost = refusal.status === 421;
    // No Host at all is one more distinct value: "" cannot be a quoted Host (sanitize trims to "").
    const key = wrongHost
      ? `421\u0000${refusal.host ?? '\u0000none'}`
      : `${refusal.status}\u0000${refusal.message}\u0000${refusal.address ?? ''}`;
    if (seen.has(key)) return;
    if (seen.size >= DISTINCT_PER_WINDOW) {
      if (!overflowLogged) {
        overflowLogged = true;
        log.warn(
          { distinct: seen.size },
          'more requests refused at the edge; not logged again before the hour is over',
        );
      }
      return;
    }
    seen.add(key);
    const { status, address, path } = refusal;
    if (wrongHost) {
      log.warn(
        { status, address: address ?? null, path, host: refusal.host ?? null, publicUrl: publicUrl ?? null },
        publicUrl === undefined
          ? 'refused (421) a request whose Host is not a loopback name, and there is no publicUrl: set publicUrl to the address clients use, or make the proxy pass the Host header (logged once per Host an hour)'
          : "refused (421) a request whose Host is not publicUrl's host: set publicUrl to the address clients use, or make the proxy pass the Host header (logged once per Host an hour)",
      );
      return;
    }
    log.warn(
      { status, address: address ?? null, path, reason: refusal.message },
      `refused (${status}) ${path}: ${refusal.message} (logged once per reason and address an hour)`,
    );
  };
}
