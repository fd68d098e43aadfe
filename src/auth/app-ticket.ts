// Browser sign-in for the apps the gateway serves (`/apps/<server>/`): short-lived, single-use tickets a
// signed-in MCP client mints for its user, exchanged once for a cookie bound to that user and server
// (and, for per-session apps, that MCP session). Neither outlives the credential that minted it.
// Both are HMAC-signed with a secret made per gateway, so nothing is stored but the used tickets' nonces.

import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Identity } from '../sessions/types.ts';

/** How long a ticket may wait before it is redeemed. */
export const TICKET_TTL_MS = 5 * 60_000;
/** How long the cookie a ticket is exchanged for lasts. */
export const COOKIE_TTL_MS = 8 * 60 * 60_000;

/**
 * Who a ticket or cookie stands for: the identity that minted the ticket (its credential is checked
 * again per request) and, for a server that runs one app per MCP session, that session's id.
 */
export interface AppSigner {
  identity: Identity;
  session?: string;
}

export type Redeemed = ({ ok: true } & AppSigner) | { ok: false; reason: 'invalid' | 'expired' | 'used' };

interface Payload {
  /** What the token is: a ticket ("t") or a cookie ("c"); one never passes for the other. */
  k: 't' | 'c';
  u: string;
  g: readonly string[];
  /** The identity's method and credential, so a revoked API key ends its cookies too. */
  m: string;
  c: string;
  /** The credential's own expiry (Identity.expiresAt), which a cookie does not outlive. */
  x?: number;
  s: string;
  /** The MCP session whose app instance this opens (per-session isolation). */
  i?: string;
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

  /** A ticket for `signer` on `server`, valid for TICKET_TTL_MS (at most while its credential is) and once. */
  mint(signer: AppSigner, server: string): { ticket: string; expiresAt: number } {
    const expiresAt = Math.min(this.#now() + TICKET_TTL_MS, signer.identity.expiresAt ?? Infinity);
    const payload: Payload = {
      k: 't',
      ...signerFields(signer),
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
    return { ok: true, ...signerOf(payload) };
  }

  /**
   * The cookie a redeemed ticket becomes: its value, and its lifetime in seconds (COOKIE_TTL_MS, or
   * less when the signer's credential expires sooner).
   */
  cookie(signer: AppSigner, server: string): { value: string; maxAge: number } {
    const now = this.#now();
    const expiresAt = Math.min(now + COOKIE_TTL_MS, signer.identity.expiresAt ?? Infinity);
    const value = this.#sign({ k: 'c', ...signerFields(signer), s: server, e: expiresAt });
    return { value, maxAge: Math.max(0, Math.floor((expiresAt - now) / 1000)) };
  }

  /** The signer of a cookie for `server`, or undefined when it is not a valid, unexpired one. */
  readCookie(value: string, server: string): AppSigner | undefined {
    const payload = this.#verify(value, 'c', server);
    if (payload === undefined || payload.e <= this.#now()) return undefined;
    return signerOf(payload);
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

function signerFields({ identity, session }: AppSigner): Pick<Payload, 'u' | 'g' | 'm' | 'c' | 'x' | 'i'> {
  return {
    u: identity.user,
    g: identity.groups,
    m: identity.method,
    c: identity.credential,
    ...(identity.expiresAt === undefined ? {} : { x: identity.expiresAt }),
    ...(session === undefined ? {} : { i: session }),
  };
}

function signerOf(payload: Payload): AppSigner {
  const identity: Identity = { user: payload.u, groups: payload.g, method: payload.m, credential: payload.c };
  if (payload.x !== undefined) identity.expiresAt = payload.x;
  return payload.i === undefined ? { identity } : { identity, session: payload.i };
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
    (p.n === undefined || typeof p.n === 'string') &&
    (p.x === undefined || typeof p.x === 'number') &&
    (p.i === undefined || typeof p.i === 'string')
  );
}
