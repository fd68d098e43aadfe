// API key material: generating keys and ids, and the one hash both the CLI and the gateway use.

import { createHash, randomBytes } from 'node:crypto';

export const API_KEY_PREFIX = 'mcpr_';

/** `mcpr_` + 32 random bytes in base64url (43 characters). The prefix makes leaked keys easy to scan for. */
const API_KEY_SHAPE = /^mcpr_[A-Za-z0-9_-]{43}$/;

export function generateApiKey(): string {
  return `${API_KEY_PREFIX}${randomBytes(32).toString('base64url')}`;
}

/** A short id to name a key in lists and `keys revoke`; not secret. */
export function generateKeyId(): string {
  return randomBytes(4).toString('hex');
}

/** Cheap shape check so that arbitrary bearer tokens (JWTs, junk) are not even hashed. */
export function looksLikeApiKey(token: string): boolean {
  return API_KEY_SHAPE.test(token);
}

/**
 * SHA-256 of the whole key, hex. A fast unsalted hash is right here, unlike for passwords: a key
 * carries 256 random bits, so even a leaked hash cannot be brute-forced however fast the hash is.
 * Slow salted KDFs (scrypt, bcrypt) exist for low-entropy passwords; they would cost milliseconds per
 * request and, being salted, rule out the O(1) lookup by hash that authentication does. Looking up
 * a hash in a map also leaks nothing useful through timing: an attacker cannot steer the hash.
 */
export function hashApiKey(key: string): string {
  return createHash('sha256').update(key, 'utf8').digest('hex');
}
