// Whose TLS connection tells who is calling: a request's own, or, for a request another replica of the
// cluster forwarded over the signed peer hop, the client certificate that replica verified (the hop
// vouches for it: cluster/peer-hop.ts). Read by every front that identifies a caller (auth/identify.ts).

import type { IncomingMessage } from 'node:http';

/** Requests that came over the hop with a verified client certificate: the peer standing for it. */
const vouched = new WeakMap<IncomingMessage, unknown>();

/** Records the peer whose certificate a signed hop carried for `req` (only after its signature held). */
export function vouchPeer(req: IncomingMessage, peer: unknown): void {
  vouched.set(req, peer);
}

/** The connection whose certificate names the caller of `req` (`Caller.peer`). */
export function connectionPeer(req: IncomingMessage): unknown {
  return vouched.get(req) ?? req.socket;
}
