// Who a verified TLS client certificate names: a pure mapping from the peer certificate (subject,
// subjectAltName) to a user and groups, per `auth.clientCert`, and when a request's certificate decides
// who is calling. The TLS layer has already checked the chain, dates and revocation; this only reads
// names and refuses certificates that name nobody.

import { X509Certificate } from 'node:crypto';
import { listenTls, type RelayConfig } from '../config/schema.ts';
import type { Identity } from '../sessions/types.ts';
import type { AuthFailure, AuthResult } from './authenticate.ts';
import { isPrincipalName, PRINCIPAL_NAME_RULE } from './principal-name.ts';

export type ClientCertAuth = NonNullable<RelayConfig['auth']['clientCert']>;

/** Used when `listen.tls.clientCa` is set without `auth.clientCert`. */
export const DEFAULT_CLIENT_CERT_AUTH: ClientCertAuth = Object.freeze({ userFrom: 'cn', groupsFrom: 'ou' });

/** The parts of node's `tls.PeerCertificate` this reads (values may be string or string[]). */
export interface PeerCertificateLike {
  subject?: Readonly<Record<string, unknown>>;
  subjectaltname?: string;
  fingerprint256?: string;
  /** The certificate's DER. */
  raw?: Buffer;
}

/** What a TLS socket tells about its peer (a structural view of `tls.TLSSocket`). */
export interface TlsPeer {
  authorized: boolean;
  authorizationError?: Error | string | null;
  getPeerCertificate(): PeerCertificateLike | null;
}

export type CertificateOutcome =
  | { kind: 'absent' }
  | { kind: 'ok'; identity: Identity }
  | { kind: 'refused'; reason: string };

export interface SubjectAltName {
  /** As node prints it: DNS, email, URI, IP Address, othername, DirName, Registered ID. */
  type: string;
  value: string;
}

/** Whether a token method (API keys, OIDC, …) is configured besides client certificates. */
export function tokenAuthConfigured(config: RelayConfig): boolean {
  return Object.entries(config.auth).some(
    ([method, value]) => method !== 'clientCert' && method !== 'none' && value !== undefined,
  );
}

/** 'required' | 'optional' when client certificates are requested, else undefined. */
export function clientCertMode(config: RelayConfig): 'required' | 'optional' | undefined {
  const tls = listenTls(config);
  if (!tls?.clientCa) return undefined;
  return tls.clientCert ?? (tokenAuthConfigured(config) ? 'optional' : 'required');
}

/** The WWW-Authenticate challenge sent with a refused client certificate. */
export const CLIENT_CERT_CHALLENGE =
  'Bearer realm="mcp-relay", error="invalid_request", error_description="client certificate refused"';

const CHALLENGE_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  'www-authenticate': CLIENT_CERT_CHALLENGE,
});

/** Per-request identity from the client certificate, or undefined for "let token authentication decide". */
export class ClientCertificates {
  readonly #options: ClientCertAuth;
  readonly #tokens: boolean;
  readonly #required: boolean;

  constructor(config: RelayConfig) {
    this.#options = config.auth.clientCert ?? DEFAULT_CLIENT_CERT_AUTH;
    this.#tokens = tokenAuthConfigured(config);
    this.#required = clientCertMode(config) === 'required';
  }

  /** A client certificate is requested by this config. */
  static enabled(config: RelayConfig): boolean {
    return clientCertMode(config) !== undefined;
  }

