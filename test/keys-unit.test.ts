// API keys: the file holds hashes only, KeyStore authenticates and follows file changes live, and
// `mcp-relay keys` creates, lists and revokes them (in-process; keys.test.ts runs the real CLI).

import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { createKey, listKeys, revokeKey } from '../src/auth/key-admin.ts';
import { hashApiKey } from '../src/auth/key-material.ts';
import { KeyStore } from '../src/auth/keys.ts';
import { RelayError } from '../src/errors.ts';
import { silentLogger } from '../src/log.ts';
import { capturingLogger } from './helpers/capturing-logger.ts';
import { runCliInProcess } from './helpers/cli.ts';

let dir: string;
let counter = 0;
const freshFile = () => join(dir, `keys-${++counter}.yaml`);

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'mcp-relay-keys-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

/** Polls until `check` is true or `ms` have passed; returns how long it took. */
async function eventually(check: () => boolean, ms = 2_500): Promise<number> {
  const started = Date.now();
  while (!check()) {
    if (Date.now() - started > ms) assert.fail(`condition not met within ${ms} ms`);
    await sleep(25);
  }
  return Date.now() - started;
}

describe('the keys file', () => {
  it('stores the SHA-256 of a new key, never the key, with mode 0600 and a header', async () => {
    const file = freshFile();
    const { key, record } = await createKey(file, { user: 'alice', groups: ['design'] });
    assert.match(key, /^mcpr_[A-Za-z0-9_-]{43}$/);
    const text = readFileSync(file, 'utf8');
    assert.ok(!text.includes(key), 'the key itself must not be on disk');
    assert.ok(!text.includes(key.slice(5)), 'not even without its prefix');
    assert.ok(text.includes(hashApiKey(key)));
    assert.match(text.split('\n')[0] ?? '', /written by mcp-relay keys; holds only hashes/);
    assert.match(record.id, /^[0-9a-f]{8}$/);
    if (process.platform !== 'win32') assert.equal(statSync(file).mode & 0o777, 0o600);
  });

  it('loses no key when several creates race (lock file)', async () => {
    const file = freshFile();
    const users = ['u1', 'u2', 'u3', 'u4', 'u5', 'u6'];
    await Promise.all(users.map((user) => createKey(file, { user })));
    assert.deepEqual((await listKeys(file)).map((key) => key.user).sort(), users);
  });

  it('refuses bad user and group names and unknown ids', async () => {
    const file = freshFile();
    await assert.rejects(createKey(file, { user: 'bad name' }), { code: 'USAGE' });
    await assert.rejects(createKey(file, { user: 'x'.repeat(65) }), { code: 'USAGE' });
    await assert.rejects(createKey(file, { user: 'ok', groups: ['no/slash'] }), { code: 'USAGE' });
    // Names made only of dots read as paths where user names end up (MCP_RELAY_USER, state files).
    for (const dots of ['.', '..', '...']) {
      await assert.rejects(createKey(file, { user: dots }), { code: 'USAGE', message: /not only dots/ });
      await assert.rejects(createKey(file, { user: 'ok', groups: [dots] }), { code: 'USAGE' });
    }
    await createKey(file, { user: 'a.b_c-d@example.com' });
    await assert.rejects(revokeKey(file, 'deadbeef'), { code: 'KEY_NOT_FOUND' });
  });
});

