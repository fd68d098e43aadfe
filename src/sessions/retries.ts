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

  /** Each reply serializes the same response: any one's text is the text. */
  finish(response: JsonRpcResponse): string | undefined {
    let text: string | undefined;
    for (const reply of this.#replies) text = reply.finish(response) ?? text;
    return text;
  }

  refuse(refusal: Refusal, response: JsonRpcResponse): void {
    for (const reply of this.#replies) {
      if (reply.refuse) reply.refuse(refusal, response);
      else reply.finish(response);
    }
  }
}

interface Answer {
  key: string;
  fingerprint: string;
  text: string;
  bytes: number;
  at: number;
}

/** A request that ran but whose answer is not kept (too big, or pushed out): a retry must not run it again. */
interface Ran {
  key: string;
  fingerprint: string;
  bytes: number;
  at: number;
}

/** Requests remembered as run without their answer, per session (a few dozen bytes each). */
const MAX_RAN = 4_096;

/**
 * Entries oldest first, beside the map that finds them by key. The oldest entry of a Map is found by
 * iterating from its start, which walks past every entry deleted there since V8 last compacted it (at
 * 4,096 entries, thousands per call); this queue finds it at once. An entry replaced or removed from
 * the map stays here until it reaches the front (`live` says whether it still counts).
 */
class OldestFirst<T extends { key: string }> {
  #items: T[] = [];
  #head = 0;

  push(item: T): void {
    this.#items.push(item);
  }

  /** The oldest entry still `live`, left in place; the dead ones before it are dropped. */
  peek(live: (item: T) => boolean): T | undefined {
    while (this.#head < this.#items.length) {
      const item = this.#items[this.#head] as T;
      if (live(item)) return item;
      this.#drop();
    }
    return undefined;
  }

  /** Keeps the queue within twice its live entries (plus slack), so replaced entries cannot pile up. */
  compact(liveCount: number, live: (item: T) => boolean): void {
    if (this.#items.length - this.#head <= 2 * liveCount + 64) return;
    this.#items = this.#items.slice(this.#head).filter(live);
    this.#head = 0;
  }

  clear(): void {
    this.#items = [];
    this.#head = 0;
  }

  #drop(): void {
    this.#items[this.#head] = undefined as unknown as T;
    this.#head++;
    if (this.#head >= 1_024 && this.#head * 2 >= this.#items.length) {
      this.#items = this.#items.slice(this.#head);
      this.#head = 0;
    }
  }
}

/** The session's recently finished answers, oldest first, within `RetryLimits`. */
export class RecentAnswers {
  readonly #limits: RetryLimits;
  readonly #answers = new Map<string, Answer>();
  readonly #answerOrder = new OldestFirst<Answer>();
  readonly #ran = new Map<string, Ran>();
  readonly #ranOrder = new OldestFirst<Ran>();
  readonly #isAnswer = (answer: Answer) => this.#answers.get(answer.key) === answer;
  readonly #isRan = (ran: Ran) => this.#ran.get(ran.key) === ran;
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

  /** `sent`: the response's JSON text when the reply already made it (JSON.stringify of the same value). */
  remember(key: string, fingerprint: string, response: JsonRpcResponse, sent?: string): void {
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
      this.#markRan({ key, fingerprint, bytes: response.result.byteLength, at: now });
      return;
    }
    const text = sent ?? JSON.stringify(response);
    const bytes = Buffer.byteLength(text);
    if (bytes > this.#limits.bytes) {
      this.#markRan({ key, fingerprint, bytes, at: now });
      return;
    }
    while (this.#answers.size >= this.#limits.answers || this.#bytes + bytes > this.#limits.bytes) {
      const oldest = this.#answerOrder.peek(this.#isAnswer);
      if (!oldest) break;
      this.#forget(oldest.key);
      this.#markRan({ key: oldest.key, fingerprint: oldest.fingerprint, bytes: oldest.bytes, at: oldest.at });
    }
    const answer = { key, fingerprint, text, bytes, at: now };
    this.#answers.set(key, answer);
    this.#answerOrder.push(answer);
    this.#answerOrder.compact(this.#answers.size, this.#isAnswer);
    this.#bytes += bytes;
  }

  /**
   * The answer to the same request (same id, method and params), if still kept; for one that ran but
   * whose answer was not kept, an error saying so (running it again could do its work twice).
   */
  recall(key: string, fingerprint: string, id: JsonRpcId): JsonRpcResponse | undefined {
    // Most requests are new: nothing to expire or compare (expiring only ever removes entries).
    if (!this.#answers.has(key) && !this.#ran.has(key)) return undefined;
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
    this.#answerOrder.clear();
    this.#ran.clear();
    this.#ranOrder.clear();
    this.#bytes = 0;
  }

  #markRan(ran: Ran): void {
    while (this.#ran.size >= MAX_RAN) {
      const oldest = this.#ranOrder.peek(this.#isRan);
      if (!oldest) break;
      this.#ran.delete(oldest.key);
    }
    this.#ran.set(ran.key, ran);
    this.#ranOrder.push(ran);
    this.#ranOrder.compact(this.#ran.size, this.#isRan);
  }

  #expire(now: number): void {
    for (
      let answer = this.#answerOrder.peek(this.#isAnswer);
      answer;
      answer = this.#answerOrder.peek(this.#isAnswer)
    ) {
      if (now - answer.at < this.#limits.maxAgeMs) break;
      this.#forget(answer.key);
    }
    for (let ran = this.#ranOrder.peek(this.#isRan); ran; ran = this.#ranOrder.peek(this.#isRan)) {
      if (now - ran.at < this.#limits.maxAgeMs) break;
      this.#ran.delete(ran.key);
    }
  }

  #forget(key: string): void {
    const answer = this.#answers.get(key);
    if (!answer) return;
    this.#answers.delete(key);
    this.#bytes -= answer.bytes;
  }
}
