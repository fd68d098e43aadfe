// Local (non-wire) errors: a typed code the CLI and callers branch on, never sent as JSON-RPC and never
// matched by message text. Wire errors are JSON-RPC error objects (protocol/jsonrpc.ts ErrorCode).

export type RelayErrorCode =
  | 'CONFIG_INVALID'
  | 'CONFIG_NOT_FOUND'
  /** A `${VAR}` in the config names a variable the environment does not set (and gives no default). */
  | 'CONFIG_ENV_UNSET'
  | 'LISTEN_REFUSED'
  | 'KEYS_FILE'
  | 'KEY_NOT_FOUND'
  | 'USAGE'
  | 'CLAUDE_CONFIG'
  /** ssh-entry refused a connection (unknown server, not allowed, over the limit). */
  | 'SSH_REFUSED'
  /** authorized_keys could not be read or a key given to `ssh authorize` is malformed. */
  | 'AUTHORIZED_KEYS'
  /** A graceful restart of backends could not be done (not running, unknown server, gateway stopping). */
  | 'BACKEND_RESTART'
  /** The cluster's Redis could not be reached for something that must reach every replica (a revocation). */
  | 'CLUSTER_UNAVAILABLE';

export class RelayError extends Error {
  readonly code: RelayErrorCode;

  constructor(code: RelayErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'RelayError';
    this.code = code;
  }
}

/** The message of whatever was thrown, for a log line or a wrapped error (a thrown non-Error included). */
export function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
