// The observation channels in-process: a SessionManager with a fake upstream, the Gatekeeper and a
// Supervisor with a fake process publish what happened; the audit subscriber writes only its own
// gateway's lines, follows reloads and unsubscribes on close; sessions.snapshot() counts. No HTTP.

import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import type { BackendProcess } from '../src/backends/process.ts';
import { Supervisor } from '../src/backends/supervisor.ts';
import { buildConfig } from '../src/config/load.ts';
import type { RelayConfig } from '../src/config/schema.ts';
import { silentLogger } from '../src/log.ts';
import { Audit } from '../src/observe/audit.ts';
import {
  type BackendEvent,
  backendDown,
  backendStarted,
  backendUnhealthy,
  type EventChannel,
  requestRefused,
  requestSettled,
  sessionClosed,
  sessionOpened,
} from '../src/observe/events.ts';
import { Gatekeeper } from '../src/policy/gatekeeper.ts';
import type { JsonRpcMessage, JsonRpcRequest, JsonRpcResponse } from '../src/protocol/jsonrpc.ts';
import { SessionManager } from '../src/sessions/manager.ts';
import type { Session } from '../src/sessions/session.ts';
import type { Identity, ReplyTarget } from '../src/sessions/types.ts';

const dir = mkdtempSync(join(tmpdir(), 'mcp-relay-observe-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function identity(user: string): Identity {
  return { user, groups: ['staff'], method: 'api-key', credential: `key-of-${user}` };
}

/** Every event of `channel` while the test runs; stop() unsubscribes. */
function collect<T>(channel: EventChannel<T>): { events: T[]; stop: () => void } {
  const events: T[] = [];
  return { events, stop: channel.subscribe((event) => events.push(event)) };
}

/** A gateway's session side in-process: the gate, the manager, and an upstream that records what it got. */
function gateway(config: RelayConfig, owner: symbol) {
  const sent: JsonRpcMessage[] = [];
  const gatekeeper = new Gatekeeper(config, silentLogger, owner);
  const sessions = new SessionManager(
    config,
    silentLogger,
    () => ({
      ok: true as const,
      attach: () => ({ send: (message: JsonRpcMessage) => void sent.push(message), close: async () => {} }),
    }),
    gatekeeper,
    owner,
  );
  return { sessions, gatekeeper, sent };
}

/** Sends a request through the session; resolves with its answer (the session's timers are unref'd: hold the loop). */
function ask(session: Session, request: JsonRpcRequest): Promise<JsonRpcResponse> {
  const hold = setTimeout(() => {}, 10_000);
  return new Promise<JsonRpcResponse>((resolve) => {
    const reply: ReplyTarget = {
      send: () => {},
      finish: (response) => {
        resolve(response);
        return undefined;
      },
      refuse: (_refusal, response) => resolve(response),
    };
    session.request(request, reply);
  }).finally(() => clearTimeout(hold));
}

function answer(session: Session, id: number, result: Record<string, unknown>): void {
  session.deliver({ jsonrpc: '2.0', id, result });
}

async function open(sessions: SessionManager, user: string, server = 's'): Promise<Session> {
  const created = await sessions.create(server, identity(user));
  assert.ok(created.ok, 'the session is created');
  return created.session;
}

const CONFIG = buildConfig({
  servers: {
    s: { command: 'node', requestTimeout: '150ms', tools: { deny: ['secret'] }, allow: { users: ['alice'] } },
    t: { command: 'node' },
  },
});

describe('observation events', () => {
  it('forward as usual when nobody listens, with no subscriber left over', async () => {
    assert.equal(requestSettled.hasSubscribers, false);
    const { sessions, sent } = gateway(CONFIG, Symbol('quiet'));
    const session = await open(sessions, 'alice');
    const call = ask(session, { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'echo' } });
    assert.equal(sent.length, 1, 'forwarded as usual');
    answer(session, 1, { content: [] });
    assert.ok('result' in (await call));
    await sessions.closeAll('done');
  });

  it('follow a session: open, settled requests with outcomes, refusals, close', async () => {
    const owner = Symbol('observed');
    const opened = collect(sessionOpened);
    const closed = collect(sessionClosed);
    const settled = collect(requestSettled);
    const refused = collect(requestRefused);
    try {
      const { sessions } = gateway(CONFIG, owner);
      assert.equal((await sessions.create('s', identity('bob'))).ok, false);
      const session = await open(sessions, 'alice');
      const ok = ask(session, { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'echo' } });
      answer(session, 1, { content: [] });
      await ok;
      const toolError = ask(session, { jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'x' } });
      answer(session, 2, { content: [], isError: true });
      await toolError;
      await ask(session, { jsonrpc: '2.0', id: 3, method: 'tools/call', params: { name: 'secret' } });
      const slow = await ask(session, {
        jsonrpc: '2.0',
        id: 4,
        method: 'tools/call',
        params: { name: 'sleep' },
      });
      assert.ok('error' in slow, 'timed out');
      const cancelled = ask(session, { jsonrpc: '2.0', id: 5, method: 'ping' });
      session.post({ jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: 5 } });
      await cancelled;
      const left = ask(session, { jsonrpc: '2.0', id: 6, method: 'tools/call', params: { name: 'echo' } });
      await session.close('deleted by the client');
      await left;

      const mine = <T extends { owner: symbol }>(events: T[]) =>
        events.filter((event) => event.owner === owner);
      assert.deepEqual(
        mine(opened.events).map((event) => [event.session, event.server, event.identity.user]),
        [[session.id, 's', 'alice']],
      );
      assert.deepEqual(
        mine(settled.events).map((event) => [event.method, event.name, event.ending, event.outcome]),
        [
          ['tools/call', 'echo', 'response', 'ok'],
          ['tools/call', 'x', 'response', 'error'],
          ['tools/call', 'sleep', 'timeout', 'timeout'],
          ['ping', undefined, 'cancelled', 'cancelled'],
          ['tools/call', 'echo', 'closed', 'error'],
        ],
      );
      const timedOut = mine(settled.events)[2];
      assert.ok(timedOut && timedOut.durationMs >= 140, `the timeout took ${timedOut?.durationMs} ms`);
      assert.equal(timedOut.session, session.id);
      assert.deepEqual(
        mine(refused.events).map((event) => [event.session, event.method, event.name, event.status]),
        [
          [undefined, 'initialize', undefined, 403],
          [session.id, 'tools/call', 'secret', undefined],
        ],
      );
      assert.match(mine(refused.events)[1]?.reason ?? '', /tool "secret" is not available/);
      const end = mine(closed.events);
      assert.equal(end.length, 1);
      assert.equal(end[0]?.reason, 'deleted by the client');
      assert.equal(end[0]?.requests, 6, 'every request that reached the gate');
    } finally {
      for (const subscription of [opened, closed, settled, refused]) subscription.stop();
    }
  });

  it('report a backend started, down and unhealthy from the supervisor', async () => {
    const started = collect(backendStarted);
    const down = collect(backendDown);
    const unhealthy = collect(backendUnhealthy);
    let pid = 1000;
    const launched: Array<{ exit: (code: number) => void }> = [];
    const spawn = async (): Promise<BackendProcess> => {
      const fake = {
        spec: { server: 'observed-backend' },
        pid: ++pid,
        dying: false,
        onmessage: () => {},
        onexit: (_exit: unknown) => {},
        start() {},
        send: () => true,
        kill() {},
        stop: async () => {},
      };
      launched.push({ exit: (code) => fake.onexit({ code, signal: null }) });
      return fake as unknown as BackendProcess;
    };
    const supervisor = new Supervisor(spawn, silentLogger, {
      policy: { initialDelayMs: 1, maxDelayMs: 1, crashLimit: 2, crashWindowMs: 60_000, cooldownMs: 60_000 },
    });
    try {
      await supervisor.start();
      launched[0]?.exit(1);
      await new Promise((resolve) => setTimeout(resolve, 30));
      launched[1]?.exit(2);
      const ours = (events: BackendEvent[]) => events.filter((event) => event.server === 'observed-backend');
      assert.deepEqual(
        ours(started.events).map((event) => [event.pid, event.restart]),
        [
          [1001, false],
          [1002, true],
        ],
      );
      assert.deepEqual(
        ours(down.events).map((event) => [event.pid, event.reason]),
        [
          [1001, 'backend exited (code 1)'],
          [1002, 'backend exited (code 2)'],
        ],
      );
      assert.equal(ours(unhealthy.events).length, 1);
      assert.match(ours(unhealthy.events)[0]?.reason ?? '', /crashed 2 times/);
    } finally {
      await supervisor.stop();
      for (const subscription of [started, down, unhealthy]) subscription.stop();
    }
  });
});

