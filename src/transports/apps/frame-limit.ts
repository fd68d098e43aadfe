// A bound on the WebSocket frames a browser sends to an app through the gateway: the frame headers are
// read as the bytes pass (nothing is buffered or unmasked), and a frame longer than the limit ends the
// connection before its payload reaches the app.

/** The close frame (unmasked, server to client) for 1009 "message too big". */
export const CLOSE_TOO_BIG = Buffer.from([0x88, 0x02, 0x03, 0xf1]);

export class FrameLimit {
  readonly #max: number;
  /** Header bytes of the frame being read, until its length is known. */
  #header: number[] = [];
  /** Payload bytes of the current frame still to pass. */
  #remaining = 0;

  constructor(maxFrameBytes: number) {
    this.#max = maxFrameBytes;
  }

  /** Follows `chunk` through the frames; false once a frame over the limit has begun. */
  take(chunk: Buffer): boolean {
    let offset = 0;
    while (offset < chunk.length) {
      if (this.#remaining > 0) {
        const skipped = Math.min(this.#remaining, chunk.length - offset);
        this.#remaining -= skipped;
        offset += skipped;
        continue;
      }
      this.#header.push(chunk[offset] as number);
      offset++;
      const needed = headerLength(this.#header);
      if (needed === undefined || this.#header.length < needed) continue;
      const length = payloadLength(this.#header);
      this.#header = [];
      if (length > this.#max) return false;
      this.#remaining = length;
    }
    return true;
  }
}

/** The whole header's length once its first two bytes are known. */
function headerLength(header: readonly number[]): number | undefined {
  if (header.length < 2) return undefined;
  const second = header[1] as number;
  const short = second & 0x7f;
  const extended = short === 126 ? 2 : short === 127 ? 8 : 0;
  return 2 + extended + (second & 0x80 ? 4 : 0);
}

/** The payload length a complete header declares (Infinity past 2^53). */
function payloadLength(header: readonly number[]): number {
  const bytes = Buffer.from(header);
  const short = (bytes[1] as number) & 0x7f;
  if (short < 126) return short;
  if (short === 126) return bytes.readUInt16BE(2);
  const high = bytes.readUInt32BE(2);
  return high > 0x1f_ffff ? Number.POSITIVE_INFINITY : high * 2 ** 32 + bytes.readUInt32BE(6);
}
