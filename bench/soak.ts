// `node bench/soak.ts [--sessions 200] [--minutes 2] [--pause-ms 200] [--call-timeout-ms 30000]`: many
// sessions against a `mcp-relay serve` child for a while, each calling the fixture's `echo` with a
// unique text in a loop with small pauses. Counts calls answered right, answered wrong, failed (an
// HTTP or JSON-RPC error: an answer, just not a result) and lost (no answer at all within the per-call
// timeout). The long run is `--sessions 1000 --minutes 10`; the defaults stay small.
// One user (no auth), so `limits.sessionsPerUser` is raised above --sessions: otherwise the gateway
// would end idle sessions to make room (404s, which are answers, not lost calls).

import { Agent, request } from 'node:http';
import { parseArgs } from 'node:util';
import { startFixtureGateway } from './fixture-gateway.ts';
import { rssBytes } from './processes.ts';

const { values } = parseArgs({
  options: {
    sessions: { type: 'string', default: '200' },
    minutes: { type: 'string', default: '2' },
    'pause-ms': { type: 'string', default: '200' },
    'call-timeout-ms': { type: 'string', default: '30000' },
    isolation: { type: 'string', default: 'shared' },
  },
});
const SESSIONS = Number(values.sessions);
const DURATION_MS = Number(values.minutes) * 60_000;
const PAUSE_MS = Number(values['pause-ms']);
const CALL_TIMEOUT_MS = Number(values['call-timeout-ms']);

const agent = new Agent({ keepAlive: true, maxSockets: Math.min(SESSIONS, 256) });
const HEADERS = { accept: 'application/json, text/event-stream', 'content-type': 'application/json' };

interface Reply {
  status: number;
  session: string | undefined;
  body: string;
}

class Lost extends Error {}

/** One POST; rejects with Lost when no complete answer came within the call timeout. */
function post(url: string, body: unknown, session?: string): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { ...HEADERS };
    if (session) headers['mcp-session-id'] = session;
    const req = request(url, { method: 'POST', agent, headers }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        text += chunk;
      });
      res.on('end', () => {
        clearTimeout(timer);
        const id = res.headers['mcp-session-id'];
        resolve({ status: res.statusCode ?? 0, session: typeof id === 'string' ? id : session, body: text });
      });
      res.on('error', (error) => {
        clearTimeout(timer);
        reject(error);
      });
    });
    const timer = setTimeout(() => {
      req.destroy(new Lost(`no answer within ${CALL_TIMEOUT_MS} ms`));
    }, CALL_TIMEOUT_MS);
    req.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    req.end(JSON.stringify(body));
  });
}

/** The JSON-RPC response with this id in a JSON or SSE body. */
function responseIn(
  body: string,
  id: number,
): { result?: { content?: { text?: string }[] }; error?: unknown } | undefined {
  const texts = body.trimStart().startsWith('{')
    ? [body]
    : body
        .split('\n')
        .filter((line) => line.startsWith('data:'))
        .map((line) => line.slice(5));
  for (const text of texts) {
    try {
      const message = JSON.parse(text) as {
        id?: unknown;
        result?: { content?: { text?: string }[] };
        error?: unknown;
      };
      if (message.id === id) return message;
    } catch {
      // Not a whole message: counted as wrong below.
    }
  }
  return undefined;
}

const counts = { answered: 0, wrong: 0, failed: 0, lost: 0, sessionsOpened: 0, reopened: 0 };
const statuses = new Map<string, number>();
const lostExamples: string[] = [];
let worstMs = 0;
const latencies: number[] = [];

async function open(url: string, name: string): Promise<string> {
  const init = await post(url, {
    jsonrpc: '2.0',
    id: 0,
    method: 'initialize',
    params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name, version: '1' } },
  });
  if (init.status !== 200 || !init.session)
    throw new Error(`initialize: ${init.status} ${init.body.slice(0, 200)}`);
  await post(url, { jsonrpc: '2.0', method: 'notifications/initialized' }, init.session);
  counts.sessionsOpened++;
  return init.session;
}

