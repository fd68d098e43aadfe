// The legacy SSE front's paths in process: which paths its rows take (and leave to Streamable HTTP's
// `/mcp/:server` row), which GETs of the Streamable HTTP URL open a legacy stream, the endpoint URL.

import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { describe, it } from 'node:test';
import {
  legacyPath,
  MESSAGES_SUFFIX,
  messagesUrl,
  opensLegacyStream,
  STREAM_SUFFIX,
  sessionIdOf,
} from '../src/transports/legacy-sse/paths.ts';

function named(servers: string[]) {
  return (name: string | undefined): string | null => {
    if (name === undefined) return servers.length === 1 ? (servers[0] ?? null) : null;
    return servers.includes(name) ? name : null;
  };
}

function request(method: string, headers: Record<string, string>, url = '/mcp/demo'): IncomingMessage {
  return { method, headers, url } as unknown as IncomingMessage;
}

describe('legacy SSE paths', () => {
  it('takes /mcp/<server>/sse and /messages, percent-decoded, with one trailing slash', () => {
    const stream = legacyPath(STREAM_SUFFIX, named(['demo', 'b c']));
    assert.equal(stream('/mcp/demo/sse'), 'demo');
    assert.equal(stream('/mcp/demo/sse/'), 'demo');
    assert.equal(stream('/mcp/b%20c/sse'), 'b c');
    assert.equal(stream('/mcp/nosuch/sse'), null, 'the row’s path, naming nothing: 404 after the caller');
    assert.equal(stream('/mcp/%E0%A4%A/sse'), null);
    assert.equal(stream('/mcp/demo'), undefined);
    assert.equal(stream('/mcp/demo/ssex'), undefined);
    assert.equal(stream('/mcp/a/b/sse'), undefined);
    assert.equal(stream('/other/demo/sse'), undefined);
    assert.equal(legacyPath(MESSAGES_SUFFIX, named(['demo']))('/mcp/demo/messages'), 'demo');
  });

  it('takes /mcp/sse for the single server, unless a server is named sse', () => {
    assert.equal(legacyPath(STREAM_SUFFIX, named(['only']))('/mcp/sse'), 'only');
    assert.equal(legacyPath(STREAM_SUFFIX, named(['a', 'b']))('/mcp/sse'), null);
    // A server named "sse": /mcp/sse is its Streamable HTTP endpoint; its legacy stream is /mcp/sse/sse.
    const withSse = legacyPath(STREAM_SUFFIX, named(['sse']));
    assert.equal(withSse('/mcp/sse'), undefined);
    assert.equal(withSse('/mcp/sse/sse'), 'sse');
  });

  it('opens a legacy stream on the Streamable HTTP URL only for a GET for SSE naming no session or version', () => {
    assert.ok(opensLegacyStream(request('GET', { accept: 'text/event-stream' })));
    assert.ok(!opensLegacyStream(request('GET', { accept: 'text/event-stream', 'mcp-session-id': 'x' })));
    assert.ok(
      !opensLegacyStream(
        request('GET', { accept: 'text/event-stream', 'mcp-protocol-version': '2025-06-18' }),
      ),
    );
    assert.ok(!opensLegacyStream(request('GET', { accept: 'application/json' })));
    assert.ok(opensLegacyStream(request('GET', { accept: 'application/json, Text/Event-Stream;q=0.9' })));
    assert.ok(!opensLegacyStream(request('GET', { accept: '*/*' })), 'curl’s default is not a legacy client');
    assert.ok(!opensLegacyStream(request('GET', {})));
    assert.ok(!opensLegacyStream(request('POST', { accept: 'text/event-stream' })));
  });

  it('names the messages URL below publicUrl’s path, and reads exactly one sessionId', () => {
    assert.equal(messagesUrl('', 'b c', 'id-1'), '/mcp/b%20c/messages?sessionId=id-1');
    assert.equal(messagesUrl('/relay', 'demo', 'id'), '/relay/mcp/demo/messages?sessionId=id');
    assert.equal(sessionIdOf(request('POST', {}, '/mcp/demo/messages?sessionId=abc')), 'abc');
    assert.equal(sessionIdOf(request('POST', {}, '/mcp/demo/messages')), undefined);
    assert.equal(sessionIdOf(request('POST', {}, '/mcp/demo/messages?sessionId=a&sessionId=b')), undefined);
  });
});
