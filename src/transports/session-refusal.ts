// Why a session could not be opened, as the HTTP refusal every front answers with: not allowed (403)
// or over a rate limit (429), too many sessions of the user (429), no room for a backend or shutting
// down (503); each with the Retry-After a client should honour. And the one rule of a session's life
// that fronts with a long-lived session (legacy SSE, WebSocket) check themselves: one initialize.

import type { Refusal } from '../http/refusal.ts';
import { ErrorCode } from '../protocol/jsonrpc.ts';
import type { CreateResult } from '../sessions/manager.ts';

export type NoSession = Exclude<CreateResult, { ok: true }>;

export function sessionRefusal(created: NoSession): Refusal {
  switch (created.reason) {
    case 'capacity':
      return unavailable(created.message, 30);
    case 'refused': {
      const { refusal } = created;
      const retryAfter = refusal.retryAfterSeconds;
      return {
        status: refusal.status ?? 403,
        code: refusal.code,
        message: refusal.message,
        headers: retryAfter === undefined ? {} : { 'retry-after': String(retryAfter) },
      };
    }
    case 'shutting-down':
      return unavailable('the gateway is shutting down; no new sessions', 5);
    case 'too-many-sessions':
      return {
        status: 429,
        code: ErrorCode.Refused,
        message: `too many sessions: at most ${created.limit} per user`,
        headers: { 'retry-after': '60' },
      };
  }
}

/** 503 with a Retry-After: the backend or the gateway cannot take the session now. */
export function unavailable(message: string, retryAfterSeconds: number): Refusal {
  return {
    status: 503,
    code: ErrorCode.BackendUnavailable,
    message,
    headers: { 'retry-after': String(retryAfterSeconds) },
  };
}

/**
 * A second `initialize` in a session that lives on one connection (legacy SSE, WebSocket): refused with
 * InvalidRequest, as Streamable HTTP makes a new session for every initialize instead.
 */
export const ALREADY_INITIALIZED = 'this session is already initialized';
