// Browser sign-in for apps, in process: tickets (signed, bound to user and server, single-use, short-
// lived) and the cookies they become; which paths below /apps/ are refused as escapes; and what a
// request becomes (redirect, refusal, or the instance and path it is forwarded to) by isolation mode.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AppTickets, COOKIE_TTL_MS, TICKET_TTL_MS } from '../src/auth/app-ticket.ts';
import type { IsolationMode } from '../src/config/schema.ts';
import type { Identity } from '../src/sessions/types.ts';
import {
  APP_COOKIE,
  type AppAccessOptions,
  decideAppAccess,
  withoutAppCookie,
} from '../src/transports/apps/app-access.ts';
import { escapeProblem, parseAppPath } from '../src/transports/apps/app-path.ts';
import { FrameLimit } from '../src/transports/apps/frame-limit.ts';
import { appBaseUrl, sessionTag } from '../src/util/app-url.ts';

const alice: Identity = { user: 'alice', groups: ['design'], method: 'api-key', credential: 'key:a1' };
const bob: Identity = { user: 'bob', groups: [], method: 'api-key', credential: 'key:b1' };

function clock(start = 1_000_000) {
  const state = { now: start };
  return { state, now: () => state.now };
}

describe('app tickets and cookies', () => {
  it('a ticket is redeemed once, for its server, to the identity that minted it', () => {
    const tickets = new AppTickets();
    const { ticket } = tickets.mint({ identity: alice }, '3d');
    assert.deepEqual(tickets.redeem(ticket, 'other'), { ok: false, reason: 'invalid' });
    assert.deepEqual(tickets.redeem(ticket, '3d'), { ok: true, identity: alice });
    assert.deepEqual(tickets.redeem(ticket, '3d'), { ok: false, reason: 'used' });
  });

  it('a ticket expires after its lifetime; a cookie after its own', () => {
    const time = clock();
    const tickets = new AppTickets({ now: time.now });
    const { ticket } = tickets.mint({ identity: alice }, '3d');
    const cookie = tickets.cookie({ identity: alice }, '3d');
    assert.equal(cookie.maxAge, COOKIE_TTL_MS / 1000);
    time.state.now += TICKET_TTL_MS;
    assert.deepEqual(tickets.redeem(ticket, '3d'), { ok: false, reason: 'expired' });
    assert.deepEqual(tickets.readCookie(cookie.value, '3d'), { identity: alice });
    time.state.now += COOKIE_TTL_MS;
    assert.equal(tickets.readCookie(cookie.value, '3d'), undefined);
  });

  it('neither a ticket nor its cookie outlives the OAuth token that minted it', () => {
    const time = clock();
    const tickets = new AppTickets({ now: time.now });
    const token: Identity = {
      ...alice,
      method: 'oidc',
      credential: 'oidc:a',
      expiresAt: time.state.now + 60_000,
    };
    const { ticket, expiresAt } = tickets.mint({ identity: token }, '3d');
    assert.equal(expiresAt, token.expiresAt);
    const redeemed = tickets.redeem(ticket, '3d');
    assert.deepEqual(redeemed, { ok: true, identity: token });
    const cookie = tickets.cookie({ identity: token }, '3d');
    assert.equal(cookie.maxAge, 60);
    time.state.now += 59_000;
    assert.deepEqual(tickets.readCookie(cookie.value, '3d'), { identity: token });
    time.state.now += 1_000;
    assert.equal(tickets.readCookie(cookie.value, '3d'), undefined);
  });

  it("a per-session ticket's cookie names its session", () => {
    const tickets = new AppTickets();
    const { ticket } = tickets.mint({ identity: alice, session: 's-1' }, '3d');
    assert.deepEqual(tickets.redeem(ticket, '3d'), { ok: true, identity: alice, session: 's-1' });
    const cookie = tickets.cookie({ identity: alice, session: 's-1' }, '3d');
    assert.deepEqual(tickets.readCookie(cookie.value, '3d'), { identity: alice, session: 's-1' });
  });

  it('refuses forged, altered, foreign-secret tokens, and a ticket used as a cookie or the reverse', () => {
    const tickets = new AppTickets();
    const { ticket } = tickets.mint({ identity: alice }, '3d');
    const cookie = tickets.cookie({ identity: alice }, '3d').value;
    const [body, mac] = cookie.split('.') as [string, string];
    const forged = Buffer.from(
      JSON.stringify({ ...JSON.parse(Buffer.from(body, 'base64url').toString()), u: 'bob' }),
    );
    assert.equal(tickets.readCookie(`${forged.toString('base64url')}.${mac}`, '3d'), undefined);
    assert.equal(tickets.readCookie(ticket, '3d'), undefined);
    assert.deepEqual(tickets.redeem(cookie, '3d'), { ok: false, reason: 'invalid' });
    assert.equal(new AppTickets().readCookie(cookie, '3d'), undefined);
    for (const junk of ['', '.', 'abc', 'a.b', `${body}.`, `.${mac}`]) {
      assert.equal(tickets.readCookie(junk, '3d'), undefined, junk);
      assert.equal(tickets.redeem(junk, '3d').ok, false, junk);
    }
  });
});

