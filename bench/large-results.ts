// `node bench/large-results.ts [--sizes 1,10,50] [--direct]`: the stall another user feels while one
// user's large tool result passes through the gateway (issue: one large result must not stall every
// user). A shared fixture backend answers `big {bytes}`; one raw HTTP client asks for N MB and drains
// the reply without parsing it, while a second session pings every 2 ms and records the longest wait.
// Prints, per size: the result's time to last byte, and the worst and p99 ping latency during it.

import { Agent, request } from 'node:http';
import { parseArgs } from 'node:util';
import { startFixtureGateway } from './fixture-gateway.ts';

const { values } = parseArgs({ options: { sizes: { type: 'string', default: '1,10,50' } } });
const sizes = (values.sizes ?? '').split(',').map(Number);

const agent = new Agent({ keepAlive: true, maxSockets: 4 });
const HEADERS = { accept: 'application/json, text/event-stream', 'content-type': 'application/json' };

function post(
  url: string,
  body: unknown,
  session?: string,
): Promise<{ status: number; session: string; bytes: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      { method: 'POST', agent, headers: { ...HEADERS, ...(session ? { 'mcp-session-id': session } : {}) } },
      (res) => {
        let bytes = 0;
        const head: Buffer[] = [];
        res.on('data', (chunk: Buffer) => {
          bytes += chunk.length;
          if (head.length < 4) head.push(chunk);
        });
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            session: String(res.headers['mcp-session-id'] ?? session ?? ''),
            bytes,
            text: Buffer.concat(head).toString('utf8').slice(0, 2_000),
          }),
        );
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
}

async function open(url: string): Promise<string> {
  const init = await post(url, {
    jsonrpc: '2.0',
    id: 0,
    method: 'initialize',
    params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'bench', version: '1' } },
  });
  await post(url, { jsonrpc: '2.0', method: 'notifications/initialized' }, init.session);
  return init.session;
}

async function main(): Promise<void> {
  const gateway = await startFixtureGateway('big');
  try {
    const url = gateway.url;
    const caller = await open(url);
    const pinger = await open(url);
    let id = 1;
    console.log('| result | time to last byte | worst ping during it | p99 ping | pings |');
    console.log('|---:|---:|---:|---:|---:|');
    for (const mb of sizes) {
      const latencies: number[] = [];
      let running = true;
      const pinging = (async () => {
        while (running) {
          const started = performance.now();
          await post(url, { jsonrpc: '2.0', id: id++, method: 'ping' }, pinger);
          latencies.push(performance.now() - started);
          await new Promise((resolve) => setTimeout(resolve, 2));
        }
      })();
      await new Promise((resolve) => setTimeout(resolve, 100));
      const started = performance.now();
      const reply = await post(
        url,
        {
          jsonrpc: '2.0',
          id: id++,
          method: 'tools/call',
          params: { name: 'big', arguments: { bytes: mb * 1_048_576 } },
        },
        caller,
      );
      const elapsed = performance.now() - started;
      running = false;
      await pinging;
      if (reply.bytes < mb * 1_048_576)
        console.error(`${mb} MB: short reply (${reply.bytes} bytes): ${reply.text}`);
      latencies.sort((a, b) => a - b);
      const p99 = latencies[Math.floor(latencies.length * 0.99)] ?? 0;
      console.log(
        `| ${mb} MB | ${elapsed.toFixed(0)} ms | ${(latencies.at(-1) ?? 0).toFixed(0)} ms | ${p99.toFixed(0)} ms | ${latencies.length} |`,
      );
    }
  } finally {
    agent.destroy();
    await gateway.stop();
  }
}

await main();