describe('KeyStore', () => {
  it('authenticates the right key in O(1) by hash and nothing else', async () => {
    const file = freshFile();
    const { key, record } = await createKey(file, { user: 'alice', groups: ['design', 'ops'] });
    const store = await KeyStore.open(file, silentLogger);
    try {
      assert.deepEqual(store.authenticate(key), {
        user: 'alice',
        keyId: record.id,
        groups: ['design', 'ops'],
      });
      const wrong = `${key.slice(0, -1)}${key.endsWith('A') ? 'B' : 'A'}`;
      assert.equal(store.authenticate(wrong), undefined);
      assert.equal(store.authenticate(hashApiKey(key)), undefined, 'the hash is not a credential');
      assert.equal(store.authenticate(''), undefined);
      assert.equal(store.authenticate('Bearer nonsense'), undefined);
    } finally {
      store.close();
    }
  });

  it('rejects an expired key', async () => {
    const file = freshFile();
    const past = new Date(Date.now() - 10 * 86_400_000);
    const expired = await createKey(file, { user: 'old', expiresInMs: 86_400_000, now: past });
    const current = await createKey(file, { user: 'new', expiresInMs: 86_400_000 });
    let now = Date.now();
    const store = await KeyStore.open(file, silentLogger, { now: () => now });
    try {
      assert.equal(store.authenticate(expired.key), undefined);
      assert.equal(store.authenticate(current.key)?.user, 'new');
      now += 2 * 86_400_000;
      assert.equal(store.authenticate(current.key), undefined, 'expires while the gateway runs');
      assert.deepEqual(
        (await listKeys(file)).map((key) => [key.user, key.expired]),
        [
          ['old', true],
          ['new', false],
        ],
      );
    } finally {
      store.close();
    }
  });

  it('drops a revoked key and accepts a new one within 2 s, without reopening', async () => {
    const file = freshFile();
    const alice = await createKey(file, { user: 'alice' });
    const store = await KeyStore.open(file, silentLogger);
    try {
      assert.equal(store.authenticate(alice.key)?.user, 'alice');
      await revokeKey(file, alice.record.id);
      await eventually(() => store.authenticate(alice.key) === undefined);
      const bob = await createKey(file, { user: 'bob' });
      await eventually(() => store.authenticate(bob.key)?.user === 'bob');
    } finally {
      store.close();
    }
  });

  it('treats a missing file as no keys and picks the file up when it appears', async () => {
    const file = freshFile();
    const store = await KeyStore.open(file, silentLogger);
    try {
      assert.equal(store.size, 0);
      const { key } = await createKey(file, { user: 'carol' });
      await eventually(() => store.authenticate(key)?.user === 'carol');
    } finally {
      store.close();
    }
  });

  it('refuses to open a malformed file, naming the file', async () => {
    const file = freshFile();
    writeFileSync(file, 'version: 1\nkeys:\n  - id: [unclosed\n');
    await assert.rejects(KeyStore.open(file, silentLogger), (error: unknown) => {
      assert.ok(error instanceof RelayError);
      assert.equal(error.code, 'KEYS_FILE');
      assert.ok(error.message.includes(file));
      return true;
    });
    writeFileSync(file, 'version: 1\nkeys:\n  - id: abcd1234\n    user: alice\n');
    await assert.rejects(KeyStore.open(file, silentLogger), /keys\.0\.(created|sha256)/);
  });

  it('keeps the last good keys when a reload finds the file malformed, and logs no secrets', async () => {
    const file = freshFile();
    const { key } = await createKey(file, { user: 'alice' });
    const { log, lines } = capturingLogger();
    const store = await KeyStore.open(file, log);
    try {
      writeFileSync(file, `${readFileSync(file, 'utf8')}\n  this is: [not yaml\n`);
      await store.reload();
      assert.equal(store.authenticate(key)?.user, 'alice');
      assert.match(lines(), /API keys file is invalid; keeping the last good keys/);
      assert.ok(!lines().includes(key) && !lines().includes(hashApiKey(key)), 'no key material in logs');
      // Fixed again: changes apply again.
      rmSync(file);
      const bob = await createKey(file, { user: 'bob' });
      await eventually(() => store.authenticate(bob.key)?.user === 'bob');
      assert.equal(store.authenticate(key), undefined);
    } finally {
      store.close();
    }
  });

  it('stops following the file once closed; close is idempotent', async () => {
    const file = freshFile();
    const { key, record } = await createKey(file, { user: 'alice' });
    const store = await KeyStore.open(file, silentLogger, { pollIntervalMs: 50 });
    store.close();
    store.close();
    await revokeKey(file, record.id);
    await sleep(400);
    assert.equal(store.authenticate(key)?.user, 'alice', 'a closed store no longer reloads');
  });
});

