// Reads a request body with a hard size limit, so one oversized POST cannot exhaust memory. The rest of
// a refused body is read and discarded for a bounded time and size (a lingering close), so a client
// still sending reads the 413 instead of a broken pipe.

import type { IncomingMessage } from 'node:http';

export type BodyResult = { ok: true; body: Buffer } | { ok: false; reason: 'too-large' | 'aborted' };

/** How long the 413 waits for the rest of a refused body to be read and thrown away, and how many bytes of it are taken before the connection is closed. */
export const LINGER_MS = 10_000;
export const LINGER_BYTES = 64 * 1_048_576;

export function readBody(req: IncomingMessage, maxBytes: number): Promise<BodyResult> {
  const declared = Number(req.headers['content-length']);
  // The 413 goes out once the rest is discarded: answered while the client still uploads, a close
  // (the client's Connection: close, or ours past the bounds) would reset it before it reads the answer.
  // A body that could not be discarded within the bounds anyway is refused at once.
  if (Number.isFinite(declared) && declared > maxBytes) {
    if (declared > LINGER_BYTES) {
      void discardRest(req);
      return Promise.resolve({ ok: false, reason: 'too-large' });
    }
    return discardRest(req).then(() => ({ ok: false, reason: 'too-large' }));
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
        done = true;
        void discardRest(req).then(() => resolve({ ok: false, reason: 'too-large' }));
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
function discardRest(req: IncomingMessage): Promise<void> {
  if (req.complete) return Promise.resolve();
  const socket = req.socket;
  let discarded = 0;
  let settle: () => void = () => {};
  const settled = new Promise<void>((resolve) => {
    settle = resolve;
  });
  const stop = () => {
    clearTimeout(timer);
    req.off('data', count);
    settle();
  };
  const giveUp = () => {
    stop();
    socket.destroy();
  };
  const count = (chunk: Buffer) => {
    discarded += chunk.length;
    if (discarded > LINGER_BYTES) giveUp();
  };
  // A client that stops sending gets its answer after LINGER_MS; what it sends later still flows away
  // unread until limits.receiveTimeout ends the request.
  const timer = setTimeout(settle, LINGER_MS);
  timer.unref();
  req.on('data', count);
  req.once('end', stop);
  req.once('close', stop);
  req.resume();
  return settled;
}
