// `mcp-relay connect` as an OAuth client, end to end: a real gateway (resource server), a real
// OpenID provider on 127.0.0.1, the bridge as a child process driven by the official SDK client, and
// headless Chromium (Playwright) signing in through the provider's own login and consent pages.

import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import type { Browser } from 'playwright-core';
import { Agent } from 'undici';
import { browserCommand } from '../src/connect/oauth/browser.ts';
import { parseBearerChallenge } from '../src/connect/oauth/challenge.ts';
import { OAuthHttp } from '../src/connect/oauth/http.ts';
import { discoverResource, discoverServer, serverMetadataUrls } from '../src/connect/oauth/metadata.ts';
import { configDir } from '../src/connect/oauth/store.ts';
import { launchChromium } from './helpers/browser.ts';
import { fixtureServer, startGateway, type TestGateway, textOf } from './helpers/gateway.ts';
import { startTestIdp, type TestIdp } from './helpers/oidc-provider.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const RUN_CLI = join(ROOT, 'test/fixtures/run-cli.ts');
const OPEN_URL = join(ROOT, 'test/fixtures/open-url.mjs');

/** Signs in whoever the hook is handed to: headless Chromium on the provider's dev login and consent forms. */
class BrowserHook {
  readonly urls: string[] = [];
  readonly failures: Error[] = [];
  url = '';
  user = 'alice';
  #server: Server | undefined;
  #browser: Browser | undefined;
  #running = new Set<Promise<void>>();

  async start(): Promise<void> {
    this.#browser = await launchChromium();
    this.#server = createServer((req, res) => {
      let body = '';
      req.setEncoding('utf8').on('data', (chunk: string) => {
        body += chunk;
      });
      req.on('end', () => {
        this.urls.push(body);
        res.writeHead(204).end();
        const work = this.#signIn(body).catch((error: Error) => {
          this.failures.push(error);
        });
        this.#running.add(work);
        void work.finally(() => this.#running.delete(work));
      });
    });
    await new Promise<void>((resolve) => this.#server?.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}/`;
  }

  async #signIn(url: string): Promise<void> {
    assert.ok(this.#browser);
    // A fresh context per sign-in: no provider session carried over, every sign-in is a whole one.
    const context = await this.#browser.newContext();
    try {
      const page = await context.newPage();
      page.setDefaultTimeout(30_000);
      await page.goto(url);
      await page.fill('input[name="login"]', this.user);
      await page.fill('input[name="password"]', 'correct horse');
      await page.click('button[type="submit"]');
      await page.click('button:has-text("Continue")');
      await page.waitForURL(/^http:\/\/127\.0\.0\.1:\d+\/callback\?/);
      assert.match(await page.textContent('h1').then((text) => text ?? ''), /Signed in/);
    } finally {
      await context.close();
    }
  }

  async close(): Promise<void> {
    await Promise.allSettled([...this.#running]);
    await new Promise<void>((resolve) => (this.#server ? this.#server.close(() => resolve()) : resolve()));
    await this.#browser?.close();
  }
}

interface Bridged {
  client: Client;
  stderr(): string;
  close(): Promise<void>;
}

async function bridge(url: string, env: Record<string, string>, args: string[] = []): Promise<Bridged> {
  const transport = new StdioClientTransport({
    command: process.execPath,
    args: [RUN_CLI, 'connect', url, ...args],
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...env },
    cwd: ROOT,
    stderr: 'pipe',
  });
  let stderr = '';
  transport.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString('utf8');
  });
  const client = new Client({ name: 'oauth-test', version: '1.0.0' });
  try {
    await client.connect(transport);
  } catch (error) {
    await transport.close();
    throw Object.assign(error as Error, { message: `${(error as Error).message}\n${stderr}` });
  }
  return { client, stderr: () => stderr, close: () => client.close() };
}

async function whoami(client: Client): Promise<string> {
  return textOf(await client.callTool({ name: 'whoami', arguments: {} }));
}

