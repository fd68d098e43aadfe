// `node bench/app-browser-latency.ts [--updates 200]`: how late a scene update reaches a browser through
// the gateway (issue 13). A `mcp-relay serve` child runs the bundled 3D demo (shared) behind
// /apps/3d/; Chromium opens the viewer twice, through the gateway (signed in with the ticketed link
// get_viewer_url returns) and straight at the demo's own port. Each `add_object` call is timed from
// the moment it is sent to the moment each page lists the new object (a MutationObserver in the page,
// on the same wall clock), so the two columns differ by what the proxy adds to the WebSocket push.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { chromium, type Page } from 'playwright-core';
import { startFixtureGateway } from './fixture-gateway.ts';
import { mcpSession } from './mcp-session.ts';
import { descendants } from './processes.ts';

const ROOT = join(import.meta.dirname, '..');
const DEMO = join(ROOT, 'examples/3d-scene/server.js');

const { values } = parseArgs({ options: { updates: { type: 'string', default: '200' } } });
const updates = Math.max(10, Number(values.updates));

/**
 * Resolves with the wall-clock time (ms) at which the page lists an object named `name`. The script is
 * text: it runs in the page, whose DOM types this project does not compile against.
 */
function seen(page: Page, name: string): Promise<number> {
  return page.evaluate(`new Promise((resolve) => {
    const list = document.getElementById('objects');
    const has = () => [...list.querySelectorAll('li')].some((item) => item.textContent.startsWith(${JSON.stringify(`${name} `)}));
    const now = () => performance.timeOrigin + performance.now();
    if (has()) return resolve(now());
    const observer = new MutationObserver(() => {
      if (!has()) return;
      observer.disconnect();
      resolve(now());
    });
    observer.observe(list, { childList: true, subtree: true, characterData: true });
  })`) as Promise<number>;
}

/** The demo's own app port, from the environment the gateway started it with (/proc). */
function demoAppPort(gatewayPid: number): number {
  for (const pid of descendants(gatewayPid)) {
    try {
      const environ = readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0');
      const entry = environ.find((line) => line.startsWith('APP_PORT='));
      if (entry) return Number(entry.slice('APP_PORT='.length));
    } catch {
      // gone, or not ours to read
    }
  }
  throw new Error('no demo process with APP_PORT under the gateway');
}

const percentile = (values: number[], p: number) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? 0;
};

const gateway = await startFixtureGateway('3d', { script: DEMO, app: true });
const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox'] });
try {
  const mcp = await mcpSession(gateway.url);
  const link = String((await mcp.result('get_viewer_url', {})).structuredContent?.url ?? '');
  const appPort = demoAppPort(gateway.process.pid as number);
  const key = /\/apps\/3d\/([^/]+)\//.exec(link)?.[1];
  if (!key) throw new Error(`unexpected viewer link ${link}`);
  const viaGateway = await (await browser.newContext()).newPage();
  await viaGateway.goto(link);
  const direct = await (await browser.newContext()).newPage();
  await direct.goto(`http://127.0.0.1:${appPort}/${key}/`);
  const pages: Record<string, Page> = { gateway: viaGateway, direct };
  for (const page of Object.values(pages)) await page.waitForSelector('#status[data-state="live"]');
  const times: Record<string, number[]> = Object.fromEntries(Object.keys(pages).map((name) => [name, []]));
  for (let i = 0; i < updates + 10; i++) {
    const name = `u${i}`;
    const arrivals = Object.entries(pages).map(([label, page]) =>
      seen(page, name).then((at) => [label, at] as const),
    );
    const sent = performance.timeOrigin + performance.now();
    await mcp.call('add_object', { shape: 'box', name });
    for (const [label, at] of await Promise.all(arrivals)) if (i >= 10) times[label]?.push(at - sent);
    if (i % 50 === 49) await mcp.call('clear_scene', {}).catch(() => '');
  }
  console.log(`\n${updates} scene updates (add_object), from the call to the object listed in the page\n`);
  console.log('| viewer | p50 | p99 |\n|---|---:|---:|');
  for (const [label, list] of Object.entries(times))
    console.log(
      `| ${label === 'gateway' ? 'through the gateway (/apps/3d/)' : "at the demo's own port"} | ${percentile(list, 0.5).toFixed(1)} ms | ${percentile(list, 0.99).toFixed(1)} ms |`,
    );
} finally {
  await browser.close();
  await gateway.stop();
}
