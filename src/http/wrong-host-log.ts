// The gateway's log line for requests refused for their Host (421): once per distinct Host an hour, and
// at most a few distinct ones an hour, so a scanner or a misconfigured proxy cannot flood the log.

import type { Logger } from '../log.ts';

/** Distinct Host values logged in one window; past them, one line says the rest go unlogged. */
const HOSTS_PER_WINDOW = 20;
const WINDOW_MS = 3_600_000;

/** The `onRefused` of hostGuard: warns about each Host (as quoted in the refusal) once a window. */
export function wrongHostLog(
  log: Logger,
  publicUrl: string | undefined,
  now: () => number = Date.now,
): (quotedHost: string | undefined) => void {
  const seen = new Set<string>();
  let windowStart = now();
  let overflowLogged = false;
  return function logWrongHost(quotedHost) {
    if (now() - windowStart >= WINDOW_MS) {
      seen.clear();
      overflowLogged = false;
      windowStart = now();
    }
    // No Host at all is one more distinct value: "" cannot be a quoted Host (sanitize trims to "").
    const key = quotedHost ?? '\u0000none';
    if (seen.has(key)) return;
    if (seen.size >= HOSTS_PER_WINDOW) {
      if (!overflowLogged) {
        overflowLogged = true;
        log.warn(
          { distinctHosts: seen.size },
          'more requests refused for other Host values; not logged again before the hour is over',
        );
      }
      return;
    }
    seen.add(key);
    log.warn(
      { host: quotedHost ?? null, publicUrl: publicUrl ?? null },
      publicUrl === undefined
        ? 'refused (421) a request whose Host is not a loopback name, and there is no publicUrl: set publicUrl to the address clients use, or make the proxy pass the Host header (logged once per Host an hour)'
        : "refused (421) a request whose Host is not publicUrl's host: set publicUrl to the address clients use, or make the proxy pass the Host header (logged once per Host an hour)",
    );
  };
}
