// Decodes a text/event-stream body into events (WHATWG server-sent events rules), which is how a
// Streamable HTTP server streams JSON-RPC messages back on POST and GET responses.

export interface SseEvent {
  /** The `id` field of this event, when it had one: where a resumed stream continues (Last-Event-ID). */
  id: string | undefined;
  /** The `event` field; `message` when absent. */
  event: string;
  /** The joined `data` lines; empty for priming events that only carry an id or a retry. */
  data: string;
  /** The `retry` field in milliseconds, when this event carried one. */
  retry: number | undefined;
}

/** A stream that keeps growing without a line end is not SSE; stop before it eats the memory. */
const MAX_PENDING_CHARS = 64 * 1024 * 1024;

/**
 * Yields each event of an SSE body. Events with neither data nor id nor retry (a lone comment, a
 * blank keep-alive) are skipped; priming events (id, empty data) are yielded so callers can track the id.
 */
export async function* parseSse(body: AsyncIterable<Uint8Array | string>): AsyncGenerator<SseEvent> {
  const decoder = new TextDecoder('utf-8');
  const builder = new EventBuilder();
  let buffer = '';
  let atStart = true;
  for await (const chunk of body) {
    buffer += typeof chunk === 'string' ? chunk : decoder.decode(chunk, { stream: true });
    if (atStart && buffer.length > 0) {
      if (buffer.charCodeAt(0) === 0xfeff) buffer = buffer.slice(1);
      atStart = false;
    }
    let lineStart = 0;
    for (;;) {
      const end = findLineEnd(buffer, lineStart);
      if (end === undefined) break;
      // A CR as the last character may be the first half of a CRLF split across chunks: wait.
      if (buffer[end] === '\r' && end === buffer.length - 1) break;
      const event = builder.feed(buffer.slice(lineStart, end));
      lineStart = end + (buffer[end] === '\r' && buffer[end + 1] === '\n' ? 2 : 1);
      if (event) yield event;
    }
    buffer = buffer.slice(lineStart);
    if (buffer.length > MAX_PENDING_CHARS) throw new Error('SSE line longer than 64 MiB');
  }
  buffer += decoder.decode();
  // A stream that ends without a final blank line drops the unfinished event (WHATWG rule).
  for (const line of buffer.split(/\r\n|\r|\n/)) builder.feed(line);
}

function findLineEnd(text: string, from: number): number | undefined {
  for (let index = from; index < text.length; index++) {
    const code = text.charCodeAt(index);
    if (code === 0x0a || code === 0x0d) return index;
  }
  return undefined;
}

/** Accumulates the fields of one event until a blank line dispatches it. */
class EventBuilder {
  #data: string[] = [];
  #event = '';
  #id: string | undefined;
  #retry: number | undefined;
  #touched = false;

  feed(line: string): SseEvent | undefined {
    if (line === '') return this.#dispatch();
    if (line.startsWith(':')) return undefined;
    const colon = line.indexOf(':');
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    switch (field) {
      case 'data':
        this.#data.push(value);
        this.#touched = true;
        break;
      case 'event':
        this.#event = value;
        break;
      case 'id':
        if (!value.includes('\0')) {
          this.#id = value;
          this.#touched = true;
        }
        break;
      case 'retry':
        if (/^\d+$/.test(value)) {
          this.#retry = Number(value);
          this.#touched = true;
        }
        break;
      default:
        break;
    }
    return undefined;
  }

  #dispatch(): SseEvent | undefined {
    const event: SseEvent | undefined = this.#touched
      ? { id: this.#id, event: this.#event || 'message', data: this.#data.join('\n'), retry: this.#retry }
      : undefined;
    this.#data = [];
    this.#event = '';
    this.#id = undefined;
    this.#retry = undefined;
    this.#touched = false;
    return event;
  }
}
