// The calls of 2026-07-28 clients parked for input (transports/streamable-http/continuations.ts) at
// their bounds: 32 per credential and server, the oldest cancelled to make room for the 33rd and its
// handle then unknown; other owners untouched; a handle taken once; the TTL cancels; a cluster's
// handles name the replica.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Continuations, MAX_PER_CREDENTIAL } from '../src/transports/streamable-http/continuations.ts';
import type { ModernCall } from '../src/transports/streamable-http/modern-call.ts';

/** What Continuations reads of a call: its method and subject, and expire() when it is cancelled. */
function parkedCall(subject: string): ModernCall & { expired: number } {
  const call = {
    method: 'tools/call',
    subject,
    expired: 0,
    expire() {
      call.expired++;
    },
  };
  return call as unknown as ModernCall & { expired: number };
}

describe('continuations at their bounds', () => {
  it(`keeps ${MAX_PER_CREDENTIAL} per owner; the next cancels the oldest, whose handle is then unknown`, () => {
    const parked = new Continuations();
    const calls = Array.from({ length: MAX_PER_CREDENTIAL + 1 }, (_, index) => parkedCall(`ask-${index}`));
    const other = parkedCall('ask-bob');
    const otherHandle = parked.park(other, 'bob:demo');
    const handles = calls.slice(0, MAX_PER_CREDENTIAL).map((call) => parked.park(call, 'alice:demo'));
    assert.equal(parked.size, MAX_PER_CREDENTIAL + 1);
    assert.ok(calls.every((call) => call.expired === 0));
    const last = calls[MAX_PER_CREDENTIAL] as ModernCall & { expired: number };
    const lastHandle = parked.park(last, 'alice:demo');
    assert.equal(calls[0]?.expired, 1, 'the oldest is cancelled');
    assert.ok(calls.slice(1).every((call) => call.expired === 0));
    assert.equal(parked.size, MAX_PER_CREDENTIAL + 1);
    assert.equal(parked.take(handles[0] as string, 'alice:demo', 'tools/call', 'ask-0'), undefined);
    assert.equal(parked.take(lastHandle, 'alice:demo', 'tools/call', `ask-${MAX_PER_CREDENTIAL}`), last);
    assert.equal(
      parked.take(otherHandle, 'bob:demo', 'tools/call', 'ask-bob'),
      other,
      'another owner keeps its own',
    );
    assert.equal(other.expired, 0);
    parked.clear();
  });

  it('gives a handle once, only to its owner and for the same method and subject', () => {
    const parked = new Continuations();
    const call = parkedCall('ask');
    const handle = parked.park(call, 'alice:demo');
    assert.equal(parked.take(handle, 'bob:demo', 'tools/call', 'ask'), undefined);
    assert.equal(parked.take(handle, 'alice:demo', 'tools/call', 'other'), undefined);
    assert.equal(parked.take(handle, 'alice:demo', 'prompts/get', 'ask'), undefined);
    assert.equal(parked.take(handle, 'alice:demo', 'tools/call', 'ask'), call);
    assert.equal(parked.take(handle, 'alice:demo', 'tools/call', 'ask'), undefined, 'once');
  });

  it('cancels a call its client did not come back for within the TTL', async () => {
    const parked = new Continuations({ ttlMs: 50 });
    const call = parkedCall('ask');
    const handle = parked.park(call, 'alice:demo');
    await new Promise((resolve) => setTimeout(resolve, 150));
    assert.equal(call.expired, 1);
    assert.equal(parked.size, 0);
    assert.equal(parked.take(handle, 'alice:demo', 'tools/call', 'ask'), undefined);
  });

  it("names the replica in a cluster's handles", () => {
    const parked = new Continuations({ replica: 'r2' });
    const handle = parked.park(parkedCall('ask'), 'alice:demo');
    assert.match(handle, /^r2\.[\w-]{24}$/);
    parked.clear();
  });
});
