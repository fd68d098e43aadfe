// A retried request (the same JSON-RPC id again in one session, after a lost answer or a cut stream)
// must not reach the backend a second time: it joins the call in flight, or gets the answer that call
// already produced. What a session remembers for this is bounded by count, bytes and age.

import { createHash } from 'node:crypto';
import type { JsonRpcMessage, JsonRpcRequest, JsonRpcResponse } from '../protocol/jsonrpc.ts';
import { RawJson } from '../protocol/raw-json.ts';
import type { Refusal, ReplyTarget } from './types.ts';

export interface RetryLimits {
  /** Finished answers kept per session (0: none, every retry reaches the backend). */
  answers: number;
  /** Their total size (serialized JSON); a bigger answer is not kept. */
  bytes: number;
  /** How long an answer is kept. */
  maxAgeMs: number;
}

/** Replies one call may have at once (its first POST and the retries that joined it). */
export const MAX_JOINED_REPLIES = 8;

/** What makes a retry the same request: its method and params (the id is the map key). */
export function requestFingerprint(message: JsonRpcRequest): string {
  return createHash('sha256')
    .update(JSON.stringify([message.method, message.params ?? null]))
    .digest('base64');
}

/**
 * The replies waiting for one call: everything the call sends goes to each, so the retry's POST gets
 * the answer whether or not the first POST's connection still lives (a live duplicate is dropped by
 * the client, which matches answers by id).
 */
export class JoinedReply implements ReplyTarget {
  readonly #replies: ReplyTarget[];

  constructor(first: ReplyTarget) {
    this.#replies = [first];
  }

  /** Adds a retry's reply; false when the call already has `MAX_JOINED_REPLIES`. */
  join(reply: ReplyTarget): boolean {
    if (this.#replies.length >= MAX_JOINED_REPLIES) return false;
    this.#replies.push(reply);
    return true;
  }

  send(message: JsonRpcMessage): void {
    for (const reply of this.#replies) reply.send(message);
  }

  finish(response: JsonRpcResponse): void {
    for (const reply of this.#replies) reply.finish(response);
  }

  refuse(refusal: Refusal, response: JsonRpcResponse): void {
    for (const reply of this.#replies) {
      if (reply.refuse) reply.refuse(refusal, response);
      else reply.finish(response);
    }
  }
}

interface Answer {
  fingerprint: string;
  text: string;
  bytes: number;
  at: number;
}

/** The session's recently finished answers, oldest first, within `RetryLimits`. */
export class RecentAnswers {
  readonly #limits: RetryLimits;
  readonly #answers = new Map<string, Answer>();
  #bytes = 0;

  constructor(limits: RetryLimits) {
    this.#limits = limits;
  }

  get size(): number {
    return this.#answers.size;
  }

  get bytes(): number {
    return this.#bytes;
  }

  remember(key: string, fingerprint: string, response: JsonRpcResponse): void {
    if (this.#limits.answers === 0) return;
    this.#forget(key);
    // A large passed-through result is over the bound anyway: never parse it just to measure it.
    if (
      'result' in response &&
      response.result instanceof RawJson &&
      response.result.byteLength > this.#limits.bytes
    )
      return;
    const text = JSON.stringify(response);
    const bytes = Buffer.byteLength(text);
    if (bytes > this.#limits.bytes) return;
    const now = Date.now();
    this.#expire(now);
    for (const [oldest] of this.#answers) {
      if (this.#answers.size < this.#limits.answers && this.#bytes + bytes <= this.#limits.bytes) break;
      this.#forget(oldest);
    }
    this.#answers.set(key, { fingerprint, text, bytes, at: now });
    this.#bytes += bytes;
  }

  /** The answer to the same request (same id, method and params), if still kept. */
  recall(key: string, fingerprint: string): JsonRpcResponse | undefined {
    if (this.#answers.size === 0) return undefined;
    this.#expire(Date.now());
    const answer = this.#answers.get(key);
    if (!answer || answer.fingerprint !== fingerprint) return undefined;
    return JSON.parse(answer.text) as JsonRpcResponse;
  }

  clear(): void {
    this.#answers.clear();
    this.#bytes = 0;
  }

  #expire(now: number): void {
    for (const [key, answer] of this.#answers) {
      if (now - answer.at < this.#limits.maxAgeMs) break;
      this.#forget(key);
    }
  }

  #forget(key: string): void {
    const answer = this.#answers.get(key);
    if (!answer) return;
    this.#answers.delete(key);
    this.#bytes -= answer.bytes;
  }
}
