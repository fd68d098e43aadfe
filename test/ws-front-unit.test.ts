// The WebSocket front's pure rules: what a handshake must carry before a session is made for it, and
// the close code of a session the gateway ends.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CloseCode, closeCodeFor } from '../src/transports/websocket/socket-session.ts';
import { handshakeRefusal } from '../src/transports/websocket/ws-front.ts';

const KEY = 'dGhlIHNhbXBsZSBub25jZQ==';

function handshake(headers: Record<string, string>, method = 'GET') {
  return {
    method,
    headers: { upgrade: 'websocket', 'sec-websocket-key': KEY, 'sec-websocket-version': '13', ...headers },
  };
}

describe('WebSocket handshake rules', () => {
  it('accepts no subprotocol, or a list with mcp', () => {
    assert.equal(handshakeRefusal(handshake({})), undefined);
    assert.equal(handshakeRefusal(handshake({ 'sec-websocket-protocol': 'mcp' })), undefined);
    assert.equal(handshakeRefusal(handshake({ 'sec-websocket-protocol': 'graphql-ws, mcp' })), undefined);
    assert.equal(handshakeRefusal(handshake({ upgrade: 'WebSocket' })), undefined);
  });

  it('refuses what ws would refuse after the session was made, saying why', () => {
    const refused = (request: ReturnType<typeof handshake>) => {
      const refusal = handshakeRefusal(request);
      assert.ok(refusal);
      return [refusal.status, refusal.message];
    };
    assert.deepEqual(refused(handshake({ 'sec-websocket-protocol': 'mcpx, graphql-ws' })), [
      400,
      'subprotocol "mcp" required when any is offered',
    ]);
    assert.deepEqual(refused(handshake({}, 'POST')), [400, 'not a WebSocket handshake']);
    assert.deepEqual(refused(handshake({ upgrade: 'h2c' })), [400, 'not a WebSocket handshake']);
    assert.deepEqual(refused(handshake({ 'sec-websocket-key': 'short' })), [
      400,
      'missing or invalid Sec-WebSocket-Key',
    ]);
    assert.deepEqual(refused(handshake({ 'sec-websocket-version': '8' })), [
      426,
      'Sec-WebSocket-Version must be 13',
    ]);
  });
});

describe('close codes of sessions the gateway ends', () => {
  it('1001 at shutdown whatever the reason, 1011 for a failed initialize, else 1008', () => {
    assert.equal(closeCodeFor('API key revoked or changed', true), CloseCode.goingAway);
    assert.equal(closeCodeFor('initialize failed', true), 1001);
    assert.equal(closeCodeFor('initialize failed', false), 1011);
    assert.equal(closeCodeFor('API key revoked or changed', false), 1008);
    assert.equal(closeCodeFor('access withdrawn', false), 1008);
  });
});
