// Where a request below `/apps/` goes: the server it names and the path forwarded to that server's
// app, which must stay below the prefix. Pure over the request path, so it is unit-tested on its own.

/** The prefix every app is served under. */
export const APPS_PREFIX = '/apps/';

export type AppPath =
  /** The path forwarded to the app (always starting with "/"), and its query unchanged. */
  | { kind: 'app'; server: string; path: string }
  /** `/apps/<server>` without its slash: the page's relative links need the folder form. */
  | { kind: 'folder'; server: string }
  /** A path that could leave the prefix or means different things to different hops. */
  | { kind: 'bad'; reason: string };

/**
 * Splits `/apps/<server>/<rest>`; undefined when the path is not below `/apps/` or names no server.
 * `<rest>` is forwarded as the client sent it (not re-encoded), so it is refused when any segment is
 * `.` or `..` in any spelling, or holds an encoded slash, backslash or NUL: the app (or a proxy behind
 * it) could resolve those above the prefix.
 */
export function parseAppPath(rawPath: string): AppPath | undefined {
  if (!rawPath.startsWith(APPS_PREFIX)) return undefined;
  const afterPrefix = rawPath.slice(APPS_PREFIX.length);
  const slash = afterPrefix.indexOf('/');
  const rawServer = slash === -1 ? afterPrefix : afterPrefix.slice(0, slash);
  let server: string;
  try {
    server = decodeURIComponent(rawServer);
  } catch {
    return { kind: 'bad', reason: 'malformed escape in the server name' };
  }
  if (server === '') return undefined;
  if (server.includes('/') || server === '.' || server === '..')
    return { kind: 'bad', reason: 'the server name may not hold a slash or dots' };
  if (slash === -1) return { kind: 'folder', server };
  const path = afterPrefix.slice(slash);
  const problem = escapeProblem(path);
  return problem === undefined ? { kind: 'app', server, path } : { kind: 'bad', reason: problem };
}

/** Why `path` could escape the prefix, or undefined when it cannot. */
export function escapeProblem(path: string): string | undefined {
  if (/%(2f|5c|00)/i.test(path) || path.includes('\\') || path.includes('\0'))
    return 'encoded slashes, backslashes and NUL are not allowed in an app path';
  for (const segment of path.split('/')) {
    let decoded: string;
    try {
      decoded = decodeURIComponent(segment);
    } catch {
      return 'malformed escape in the path';
    }
    if (decoded === '.' || decoded === '..') return 'dot segments are not allowed in an app path';
  }
  return undefined;
}
