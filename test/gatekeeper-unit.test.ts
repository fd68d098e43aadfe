// The Gatekeeper in-process, with fake sessions: who may open a session (users, groups), rate limits
// (429), tool/prompt/resource filters, list filtering, notifications, tasks, and a policy reload
// applied to running sessions. No HTTP, no processes.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { buildConfig } from '../src/config/load.ts';
import { silentLogger } from '../src/log.ts';
import { Gatekeeper } from '../src/policy/gatekeeper.ts';
import { ErrorCode, type JsonRpcRequest, type JsonRpcResponse } from '../src/protocol/jsonrpc.ts';
import type { Admission, GatedSession, Identity, Refusal, RequestTrack } from '../src/sessions/types.ts';

function identity(user: string, groups: string[] = []): Identity {
  return { user, groups, method: 'api-key', credential: `key-of-${user}` };
}

function session(user: Identity, server = 's', id = 'session-1'): GatedSession {
  return { id, server, identity: user, onClose: () => {} };
}

let nextId = 1;
function request(method: string, params?: Record<string, unknown>): JsonRpcRequest {
  return { jsonrpc: '2.0', id: nextId++, method, ...(params ? { params } : {}) };
}

function refusalOf(admission: Admission): Refusal {
  assert.ok('refusal' in admission, 'expected a refusal');
  return admission.refusal;
}

function trackOf(admission: Admission): RequestTrack | undefined {
  assert.ok('track' in admission, `expected an admission, got ${JSON.stringify(admission)}`);
  return admission.track;
}

function result(value: Record<string, unknown>, id = 1): JsonRpcResponse {
  return { jsonrpc: '2.0', id, result: value };
}

const ALICE = identity('alice');
const BOB = identity('bob');
const OPS_CAROL = identity('carol', ['ops']);

const FILTERED = {
  command: 'node',
  allow: { users: ['alice'], groups: ['ops'] },
  tools: { allow: ['read_*', 'echo'], deny: ['read_secret'], groups: { ops: { allow: ['restart'] } } },
  prompts: { deny: ['internal'] },
  resources: { allow: ['file:///public/*'] },
};