describe('connect: OAuth sign-in', () => {
  let idp: TestIdp;
  let gw: TestGateway;
  let endpoint: string;
  const hook = new BrowserHook();
  const dirs: string[] = [];

  /** A fresh user config folder: no cached login. */
  function configHome(): string {
    const dir = mkdtempSync(join(tmpdir(), 'mcp-relay-oauth-'));
    dirs.push(dir);
    return dir;
  }

  function envFor(home: string): Record<string, string> {
    return {
      XDG_CONFIG_HOME: home,
      MCP_RELAY_BROWSER: `${process.execPath} ${OPEN_URL}`,
      TEST_BROWSER_HOOK: hook.url,
    };
  }

  function cacheFile(home: string): string {
    const dir = join(home, 'mcp-relay', 'oauth');
    const files = readdirSync(dir).filter((name) => name.endsWith('.json'));
    assert.equal(files.length, 1, `one cached login in ${dir}`);
    return join(dir, files[0] ?? '');
  }

  const authorizationCodes = () => idp.grants.filter((grant) => grant === 'authorization_code').length;
  const refreshes = () => idp.grants.filter((grant) => grant === 'refresh_token').length;

  before(async () => {
    await hook.start();
    idp = await startTestIdp();
    gw = await startGateway(
      {
        servers: { echo: fixtureServer(), admin: fixtureServer('well', { scopes: ['mcp', 'mcp:admin'] }) },
        auth: { oidc: { issuer: idp.issuer, scopes: ['mcp'], clockTolerance: '0s' } },
      },
      { auth: false },
    );
    endpoint = `${gw.url}/mcp/echo`;
  });
  after(async () => {
    await gw?.close();
    await idp?.close();
    await hook.close();
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });

  it('signs in through the browser, caches the tokens 0600, and reuses them without a browser', async () => {
    const home = configHome();
    const codesBefore = authorizationCodes();
    const first = await bridge(endpoint, envFor(home));
    try {
      assert.equal(await whoami(first.client), 'alice');
      assert.deepEqual(hook.failures, []);
      assert.match(
        first.stderr(),
        /sign in to http:\/\/127\.0\.0\.1:\d+\/mcp\/echo in your browser: http:\/\/127\.0\.0\.1:\d+\/auth\?/,
      );
    } finally {
      await first.close();
    }
    assert.equal(authorizationCodes(), codesBefore + 1);
    const file = cacheFile(home);
    assert.equal(statSync(file).mode & 0o777, 0o600);
    assert.equal(statSync(join(home, 'mcp-relay', 'oauth')).mode & 0o777, 0o700);
    const cached = JSON.parse(readFileSync(file, 'utf8')) as {
      resource: string;
      issuer: string;
      client: { how: string };
      tokens: { accessToken: string; refreshToken?: string };
    };
    assert.equal(cached.resource, endpoint, 'the token is for this endpoint (RFC 8707 resource)');
    assert.equal(cached.issuer, idp.issuer);
    assert.equal(cached.client.how, 'registered', 'dynamic client registration');
    assert.ok(cached.tokens.refreshToken, 'a refresh token came with the sign-in');

    const urlsBefore = hook.urls.length;
    const second = await bridge(endpoint, envFor(home));
    try {
      assert.equal(await whoami(second.client), 'alice');
    } finally {
      await second.close();
    }
    assert.equal(hook.urls.length, urlsBefore, 'no second browser sign-in');
    assert.equal(authorizationCodes(), codesBefore + 1);
  });

  it('refreshes a short-lived access token before it expires, and after a 401 invalid_token', async () => {
    const home = configHome();
    idp.settings.accessTokenTTL = 2;
    let session: Bridged | undefined;
    try {
      session = await bridge(endpoint, envFor(home));
      assert.equal(await whoami(session.client), 'alice');
      const first = JSON.parse(readFileSync(cacheFile(home), 'utf8')).tokens.accessToken as string;
      const refreshesBefore = refreshes();
      await sleep(2_300); // the access token has expired now
      assert.equal(await whoami(session.client), 'alice');
      assert.ok(refreshes() > refreshesBefore, 'the provider saw a refresh_token grant');
      const second = JSON.parse(readFileSync(cacheFile(home), 'utf8')).tokens.accessToken as string;
      assert.notEqual(second, first);
      await session.close();

      // A token the bridge believes valid but the gateway refuses as expired: refresh on the 401.
      await sleep(2_300);
      const file = cacheFile(home);
      const cached = JSON.parse(readFileSync(file, 'utf8'));
      cached.tokens.expiresAt = Date.now() + 3_600_000;
      cached.tokens.obtainedAt = Date.now();
      writeFileSync(file, JSON.stringify(cached));
      chmodSync(file, 0o600);
      const refreshesMid = refreshes();
      const urlsBefore = hook.urls.length;
      session = await bridge(endpoint, envFor(home));
      assert.equal(await whoami(session.client), 'alice');
      assert.equal(refreshes(), refreshesMid + 1, 'one refresh after the 401');
      assert.equal(hook.urls.length, urlsBefore, 'no browser: the refresh token sufficed');
    } finally {
      idp.settings.accessTokenTTL = 300;
      await session?.close();
    }
  });

  it('three bridges started at once share one sign-in', async () => {
    const home = configHome();
    const codesBefore = authorizationCodes();
    const registrationsBefore = idp.registrations;
    const urlsBefore = hook.urls.length;
    const bridges = await Promise.all([1, 2, 3].map(() => bridge(endpoint, envFor(home))));
    try {
      assert.deepEqual(await Promise.all(bridges.map((each) => whoami(each.client))), [
        'alice',
        'alice',
        'alice',
      ]);
    } finally {
      await Promise.all(bridges.map((each) => each.close()));
    }
    assert.equal(hook.urls.length, urlsBefore + 1, 'one browser sign-in');
    assert.equal(authorizationCodes(), codesBefore + 1, 'one authorization code');
    assert.equal(idp.registrations, registrationsBefore + 1, 'one client registration');
    assert.deepEqual(hook.failures, []);
  });

  it('signs in again with more scopes on 403 insufficient_scope (step-up)', async () => {
    const home = configHome();
    const urlsBefore = hook.urls.length;
    // --scope mcp asks for less than the admin server needs: the first token gets a 403.
    const session = await bridge(`${gw.url}/mcp/admin`, envFor(home), ['--scope', 'mcp']);
    try {
      assert.equal(await whoami(session.client), 'alice');
      assert.match(
        session.stderr(),
        /sign in to [^\n]*\/mcp\/admin in your browser:[^\n]*scope=mcp(\+|%20)offline_access/,
      );
      assert.match(
        session.stderr(),
        /sign in to [^\n]*\/mcp\/admin in your browser:[^\n]*scope=mcp(\+|%20)mcp%3Aadmin/,
      );
    } finally {
      await session.close();
    }
    assert.equal(hook.urls.length, urlsBefore + 2, 'a second sign-in for the missing scope');
    const cached = JSON.parse(readFileSync(cacheFile(home), 'utf8')) as { tokens: { scope: string } };
    assert.match(cached.tokens.scope, /mcp:admin/);
  });

  it('a gateway that refuses the fresh token gets one sign-in and a clear error, not a loop', async () => {
    // The gateway expects a fixed audience the provider never stamps: a misconfiguration.
    const strict = await startGateway(
      {
        servers: { echo: fixtureServer() },
        auth: { oidc: { issuer: idp.issuer, scopes: ['mcp'], audience: 'api://something-else' } },
      },
      { auth: false },
    );
    const urlsBefore = hook.urls.length;
    try {
      await assert.rejects(bridge(`${strict.url}/mcp/echo`, envFor(configHome())), (error: Error) => {
        assert.match(
          error.message,
          /refused the token its authorization server just issued \(401: the access token is for another resource/,
        );
        return true;
      });
      assert.equal(hook.urls.length, urlsBefore + 1, 'one sign-in, no retry loop');
    } finally {
      await strict.close();
    }
  });

  it('--no-oauth never opens a browser and explains which token to set', async () => {
    const home = configHome();
    const urlsBefore = hook.urls.length;
    await assert.rejects(bridge(endpoint, envFor(home), ['--no-oauth']), (error: Error) => {
      assert.match(error.message, /requires a token \(401.*set MCP_RELAY_TOKEN/s);
      return true;
    });
    assert.equal(hook.urls.length, urlsBefore);
  });
});

describe('connect: OAuth client pieces', () => {
  /** Serves fixed JSON documents by path on 127.0.0.1, 404 elsewhere. */
  async function documents(
    byPath: (origin: string) => Record<string, unknown>,
  ): Promise<{ origin: string; close(): Promise<void> }> {
    let origin = '';
    const server = createServer((req, res) => {
      const doc = byPath(origin)[req.url ?? ''];
      if (doc === undefined) res.writeHead(404).end();
      else res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(doc));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    return { origin, close: () => new Promise((resolve) => server.close(() => resolve())) };
  }
  const agent = new Agent();
  const http = new OAuthHttp(agent, 'test');
  after(() => agent.close());

  it('parses Bearer challenges among others, quoted and bare', () => {
    const parsed = parseBearerChallenge(
      'Basic realm="files", Bearer realm="mcp-relay", error="insufficient_scope", scope="a b", ' +
        'resource_metadata="https://x.example/.well-known/oauth-protected-resource/mcp", error_description="needs \\"a\\""',
    );
    assert.deepEqual(parsed, {
      error: 'insufficient_scope',
      errorDescription: 'needs "a"',
      scope: 'a b',
      resourceMetadata: 'https://x.example/.well-known/oauth-protected-resource/mcp',
    });
    assert.equal(parseBearerChallenge('Bearer error=invalid_token')?.error, 'invalid_token');
    assert.deepEqual(parseBearerChallenge('Bearer'), {
      error: undefined,
      errorDescription: undefined,
      scope: undefined,
      resourceMetadata: undefined,
    });
    assert.equal(parseBearerChallenge('Basic realm="x"'), undefined);
    assert.equal(parseBearerChallenge(undefined), undefined);
  });

  it('refuses resource metadata that names another resource', async () => {
    const docs = await documents(() => ({
      '/.well-known/oauth-protected-resource/mcp/a': {
        resource: 'https://elsewhere.example/mcp/a',
        authorization_servers: ['https://idp.example'],
      },
    }));
    try {
      await assert.rejects(
        discoverResource(http, new URL(`${docs.origin}/mcp/a`), { ...NO_CHALLENGE }),
        /not http:\/\/127\.0\.0\.1:\d+\/mcp\/a: refusing to sign in for it/,
      );
    } finally {
      await docs.close();
    }
  });

  it('finds resource metadata by the well-known path form, then the root form', async () => {
    const docs = await documents((origin) => ({
      '/.well-known/oauth-protected-resource': {
        resource: origin,
        authorization_servers: ['https://idp.example'],
      },
    }));
    try {
      const found = await discoverResource(http, new URL(`${docs.origin}/mcp/a`), { ...NO_CHALLENGE });
      assert.deepEqual(found, {
        resource: docs.origin,
        issuer: 'https://idp.example',
        scopesSupported: undefined,
      });
    } finally {
      await docs.close();
    }
  });

  it('refuses an authorization server that does not advertise PKCE S256, or names another issuer', async () => {
    const docs = await documents((origin) => ({
      '/.well-known/oauth-authorization-server': {
        issuer: origin,
        authorization_endpoint: `${origin}/auth`,
        token_endpoint: `${origin}/token`,
      },
      '/.well-known/oauth-authorization-server/tenant': {
        issuer: 'https://attacker.example',
        authorization_endpoint: `${origin}/auth`,
        token_endpoint: `${origin}/token`,
        code_challenge_methods_supported: ['S256'],
      },
    }));
    try {
      await assert.rejects(discoverServer(http, docs.origin), /does not advertise PKCE \(S256\)/);
      await assert.rejects(
        discoverServer(http, `${docs.origin}/tenant`),
        /describes issuer https:\/\/attacker/,
      );
    } finally {
      await docs.close();
    }
  });

  it('refuses an authorization server or endpoints over plain http beyond this machine', async () => {
    const docs = await documents((origin) => ({
      '/.well-known/oauth-protected-resource/mcp/a': {
        resource: `${origin}/mcp/a`,
        authorization_servers: ['http://idp.example'],
      },
      '/.well-known/oauth-protected-resource/mcp/b': {
        resource: `${origin}/mcp/b`,
        authorization_servers: ['http://127.0.0.1.idp.example'],
      },
      '/.well-known/oauth-authorization-server': {
        issuer: origin,
        authorization_endpoint: `${origin}/auth`,
        token_endpoint: 'http://10.0.0.1/token',
        code_challenge_methods_supported: ['S256'],
      },
    }));
    try {
      for (const name of ['a', 'b']) {
        await assert.rejects(
          discoverResource(http, new URL(`${docs.origin}/mcp/${name}`), { ...NO_CHALLENGE }),
          /names the authorization server http:\/\/.*, which is not https:\/\/: refusing to sign in there/,
        );
      }
      await assert.rejects(discoverServer(http, docs.origin), /publishes no authorization or token endpoint/);
    } finally {
      await docs.close();
    }
  });

  it('tries authorization server metadata in the MCP spec order', () => {
    assert.deepEqual(serverMetadataUrls('https://auth.example.com/tenant1'), [
      'https://auth.example.com/.well-known/oauth-authorization-server/tenant1',
      'https://auth.example.com/.well-known/openid-configuration/tenant1',
      'https://auth.example.com/tenant1/.well-known/openid-configuration',
    ]);
    assert.deepEqual(serverMetadataUrls('https://auth.example.com'), [
      'https://auth.example.com/.well-known/oauth-authorization-server',
      'https://auth.example.com/.well-known/openid-configuration',
    ]);
  });

  it('opens the browser with the system opener, or a configured command', () => {
    const url = 'https://idp.example/auth?a=1&b=2';
    assert.deepEqual(browserCommand(url, undefined, 'linux'), ['xdg-open', url]);
    assert.deepEqual(browserCommand(url, undefined, 'darwin'), ['open', url]);
    assert.deepEqual(browserCommand(url, undefined, 'win32'), [
      'rundll32',
      'url.dll,FileProtocolHandler',
      url,
    ]);
    assert.deepEqual(browserCommand(url, '"/opt/My Browser/run" --new-tab', 'linux'), [
      '/opt/My Browser/run',
      '--new-tab',
      url,
    ]);
    assert.deepEqual(browserCommand(url, 'firefox %s --private', 'linux'), ['firefox', url, '--private']);
    assert.equal(browserCommand(url, 'none', 'linux'), undefined);
  });

  it('keeps logins in the user config folder', () => {
    assert.equal(configDir({ XDG_CONFIG_HOME: '/x' }, 'linux'), join('/x', 'mcp-relay'));
    assert.equal(configDir({ HOME: '/home/u' }, 'darwin'), join('/home/u', '.config', 'mcp-relay'));
    assert.equal(
      configDir({ APPDATA: 'C:\\Users\\u\\AppData\\Roaming', HOME: '/h' }, 'win32'),
      join('C:\\Users\\u\\AppData\\Roaming', 'mcp-relay'),
    );
  });
});

const NO_CHALLENGE = {
  error: undefined,
  errorDescription: undefined,
  scope: undefined,
  resourceMetadata: undefined,
};