describe('app paths', () => {
  it('splits server and path, and asks for the folder form', () => {
    assert.deepEqual(parseAppPath('/apps/3d/alice/k/ws'), { kind: 'app', server: '3d', path: '/alice/k/ws' });
    assert.deepEqual(parseAppPath('/apps/3d/'), { kind: 'app', server: '3d', path: '/' });
    assert.deepEqual(parseAppPath('/apps/3d'), { kind: 'folder', server: '3d' });
    assert.deepEqual(parseAppPath('/apps/my%20app/x'), { kind: 'app', server: 'my app', path: '/x' });
    assert.equal(parseAppPath('/mcp/3d'), undefined);
    assert.equal(parseAppPath('/apps/'), undefined);
  });

  it('refuses every spelling of a path that could leave the prefix', () => {
    for (const path of [
      '/apps/3d/../x',
      '/apps/3d/a/%2e%2e/x',
      '/apps/3d/a/%2E./x',
      '/apps/3d/./x',
      '/apps/3d/a%2fb',
      '/apps/3d/a%2Fb',
      '/apps/3d/a%5cb',
      '/apps/3d/a\\b',
      '/apps/3d/a%00',
      '/apps/3d/%zz',
      '/apps/%2e%2e/x',
      '/apps/a%2fb/x',
    ]) {
      assert.equal(parseAppPath(path)?.kind, 'bad', path);
    }
    assert.equal(escapeProblem('/a/..b/c.d/...'), undefined);
  });

  it('the public address of an app: per user below the server, per session below the user, shared at it', () => {
    assert.equal(
      appBaseUrl('https://mcp.example.com', '3d', 'per-user', { user: 'alice' }),
      'https://mcp.example.com/apps/3d/alice/',
    );
    assert.equal(
      appBaseUrl('http://127.0.0.1:8787/', 'a b', 'shared', {}),
      'http://127.0.0.1:8787/apps/a%20b/',
    );
    const session = appBaseUrl('https://g.example/relay', '3d', 'per-session', {
      user: 'alice',
      session: 's-1',
    });
    assert.equal(session, `https://g.example/relay/apps/3d/alice/${sessionTag('s-1')}/`);
    assert.match(sessionTag('s-1'), /^[\w-]{16}$/);
    assert.notEqual(sessionTag('s-1'), sessionTag('s-2'));
  });
});

function access(
  mode: IsolationMode,
  ports: Record<string, number> = { alice: 4001, bob: 4002 },
  now: () => number = Date.now,
) {
  const tickets = new AppTickets({ now });
  /** Open sessions (per-session): id → port of its instance. */
  const sessions = new Map<string, number>();
  const options: AppAccessOptions = {
    tickets,
    modeOf: (server) => (server === '3d' ? mode : undefined),
    allowed: (_server, identity) => identity.user !== 'mallory',
    hasSession: (_server, _identity, session) => sessions.has(session),
    portFor: (_server, user, session) =>
      mode === 'shared' ? 4000 : session === undefined ? ports[user] : sessions.get(session),
  };
  const cookieOf = (identity: Identity, session?: string) =>
    `${APP_COOKIE}=${tickets.cookie({ identity, ...(session ? { session } : {}) }, '3d').value}`;
  const decide = (url: string, cookie?: string, upgrade = false) =>
    decideAppAccess(options, url, cookie, { upgrade, secure: false });
  return { tickets, sessions, cookieOf, decide };
}

