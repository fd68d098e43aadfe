// Text from elsewhere (a server, a gateway, a client name) made safe for a one-line message.

/** No control characters, bounded length. */
export function sanitize(text: string, max = 200): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: stripping control characters is the point.
  const flat = text.replace(/[\u0000-\u001f\u007f]+/g, ' ').trim();
  return flat.length > max ? `${flat.slice(0, max)}…` : flat;
}
