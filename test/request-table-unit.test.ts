// The multiplexer's request table on its own: backend ids, progress tokens, server→client requests,
// and that nothing of a finished, cancelled or detached request stays behind. It builds no multiplexer.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MuxLink } from '../src/mux/link.ts';
import { RequestTable } from '../src/mux/request-table.ts';
import type { JsonRpcMessage } from '../src/protocol/jsonrpc.ts';

/** Sessions' links, with no multiplexer behind them: the table needs none. */
function links(count: number): MuxLink[] {
  const sink = { deliver: (_message: JsonRpcMessage) => {} };
  return Array.from({ length: count }, (_, i) => new MuxLink(sink, `user${i}`));
}

describe('RequestTable', () => {
  it('gives colliding client ids distinct backend ids and restores each exactly', () => {
    const [a, b] = links(2) as [MuxLink, MuxLink];
    const table = new RequestTable();
    const first = table.addClient(a, 1, 'tools/call', undefined);
    const second = table.addClient(b, 1, 'tools/call', undefined);
    const third = table.addClient(b, '1', 'tools/call', undefined);
    assert.equal(new Set([first.backendId, second.backendId, third.backendId]).size, 3);
    const taken = table.take(third.backendId);
    assert.equal(taken?.kind, 'client');
    assert.equal(taken?.kind === 'client' && taken.clientId, '1');
    assert.equal(taken?.kind === 'client' && taken.link, b);
    assert.equal(table.backendIdOf(b, 1), second.backendId);
    assert.equal(table.backendIdOf(b, '1'), undefined);
    assert.equal(table.take(third.backendId), undefined, 'taken once only');
  });

  it('maps progress tokens both ways and forgets them with their request', () => {
    const [a] = links(1) as [MuxLink];
    const table = new RequestTable();
    const { backendId, progressKey } = table.addClient(a, 7, 'tools/call', 'client-token');
    assert.ok(progressKey);
    assert.deepEqual(table.progressTarget(progressKey), { link: a, token: 'client-token' });
    assert.equal(table.progressTarget('client-token'), undefined, 'the backend never sees client tokens');
    table.take(backendId);
    assert.equal(table.progressTarget(progressKey), undefined);
    assert.equal(table.inFlightOf(a), 0);
  });

  it('takes all of a detached session, including its server→client requests, and nobody else’s', () => {
    const [a, b] = links(2) as [MuxLink, MuxLink];
    const table = new RequestTable();
    const ids = [
      table.addClient(a, 1, 'tools/call', 't').backendId,
      table.addClient(a, 2, 'tools/call', undefined).backendId,
    ];
    const other = table.addClient(b, 1, 'tools/call', undefined).backendId;
    const internal = table.addInternal(() => {});
    const asked = table.addServerRequest('backend-7', a);
    assert.deepEqual(
      table
        .takeAllOf(a)
        .map(({ backendId }) => backendId)
        .sort(),
      ids.sort(),
    );
    assert.equal(table.inFlightOf(a), 0);
    assert.equal(table.takeServerRequest(a, asked), undefined);
    assert.equal(table.backendIdOf(b, 1), other);
    assert.equal(table.take(internal)?.kind, 'internal');
  });

  it('routes a server→client answer back once, from the session it was sent to only', () => {
    const [a, b] = links(2) as [MuxLink, MuxLink];
    const table = new RequestTable();
    const toA = table.addServerRequest(42, a, 'progress-7');
    assert.match(toA, /^[\w-]{16}$/, 'an unguessable id');
    assert.notEqual(table.addServerRequest(42, b), toA, 'never shared across sessions');
    assert.equal(table.takeServerRequest(b, toA), undefined, 'another session cannot answer it');
    assert.ok(table.awaitsProgressFrom(a, 'progress-7'));
    assert.ok(!table.awaitsProgressFrom(b, 'progress-7'));
    assert.deepEqual(table.takeServerRequest(a, toA), {
      backendId: 42,
      link: a,
      progressToken: 'progress-7',
      generation: 0,
    });
    assert.equal(table.takeServerRequest(a, toA), undefined, 'answered once');
    assert.equal(table.takeServerRequest(a, 1), undefined);
    assert.ok(!table.awaitsProgressFrom(a, 'progress-7'));
  });

  it('sends a backend cancellation to every copy of its request', () => {
    const [, b] = links(2) as [MuxLink, MuxLink];
    const table = new RequestTable();
    const again = table.addServerRequest(43, b);
    assert.deepEqual(table.takeServerRequestsFor(43), [{ id: again, link: b }]);
    assert.deepEqual(table.takeServerRequestsFor(43), []);
  });

  it('clears on backend loss, returning only client requests to answer', () => {
    const [a] = links(1) as [MuxLink];
    const table = new RequestTable();
    table.addClient(a, 'x', 'tools/call', 5);
    table.addInternal(() => {});
    const answered = table.clear();
    assert.deepEqual(
      answered.map((pending) => pending.clientId),
      ['x'],
    );
    assert.equal(table.inFlightOf(a), 0);
    assert.deepEqual(table.clear(), []);
  });

  it('counts each session’s requests in flight apart, as the certain-owner rule reads them', () => {
    const [a, b] = links(2) as [MuxLink, MuxLink];
    const table = new RequestTable();
    assert.equal(table.inFlightOf(a), 0);
    const first = table.addClient(a, 1, 'tools/call', undefined).backendId;
    table.addClient(a, 2, 'tools/call', undefined);
    table.addInternal(() => {});
    assert.equal(table.inFlightOf(a), 2);
    assert.equal(table.inFlightOf(b), 0, 'internal requests are nobody’s');
    table.take(first);
    assert.equal(table.inFlightOf(a), 1);
    assert.equal(table.backendIdOf(a, 1), undefined);
    assert.equal(table.size, 2);
  });

  it('keeps the same client id of two sessions apart when one is cancelled', () => {
    const [a, b] = links(2) as [MuxLink, MuxLink];
    const table = new RequestTable();
    const ofA = table.addClient(a, 'same', 'tools/call', undefined).backendId;
    const ofB = table.addClient(b, 'same', 'tools/call', undefined).backendId;
    assert.equal(table.backendIdOf(a, 'same'), ofA);
    table.take(ofA);
    assert.equal(table.backendIdOf(a, 'same'), undefined);
    assert.equal(table.backendIdOf(b, 'same'), ofB);
  });
});
