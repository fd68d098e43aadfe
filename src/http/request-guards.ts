// Checks that run before authentication: Host (DNS rebinding) and Origin (browsers), pure over headers.

const LOOPBACK_HOSTS = new Set(['localhost', '127.0.0.1', '[::1]', '::1']);

export function isLoopbackAddress(host: string): boolean {
  return LOOPBACK_HOSTS.has(host) || host.startsWith('127.');
}

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
  return (
    LOOPBACK_HOSTS.has(name) || name.startsWith('127.') || (publicHost !== undefined && name === publicHost)
  );
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
