// A retried request (the same JSON-RPC id again in one session, after a lost answer or a cut stream)
// must not reach the backend a second time: it joins the call in flight, or gets the answer that call
// already produced. What a session remembers for this is bounded by count, bytes and age.

import { hash } from 'node:crypto';
import {
  ErrorCode,
  errorResponse,
  type JsonRpcId,
  type JsonRpcMessage,
  type JsonRpcRequest,
  type JsonRpcResponse,
} from '../protocol/jsonrpc.ts';
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
  // The one-shot hash: a third of the cost of createHash().update().digest() on a call's few hundred bytes.
  return hash('sha256', JSON.stringify([message.method, message.params ?? null]), 'base64');
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

/** A request that ran but whose answer is not kept (too big, or pushed out): a retry must not run it again. */
interface Ran {
  fingerprint: string;
  bytes: number;
  at: number;
}

/** Requests remembered as run without their answer, per session (a few dozen bytes each). */
const MAX_RAN = 4_096;

/** The session's recently finished answers, oldest first, within `RetryLimits`. */
export class RecentAnswers {
  readonly #limits: RetryLimits;
  readonly #answers = new Map<string, Answer>();
  readonly #ran = new Map<string, Ran>();
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
    this.#ran.delete(key);
    const now = Date.now();
    this.#expire(now);
    // A large passed-through result is over the bound anyway: never parse it just to measure it.
    if (
      'result' in response &&
      response.result instanceof RawJson &&
      response.result.byteLength > this.#limits.bytes
    ) {
      this.#markRan(key, { fingerprint, bytes: response.result.byteLength, at: now });
      return;
    }
    const text = JSON.stringify(response);
    const bytes = Buffer.byteLength(text);
    if (bytes > this.#limits.bytes) {
      this.#markRan(key, { fingerprint, bytes, at: now });
      return;
    }
    for (const [oldest, answer] of this.#answers) {
      if (this.#answers.size < this.#limits.answers && this.#bytes + bytes <= this.#limits.bytes) break;
      this.#forget(oldest);
      this.#markRan(oldest, { fingerprint: answer.fingerprint, bytes: answer.bytes, at: answer.at });
    }
    this.#answers.set(key, { fingerprint, text, bytes, at: now });
    this.#bytes += bytes;
  }

  /**
   * The answer to the same request (same id, method and params), if still kept; for one that ran but
   * whose answer was not kept, an error saying so (running it again could do its work twice).
   */
  recall(key: string, fingerprint: string, id: JsonRpcId): JsonRpcResponse | undefined {
    if (this.#answers.size === 0 && this.#ran.size === 0) return undefined;
    this.#expire(Date.now());
    const answer = this.#answers.get(key);
    if (answer?.fingerprint === fingerprint) return JSON.parse(answer.text) as JsonRpcResponse;
    const ran = this.#ran.get(key);
    if (ran?.fingerprint !== fingerprint) return undefined;
    return errorResponse(
      id,
      ErrorCode.InternalError,
      `this request already ran once in this session; its answer (${ran.bytes} bytes) is not kept for a retry (limits.retryAnswers, retryAnswerBytes), so it is not run again`,
    );
  }

  clear(): void {
    this.#answers.clear();
    this.#ran.clear();
    this.#bytes = 0;
  }

  #markRan(key: string, ran: Ran): void {
    if (this.#ran.size >= MAX_RAN) {
      const oldest = this.#ran.keys().next().value;
      if (oldest !== undefined) this.#ran.delete(oldest);
    }
    this.#ran.set(key, ran);
  }

  #expire(now: number): void {
    for (const [key, answer] of this.#answers) {
      if (now - answer.at < this.#limits.maxAgeMs) break;
      this.#forget(key);
    }
    for (const [key, ran] of this.#ran) {
      if (now - ran.at < this.#limits.maxAgeMs) break;
      this.#ran.delete(key);
    }
  }

  #forget(key: string): void {
    const answer = this.#answers.get(key);
    if (!answer) return;
    this.#answers.delete(key);
    this.#bytes -= answer.bytes;
  }
}