async function runSession(url: string, index: number, deadline: number): Promise<void> {
  let session = await open(url, `soak-${index}`);
  let id = 1;
  while (Date.now() < deadline) {
    const text = `s${index}-c${id}-${Math.random().toString(36).slice(2)}`;
    const started = performance.now();
    try {
      const reply = await post(
        url,
        { jsonrpc: '2.0', id, method: 'tools/call', params: { name: 'echo', arguments: { text } } },
        session,
      );
      const ms = performance.now() - started;
      worstMs = Math.max(worstMs, ms);
      latencies.push(ms);
      const key = String(reply.status);
      statuses.set(key, (statuses.get(key) ?? 0) + 1);
      const response = responseIn(reply.body, id);
      if (reply.status !== 200) {
        counts.failed++;
        if (reply.status === 404) {
          counts.reopened++;
          session = await open(url, `soak-${index}`);
        }
      } else if (!response) counts.wrong++;
      else if (response.error !== undefined) counts.failed++;
      else if (response.result?.content?.[0]?.text === text) counts.answered++;
      else counts.wrong++;
    } catch (error) {
      if (error instanceof Lost) {
        counts.lost++;
        if (lostExamples.length < 10) lostExamples.push(`session ${index} call ${id} (${text})`);
      } else {
        counts.failed++;
        const key = (error as NodeJS.ErrnoException).code ?? 'error';
        statuses.set(key, (statuses.get(key) ?? 0) + 1);
      }
    }
    id++;
    await new Promise((resolve) => setTimeout(resolve, PAUSE_MS * (0.5 + Math.random())));
  }
}

async function main(): Promise<void> {
  const gateway = await startFixtureGateway('echo', {
    isolation: values.isolation,
    limits: { sessionsPerUser: SESSIONS + 10 },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  try {
    const url = gateway.url;
    const pid = gateway.process.pid;
    const started = Date.now();
    const deadline = started + DURATION_MS;
    const rssStart = pid ? rssBytes(pid) : 0;
    let rssPeak = rssStart;
    const sampler = setInterval(() => {
      if (pid) rssPeak = Math.max(rssPeak, rssBytes(pid));
      const total = counts.answered + counts.wrong + counts.failed + counts.lost;
      console.error(
        `${((Date.now() - started) / 1000).toFixed(0)} s: ${total} calls, ${counts.lost} lost, ${counts.failed} failed`,
      );
    }, 30_000);
    const results = await Promise.allSettled(
      Array.from({ length: SESSIONS }, (_, index) => runSession(url, index, deadline)),
    );
    clearInterval(sampler);
    const broken = results.filter((result) => result.status === 'rejected');
    latencies.sort((a, b) => a - b);
    const total = counts.answered + counts.wrong + counts.failed + counts.lost;
    console.log(
      `| sessions | minutes | calls | answered | wrong | failed | lost | p50 | p99 | worst | gateway RSS start → peak |`,
    );
    console.log('|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
    console.log(
      `| ${SESSIONS} | ${values.minutes} | ${total} | ${counts.answered} | ${counts.wrong} | ${counts.failed} | ${counts.lost} | ${(latencies[Math.floor(latencies.length / 2)] ?? 0).toFixed(0)} ms | ${(latencies[Math.floor(latencies.length * 0.99)] ?? 0).toFixed(0)} ms | ${worstMs.toFixed(0)} ms | ${(rssStart / 1_048_576).toFixed(0)} → ${(rssPeak / 1_048_576).toFixed(0)} MB |`,
    );
    console.log(
      `statuses: ${JSON.stringify(Object.fromEntries(statuses))}; sessions opened ${counts.sessionsOpened}, reopened after 404 ${counts.reopened}`,
    );
    if (broken.length > 0)
      console.log(
        `${broken.length} sessions stopped early: ${String((broken[0] as PromiseRejectedResult).reason)}`,
      );
    for (const example of lostExamples) console.log(`lost: ${example}`);
    if (counts.lost > 0 || counts.wrong > 0) process.exitCode = 1;
  } finally {
    agent.destroy();
    await gateway.stop();
  }
}

await main();
