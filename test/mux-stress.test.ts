// 50 sessions × 200 concurrent calls on ONE shared backend, every session using the same ids 1..200
// (numbers and strings mixed): every reply must reach its caller with its own text and its exact id.
// A lean node:http driver instead of the SDK client, so the gateway, not the client, is what is loaded.

import assert from 'node:assert/strict';
import { Agent, request } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { fixtureServer, startGateway, type TestGateway } from './helpers/gateway.ts';

const SESSIONS = 50;
const CALLS = 200;
const USERS = 5;
const BUDGET_MS = 60_000;

type Id = number | string;
interface RpcReply {
  id?: Id;
  result?: { content?: Array<{ type: string; text?: string }> };
  error?: { code: number; message: string };
}

/** One POST of one JSON-RPC message; resolves with the HTTP status, the session header and the response message. */
function post(
  agent: Agent,
  url: URL,
  key: string,
  message: Record<string, unknown>,
  session?: string,
): Promise<{ status: number; session: string | undefined; reply: RpcReply | undefined }> {
  const body = JSON.stringify(message);
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method: 'POST',
        agent,
        timeout: BUDGET_MS,
        headers: {
          authorization: `Bearer ${key}`,
          accept: 'application/json, text/event-stream',
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(body),
          ...(session ? { 'mcp-session-id': session, 'mcp-protocol-version': '2025-11-25' } : {}),
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('error', reject);
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          const type = String(res.headers['content-type'] ?? '');
          resolve({
            status: res.statusCode ?? 0,
            session: res.headers['mcp-session-id'] as string | undefined,
            reply: type.includes('text/event-stream') ? responseInSse(text) : parseJson(text),
          });
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error('request timed out')));
    req.on('error', reject);
    req.end(body);
  });
}

function parseJson(text: string): RpcReply | undefined {
  if (!text) return undefined;
  try {
    return JSON.parse(text) as RpcReply;
  } catch {
    return undefined;
  }
}

/** The JSON-RPC response among the events of an SSE reply (progress and other messages skipped). */
function responseInSse(text: string): RpcReply | undefined {
  for (const event of text.split(/\r?\n\r?\n/)) {
    const data = event
      .split(/\r?\n/)
      .filter((line) => line.startsWith('data:'))
      .map((line) => line.slice(5).trimStart())
      .join('\n');
    const message = data ? parseJson(data) : undefined;
    if (message && 'id' in message && ('result' in message || 'error' in message)) return message;
  }
  return undefined;
}

describe('one shared backend under 50 × 200 concurrent calls', () => {
  let gw: TestGateway;
  const users = Array.from({ length: USERS }, (_, index) => `user${index}`);
  before(async () => {
    gw = await startGateway(
      {
        servers: { echo: fixtureServer('well', { isolation: 'shared' }) },
        limits: { sessionsPerUser: SESSIONS },
      },
      { users },
    );
  });
  after(() => gw.close());

  it('answers every call with its own text and exact id: no wrong and no lost replies', {
    timeout: BUDGET_MS,
  }, async () => {
    const agent = new Agent({ keepAlive: true, maxSockets: 64 });
    const url = new URL(`${gw.url}/mcp/echo`);
    const started = Date.now();
    try {
      const sessions = await Promise.all(
        Array.from({ length: SESSIONS }, async (_, index) => {
          const key = gw.keys[users[index % USERS] as string] as string;
          const init = await post(agent, url, key, {
            jsonrpc: '2.0',
            id: 1,
            method: 'initialize',
            params: {
              protocolVersion: '2025-11-25',
              capabilities: {},
              clientInfo: { name: 'stress', version: '1' },
            },
          });
          assert.equal(init.status, 200);
          assert.ok(init.session, 'initialize issues a session id');
          const initialized = await post(
            agent,
            url,
            key,
            { jsonrpc: '2.0', method: 'notifications/initialized' },
            init.session,
          );
          assert.equal(initialized.status, 202);
          return { key, session: init.session };
        }),
      );
      const health = (await (await fetch(`${gw.url}/healthz`)).json()) as {
        servers: Record<string, { backends: number }>;
      };
      assert.equal(health.servers.echo?.backends, 1, 'all 50 sessions share one backend process');

      const wrong: string[] = [];
      const lost: string[] = [];
      await Promise.all(
        sessions.flatMap(({ key, session }, s) =>
          Array.from({ length: CALLS }, async (_, c) => {
            // Same ids in every session; whether 7 or "7" alternates, so both kinds collide at the backend.
            const id: Id = (s + c) % 2 === 0 ? c + 1 : String(c + 1);
            const expected = `session ${s} call ${c + 1}`;
            const label = `session ${s} id ${JSON.stringify(id)}`;
            try {
              const { status, reply } = await post(
                agent,
                url,
                key,
                {
                  jsonrpc: '2.0',
                  id,
                  method: 'tools/call',
                  params: { name: 'echo', arguments: { text: expected } },
                },
                session,
              );
              if (status !== 200 || !reply || reply.error || !reply.result) {
                lost.push(`${label}: HTTP ${status} ${JSON.stringify(reply?.error ?? reply)}`);
              } else if (reply.id !== id || reply.result.content?.[0]?.text !== expected) {
                wrong.push(`${label}: got id ${JSON.stringify(reply.id)} ${JSON.stringify(reply.result)}`);
              }
            } catch (error) {
              lost.push(`${label}: ${(error as Error).message}`);
            }
          }),
        ),
      );
      const elapsed = Date.now() - started;
      assert.deepEqual(wrong.slice(0, 5), [], `${wrong.length} wrong replies`);
      assert.deepEqual(lost.slice(0, 5), [], `${lost.length} lost replies`);
      assert.ok(elapsed < BUDGET_MS, `took ${elapsed} ms`);
    } finally {
      agent.destroy();
    }
  });
});
