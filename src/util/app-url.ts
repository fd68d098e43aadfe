// Where the gateway serves a server's browser app: one rule for the launcher (APP_PUBLIC_URL), the
// links the gateway hands out and the cookie's path.

/**
 * The clean address of `server`'s app below `base` (publicUrl, or where the gateway listens): with
 * `user` (per-user isolation) that user's instance, `/apps/<server>/<user>/`, else the one shared one.
 */
export function appBaseUrl(base: string, server: string, user?: string): string {
  const url = new URL(base);
  const folder = url.pathname.endsWith('/') ? url.pathname : `${url.pathname}/`;
  const below = user === undefined ? '' : `${encodeURIComponent(user)}/`;
  return `${url.origin}${folder}${appPath(server)}${below}`;
}

/** The path every address of `server`'s app starts with (the cookie's path): `apps/<server>/`, without the leading slash. */
export function appPath(server: string): string {
  return `apps/${encodeURIComponent(server)}/`;
}
