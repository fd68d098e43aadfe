// An incremental parser for text/event-stream bodies: feed it chunks, get whole events back.
// Enough of the SSE format for MCP: `event`, `data` (joined by newlines), `id`; comments are skipped.

export interface SseEvent {
  event: string;
  data: string;
  id: string | undefined;
}

export class SseParser {
  #buffer = '';
  #event = '';
  #data: string[] = [];
  #id: string | undefined;

  /** Returns the events completed by `chunk`. */
  feed(chunk: string): SseEvent[] {
    this.#buffer += chunk;
    const events: SseEvent[] = [];
    let start = 0;
    let newline = this.#buffer.indexOf('\n', start);
    while (newline !== -1) {
      let line = this.#buffer.slice(start, newline);
      if (line.endsWith('\r')) line = line.slice(0, -1);
      start = newline + 1;
      newline = this.#buffer.indexOf('\n', start);
      if (line === '') {
        if (this.#data.length > 0 || this.#event) {
          events.push({ event: this.#event || 'message', data: this.#data.join('\n'), id: this.#id });
        }
        this.#event = '';
        this.#data = [];
        continue;
      }
      if (line.startsWith(':')) continue;
      const colon = line.indexOf(':');
      const field = colon === -1 ? line : line.slice(0, colon);
      let value = colon === -1 ? '' : line.slice(colon + 1);
      if (value.startsWith(' ')) value = value.slice(1);
      if (field === 'data') this.#data.push(value);
      else if (field === 'event') this.#event = value;
      else if (field === 'id') this.#id = value;
    }
    this.#buffer = this.#buffer.slice(start);
    return events;
  }
}

/** Every JSON message in a complete SSE body (a POST answered as a stream). */
export function sseMessages(body: string): unknown[] {
  const events = new SseParser().feed(body.endsWith('\n\n') ? body : `${body}\n\n`);
  const messages: unknown[] = [];
  for (const event of events) {
    if (event.event !== 'message' || event.data === '') continue;
    try {
      messages.push(JSON.parse(event.data));
    } catch {
      // A priming event or a comment-like payload: not a message.
    }
  }
  return messages;
}