describe('audit subscriber', () => {
  const lines = (file: string) =>
    readFileSync(file, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.parse(line) as Record<string, unknown>);

  it("writes its own gateway's lines only, in order, and stops listening when closed", async () => {
    const file = join(dir, 'own.jsonl');
    const config = buildConfig({ ...CONFIG, audit: { file } });
    const owner = Symbol('audited');
    const audit = new Audit(config, silentLogger, owner);
    const other = gateway(config, Symbol('another gateway'));
    const { sessions } = gateway(config, owner);
    try {
      assert.equal((await sessions.create('s', identity('bob'))).ok, false);
      const session = await open(sessions, 'alice');
      const stranger = await open(other.sessions, 'alice');
      const call = ask(session, {
        jsonrpc: '2.0',
        id: 1,
        method: 'tools/call',
        params: { name: 'echo', arguments: { text: 'hi' } },
      });
      answer(session, 1, { content: [] });
      await call;
      await ask(session, { jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'secret' } });
      const list = ask(session, { jsonrpc: '2.0', id: 3, method: 'tools/list' });
      answer(session, 3, { tools: [] });
      await list;
      const strangers = ask(stranger, {
        jsonrpc: '2.0',
        id: 1,
        method: 'tools/call',
        params: { name: 'echo' },
      });
      answer(stranger, 1, { content: [] });
      await strangers;
      await session.close('deleted by the client');
      await other.sessions.closeAll('done');
      const written = lines(file);
      assert.deepEqual(
        written.map((line) => [line.event, line.user, line.outcome ?? null, line.tool ?? null]),
        [
          ['session.start', 'bob', 'refused', null],
          ['session.start', 'alice', 'ok', null],
          ['tools.call', 'alice', 'ok', 'echo'],
          ['tools.call', 'alice', 'refused', 'secret'],
          ['session.end', 'alice', null, null],
        ],
      );
      const { time, durationMs, ...call1 } = written[2] ?? {};
      assert.ok(typeof time === 'string' && typeof durationMs === 'number');
      assert.deepEqual(call1, {
        event: 'tools.call',
        user: 'alice',
        auth: 'api-key',
        server: 's',
        session: session.id,
        tool: 'echo',
        requestBytes: Buffer.byteLength(
          JSON.stringify({
            jsonrpc: '2.0',
            id: 1,
            method: 'tools/call',
            params: { name: 'echo', arguments: { text: 'hi' } },
          }),
        ),
        outcome: 'ok',
        responseBytes: Buffer.byteLength(JSON.stringify({ jsonrpc: '2.0', id: 1, result: { content: [] } })),
      });
      assert.equal(written[4]?.requests, 3, 'two calls and the list');
      assert.equal(requestSettled.hasSubscribers, true);
    } finally {
      audit.close();
      audit.close();
      await sessions.closeAll('done');
    }
    assert.equal(requestSettled.hasSubscribers, false, 'no subscription left after close');
    assert.equal(sessionClosed.hasSubscribers, false);
  });

  it('follows a reload: new settings, a new file, a failed switch keeps the old, none unsubscribes', async () => {
    const first = join(dir, 'first.jsonl');
    const second = join(dir, 'second.jsonl');
    const owner = Symbol('reloaded');
    const audit = new Audit(buildConfig({ ...CONFIG, audit: { file: first } }), silentLogger, owner);
    const { sessions } = gateway(CONFIG, owner);
    const call = async (session: Session, id: number) => {
      const asked = ask(session, {
        jsonrpc: '2.0',
        id,
        method: 'tools/call',
        params: { name: 'echo', arguments: { n: id } },
      });
      answer(session, id, { content: [] });
      await asked;
    };
    try {
      const session = await open(sessions, 'alice');
      await call(session, 1);
      audit.update(buildConfig({ ...CONFIG, audit: { file: first, includeArguments: true } }));
      await call(session, 2);
      audit.update(buildConfig({ ...CONFIG, audit: { file: second } }));
      await call(session, 3);
      // A destination that cannot be opened (a folder under a file) leaves the current log in place.
      audit.update(buildConfig({ ...CONFIG, audit: { file: join(second, 'below-a-file.jsonl') } }));
      await call(session, 4);
      audit.update(buildConfig(CONFIG));
      assert.equal(requestSettled.hasSubscribers, false, 'no audit section: nobody listens');
      await call(session, 5);
      await session.close('done');
      assert.deepEqual(
        lines(first).map((line) => [line.event, line.arguments ?? null]),
        [
          ['session.start', null],
          ['tools.call', null],
          ['tools.call', { n: 2 }],
        ],
      );
      assert.deepEqual(
        lines(second).map((line) => [line.event, (line.requestBytes as number) > 0]),
        [
          ['tools.call', true],
          ['tools.call', true],
        ],
      );
    } finally {
      audit.close();
      await sessions.closeAll('done');
    }
  });
});

