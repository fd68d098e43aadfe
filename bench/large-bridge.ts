// `node bench/large-bridge.ts [--sizes 1,10,50] [--modes json,sse] [--clients direct,sdk,lean] [--runs 1]
// [--profile DIR]`: what the `connect` bridge adds to a large tool result. The official SDK stdio
// client → `mcp-relay connect` → a `mcp-relay serve` child → the fixture's `big {bytes, ms}`, against
// the SDK's Streamable HTTP client talking to the same gateway directly. `ms` = 0 asks for a JSON reply
// (a result that takes the backend over a second to produce still comes as SSE), `ms` = 1100 for an
// SSE stream; the delay is taken off both times. A third column reads connect's stdout with a lean
// line reader instead of the SDK, whose stdio buffer re-copies a growing line on every chunk, so the
// bridge's share can be told apart from the SDK client's; with it, the CPU connect spent on the call
// (from /proc), which a loaded machine does not distort the way it does wall times.
// `--profile DIR` starts connect with --cpu-prof (profiles land in DIR).

import { spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { startFixtureGateway } from './fixture-gateway.ts';
import { cpuSeconds } from './processes.ts';

const ROOT = join(import.meta.dirname, '..');
const BIN = join(ROOT, 'bin/mcp-relay.js');
const MB = 1_048_576;
const SSE_DELAY_MS = 1_100;
const CALL_TIMEOUT_MS = 600_000;

const { values } = parseArgs({
  options: {
    sizes: { type: 'string', default: '1,10,50' },
    modes: { type: 'string', default: 'json,sse' },
    runs: { type: 'string', default: '1' },
    profile: { type: 'string' },
    clients: { type: 'string', default: 'direct,sdk,lean' },
  },
});
const sizes = (values.sizes ?? '').split(',').map(Number);
const modes = (values.modes ?? '').split(',').filter((mode) => mode === 'json' || mode === 'sse');
const runs = Math.max(1, Number(values.runs));
const clients = new Set((values.clients ?? '').split(','));
const profileDir = values.profile === undefined ? undefined : resolve(values.profile);

const clientInfo = { name: 'large-bridge-bench', version: '1' };

function connectEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries(process.env)) if (value !== undefined) env[key] = value;
  if (profileDir) env.NODE_OPTIONS = `--cpu-prof --cpu-prof-dir=${profileDir}`;
  return env;
}

/** Milliseconds for one `big` call, the backend's delay taken off; checks the text's length. */
async function timedCall(client: Client, bytes: number, ms: number): Promise<number> {
  const started = performance.now();
  const result = await client.callTool({ name: 'big', arguments: { bytes, ms } }, undefined, {
    timeout: CALL_TIMEOUT_MS,
  });
  const elapsed = performance.now() - started - ms;
  const content = result.content as { type: string; text?: string }[];
  const length = content[0]?.text?.length ?? 0;
  if (length !== bytes) throw new Error(`short result: ${length} of ${bytes} characters`);
  return elapsed;
}

async function direct(url: string, bytes: number, ms: number): Promise<number> {
  const client = new Client(clientInfo);
  await client.connect(new StreamableHTTPClientTransport(new URL(url)));
  try {
    return await timedCall(client, bytes, ms);
  } finally {
    await client.close();
  }
}

async function viaSdkStdio(url: string, bytes: number, ms: number): Promise<number> {
  const client = new Client(clientInfo);
  const transport = new StdioClientTransport({
    command: process.execPath,
    args: [BIN, 'connect', url, '--timeout', '10m'],
    env: connectEnv(),
    stderr: 'ignore',
    maxBufferSize: bytes * 2 + MB,
  });
  await client.connect(transport);
  try {
    return await timedCall(client, bytes, ms);
  } finally {
    await client.close();
  }
}

/** CPU seconds connect spent on the last lean call: its own work, whatever the machine's load. */
let lastBridgeCpu = 0;

