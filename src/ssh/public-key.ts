// OpenSSH public keys as `ssh authorize` accepts them: one `type base64 [comment]` line whose blob
// really is a key of that type, with the SHA256 fingerprint `ssh-keygen -l` prints.

import { createHash } from 'node:crypto';
import { RelayError } from '../errors.ts';
import { sanitize } from '../util/sanitize.ts';

export interface PublicKey {
  /** e.g. ssh-ed25519 */
  readonly type: string;
  /** The key blob, base64 as in the .pub file. */
  readonly blob: string;
  /** The free text after the key, control characters removed; may be empty. */
  readonly comment: string;
  /** `SHA256:…`, as `ssh-keygen -l` shows it. */
  readonly fingerprint: string;
}

/** Key types OpenSSH accepts for user authentication (DSA is gone from current OpenSSH). */
export const KEY_TYPES: ReadonlySet<string> = new Set([
  'ssh-ed25519',
  'ssh-rsa',
  'ecdsa-sha2-nistp256',
  'ecdsa-sha2-nistp384',
  'ecdsa-sha2-nistp521',
  'sk-ssh-ed25519@openssh.com',
  'sk-ecdsa-sha2-nistp256@openssh.com',
]);

const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

/** Parses the text of a .pub file (exactly one key); every problem is one clear line. */
export function parsePublicKeyFile(text: string, source: string): PublicKey {
  if (/PRIVATE KEY/.test(text)) {
    throw malformed(
      `${source} is a private key; give the public one (${source}.pub, or ssh-keygen -y -f KEY)`,
    );
  }
  const lines = text
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'));
  if (lines.length === 0) throw malformed(`${source} holds no public key`);
  if (lines.length > 1) {
    throw malformed(`${source} holds ${lines.length} lines; give one public key per "ssh authorize"`);
  }
  const [type = '', blob, ...rest] = (lines[0] ?? '').split(/\s+/);
  if (!KEY_TYPES.has(type)) {
    const hint = /[=,"]/.test(type)
      ? 'it starts with options; give the plain public key'
      : type === 'ssh-dss'
        ? 'DSA keys are refused by current OpenSSH; make an ed25519 key (ssh-keygen -t ed25519)'
        : `unsupported key type "${sanitize(type, 40)}" (use ssh-ed25519, ecdsa-sha2-* or ssh-rsa)`;
    throw malformed(`${source} is not an OpenSSH public key: ${hint}`);
  }
  return checkedKey(type, blob, rest.join(' '), source);
}

/** Builds a key from the fields of an authorized_keys line; undefined when they do not form a key. */
export function keyFromFields(
  type: string,
  blob: string | undefined,
  comment: string,
): PublicKey | undefined {
  if (!KEY_TYPES.has(type)) return undefined;
  try {
    return checkedKey(type, blob, comment, 'authorized_keys');
  } catch {
    return undefined;
  }
}

function checkedKey(type: string, blob: string | undefined, comment: string, source: string): PublicKey {
  if (blob === undefined || !BASE64.test(blob)) {
    throw malformed(`${source}: the ${type} key has no valid base64 key data`);
  }
  const bytes = Buffer.from(blob, 'base64');
  // The blob starts with the key type again as an SSH string (uint32 length + bytes); a pasted
  // fragment or a key of another type fails here rather than at login.
  const length = bytes.length >= 4 ? bytes.readUInt32BE(0) : -1;
  const inner =
    length > 0 && 4 + length <= bytes.length ? bytes.subarray(4, 4 + length).toString('latin1') : '';
  if (inner !== type || bytes.length < 4 + length + 8) {
    throw malformed(`${source}: the key data is damaged or is not a ${type} key`);
  }
  const fingerprint = `SHA256:${createHash('sha256').update(bytes).digest('base64').replace(/=+$/, '')}`;
  return { type, blob, comment: sanitize(comment, 200), fingerprint };
}

function malformed(message: string): RelayError {
  return new RelayError('AUTHORIZED_KEYS', message);
}
