// MCP protocol versions the gateway speaks on its Streamable HTTP front.

/** Newest first. 2024-11-05 is the legacy HTTP+SSE transport's (transports/legacy-sse/), not this front's. */
export const SUPPORTED_PROTOCOL_VERSIONS = ['2025-11-25', '2025-06-18', '2025-03-26'] as const;

export const LATEST_PROTOCOL_VERSION = SUPPORTED_PROTOCOL_VERSIONS[0];

/** What the spec says to assume when a request carries no MCP-Protocol-Version header. */
export const DEFAULT_HEADER_PROTOCOL_VERSION = '2025-03-26';

export function isSupportedProtocolVersion(version: string): boolean {
  return (SUPPORTED_PROTOCOL_VERSIONS as readonly string[]).includes(version);
}

/** The version of the clients the legacy HTTP+SSE front serves: old clients that know no newer one. */
export const LEGACY_SSE_PROTOCOL_VERSION = '2024-11-05';

/**
 * Whether a session may agree on `version` at initialize: one the Streamable HTTP front speaks, or the
 * legacy transport's (whose clients would give up on a newer answer).
 */
export function isNegotiableProtocolVersion(version: string): boolean {
  return isSupportedProtocolVersion(version) || version === LEGACY_SSE_PROTOCOL_VERSION;
}