/** The same exchange by hand: newline-delimited JSON on connect's stdio, read without re-copying. */
async function viaLeanStdio(url: string, bytes: number, ms: number): Promise<number> {
  const child = spawn(process.execPath, [BIN, 'connect', url, '--timeout', '10m'], {
    stdio: ['pipe', 'pipe', 'ignore'],
    env: connectEnv(),
    shell: false,
  });
  const lines: ((line: Buffer) => void)[] = [];
  let pieces: Buffer[] = [];
  child.stdout.on('data', (chunk: Buffer) => {
    let start = 0;
    for (let end = chunk.indexOf(10); end !== -1; end = chunk.indexOf(10, start)) {
      pieces.push(chunk.subarray(start, end));
      const line = Buffer.concat(pieces);
      pieces = [];
      start = end + 1;
      lines.shift()?.(line);
    }
    if (start < chunk.length) pieces.push(chunk.subarray(start));
  });
  const nextLine = () => new Promise<Buffer>((done) => lines.push(done));
  const send = (message: unknown) => child.stdin.write(`${JSON.stringify(message)}\n`);
  try {
    let answer = nextLine();
    send({
      jsonrpc: '2.0',
      id: 1,
      method: 'initialize',
      params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo },
    });
    await answer;
    send({ jsonrpc: '2.0', method: 'notifications/initialized' });
    const cpuBefore = cpuSeconds(child.pid ?? 0);
    const started = performance.now();
    answer = nextLine();
    send({ jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'big', arguments: { bytes, ms } } });
    const line = await answer;
    const elapsed = performance.now() - started - ms;
    lastBridgeCpu = cpuSeconds(child.pid ?? 0) - cpuBefore;
    const text = (JSON.parse(line.toString('utf8')) as { result: { content: { text: string }[] } }).result
      .content[0]?.text;
    if (text?.length !== bytes) throw new Error(`short result: ${text?.length} of ${bytes} characters`);
    return elapsed;
  } finally {
    child.stdin.end();
    await new Promise((done) => {
      if (child.exitCode !== null) done(undefined);
      else child.once('exit', done);
    });
  }
}

function median(values: number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? 0;
}

async function main(): Promise<void> {
  if (profileDir) mkdirSync(profileDir, { recursive: true });
  const gateway = await startFixtureGateway('big');
  try {
    const url = gateway.url;
    // One warm-up call each, so the first row does not carry process and JIT start-up.
    await direct(url, 1_000, 0);
    await viaLeanStdio(url, 1_000, 0);
    console.log(
      '| result | reply | direct (SDK HTTP) | bridge (SDK stdio) | ratio | bridge (lean stdio) | ratio | connect CPU |',
    );
    console.log('|---:|---|---:|---:|---:|---:|---:|---:|');
    for (const mb of sizes) {
      for (const mode of modes) {
        const bytes = Math.round(mb * MB);
        const ms = mode === 'sse' ? SSE_DELAY_MS : 0;
        const times = {
          direct: [] as number[],
          sdk: [] as number[],
          lean: [] as number[],
          cpu: [] as number[],
        };
        for (let run = 0; run < runs; run++) {
          if (clients.has('direct')) times.direct.push(await direct(url, bytes, ms));
          if (clients.has('sdk')) times.sdk.push(await viaSdkStdio(url, bytes, ms));
          if (clients.has('lean')) {
            times.lean.push(await viaLeanStdio(url, bytes, ms));
            times.cpu.push(lastBridgeCpu * 1000);
          }
        }
        const d = median(times.direct);
        const s = median(times.sdk);
        const l = median(times.lean);
        console.log(
          `| ${mb} MB | ${mode.toUpperCase()} | ${d.toFixed(0)} ms | ${s.toFixed(0)} ms | ${(s / d).toFixed(2)}× | ${l.toFixed(0)} ms | ${(l / d).toFixed(2)}× | ${median(times.cpu).toFixed(0)} ms |`,
        );
      }
    }
  } finally {
    await gateway.stop();
  }
}

await main();