describe('mcp-relay keys (CLI)', () => {
  it('create prints the key once on stdout; list never shows hashes; revoke removes it', async () => {
    const file = freshFile();
    const created = await runCliInProcess([
      'keys',
      'create',
      'alice',
      '--keys-file',
      file,
      '--expires',
      '90d',
      '--group',
      'design',
      '--group',
      'ops',
    ]);
    assert.equal(created.code, 0, created.stderr);
    assert.match(created.stdout, /^mcpr_[A-Za-z0-9_-]{43}\n$/);
    const key = created.stdout.trim();
    const id = /created key ([0-9a-f]{8}) for alice, groups design,ops; expires \S+ \(in 90d\)/.exec(
      created.stderr,
    )?.[1];
    assert.ok(id, created.stderr);

    const store = await KeyStore.open(file, silentLogger);
    try {
      const { expiresAt, ...principal } = store.authenticate(key) ?? {};
      assert.deepEqual(principal, { user: 'alice', keyId: id, groups: ['design', 'ops'] });
      // The key's expiry travels with its owner (a WebSocket opened with it is closed then).
      assert.ok(Math.abs((expiresAt ?? 0) - (Date.now() + 90 * 86_400_000)) < 60_000, String(expiresAt));
    } finally {
      store.close();
    }

    const table = await runCliInProcess(['keys', 'list', '--keys-file', file]);
    assert.equal(table.code, 0, table.stderr);
    assert.match(table.stdout, new RegExp(`${id}\\s+alice\\s+design,ops\\s+\\S+ \\S+\\s+\\S+ \\S+\\s+no`));
    const json = await runCliInProcess(['keys', 'list', '--keys-file', file, '--json']);
    const listed = JSON.parse(json.stdout) as Array<Record<string, unknown>>;
    assert.deepEqual(Object.keys(listed[0] ?? {}).sort(), [
      'created',
      'expired',
      'expires',
      'groups',
      'id',
      'lastUsed',
      'user',
    ]);
    for (const output of [table.stdout, json.stdout]) {
      assert.ok(!output.includes(hashApiKey(key)) && !output.includes(key), 'no hash or key in listings');
    }

    const revoked = await runCliInProcess(['keys', 'revoke', id, '--keys-file', file]);
    assert.equal(revoked.code, 0, revoked.stderr);
    assert.deepEqual(await listKeys(file), []);
  });

  it("revoke <user> lists the user's keys and revokes them all once confirmed (--yes without a terminal)", async () => {
    const file = freshFile();
    const a1 = await createKey(file, { user: 'alice' });
    const a2 = await createKey(file, { user: 'alice', groups: ['design'] });
    const b = await createKey(file, { user: 'bob' });
    const unconfirmed = await runCliInProcess(['keys', 'revoke', 'alice', '--keys-file', file]);
    assert.equal(unconfirmed.code, 1);
    assert.match(unconfirmed.stderr, /alice has 2 keys:/);
    for (const { record } of [a1, a2]) assert.match(unconfirmed.stderr, new RegExp(record.id));
    assert.match(unconfirmed.stderr, /nothing revoked \(pass --yes/);
    assert.equal((await listKeys(file)).length, 3, 'nothing changed without confirmation');

    const confirmed = await runCliInProcess(['keys', 'revoke', 'alice', '--yes', '--keys-file', file]);
    assert.equal(confirmed.code, 0, confirmed.stderr);
    assert.match(confirmed.stderr, /revoked 2 keys of alice/);
    assert.deepEqual(
      (await listKeys(file)).map((key) => key.id),
      [b.record.id],
    );
  });

  it('list shows when each key was last used, as the gateway wrote it beside the file', async () => {
    const file = freshFile();
    const used = await createKey(file, { user: 'alice' });
    const idle = await createKey(file, { user: 'bob' });
    const store = await KeyStore.open(file, silentLogger);
    const before = Date.now();
    assert.equal(store.authenticate(used.key)?.user, 'alice');
    store.close();
    const keys = await listKeys(file);
    const usedAt = Date.parse(keys.find((key) => key.id === used.record.id)?.lastUsed ?? '');
    assert.ok(usedAt >= before && usedAt <= Date.now(), String(usedAt));
    assert.equal(keys.find((key) => key.id === idle.record.id)?.lastUsed, null);
    const table = await runCliInProcess(['keys', 'list', '--keys-file', file]);
    assert.match(table.stdout, /LAST USED/);
    assert.match(table.stdout, new RegExp(`${idle.record.id}.*never`));
    assert.match(table.stdout, new RegExp(`${used.record.id}.*\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\dZ$`, 'm'));
  });

  it('fails clearly with a non-zero exit on an unknown id, a bad user name or a bad duration', async () => {
    const file = freshFile();
    const unknown = await runCliInProcess(['keys', 'revoke', 'feedf00d', '--keys-file', file]);
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /no key with id, and no user, "feedf00d"/);
    const badUser = await runCliInProcess(['keys', 'create', 'al ice', '--keys-file', file]);
    assert.equal(badUser.code, 2);
    assert.match(badUser.stderr, /invalid user name/);
    assert.equal(badUser.stdout, '');
    const dots = await runCliInProcess(['keys', 'create', '..', '--keys-file', file]);
    assert.equal(dots.code, 2);
    assert.equal(
      dots.stderr,
      'mcp-relay: invalid user name: use 1-64 letters, digits or ._@-, not only dots\n',
    );
    assert.equal(dots.stdout, '');
    const dotGroup = await runCliInProcess(['keys', 'create', 'alice', '--group', '.', '--keys-file', file]);
    assert.equal(dotGroup.code, 2);
    assert.match(dotGroup.stderr, /^mcp-relay: invalid group name: .*not only dots\n$/);
    assert.deepEqual(await listKeys(file), [], 'no key was created');
    const badDuration = await runCliInProcess([
      'keys',
      'create',
      'alice',
      '--expires',
      '90',
      '--keys-file',
      file,
    ]);
    assert.equal(badDuration.code, 2);
    assert.match(badDuration.stderr, /--expires wants a duration/);
  });
});
