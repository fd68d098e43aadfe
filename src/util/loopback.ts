// Which host names mean "this machine": one rule for the gateway's listen check, its Host guard,
// OAuth's plain-http exceptions and the bridge's cleartext warning.

const LOOPBACK_NAMES = new Set(['localhost', '127.0.0.1', '[::1]', '::1']);
/**
 * An IPv4 literal in 127.0.0.0/8. A mere "127." prefix is not enough: "127.attacker.example" is a
 * name its owner can point anywhere, which is exactly what DNS rebinding needs.
 */
const LOOPBACK_IPV4 = /^127(?:\.(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

/** A host name or address (IPv6 with or without brackets, as in a URL's hostname) on this machine. */
export function isLoopbackAddress(host: string): boolean {
  return LOOPBACK_NAMES.has(host) || LOOPBACK_IPV4.test(host);
}
