// Reads the Bearer challenge of a WWW-Authenticate header (RFC 6750 §3, RFC 9728 §5.1): error,
// error_description, scope and resource_metadata. The header may hold several challenges
// (`Basic realm="x", Bearer scope="a"`); only the Bearer one counts.

export interface BearerChallenge {
  error: string | undefined;
  errorDescription: string | undefined;
  /** Space-separated scopes the resource asks for. */
  scope: string | undefined;
  /** The URL of the resource's protected resource metadata. */
  resourceMetadata: string | undefined;
}

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+/;

/** The Bearer challenge's parameters, or undefined when the header has no Bearer challenge. */
export function parseBearerChallenge(header: string | undefined): BearerChallenge | undefined {
  if (!header) return undefined;
  for (const challenge of parseChallenges(header)) {
    if (challenge.scheme.toLowerCase() !== 'bearer') continue;
    const get = (name: string) => challenge.params.get(name);
    return {
      error: get('error'),
      errorDescription: get('error_description'),
      scope: get('scope'),
      resourceMetadata: get('resource_metadata'),
    };
  }
  return undefined;
}

interface Challenge {
  scheme: string;
  params: Map<string, string>;
}

/** RFC 9110 §11.6.1: `scheme [param=value *("," param=value)] *("," challenge)`. */
function parseChallenges(header: string): Challenge[] {
  const challenges: Challenge[] = [];
  let rest = header.trim();
  let current: Challenge | undefined;
  while (rest.length > 0) {
    rest = rest.replace(/^[\s,]+/, '');
    const name = TOKEN.exec(rest)?.[0];
    if (!name) break;
    const after = rest.slice(name.length);
    const value = /^\s*=\s*/.exec(after);
    if (value && current) {
      // name=value within the current challenge.
      rest = after.slice(value[0].length);
      const parsed = readValue(rest);
      current.params.set(name.toLowerCase(), parsed.value);
      rest = parsed.rest;
    } else if (/^=+/.test(after.trimStart()) && !current) {
      break; // a parameter before any scheme: not a challenge list we understand
    } else {
      // A new scheme; a token68 after it (Basic's credentials style) is skipped.
      current = { scheme: name, params: new Map() };
      challenges.push(current);
      rest = after.replace(/^\s+[A-Za-z0-9\-._~+/]+=*(?=\s*(,|$))/, '');
    }
  }
  return challenges;
}

function readValue(text: string): { value: string; rest: string } {
  if (text.startsWith('"')) {
    let value = '';
    for (let index = 1; index < text.length; index++) {
      const char = text[index];
      if (char === '\\' && index + 1 < text.length) {
        value += text[++index];
      } else if (char === '"') {
        return { value, rest: text.slice(index + 1) };
      } else {
        value += char;
      }
    }
    return { value, rest: '' };
  }
  const token = /^[^\s,]*/.exec(text)?.[0] ?? '';
  return { value: token, rest: text.slice(token.length) };
}
