// JSON lines that every line reader splits the same way. JSON.stringify leaves U+0085 (NEL), U+2028
// and U+2029 raw inside strings, and Unicode-aware readers (Python's str.splitlines, many editors and
// log viewers) end a line at each, so a user's or a backend's text could cut one record in two.

const UNICODE_LINE_BREAKS = /[\u0085\u2028\u2029]/g;

/**
 * `json` with U+0085, U+2028 and U+2029 written as \u escapes. Those characters can only stand inside
 * JSON strings (they are not JSON whitespace), where the escape means the same character, so this is
 * safe on any serialized JSON, including a whole log line.
 */
export function escapeUnicodeLineBreaks(json: string): string {
  return json.replace(
    UNICODE_LINE_BREAKS,
    (char) => `\\u${char.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
}

/** One JSON line: the value serialized, Unicode line breaks escaped, and a newline. */
export function jsonLine(value: unknown): string {
  return `${escapeUnicodeLineBreaks(JSON.stringify(value))}\n`;
}
