// Where the gateway serves a server's browser app: one rule for the launcher (APP_PUBLIC_URL), the
// links the gateway hands out, the access decision and the cookie's path.

import { createHash } from 'node:crypto';
import type { IsolationMode } from '../config/schema.ts';

/** Whose instance of an app an address names: the user (per-user), the user and MCP session (per-session). */
export interface AppOwner {
  user?: string;
  session?: string;
}

/** The clean address of `owner`'s instance of `server`'s app below `base` (publicUrl, or where the gateway listens). */
export function appBaseUrl(base: string, server: string, mode: IsolationMode, owner: AppOwner): string {
  const url = new URL(base);
  const folder = url.pathname.endsWith('/') ? url.pathname : `${url.pathname}/`;
  return `${url.origin}${folder}${appFolder(server, mode, owner)}`;
}

/**
 * The path of `owner`'s instance, without the leading slash: `apps/<server>/` (shared),
 * `apps/<server>/<user>/` (per-user), `apps/<server>/<user>/<session tag>/` (per-session).
 */
export function appFolder(server: string, mode: IsolationMode, owner: AppOwner): string {
  const top = appPath(server);
  if (mode === 'shared') return top;
  const mine = `${top}${encodeURIComponent(owner.user ?? '')}/`;
  return mode === 'per-session' ? `${mine}${sessionTag(owner.session ?? '')}/` : mine;
}

/** The path every address of `server`'s app starts with: `apps/<server>/`, without the leading slash. */
export function appPath(server: string): string {
  return `apps/${encodeURIComponent(server)}/`;
}

/**
 * The segment that names one MCP session's app instance: a digest of its id, so an address shows
 * nothing of the session id itself, and the same session always gets the same address.
 */
export function sessionTag(sessionId: string): string {
  return createHash('sha256').update(sessionId).digest('base64url').slice(0, 16);
}
