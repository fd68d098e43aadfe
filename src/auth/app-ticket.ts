// Browser sign-in for the apps the gateway serves (`/apps/<server>/`): short-lived, single-use tickets a
// signed-in MCP client mints for its user, exchanged once for a cookie bound to that user and server.
// Both are HMAC-signed with a secret made per gateway, so nothing is stored but the used tickets' nonces.

import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Identity } from '../sessions/types.ts';

/** How long a ticket may wait before it is redeemed. */
export const TICKET_TTL_MS = 5 * 60_000;
/** How long the cookie a ticket is exchanged for lasts. */
export const COOKIE_TTL_MS = 8 * 60 * 60_000;

/** A ticket's or cookie's holder: the identity that minted the ticket (its credential is checked again per request). */
export type Redeemed =
  | { ok: true; identity: Identity }
  | { ok: false; reason: 'invalid' | 'expired' | 'used' };

interface Payload {
  /** What the token is: a ticket ("t") or a cookie ("c"); one never passes for the other. */
  k: 't' | 'c';
  u: string;
  g: readonly string[];
  /** The identity's method and credential, so a revoked API key ends its cookies too. */
  m: string;
  c: string;
  s: string;
  /** Expiry, ms since the epoch. */
  e: number;
  /** A ticket's nonce, remembered once used. */
  n?: string;
}

export class AppTickets {
  readonly #secret: Buffer;
  readonly #now: () => number;
  /** Nonces of redeemed tickets, until they would have expired anyway. */
  readonly #used = new Map<string, number>();

  constructor(options: { secret?: Buffer; now?: () => number } = {}) {
    this.#secret = options.secret ?? randomBytes(32);
    this.#now = options.now ?? Date.now;
  }

  /** A ticket for `signer` on `server`, valid for TICKET_TTL_MS and once. */
  mint(signer: Identity, server: string): { ticket: string; expiresAt: number } {
    const expiresAt = this.#now() + TICKET_TTL_MS;
    const payload: Payload = {
      k: 't',
      ...identityFields(signer),
      s: server,
      e: expiresAt,
      n: randomBytes(12).toString('base64url'),
    };
    return { ticket: this.#sign(payload), expiresAt };
  }

  /** The signer of a ticket for `server`; a used, expired, foreign or forged one is refused. */
  redeem(ticket: string, server: string): Redeemed {
    const payload = this.#verify(ticket, 't', server);
    if (payload === undefined || payload.n === undefined) return { ok: false, reason: 'invalid' };
    const now = this.#now();
    if (payload.e <= now) return { ok: false, reason: 'expired' };
    this.#prune(now);
    if (this.#used.has(payload.n)) return { ok: false, reason: 'used' };
    this.#used.set(payload.n, payload.e);
    return { ok: true, identity: identityOf(payload) };
  }

  /** The cookie value a redeemed ticket becomes. */
  cookie(signer: Identity, server: string): string {
    return this.#sign({ k: 'c', ...identityFields(signer), s: server, e: this.#now() + COOKIE_TTL_MS });
  }

  /** The signer of a cookie for `server`, or undefined when it is not a valid, unexpired one. */
  readCookie(value: string, server: string): Identity | undefined {
    const payload = this.#verify(value, 'c', server);
    if (payload === undefined || payload.e <= this.#now()) return undefined;
    return identityOf(payload);
  }

  #sign(payload: Payload): string {
    const body = Buffer.from(JSON.stringify(payload)).toString('base64url');
    return `${body}.${this.#mac(body)}`;
  }

  #verify(token: string, kind: Payload['k'], server: string): Payload | undefined {
    const dot = token.indexOf('.');
    if (dot <= 0 || token.length > 4096) return undefined;
    const body = token.slice(0, dot);
    const given = Buffer.from(token.slice(dot + 1));
    const expected = Buffer.from(this.#mac(body));
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) return undefined;
    let payload: unknown;
    try {
      payload = JSON.parse(Buffer.from(body, 'base64url').toString('utf8'));
    } catch {
      return undefined;
    }
    if (!isPayload(payload) || payload.k !== kind || payload.s !== server) return undefined;
    return payload;
  }

  #mac(body: string): string {
    return createHmac('sha256', this.#secret).update(body).digest('base64url');
  }

  #prune(now: number): void {
    for (const [nonce, expiry] of this.#used) if (expiry <= now) this.#used.delete(nonce);
  }
}

function identityFields(identity: Identity): Pick<Payload, 'u' | 'g' | 'm' | 'c'> {
  return { u: identity.user, g: identity.groups, m: identity.method, c: identity.credential };
}

function identityOf(payload: Payload): Identity {
  return { user: payload.u, groups: payload.g, method: payload.m, credential: payload.c };
}

function isPayload(value: unknown): value is Payload {
  if (typeof value !== 'object' || value === null) return false;
  const p = value as Record<string, unknown>;
  return (
    (p.k === 't' || p.k === 'c') &&
    typeof p.u === 'string' &&
    typeof p.s === 'string' &&
    typeof p.m === 'string' &&
    typeof p.c === 'string' &&
    typeof p.e === 'number' &&
    Array.isArray(p.g) &&
    p.g.every((group) => typeof group === 'string') &&
    (p.n === undefined || typeof p.n === 'string')
  );
}
