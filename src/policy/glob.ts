// Glob patterns of the policy filters (tool and prompt names, resource URIs): checked once when the
// config is read, compiled to anchored regular expressions the request path only runs.
//
// Syntax: `*` any run of characters (including none, and including `/`), `?` one character,
// `[abc]` / `[a-z]` / `[!abc]` one character of (or not of) a class, `\x` the character x itself.
// Everything else matches itself, case-sensitively (MCP names and URIs are case-sensitive).

/** Patterns longer than this are refused: a filter is a short list of names, not a document. */
const MAX_PATTERN_LENGTH = 512;

type Token = { kind: 'text'; source: string } | { kind: 'star' };

/** Why `pattern` is not a valid glob, or undefined when it is. */
export function globProblem(pattern: string): string | undefined {
  const result = tokenize(pattern);
  return typeof result === 'string' ? result : undefined;
}

/** Compiles a valid glob; throws on an invalid one (config validation has refused those already). */
export function compileGlob(pattern: string): RegExp {
  const tokens = tokenize(pattern);
  if (typeof tokens === 'string') throw new Error(`invalid glob ${JSON.stringify(pattern)}: ${tokens}`);
  // Consecutive stars mean the same as one; collapsing them keeps the regex linear.
  const source = tokens
    .filter((token, index) => token.kind !== 'star' || tokens[index - 1]?.kind !== 'star')
    .map((token) => (token.kind === 'star' ? '[\\s\\S]*' : token.source))
    .join('');
  return new RegExp(`^${source}$`, 'u');
}

/** A matcher for any of `patterns` (none → matches nothing). */
export function compileGlobs(patterns: readonly string[]): (value: string) => boolean {
  if (patterns.length === 0) return () => false;
  if (patterns.includes('*')) return () => true;
  const regexes = patterns.map(compileGlob);
  return (value) => regexes.some((regex) => regex.test(value));
}

function tokenize(pattern: string): Token[] | string {
  if (pattern.length === 0) return 'a pattern cannot be empty';
  if (pattern.length > MAX_PATTERN_LENGTH) return `a pattern is at most ${MAX_PATTERN_LENGTH} characters`;
  // biome-ignore lint/suspicious/noControlCharactersInRegex: refusing control characters is the point
  if (/[\u0000-\u001f\u007f]/.test(pattern)) return 'a pattern cannot contain control characters';
  const tokens: Token[] = [];
  const chars = [...pattern];
  for (let i = 0; i < chars.length; i++) {
    const char = chars[i] as string;
    if (char === '*') tokens.push({ kind: 'star' });
    else if (char === '?') tokens.push({ kind: 'text', source: '[\\s\\S]' });
    else if (char === '\\') {
      const next = chars[++i];
      if (next === undefined) return 'a pattern cannot end with a lone "\\"';
      tokens.push({ kind: 'text', source: escapeRegex(next) });
    } else if (char === '[') {
      const end = chars.indexOf(']', i + 2);
      if (end === -1) return `"[" at position ${i + 1} has no closing "]"`;
      const body = chars.slice(i + 1, end);
      const negated = body[0] === '!';
      const members = negated ? body.slice(1) : body;
      if (members.length === 0) return `the class at position ${i + 1} is empty`;
      const classSource = classToRegex(members, i + 1);
      if (classSource.startsWith('!')) return classSource.slice(1);
      tokens.push({ kind: 'text', source: `[${negated ? '^' : ''}${classSource}]` });
      i = end;
    } else if (char === ']') return `"]" at position ${i + 1} closes no "["`;
    else tokens.push({ kind: 'text', source: escapeRegex(char) });
  }
  return tokens;
}

/** The inside of a regex class for glob class members; a problem is returned prefixed with "!". */
function classToRegex(members: string[], position: number): string {
  let source = '';
  for (let j = 0; j < members.length; j++) {
    const from = members[j] as string;
    const to = members[j + 2];
    if (members[j + 1] === '-' && to !== undefined) {
      if (to < from) return `!the range "${from}-${to}" at position ${position} runs backwards`;
      source += `${escapeClassChar(from)}-${escapeClassChar(to)}`;
      j += 2;
    } else source += escapeClassChar(from);
  }
  return source;
}

function escapeRegex(char: string): string {
  return /[.*+?^${}()|[\]\\/]/.test(char) ? `\\${char}` : char;
}

function escapeClassChar(char: string): string {
  return /[\]\\^-]/.test(char) ? `\\${char}` : char;
}
