// Who is calling, decided in one place for every front: the user ssh-entry names on the gateway's
// socket, else the client certificate, else the bearer token (or nobody, when no authentication is
// configured on loopback). One result type, so the HTTP edge renders every refusal the same way.

import type { AuthFailure, AuthRequest, AuthResult } from './authenticate.ts';
import type { ClientCertificates } from './client-cert.ts';
import { type HeaderValues, socketCaller } from './socket-identity.ts';

/** What the edge knows about a request, without sockets or node:http types. */
export interface Caller extends AuthRequest {
  /** The request came in on the SSH attached-mode socket (whose file permissions authenticate). */
  viaSocket: boolean;
  headers: HeaderValues;
  /** The request's connection: a TLS socket carries the client certificate, anything else none. */
  peer: unknown;
}

export interface IdentifyMethods {
  /** Client certificates, when `listen.tls.clientCa` asks for them. */
  certificates?: ClientCertificates | undefined;
  /** API keys and OAuth (the gateway's `GatewayAuth`); also answers when neither is configured. */
  tokens: { authenticate(request: AuthRequest): Promise<AuthResult> };
  /** Told of every refusal (the gateway counts them: observe/events.ts); must not throw. */
  onRefused?: (failure: AuthFailure) => void;
}

export type Identify = (caller: Caller) => AuthResult | Promise<AuthResult>;

/**
 * The caller's identity or the refusal to send. Synchronous when the socket or a certificate decides,
 * so those requests wait on nothing; a token check is the one that may await the issuer's keys.
 */
export function identifier(methods: IdentifyMethods): Identify {
  const { certificates, tokens, onRefused } = methods;
  const decide = (caller: Caller): AuthResult | Promise<AuthResult> => {
    if (caller.viaSocket) return socketCaller(caller.headers);
    return certificates?.identify(caller.peer, caller.authorization) ?? tokens.authenticate(caller);
  };
  if (!onRefused) return decide;
  const told = (result: AuthResult): AuthResult => {
    if (!result.ok) onRefused(result);
    return result;
  };
  return function identify(caller: Caller): AuthResult | Promise<AuthResult> {
    const result = decide(caller);
    return result instanceof Promise ? result.then(told) : told(result);
  };
}
