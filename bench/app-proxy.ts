// `node bench/app-proxy.ts [--frames 2000] [--rounds 3]`: what the gateway adds to a browser app's
// WebSocket (issue 13). A `mcp-relay serve` child serves the fixture app (test/fixtures/app-server.mjs:
// it echoes every frame) at /apps/<server>/; one client signs in as a browser would (the ticketed link
// a tool result carries → cookie) and times echo round trips through the gateway, and the same number
// straight to the app's own port, in alternating rounds so both see the same machine. The gateway's
// CPU per proxied frame comes from /proc over its rounds (each round trip is two frames through it).

import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { WebSocket } from 'ws';
import { startFixtureGateway } from './fixture-gateway.ts';
import { mcpSession } from './mcp-session.ts';
import { cpuSeconds } from './processes.ts';

const ROOT = join(import.meta.dirname, '..');
const APP_FIXTURE = join(ROOT, 'test/fixtures/app-server.mjs');
const SERVER = 'app';

const { values } = parseArgs({
  options: { frames: { type: 'string', default: '2000' }, rounds: { type: 'string', default: '3' } },
});
const frames = Math.max(10, Number(values.frames));
const rounds = Math.max(1, Number(values.rounds));

function open(url: string, headers: Record<string, string> = {}): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(url, { headers });
    socket.once('message', () => resolve(socket)); // the app's greeting
    socket.once('error', reject);
  });
}

/** Sequential echo round trips; the time of each in ms. */
async function roundTrips(socket: WebSocket, count: number): Promise<number[]> {
  const times: number[] = [];
  for (let i = 0; i < count; i++) {
    const started = performance.now();
    await new Promise<void>((resolve) => {
      socket.once('message', () => resolve());
      socket.send(`frame ${i}`);
    });
    times.push(performance.now() - started);
  }
  return times;
}

const percentile = (sorted: number[], p: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? 0;

const gateway = await startFixtureGateway(SERVER, { script: APP_FIXTURE, app: true });
const port = Number(new URL(gateway.base).port);
const base = gateway.base;
try {
  const mcp = await mcpSession(gateway.url);
  const appPort = Number(await mcp.call('env', { name: 'APP_PORT' }));
  const link = await mcp.call('env', { name: 'APP_PUBLIC_URL' });
  const signIn = await fetch(link, { redirect: 'manual' });
  const cookie = (signIn.headers.get('set-cookie') ?? '').split(';')[0] ?? '';
  if (signIn.status !== 303 || !cookie) throw new Error(`sign-in failed: ${signIn.status} for ${link}`);
  const viaGateway = await open(`ws://127.0.0.1:${port}/apps/${SERVER}/ws`, { cookie, origin: base });
  const direct = await open(`ws://127.0.0.1:${appPort}/ws`);
  await roundTrips(viaGateway, 200);
  await roundTrips(direct, 200);
  const times = { gateway: [] as number[], direct: [] as number[] };
  let gatewayCpu = 0;
  for (let round = 0; round < rounds; round++) {
    times.direct.push(...(await roundTrips(direct, frames)));
    const before = cpuSeconds(gateway.process.pid as number);
    times.gateway.push(...(await roundTrips(viaGateway, frames)));
    gatewayCpu += cpuSeconds(gateway.process.pid as number) - before;
  }
  viaGateway.close();
  direct.close();
  const row = (label: string, list: number[]) => {
    const sorted = [...list].sort((a, b) => a - b);
    return `| ${label} | ${percentile(sorted, 0.5).toFixed(3)} ms | ${percentile(sorted, 0.99).toFixed(3)} ms |`;
  };
  const proxied = 2 * frames * rounds;
  console.log(`\n${frames * rounds} echo round trips each, in ${rounds} alternating rounds\n`);
  console.log('| path | p50 | p99 |\n|---|---:|---:|');
  console.log(row('straight to the app port', times.direct));
  console.log(row('through the gateway (/apps/, cookie)', times.gateway));
  console.log(
    `\ngateway CPU per proxied frame: ${((gatewayCpu / proxied) * 1e6).toFixed(1)} µs (${proxied} frames)`,
  );
} finally {
  await gateway.stop();
}