  /**
   * An untrusted certificate is always refused (a client that presents one means to use it). A trusted
   * one names the user, unless the request carries an Authorization header and a token method is
   * configured: then the token decides, and the certificate only admitted the connection. `peer` is the
   * request's connection: only a TLS socket has a certificate to read.
   */
  identify(peer: unknown, authorization: string | undefined): AuthResult | undefined {
    if (!isTlsPeer(peer)) return undefined;
    if (peer.authorized && authorization !== undefined && this.#tokens) return undefined;
    const outcome = identifyPeer(peer, this.#options);
    // superviseTls already closed such connections; this keeps `required` true on its own.
    if (outcome.kind === 'absent' && this.#required) return refused('client certificate required');
    if (outcome.kind === 'absent') return undefined;
    if (outcome.kind === 'refused') return refused(outcome.reason);
    return { ok: true, identity: outcome.identity };
  }
}

function refused(message: string): AuthFailure {
  return { ok: false, status: 401, message, headers: CHALLENGE_HEADERS, reason: 'certificate' };
}

function isTlsPeer(socket: unknown): socket is TlsPeer {
  return (
    typeof socket === 'object' &&
    socket !== null &&
    'getPeerCertificate' in socket &&
    typeof (socket as { getPeerCertificate?: unknown }).getPeerCertificate === 'function'
  );
}

/**
 * The DER of the certificate a connection presented and the TLS layer verified (chain, dates, CRL), for
 * the cluster's peer hop to carry to the replica that serves the request; undefined for anything else.
 */
export function verifiedCertificate(peer: unknown): Buffer | undefined {
  if (!isTlsPeer(peer) || !peer.authorized) return undefined;
  const raw = peer.getPeerCertificate()?.raw;
  return Buffer.isBuffer(raw) && raw.length > 0 ? raw : undefined;
}

/**
 * A verified TLS peer standing for a certificate another replica of the cluster verified (its DER, on a
 * signed hop): read by the same mapping as a connection's own (`identify`), so the user, groups and
 * credential are the same wherever the request is served. Undefined when the DER is not a certificate.
 */
export function vouchedPeer(der: Buffer): TlsPeer | undefined {
  let certificate: PeerCertificateLike;
  try {
    certificate = new X509Certificate(der).toLegacyObject();
  } catch {
    return undefined;
  }
  return { authorized: true, getPeerCertificate: () => certificate };
}

/**
 * The identity of the certificate `peer` presented: absent when it presented none, refused when it
 * is not trusted (only reachable with `clientCert: optional`) or names no valid user.
 */
export function identifyPeer(peer: TlsPeer, options: ClientCertAuth): CertificateOutcome {
  const cert = peer.getPeerCertificate();
  if (!cert || Object.keys(cert).length === 0) return { kind: 'absent' };
  if (!peer.authorized) {
    return {
      kind: 'refused',
      reason: `client certificate not accepted (${errorName(peer.authorizationError)})`,
    };
  }
  return identityFromCertificate(cert, options);
}

/** The user and groups a verified certificate names. */
export function identityFromCertificate(
  cert: PeerCertificateLike,
  options: ClientCertAuth,
): CertificateOutcome {
  const user = userOf(cert, options);
  if (user === undefined)
    return { kind: 'refused', reason: `client certificate names no user (${describe(options)})` };
  if (!isPrincipalName(user)) {
    return {
      kind: 'refused',
      reason: `client certificate user is not a valid name (${PRINCIPAL_NAME_RULE}; ${describe(options)})`,
    };
  }
  const groups =
    options.groupsFrom === 'ou' ? [...new Set(values(cert.subject?.OU).filter(isPrincipalName))] : [];
  const credential = `cert:${cert.fingerprint256 ?? ''}`;
  return { kind: 'ok', identity: { user, groups, method: 'mtls', credential } };
}

function userOf(cert: PeerCertificateLike, options: ClientCertAuth): string | undefined {
  if (options.userFrom === 'cn') {
    // Several CNs are ambiguous: refuse rather than pick one.
    const names = values(cert.subject?.CN);
    return names.length === 1 ? names[0] : undefined;
  }
  const type = { 'san-email': 'email', 'san-dns': 'DNS', 'san-uri': 'URI' }[options.userFrom];
  const entries = parseSubjectAltName(cert.subjectaltname ?? '').filter((entry) => entry.type === type);
  if (options.userFrom !== 'san-uri') return entries[0]?.value;
  const prefix = options.uriPrefix ?? '';
  const match = entries.find((entry) => entry.value.startsWith(prefix) && entry.value.length > prefix.length);
  return match?.value.slice(prefix.length);
}

/**
 * Parses node's `subjectaltname` string ("DNS:a.example, email:x@y, URI:spiffe://…"). Node quotes a
 * value as a JSON string when it holds a comma, quote or unprintable character, so a crafted name
 * cannot smuggle a second entry in.
 */
export function parseSubjectAltName(text: string): SubjectAltName[] {
  const entries: SubjectAltName[] = [];
  let rest = text;
  while (rest.length > 0) {
    const colon = rest.indexOf(':');
    if (colon <= 0) break;
    const type = rest.slice(0, colon);
    rest = rest.slice(colon + 1);
    let value: string;
    if (rest.startsWith('"')) {
      const end = closingQuote(rest);
      if (end === -1) break;
      try {
        value = JSON.parse(rest.slice(0, end + 1)) as string;
      } catch {
        break;
      }
      rest = rest.slice(end + 1);
    } else {
      const comma = rest.indexOf(', ');
      value = comma === -1 ? rest : rest.slice(0, comma);
      rest = comma === -1 ? '' : rest.slice(comma);
    }
    entries.push({ type, value });
    if (!rest.startsWith(', ')) break;
    rest = rest.slice(2);
  }
  return entries;
}

function closingQuote(text: string): number {
  for (let index = 1; index < text.length; index++) {
    if (text[index] === '\\') index++;
    else if (text[index] === '"') return index;
  }
  return -1;
}

function values(field: unknown): string[] {
  if (typeof field === 'string') return [field];
  return Array.isArray(field) ? field.filter((item): item is string => typeof item === 'string') : [];
}

function describe(options: ClientCertAuth): string {
  return options.userFrom === 'san-uri'
    ? `auth.clientCert.userFrom is san-uri with prefix ${JSON.stringify(options.uriPrefix ?? '')}`
    : `auth.clientCert.userFrom is ${options.userFrom}`;
}

/** OpenSSL's verification code (CERT_HAS_EXPIRED, CERT_REVOKED, …): safe to show, it is not client text. */
function errorName(error: Error | string | null | undefined): string {
  const text = typeof error === 'string' ? error : (error?.message ?? 'not verified');
  return /^[A-Z0-9_]{1,64}$/.test(text) ? text : 'not verified';
}