describe('sessions.snapshot', () => {
  it('counts sessions by server and user, and requests in flight, in a copy', async () => {
    const { sessions } = gateway(CONFIG, Symbol('counted'));
    try {
      const empty = sessions.snapshot();
      assert.deepEqual(empty, { sessions: 0, inFlight: 0, draining: false, byServer: {}, byUser: {} });
      const a1 = await open(sessions, 'alice');
      await open(sessions, 'alice', 't');
      await open(sessions, '__proto__', 't');
      const pending = ask(a1, { jsonrpc: '2.0', id: 1, method: 'ping' });
      const snapshot = sessions.snapshot();
      assert.equal(snapshot.sessions, 3);
      assert.equal(snapshot.inFlight, 1);
      assert.deepEqual({ ...snapshot.byServer }, { s: 1, t: 2 });
      assert.equal(snapshot.byUser.alice, 2);
      assert.equal(Object.getOwnPropertyDescriptor(snapshot.byUser, '__proto__')?.value, 1);
      await a1.close('gone');
      await pending;
      assert.deepEqual(snapshot.byServer, { s: 1, t: 2 }, 'an earlier snapshot does not change');
      assert.deepEqual(sessions.snapshot().byServer, { t: 2 });
      await sessions.drain(0);
      assert.equal(sessions.snapshot().draining, true);
    } finally {
      await sessions.closeAll('done');
    }
  });
});
