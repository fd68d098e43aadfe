// Reads a request body with a hard size limit, so one oversized POST cannot exhaust memory. The rest of
// a refused body is read and discarded for a bounded time and size (a lingering close), so a client
// still sending reads the 413 instead of a broken pipe.

import type { IncomingMessage } from 'node:http';

export type BodyResult = { ok: true; body: Buffer } | { ok: false; reason: 'too-large' | 'aborted' };

/** How long, and how many bytes, the rest of a refused body is read and thrown away before the connection is closed. */
export const LINGER_MS = 10_000;
export const LINGER_BYTES = 64 * 1_048_576;

export function readBody(req: IncomingMessage, maxBytes: number): Promise<BodyResult> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > maxBytes) {
    discardRest(req);
    return Promise.resolve({ ok: false, reason: 'too-large' });
  }
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    const finish = (result: BodyResult) => {
      if (done) return;
      done = true;
      resolve(result);
    };
    req.on('data', (chunk: Buffer) => {
      if (done) return;
      size += chunk.length;
      if (size > maxBytes) {
        chunks.length = 0;
        discardRest(req);
        finish({ ok: false, reason: 'too-large' });
        return;
      }
      chunks.push(chunk);
    });
    req.once('end', () =>
      finish({ ok: true, body: chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks) }),
    );
    req.once('aborted', () => finish({ ok: false, reason: 'aborted' }));
    req.once('error', () => finish({ ok: false, reason: 'aborted' }));
  });
}

/**
 * Reads and drops the rest of a body the gateway will not take. Closing at once would reset a client
 * still uploading before it reads the answer (nginx's lingering close does the same); past the bounds
 * the connection is closed anyway. A body read to its end leaves the connection usable.
 */
function discardRest(req: IncomingMessage): void {
  if (req.complete) return;
  const socket = req.socket;
  let discarded = 0;
  const stop = () => {
    clearTimeout(timer);
    req.off('data', count);
  };
  const giveUp = () => {
    stop();
    socket.destroy();
  };
  const count = (chunk: Buffer) => {
    discarded += chunk.length;
    if (discarded > LINGER_BYTES) giveUp();
  };
  const timer = setTimeout(giveUp, LINGER_MS);
  timer.unref();
  req.on('data', count);
  req.once('end', stop);
  req.once('close', stop);
  req.resume();
}
