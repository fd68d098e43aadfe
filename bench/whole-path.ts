// `npm run build && node bench/whole-path.ts [--calls 2000] [--runs 3]`: the path a Claude Desktop user
// feels, one session calling `echo` one call after another. The official SDK stdio client → `mcp-relay
// connect` (over Streamable HTTP, then over WebSocket) → `mcp-relay serve` (shared, the benchmark's
// backend), beside the SDK's Streamable HTTP client talking to the same gateway directly. Per path: p50
// and p99 of a call as the client sees it, and the CPU per call of the bridge and of the gateway (from
// /proc, which a busy machine distorts less than wall times). All paths take turns within each run.

import { parseArgs } from 'node:util';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js';
import { cpuSeconds } from './processes.ts';
import { relayTarget } from './targets.ts';

const BIN = new URL('../bin/mcp-relay.js', import.meta.url).pathname;
const WARMUP_CALLS = 200;

interface PathResult {
  p50: number;
  p99: number;
  bridgeUs: number | undefined;
  gatewayUs: number;
}

const { values } = parseArgs({
  options: { calls: { type: 'string', default: '2000' }, runs: { type: 'string', default: '3' } },
});
const calls = Number(values.calls);
const runs = Number(values.runs);

const target = await relayTarget('shared').start();
const gatewayPid = target.pid as number;
const httpUrl = target.ref.transport === 'streamable' ? target.ref.url : '';
const wsUrl = httpUrl.replace(/^http/, 'ws').replace('/mcp/', '/ws/');

const paths: Record<string, () => { transport: Transport; bridgePid: () => number | undefined }> = {
  'SDK HTTP client, direct': () => ({
    transport: new StreamableHTTPClientTransport(new URL(httpUrl)),
    bridgePid: () => undefined,
  }),
  'SDK stdio client → connect (Streamable HTTP)': () => bridged(httpUrl),
  'SDK stdio client → connect (WebSocket)': () => bridged(wsUrl),
};

function bridged(url: string) {
  const transport = new StdioClientTransport({
    command: process.execPath,
    args: [BIN, 'connect', url],
    env: { PATH: process.env.PATH ?? '' },
    stderr: 'ignore',
  });
  return { transport, bridgePid: () => transport.pid ?? undefined };
}

async function measure(make: (typeof paths)[string]): Promise<PathResult> {
  const { transport, bridgePid } = make();
  const client = new Client({ name: 'whole-path', version: '1.0.0' });
  await client.connect(transport);
  const echo = () => client.callTool({ name: 'echo', arguments: { text: 'x' } });
  for (let index = 0; index < WARMUP_CALLS; index++) await echo();
  const pid = bridgePid();
  const bridgeBefore = pid === undefined ? 0 : cpuSeconds(pid);
  const gatewayBefore = cpuSeconds(gatewayPid);
  const latencies: number[] = [];
  for (let index = 0; index < calls; index++) {
    const started = process.hrtime.bigint();
    await echo();
    latencies.push(Number(process.hrtime.bigint() - started) / 1_000);
  }
  const gatewayUs = ((cpuSeconds(gatewayPid) - gatewayBefore) * 1e6) / calls;
  const bridgeUs = pid === undefined ? undefined : ((cpuSeconds(pid) - bridgeBefore) * 1e6) / calls;
  await client.close();
  latencies.sort((a, b) => a - b);
  const at = (share: number) =>
    latencies[Math.min(latencies.length - 1, Math.floor(share * latencies.length))] ?? 0;
  return { p50: at(0.5), p99: at(0.99), bridgeUs, gatewayUs };
}

const median = (numbers: number[]) => [...numbers].sort((a, b) => a - b)[Math.floor(numbers.length / 2)] ?? 0;
const results = new Map<string, PathResult[]>();
try {
  for (let run = 0; run < runs; run++) {
    for (const [name, make] of Object.entries(paths)) {
      const result = await measure(make);
      results.set(name, [...(results.get(name) ?? []), result]);
      process.stderr.write(`  run ${run + 1} ${name}: p50 ${Math.round(result.p50)} µs\n`);
    }
  }
} finally {
  await target.stop();
}

const us = (value: number | undefined) => (value === undefined ? '—' : `${Math.round(value)} µs`);
const direct = median((results.get('SDK HTTP client, direct') ?? []).map((result) => result.p50));
const lines = [
  `One session, ${calls} sequential \`echo\` calls after ${WARMUP_CALLS} warm-up, median of ${runs} runs.`,
  '',
  '| path | p50 | p99 | p50 ÷ direct | bridge CPU per call | gateway CPU per call |',
  '| --- | ---: | ---: | ---: | ---: | ---: |',
];
for (const [name, list] of results) {
  const p50 = median(list.map((result) => result.p50));
  const bridge = list.every((result) => result.bridgeUs === undefined)
    ? undefined
    : median(list.map((result) => result.bridgeUs ?? 0));
  lines.push(
    `| ${name} | ${us(p50)} | ${us(median(list.map((result) => result.p99)))} | ${(p50 / direct).toFixed(2)}× | ${us(bridge)} | ${us(median(list.map((result) => result.gatewayUs)))} |`,
  );
}
process.stdout.write(`${lines.join('\n')}\n`);
