// A web page of another site open in the user's browser, against a gateway on loopback that trusts
// loopback (no credential: the user `local`), as `mcp-relay serve` starts by default. The page cannot
// read the gateway's answers, but a request it causes without an Origin (a no-cors fetch, an iframe, an
// image) would open a legacy SSE session in the user's name, crowding out their real clients. Real
// Chromium; the gateway's /healthz counts the sessions.

import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import type { Browser } from 'playwright-core';
import { launchChromium } from './helpers/browser.ts';
import { fixtureServer, startGateway, type TestGateway } from './helpers/gateway.ts';

const TIMEOUT = { timeout: 60_000 };

async function sessions(url: string): Promise<number> {
  return ((await (await fetch(`${url}/healthz`)).json()) as { sessions: number }).sessions;
}

describe("another site's page in the browser", () => {
  let gw: TestGateway;
  let browser: Browser;
  const site = createServer((_req, res) => res.end('<!doctype html><title>elsewhere</title>'));

  before(async () => {
    gw = await startGateway({ servers: { fx: fixtureServer() } }, { auth: false });
    browser = await launchChromium();
    await new Promise<void>((resolve) => site.listen(0, '127.0.0.1', resolve));
  });
  after(async () => {
    await browser?.close();
    site.close();
    await gw?.close();
  });

  it(
    'opens no session through the legacy SSE GET: a no-cors fetch, an iframe and an image are refused',
    TIMEOUT,
    async () => {
      const page = await browser.newPage();
      const refused: number[] = [];
      page.on('response', (response) => {
        if (response.url().startsWith(gw.url)) refused.push(response.status());
      });
      try {
        await page.goto(`http://127.0.0.1:${(site.address() as AddressInfo).port}/`);
        const stream = `${gw.url}/mcp/fx/sse`;
        // A string, not a function, because this test's tsconfig has no DOM types.
        await page.evaluate(`(async () => {
        await fetch(${JSON.stringify(stream)}, { mode: 'no-cors', headers: { accept: 'text/event-stream' } }).catch(() => {});
        await fetch(${JSON.stringify(`${gw.url}/mcp/fx`)}, { mode: 'no-cors', headers: { accept: 'text/event-stream' } }).catch(() => {});
        const frame = document.createElement('iframe');
        frame.src = ${JSON.stringify(stream)};
        document.body.append(frame);
        const image = new Image();
        image.src = ${JSON.stringify(stream)};
        await new Promise((resolve) => setTimeout(resolve, 1000));
      })()`);
        assert.ok(refused.length >= 3, `the browser made its requests: ${refused.join(', ')}`);
        assert.deepEqual(
          refused.filter((status) => status !== 403),
          [],
          'each one is refused with 403',
        );
        assert.equal(await sessions(gw.url), 0, 'no session was opened in the user’s name');
      } finally {
        await page.close();
      }
      // The same GET from a client outside the browser (no Sec-Fetch-Site) opens its stream as before.
      const client = await fetch(`${gw.url}/mcp/fx/sse`, { headers: { accept: 'text/event-stream' } });
      assert.equal(client.status, 200);
      await client.body?.cancel();
    },
  );
});
