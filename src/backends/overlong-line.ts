// A backend line too long to keep: its bytes are dropped as they arrive, but its first and last bytes
// are kept, because they usually say which request the line answers (`{"jsonrpc":"2.0","id":7,"result"…`
// as most SDKs write it, or `…,"jsonrpc":"2.0","id":7}` as the TypeScript SDK does). That request then
// gets an error instead of waiting for its timeout.

const KEEP = 256;

export class OverlongLine {
  bytes = 0;
  #head = Buffer.alloc(0);
  #tail = Buffer.alloc(0);

  add(piece: Buffer): void {
    this.bytes += piece.length;
    if (this.#head.length < KEEP) {
      this.#head = Buffer.concat([this.#head, piece.subarray(0, KEEP - this.#head.length)]);
    }
    this.#tail = Buffer.concat([this.#tail, piece]).subarray(-KEEP);
  }

  /**
   * The id of the response this line carries, when its first or last bytes show it plainly at the top
   * level; undefined for requests, notifications and anything less certain.
   */
  responseId(): number | undefined {
    const head = this.#head.toString('latin1');
    const tail = this.#tail.toString('latin1');
    // A response names no method; its first member (after jsonrpc and id) is result or error.
    const start =
      /^\s*\{\s*(?:"jsonrpc"\s*:\s*"2\.0"\s*,\s*)?(?:"id"\s*:\s*(\d+)\s*,\s*)?(?:"jsonrpc"\s*:\s*"2\.0"\s*,\s*)?"(?:result|error)"\s*:/.exec(
        head,
      );
    if (!start) return undefined;
    // The line's last "}" closes the top-level object, so an id right before it is a top-level member.
    const end = /"id"\s*:\s*(\d+)\s*(?:,\s*"jsonrpc"\s*:\s*"2\.0"\s*)?\}\s*$/.exec(tail);
    const id = start[1] ?? end?.[1];
    return id === undefined ? undefined : Number(id);
  }
}