describe('app access', () => {
  it('a ticket becomes a cookie scoped to the app and a 303 to the clean URL', () => {
    const { tickets, decide } = access('per-user');
    const { ticket } = tickets.mint({ identity: alice }, '3d');
    const decision = decide(`/apps/3d/alice/k/?view=top&ticket=${ticket}`);
    assert.equal(decision.kind, 'redirect');
    if (decision.kind !== 'redirect') return;
    assert.equal(decision.status, 303);
    assert.equal(decision.location, '/apps/3d/alice/k/?view=top');
    assert.deepEqual(decision.signedIn, { server: '3d', identity: alice });
    assert.match(
      decision.cookie ?? '',
      /^mcp-relay-app=[^;]+; Path=\/apps\/3d\/; Max-Age=\d+; HttpOnly; SameSite=Lax$/,
    );
    const again = decide(`/apps/3d/alice/k/?ticket=${ticket}`);
    assert.equal(again.kind === 'refuse' && again.status, 401);
  });

  it('per-user: the owner is forwarded to their instance, below their prefix; others get 403', () => {
    const { cookieOf, decide } = access('per-user');
    assert.deepEqual(decide('/apps/3d/alice/k/ws?x=1', cookieOf(alice)), {
      kind: 'forward',
      target: { server: '3d', identity: alice, port: 4001, path: '/k/ws?x=1', prefix: '/apps/3d/alice' },
    });
    const foreign = decide('/apps/3d/alice/k/', cookieOf(bob));
    assert.equal(foreign.kind === 'refuse' && foreign.status, 403);
    const home = decide('/apps/3d/', cookieOf(bob));
    assert.deepEqual(home, { kind: 'redirect', status: 303, location: '/apps/3d/bob/' });
  });

  it('shared: every signed-in user reaches the one instance', () => {
    const { cookieOf, decide } = access('shared');
    for (const who of [alice, bob]) {
      const decision = decide('/apps/3d/k/', cookieOf(who));
      assert.equal(decision.kind === 'forward' && decision.target.port, 4000);
      assert.equal(decision.kind === 'forward' && decision.target.prefix, '/apps/3d');
    }
  });

  it('per-session: the cookie of the session the address names is forwarded to its instance', () => {
    const { tickets, sessions, cookieOf, decide } = access('per-session');
    sessions.set('s-1', 5001).set('s-2', 5002);
    const one = `/apps/3d/alice/${sessionTag('s-1')}`;
    const two = `/apps/3d/alice/${sessionTag('s-2')}`;
    const { ticket } = tickets.mint({ identity: alice, session: 's-1' }, '3d');
    const signIn = decide(`${one}/?ticket=${ticket}`);
    assert.equal(signIn.kind, 'redirect');
    if (signIn.kind !== 'redirect') return;
    assert.match(signIn.cookie ?? '', new RegExp(`; Path=${one}/;`));
    // Both sessions' cookies are sent below /apps/3d/alice/…; each address takes its own.
    const both = `${cookieOf(alice, 's-2')}; ${cookieOf(alice, 's-1')}`;
    assert.deepEqual(decide(`${one}/ws`, both), {
      kind: 'forward',
      target: { server: '3d', identity: alice, port: 5001, path: '/ws', prefix: one },
    });
    const second = decide(`${two}/`, both);
    assert.equal(second.kind === 'forward' && second.target.port, 5002);
    assert.deepEqual(decide(one, cookieOf(alice, 's-1')), {
      kind: 'redirect',
      status: 308,
      location: `${one}/`,
    });
    const status = (url: string, cookie?: string) => {
      const decision = decide(url, cookie);
      return decision.kind === 'refuse' ? decision.status : decision.kind;
    };
    assert.equal(status(`${two}/`, cookieOf(alice, 's-1')), 401, "another session's cookie does not open it");
    assert.equal(status('/apps/3d/alice/', cookieOf(alice, 's-1')), 404, 'no session named');
    assert.equal(status(`${one}/`, cookieOf(alice)), 401, 'a cookie without a session');
    assert.equal(status(`/apps/3d/bob/${sessionTag('s-1')}/`, cookieOf(alice, 's-1')), 403);
    sessions.delete('s-1');
    assert.equal(status(`${one}/`, cookieOf(alice, 's-1')), 410, 'the cookie ends with its session');
  });

  it('refuses: no cookie 401, withdrawn access 403, no instance 503, escapes 400', () => {
    const { cookieOf, decide } = access('per-user', { alice: 4001 });
    const status = (url: string, cookie?: string) => {
      const decision = decide(url, cookie);
      return decision.kind === 'refuse' ? decision.status : decision.kind;
    };
    assert.equal(status('/apps/3d/alice/'), 401);
    assert.equal(status('/apps/3d/alice/', `${APP_COOKIE}=forged.value`), 401);
    const mallory: Identity = { ...bob, user: 'mallory' };
    assert.equal(status('/apps/3d/mallory/', cookieOf(mallory)), 403);
    assert.equal(status('/apps/3d/bob/', cookieOf(bob)), 503);
    assert.equal(status('/apps/3d/alice/%2e%2e/x', cookieOf(alice)), 400);
    assert.equal(status('/apps/none/', cookieOf(alice)), 404);
  });

  it('an expired ticket is 401 with the page that says how to get a new link', () => {
    const time = clock();
    const { tickets, decide } = access('per-user', undefined, time.now);
    const { ticket } = tickets.mint({ identity: alice }, '3d');
    time.state.now += TICKET_TTL_MS + 1;
    const decision = decide(`/apps/3d/alice/?ticket=${ticket}`);
    assert.equal(decision.kind, 'refuse');
    if (decision.kind !== 'refuse') return;
    assert.equal(decision.status, 401);
    assert.match(decision.text, /too old\. Ask Claude for the viewer URL again/);
  });

  it('an upgrade does not redeem a ticket', () => {
    const { tickets, decide } = access('per-user');
    const { ticket } = tickets.mint({ identity: alice }, '3d');
    const decision = decide(`/apps/3d/alice/k/ws?ticket=${ticket}`, undefined, true);
    assert.equal(decision.kind === 'refuse' && decision.status, 401);
  });

  it("the gateway's cookie is taken out of what the app sees, the app's own stay", () => {
    assert.equal(withoutAppCookie(`${APP_COOKIE}=x`), undefined);
    assert.equal(withoutAppCookie(`a=1; ${APP_COOKIE}=x; b=2`), 'a=1; b=2');
    assert.equal(withoutAppCookie(undefined), undefined);
  });
});

