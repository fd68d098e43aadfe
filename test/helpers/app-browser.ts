// Test helpers for browser apps through the gateway: the fixture app server's config, a browser of
// one user (sign-in link, cookie, WebSocket), raw requests fetch would normalize, and finding a backend
// process by its environment.

import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { request } from 'node:http';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';
import { connectClient, type TestGateway } from './gateway.ts';

export const APP_SERVER = fileURLToPath(new URL('../fixtures/app-server.mjs', import.meta.url));

export function appServer(isolation: string): Record<string, unknown> {
  return { command: process.execPath, args: [APP_SERVER], isolation, app: { portEnv: 'APP_PORT' } };
}

export interface AppAnswer {
  user: string;
  pid: number;
  path: string;
  headers: Record<string, string>;
  bodyBytes: number;
  publicUrl: string | null;
}

/** A browser of one user: signs in with a link, keeps the cookie, sends it on every request. */
export class Browser {
  cookie = '';
  readonly base: string;
  constructor(base: string) {
    this.base = base;
  }

  async signIn(gw: TestGateway, key: string, server: string): Promise<string> {
    const link = await mintLink(gw, key, server);
    const response = await this.get(link);
    assert.equal(response.status, 303);
    this.cookie = (response.headers.get('set-cookie') ?? '').split(';')[0] ?? '';
    return response.headers.get('location') ?? '';
  }

  get(url: string, init: RequestInit = {}): Promise<Response> {
    const headers = new Headers(init.headers);
    if (this.cookie) headers.set('cookie', this.cookie);
    return fetch(new URL(url, this.base), { ...init, headers, redirect: 'manual' });
  }

  async app(path: string): Promise<AppAnswer> {
    const response = await this.get(path);
    assert.equal(response.status, 200, await response.clone().text());
    return (await response.json()) as AppAnswer;
  }

  socket(path: string, origin?: string): WebSocket {
    const url = new URL(path, this.base.replace(/^http/, 'ws'));
    return new WebSocket(url, {
      headers: { ...(this.cookie ? { cookie: this.cookie } : {}), ...(origin ? { origin } : {}) },
    });
  }
}

export async function mintLink(gw: TestGateway, key: string, server: string): Promise<string> {
  const response = await fetch(`${gw.url}/app-links/${server}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}` },
  });
  assert.equal(response.status, 200);
  return ((await response.json()) as { url: string }).url;
}

/** Opens an MCP session for `user` (which starts their backend) and returns the client. */
export async function session(gw: TestGateway, server: string, user: string) {
  const { client } = await connectClient(`${gw.url}/mcp/${server}`, gw.keys[user]);
  return client;
}

/** A GET whose path goes out exactly as written (fetch would resolve the dot segments first). */
export function rawGet(base: string, path: string, cookie: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const { hostname, port } = new URL(base);
    const req = request({ hostname, port, path, headers: { cookie } }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', reject);
    req.end();
  });
}

export function nextMessage(ws: WebSocket): Promise<string> {
  return new Promise((resolve, reject) => {
    ws.once('message', (data) => resolve(String(data)));
    ws.once('error', reject);
  });
}

export function refusedStatus(ws: WebSocket): Promise<number> {
  return new Promise((resolve) => {
    ws.once('unexpected-response', (_req, res) => {
      resolve(res.statusCode ?? 0);
      res.resume();
    });
    ws.once('open', () => resolve(101));
    ws.once('error', () => resolve(0));
  });
}

/** The pid of a running process whose environment holds `entry` (NAME=value), if any. */
export function processWithEnv(entry: string): number | undefined {
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      if (readFileSync(`/proc/${name}/environ`, 'latin1').split('\0').includes(entry)) return Number(name);
    } catch {
      // Gone, or not ours to read.
    }
  }
  return undefined;
}
