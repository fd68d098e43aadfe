// Glob patterns of the policy filters (tool and prompt names, resource URIs): checked once when the
// config is read, compiled to anchored regular expressions the request path only runs. A leaf under
// util/, so config/ checks patterns without loading policy/.
//
// Syntax: `*` any run of characters (including none, and including `/`), `?` one character,
// `[abc]` / `[a-z]` / `[!abc]` one character of (or not of) a class, `\x` the character x itself.
// Everything else matches itself, case-sensitively (MCP names and URIs are case-sensitive).

import { errorText } from '../errors.ts';

/** Patterns longer than this are refused: a filter is a short list of names, not a document. */
const MAX_PATTERN_LENGTH = 512;

type Token = { kind: 'text'; source: string } | { kind: 'star' };

/** Why `pattern` is not a valid glob, or undefined when it is. */
export function globProblem(pattern: string): string | undefined {
  const result = tokenize(pattern);
  if (typeof result === 'string') return result;
  // What validation accepts must compile: a pattern that threw only when the policy is built would
  // stop the gateway at start, or fail a reload after part of it was applied.
  try {
    compileGlob(pattern);
  } catch (error) {
    return errorText(error);
  }
  return undefined;
}

/** A compiled glob: `test` is linear in the value's length times the pattern's, whatever the stars. */
export interface GlobMatcher {
  test(value: string): boolean;
}

/** Compiles a valid glob; throws on an invalid one (config validation has refused those already). */
export function compileGlob(pattern: string): GlobMatcher {
  const tokens = tokenize(pattern);
  if (typeof tokens === 'string') throw new Error(`invalid glob ${JSON.stringify(pattern)}: ${tokens}`);
  // The runs of single-character tokens between stars. One regex with a `[\s\S]*` per star would
  // backtrack polynomially (k stars: n^k steps) on a long name a client chose, e.g. "*/*.md" against a
  // 4 MiB URI of slashes; matching run by run, each middle run at its leftmost place, is never worse
  // than (value length × pattern length) and gives the same answer, since runs have no stars.
  const runs: string[][] = [[]];
  for (const token of tokens) {
    if (token.kind === 'star') runs.push([]);
    else (runs[runs.length - 1] as string[]).push(token.source);
  }
  if (runs.length === 1) {
    const whole = new RegExp(`^${(runs[0] as string[]).join('')}$`, 'u');
    return { test: (value) => whole.test(value) };
  }
  const first = new RegExp(`^${(runs[0] as string[]).join('')}`, 'u');
  const middle = runs
    .slice(1, -1)
    .filter((run) => run.length > 0)
    .map((run) => new RegExp(run.join(''), 'gu'));
  const last = new RegExp(`${(runs[runs.length - 1] as string[]).join('')}$`, 'gu');
  return {
    test(value) {
      const head = first.exec(value);
      if (!head) return false;
      let position = head[0].length;
      for (const run of middle) {
        run.lastIndex = position;
        const found = run.exec(value);
        if (!found) return false;
        position = found.index + found[0].length;
      }
      last.lastIndex = position;
      return last.exec(value) !== null;
    },
  };
}

/** A matcher for any of `patterns` (none → matches nothing). */
export function compileGlobs(patterns: readonly string[]): (value: string) => boolean {
  if (patterns.length === 0) return () => false;
  if (patterns.includes('*')) return () => true;
  const matchers = patterns.map(compileGlob);
  return (value) => matchers.some((matcher) => matcher.test(value));
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
      // Code points, not UTF-16 units: "[😀-\uE000]" runs backwards though its first unit is lower.
      if ((to.codePointAt(0) as number) < (from.codePointAt(0) as number))
        return `!the range "${from}-${to}" at position ${position} runs backwards`;
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
