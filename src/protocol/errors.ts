// Local (non-wire) errors: a typed code the CLI and callers can branch on; never sent as JSON-RPC.

export type RelayErrorCode =
  | 'CONFIG_INVALID'
  | 'CONFIG_NOT_FOUND'
  | 'LISTEN_REFUSED'
  | 'KEYS_FILE'
  | 'KEY_NOT_FOUND'
  | 'USAGE'
  | 'BACKEND_SPAWN'
  | 'CLAUDE_CONFIG'
  /** ssh-entry refused a connection (unknown server, not allowed, over the limit). */
  | 'SSH_REFUSED'
  /** authorized_keys could not be read or a key given to `ssh authorize` is malformed. */
  | 'AUTHORIZED_KEYS';

export class RelayError extends Error {
  readonly code: RelayErrorCode;

  constructor(code: RelayErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'RelayError';
    this.code = code;
  }
}
