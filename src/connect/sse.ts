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

/**
 * A stream that keeps growing without a line end, or an event that keeps growing without its blank
 * line, is not SSE we can use; stop before it eats the memory.
 */
const MAX_PENDING_CHARS = 64 * 1024 * 1024;

/**
 * Yields each event of an SSE body. Events with neither data nor id nor retry (a lone comment, a
 * blank keep-alive) are skipped; priming events (id, empty data) are yielded so callers can track the id.
 */
export async function* parseSse(body: AsyncIterable<Uint8Array | string>): AsyncGenerator<SseEvent> {
  const parser = new SseParser();
  for await (const chunk of body) yield* parser.push(chunk);
  parser.end();
}

const LINE_END = /[\r\n]/g;

/**
 * The SSE decoder, chunk by chunk, in time linear in the input: each character is scanned once and
 * copied at most twice (into the pieces of an unfinished line, then into the line), however the body
 * is chunked. `scanned` and `copied` count that work so a test can hold it to the input's size.
 */
export class SseParser {
  readonly #decoder = new TextDecoder('utf-8');
  readonly #builder = new EventBuilder();
  /** The unfinished line, in the pieces it came in; joined once, when its end arrives. */
  #pieces: string[] = [];
  #pieceChars = 0;
  /** The last character was a CR: an LF first in the next text is the other half of a CRLF. */
  #afterCr = false;
  #atStart = true;
  scanned = 0;
  copied = 0;

  /** Decodes one chunk; returns the events it completed. */
  push(chunk: Uint8Array | string): SseEvent[] {
    return this.#text(typeof chunk === 'string' ? chunk : this.#decoder.decode(chunk, { stream: true }));
  }

  /** The body ended: an event without its final blank line is dropped (WHATWG rule). */
  end(): void {
    this.#text(this.#decoder.decode());
    this.#pieces = [];
    this.#pieceChars = 0;
  }

  #text(input: string): SseEvent[] {
    let text = input;
    const events: SseEvent[] = [];
    if (this.#atStart && text.length > 0) {
      if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
      this.#atStart = false;
    }
    let start = 0;
    if (this.#afterCr && text.length > 0) {
      this.#afterCr = false;
      if (text.charCodeAt(0) === 0x0a) start = 1;
    }
    LINE_END.lastIndex = start;
    for (;;) {
      const match = LINE_END.exec(text);
      if (match === null) {
        this.scanned += text.length - start;
        if (start < text.length) {
          const piece = text.slice(start);
          this.copied += piece.length;
          this.#pieces.push(piece);
          this.#pieceChars += piece.length;
          if (this.#pieceChars > MAX_PENDING_CHARS) throw new Error('SSE line longer than 64 MiB');
        }
        return events;
      }
      const end = match.index;
      this.scanned += end + 1 - start;
      let line = text.slice(start, end);
      if (this.#pieces.length > 0) {
        this.#pieces.push(line);
        line = this.#pieces.join('');
        this.#pieces = [];
        this.#pieceChars = 0;
      }
      this.copied += line.length;
      start = end + 1;
      if (text.charCodeAt(end) === 0x0d) {
        if (start === text.length) this.#afterCr = true;
        else if (text.charCodeAt(start) === 0x0a) start++;
      }
      LINE_END.lastIndex = start;
      const event = this.#builder.feed(line);
      if (event) events.push(event);
    }
  }
}

/** Accumulates the fields of one event until a blank line dispatches it. */
class EventBuilder {
  #data: string[] = [];
  /** The length of the data joined so far, bounded as a line is. */
  #dataChars = 0;
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
        // Each data line after the first adds a newline to the event's data.
        this.#dataChars += value.length + (this.#data.length > 0 ? 1 : 0);
        if (this.#dataChars > MAX_PENDING_CHARS) throw new Error('SSE event data longer than 64 MiB');
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
    this.#dataChars = 0;
    this.#event = '';
    this.#id = undefined;
    this.#retry = undefined;
    this.#touched = false;
    return event;
  }
}