/** A masked client frame with `length` payload bytes (the payload itself left out unless asked). */
function frameHeader(length: number): Buffer {
  const mask = [1, 2, 3, 4];
  if (length < 126) return Buffer.from([0x82, 0x80 | length, ...mask]);
  if (length < 65_536) return Buffer.from([0x82, 0x80 | 126, length >> 8, length & 0xff, ...mask]);
  const header = Buffer.alloc(14);
  header[0] = 0x82;
  header[1] = 0x80 | 127;
  header.writeUInt32BE(Math.floor(length / 2 ** 32), 2);
  header.writeUInt32BE(length % 2 ** 32, 6);
  Buffer.from(mask).copy(header, 10);
  return header;
}

describe('WebSocket frame limit', () => {
  it('lets frames up to the limit pass, in any chunking, and stops at the first longer one', () => {
    const stream = Buffer.concat([
      frameHeader(5),
      Buffer.alloc(5),
      frameHeader(0),
      frameHeader(1000),
      Buffer.alloc(1000),
      frameHeader(70_000),
    ]);
    for (const size of [1, 3, 7, stream.length]) {
      const limit = new FrameLimit(1000);
      let ok = true;
      let passed = 0;
      for (let offset = 0; offset < stream.length && ok; offset += size) {
        ok = limit.take(stream.subarray(offset, offset + size));
        if (ok) passed = offset + size;
      }
      assert.equal(ok, false, `chunks of ${size}`);
      assert.ok(passed >= 5 + 6 + 6 + 8 + 1000 - size, `chunks of ${size}: ${passed}`);
    }
    assert.equal(new FrameLimit(2 ** 40).take(frameHeader(2 ** 33)), true);
    assert.equal(new FrameLimit(100).take(frameHeader(2 ** 33)), false);
  });
});
