// Checks that run before authentication: Host (DNS rebinding) and Origin (browsers), pure over headers.

import { isLoopbackAddress } from '../util/loopback.ts';

/** The hostname part of a Host header ("[::1]:8787" → "[::1]", "a.b:80" → "a.b"). */
function hostname(hostHeader: string): string {
  if (hostHeader.startsWith('[')) return hostHeader.slice(0, hostHeader.indexOf(']') + 1).toLowerCase();
  return (hostHeader.split(':')[0] ?? '').toLowerCase();
}

/**
 * A gateway bound to loopback only answers requests addressed to loopback names (or its public URL),
 * so a web page on another domain cannot reach it through DNS rebinding.
 */
export function hostAllowed(
  hostHeader: string | undefined,
  boundToLoopback: boolean,
  publicHost?: string,
): boolean {
  if (!boundToLoopback) return true;
  if (!hostHeader) return false;
  const name = hostname(hostHeader);
  return isLoopbackAddress(name) || (publicHost !== undefined && name === publicHost);
}

/** No Origin (not a browser) is fine; otherwise it must be the gateway's own origin or on the allowlist. */
export function originAllowed(
  origin: string | undefined,
  ownOrigin: string,
  allowed: readonly string[],
  publicOrigin?: string,
): boolean {
  if (origin === undefined) return true;
  const normalized = origin.toLowerCase();
  return (
    normalized === ownOrigin.toLowerCase() ||
    (publicOrigin !== undefined && normalized === publicOrigin.toLowerCase()) ||
    allowed.some((entry) => entry.toLowerCase() === normalized || entry === '*')
  );
}

/**
 * Headers that must come once. node keeps only the first Authorization, Host or Content-Type and joins
 * other repeats with commas, so a second copy means different things to different hops (a proxy may
 * check the last one): such requests are refused rather than guessed.
 */
const SINGLE_HEADERS = new Set([
  'authorization',
  'host',
  'origin',
  'content-type',
  'content-length',
  'content-encoding',
  'mcp-session-id',
  'mcp-protocol-version',
  'last-event-id',
]);

/** The first header of SINGLE_HEADERS that `rawHeaders` (name, value, name, value, …) repeats. */
export function duplicatedHeader(rawHeaders: readonly string[]): string | undefined {
  const seen = new Set<string>();
  for (let index = 0; index < rawHeaders.length; index += 2) {
    const name = (rawHeaders[index] ?? '').toLowerCase();
    if (!SINGLE_HEADERS.has(name)) continue;
    if (seen.has(name)) return name;
    seen.add(name);
  }
  return undefined;
}