describe('Gatekeeper', () => {
  it('lets allowed users and groups open a session and refuses others with 403', async () => {
    const gate = new Gatekeeper(
      buildConfig({ servers: { s: FILTERED, open: { command: 'node' } } }),
      silentLogger,
    );
    assert.equal(await gate.admitSession('s', ALICE), undefined);
    assert.equal(await gate.admitSession('s', OPS_CAROL), undefined, 'a member of an allowed group');
    const refused = await gate.admitSession('s', BOB);
    assert.equal(refused?.status, 403);
    assert.equal(refused?.code, ErrorCode.Refused);
    assert.equal(refused?.message, 'user "bob" is not allowed to use server "s"');
    assert.equal(await gate.admitSession('open', BOB), undefined, 'no allow: every authenticated user');
    assert.equal((await gate.admitSession('nope', ALICE))?.status, 403, 'an unknown server');
    assert.equal(gate.allows('s', BOB), false);
    assert.equal(gate.allows('s', OPS_CAROL), true);
  });

  it('answers synchronously when no rate limit applies, and admits initialize without a check', () => {
    const gate = new Gatekeeper(buildConfig({ servers: { s: FILTERED } }), silentLogger);
    assert.ok(!(gate.admitSession('s', ALICE) instanceof Promise));
    const requests = gate.open(session(ALICE));
    const admission = requests.admit(request('tools/call', { name: 'echo' }));
    assert.ok(!(admission instanceof Promise));
    assert.deepEqual(requests.admit(request('initialize', {})), { track: undefined });
  });

  it('refuses past the per-user rate limit with 429 and Retry-After, other users unaffected', async () => {
    const gate = new Gatekeeper(
      buildConfig({ servers: { s: { command: 'node' } }, limits: { requestsPerMinute: 3 } }),
      silentLogger,
    );
    assert.equal(await gate.admitSession('s', ALICE), undefined, 'request 1: the session itself');
    const alice = gate.open(session(ALICE));
    assert.equal(trackOf(await alice.admit(request('ping'))), undefined);
    assert.equal(trackOf(await alice.admit(request('ping'))), undefined);
    const refused = refusalOf(await alice.admit(request('ping')));
    assert.equal(refused.status, 429);
    assert.equal(refused.code, ErrorCode.Refused);
    assert.ok((refused.retryAfterSeconds ?? 0) >= 1 && (refused.retryAfterSeconds ?? 0) <= 60);
    assert.match(refused.message, /at most 3 requests per minute per user/);
    assert.equal((await gate.admitSession('s', ALICE))?.status, 429, 'a new session counts too');
    assert.equal(await gate.admitSession('s', BOB), undefined, 'bob has his own count');
    assert.equal((await gate.admitStream(session(ALICE)))?.status, 429, 'a resumed stream counts too');
  });

  it('refuses past a server-wide rate limit for all users together', async () => {
    const gate = new Gatekeeper(
      buildConfig({ servers: { s: { command: 'node', requestsPerMinute: 2 }, t: { command: 'node' } } }),
      silentLogger,
    );
    assert.equal(await gate.admitSession('s', ALICE), undefined);
    assert.equal(await gate.admitSession('s', BOB), undefined);
    const refused = await gate.admitSession('s', OPS_CAROL);
    assert.equal(refused?.status, 429);
    assert.match(refused?.message ?? '', /server "s" takes at most 2 requests per minute from all users/);
    assert.equal(await gate.admitSession('t', OPS_CAROL), undefined, 'another server is not limited');
  });

  it('refuses calls of hidden tools, prompts and resources without an HTTP status', () => {
    const gate = new Gatekeeper(buildConfig({ servers: { s: FILTERED } }), silentLogger);
    const alice = gate.open(session(ALICE));
    const carol = gate.open(session(OPS_CAROL));
    const admit = (gateOf: typeof alice, method: string, params: Record<string, unknown>) =>
      gateOf.admit(request(method, params)) as Admission;

    assert.equal(trackOf(admit(alice, 'tools/call', { name: 'read_file' })), undefined);
    const secret = refusalOf(admit(alice, 'tools/call', { name: 'read_secret' }));
    assert.equal(secret.status, undefined, 'a plain JSON-RPC error, not an HTTP refusal');
    assert.equal(secret.code, ErrorCode.Refused);
    assert.equal(
      secret.message,
      `tool "read_secret" is not available: the gateway's policy does not allow it for this user`,
    );
    assert.equal(refusalOf(admit(alice, 'tools/call', { name: 'restart' })).code, ErrorCode.Refused);
    assert.equal(
      trackOf(admit(carol, 'tools/call', { name: 'restart' })),
      undefined,
      "the ops group's allow",
    );
    assert.equal(refusalOf(admit(carol, 'tools/call', { name: 'read_secret' })).code, ErrorCode.Refused);
    assert.match(refusalOf(admit(alice, 'prompts/get', { name: 'internal' })).message, /^prompt "internal"/);
    assert.equal(trackOf(admit(alice, 'prompts/get', { name: 'daily' })), undefined);
    assert.match(
      refusalOf(admit(alice, 'resources/read', { uri: 'file:///etc/passwd' })).message,
      /^resource "file:\/\/\/etc\/passwd"/,
    );
    assert.equal(trackOf(admit(alice, 'resources/read', { uri: 'file:///public/a.txt' })), undefined);
    const unnamed = refusalOf(admit(alice, 'tools/call', { name: 42 }));
    assert.equal(unnamed.code, ErrorCode.InvalidParams);
  });

  it('filters list results to what the user may see', () => {
    const gate = new Gatekeeper(buildConfig({ servers: { s: FILTERED } }), silentLogger);
    const alice = gate.open(session(ALICE));
    const track = trackOf(alice.admit(request('tools/list')) as Admission);
    assert.ok(track, 'a list of a filtered server is tracked');
    const listed = track.settle(
      result({
        tools: [{ name: 'read_file' }, { name: 'read_secret' }, { name: 'restart' }, { name: 'echo' }],
      }),
      'response',
    );
    assert.ok('result' in listed);
    assert.deepEqual(
      (listed.result.tools as Array<{ name: string }>).map((tool) => tool.name),
      ['read_file', 'echo'],
    );
    const resources = trackOf(alice.admit(request('resources/list')) as Admission);
    const shown = resources?.settle(
      result({ resources: [{ uri: 'file:///public/a' }, { uri: 'file:///private/b' }] }),
      'response',
    );
    assert.ok(shown && 'result' in shown);
    assert.deepEqual(shown.result.resources, [{ uri: 'file:///public/a' }]);
    const plain = new Gatekeeper(buildConfig({ servers: { s: { command: 'node' } } }), silentLogger);
    assert.equal(trackOf(plain.open(session(ALICE)).admit(request('tools/list')) as Admission), undefined);
  });

  it('keeps notifications about hidden resources from the session', () => {
    const gate = new Gatekeeper(buildConfig({ servers: { s: FILTERED } }), silentLogger);
    const alice = gate.open(session(ALICE));
    const updated = (uri: string) => ({
      jsonrpc: '2.0' as const,
      method: 'notifications/resources/updated',
      params: { uri },
    });
    assert.equal(alice.passes(updated('file:///public/a')), true);
    assert.equal(alice.passes(updated('file:///private/b')), false);
    assert.equal(alice.passes({ jsonrpc: '2.0', method: 'notifications/tools/list_changed' }), true);
  });

  it('applies a reloaded policy to running sessions: access withdrawn, filters changed, lists in flight', () => {
    const gate = new Gatekeeper(buildConfig({ servers: { s: FILTERED } }), silentLogger);
    const alice = gate.open(session(ALICE));
    const carol = gate.open(session(OPS_CAROL));
    const list = trackOf(carol.admit(request('tools/list')) as Admission);
    gate.update(
      buildConfig({
        servers: { s: { ...FILTERED, allow: { users: [], groups: ['ops'] }, tools: { deny: ['echo'] } } },
      }),
    );
    const withdrawn = refusalOf(alice.admit(request('tools/call', { name: 'read_file' })) as Admission);
    assert.equal(withdrawn.status, 403);
    assert.equal(withdrawn.message, 'user "alice" is not allowed to use server "s"');
    assert.equal(alice.passes({ jsonrpc: '2.0', method: 'notifications/tools/list_changed' }), false);
    assert.equal(gate.allows('s', ALICE), false);
    assert.equal(
      refusalOf(carol.admit(request('tools/call', { name: 'echo' })) as Admission).code,
      ErrorCode.Refused,
    );
    assert.equal(
      trackOf(carol.admit(request('tools/call', { name: 'read_secret' })) as Admission),
      undefined,
    );
    // A list answered after the reload is filtered by the new policy.
    const listed = list?.settle(result({ tools: [{ name: 'echo' }, { name: 'read_secret' }] }), 'response');
    assert.ok(listed && 'result' in listed);
    assert.deepEqual(listed.result.tools, [{ name: 'read_secret' }]);
  });

  it("lets a task's later requests follow its tool's policy", () => {
    const gate = new Gatekeeper(buildConfig({ servers: { s: FILTERED } }), silentLogger);
    const alice = gate.open(session(ALICE));
    const call = request('tools/call', { name: 'read_file', task: { ttl: 60_000 } });
    const track = trackOf(alice.admit(call) as Admission);
    assert.ok(track, 'a call that asks for a task is tracked');
    track.settle(result({ task: { taskId: 'task-1', status: 'working' } }, call.id as number), 'response');
    assert.equal(trackOf(alice.admit(request('tasks/get', { taskId: 'task-1' })) as Admission), undefined);
    gate.update(buildConfig({ servers: { s: { ...FILTERED, tools: { deny: ['read_file'] } } } }));
    const refused = refusalOf(alice.admit(request('tasks/get', { taskId: 'task-1' })) as Admission);
    assert.match(refused.message, /^tool "read_file" is not available/);
    assert.equal(trackOf(alice.admit(request('tasks/get', { taskId: 'other' })) as Admission), undefined);
  });
});
