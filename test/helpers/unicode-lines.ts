// Splitting text into lines the way Unicode-aware readers do (Python's str.splitlines, many editors
// and log viewers), to check that a JSON-lines file stays one record per line for them too.

// biome-ignore lint/suspicious/noControlCharactersInRegex: these control characters end lines there.
const UNICODE_LINE_BREAK = /\r\n|[\n\v\f\r\x1c-\x1e\u0085\u2028\u2029]/;

/** The non-empty lines of `text`, ended at every line break Python's str.splitlines knows. */
export function unicodeLines(text: string): string[] {
  return text.split(UNICODE_LINE_BREAK).filter(Boolean);
}
