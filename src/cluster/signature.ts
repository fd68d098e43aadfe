// What replicas sign with the cluster secret (the peer hop, each registry entry): an HMAC-SHA256 over
// the parts joined by line breaks, and its check in constant time.

import { createHmac, timingSafeEqual } from 'node:crypto';

/** The signature of `parts` (none holds a line break) with `secret`, base64url. */
export function signature(secret: string, parts: readonly string[]): string {
  return createHmac('sha256', secret).update(parts.join('\n')).digest('base64url');
}

/** Whether `given` is `parts`' signature with `secret`, compared in constant time. */
export function signatureHolds(secret: string, parts: readonly string[], given: string): boolean {
  const expected = Buffer.from(signature(secret, parts));
  const received = Buffer.from(given);
  return received.length === expected.length && timingSafeEqual(received, expected);
}
