// SSH mode without sshd: public-key checks, the authorized_keys edits of `ssh authorize|revoke|list`
// (idempotent, other lines and the file's mode/owner kept), forced-command quoting and the SSH entry of
// `claude config`, with the CLI in-process (ssh-keys.test.ts: ssh-entry's refusals, the gateway socket).

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { claudeEntryForSsh } from '../src/claude/entry.ts';
import { parseConfigText } from '../src/config/load.ts';
import { parseLine } from '../src/ssh/authorized-keys.ts';
import { renderForcedCommand } from '../src/ssh/forced-command.ts';
import { parsePublicKeyFile } from '../src/ssh/public-key.ts';
import { runCliInProcess } from './helpers/cli.ts';
import { makeClientKey } from './helpers/sshd.ts';

let dir: string;
let configPath: string;
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'mcp-relay-ssh-keys-'));
  configPath = join(dir, 'relay.yaml');
  writeFileSync(configPath, 'servers:\n  3d: { command: node, args: [server.js] }\n');
});
after(() => rmSync(dir, { recursive: true, force: true }));

const authorize = (keyFile: string, file: string, user: string, ...extra: string[]) =>
  runCliInProcess([
    'ssh',
    'authorize',
    '--user',
    user,
    '--key-file',
    keyFile,
    '--config',
    configPath,
    '--authorized-keys',
    file,
    ...extra,
  ]);

describe('the ssh config keys', () => {
  const parse = (ssh: string) =>
    parseConfigText(`servers:\n  3d: { command: node }\nssh: ${ssh}\n`, '/etc/relay/relay.yaml');

  it('reads socket modes as YAML writes them, resolves paths and needs a socket when attached', () => {
    const attached = parse(
      '{ mode: attached, socket: run/ssh.sock, socketMode: 0660, logFile: ssh.jsonl }',
    ).ssh;
    assert.deepEqual(
      [attached?.mode, attached?.socket, attached?.socketMode, attached?.logFile],
      ['attached', '/etc/relay/run/ssh.sock', 0o660, '/etc/relay/ssh.jsonl'],
    );
    assert.equal(parse("{ socketMode: '0600' }").ssh?.socketMode, 0o600);
    assert.equal(parse('{ socketMode: 0o660 }').ssh?.socketMode, 0o660);
    assert.equal(parse('{}').ssh?.mode, 'standalone');
    assert.throws(
      () => parse('{ socketMode: 0666 }'),
      /relay\.yaml:3: ssh\.socketMode: "666" is not a socket mode/,
    );
    assert.throws(() => parse('{ mode: attached }'), /ssh\.socket: attached mode needs ssh\.socket/);
    assert.throws(() => parse('{ mode: tunnel }'), /ssh\.mode/);
  });
});

describe('public keys', () => {
  it("accepts an ssh-keygen key and computes ssh-keygen's fingerprint", () => {
    const key = makeClientKey(dir, 'fp');
    const parsed = parsePublicKeyFile(readFileSync(`${key}.pub`, 'utf8'), 'fp.pub');
    const expected = execFileSync('ssh-keygen', ['-l', '-f', `${key}.pub`], { encoding: 'utf8' }).split(
      ' ',
    )[1];
    assert.equal(parsed.type, 'ssh-ed25519');
    assert.equal(parsed.fingerprint, expected);
    assert.equal(parsed.comment, 'fp@laptop');
  });

  it('refuses malformed keys with one clear line', () => {
    const key = makeClientKey(dir, 'bad');
    const good = readFileSync(`${key}.pub`, 'utf8').trim();
    const [type, blob] = good.split(' ') as [string, string];
    const cases: Array<[string, RegExp]> = [
      ['', /holds no public key/],
      ['hello world', /unsupported key type "hello"/],
      [readFileSync(key, 'utf8'), /is a private key; give the public one/],
      [`${good}\n${good}`, /holds 2 lines/],
      [`restrict,command="x" ${good}`, /starts with options/],
      [`${type} ${blob.slice(0, 20)}`, /damaged or is not a ssh-ed25519 key/],
      [`ssh-rsa ${blob}`, /damaged or is not a ssh-rsa key/],
      [`${type} not*base64`, /no valid base64/],
      [`ssh-dss ${blob}`, /DSA keys are refused/],
    ];
    for (const [text, message] of cases) {
      assert.throws(
        () => parsePublicKeyFile(text, 'k.pub'),
        (error: Error & { code?: string }) => {
          assert.equal(error.code, 'AUTHORIZED_KEYS');
          assert.match(error.message, message);
          assert.doesNotMatch(error.message, /\n/);
          return true;
        },
      );
    }
  });
});

describe('forced command and authorized_keys lines', () => {
  const base = {
    nodePath: '/usr/bin/node',
    binPath: '/opt/relay/bin/mcp-relay.js',
    configPath: '/etc/relay.yaml',
  };

  it('single-quotes every word and refuses what cannot be quoted safely', () => {
    assert.equal(
      renderForcedCommand({ ...base, user: 'alice', groups: ['design'] }),
      "'/usr/bin/node' '/opt/relay/bin/mcp-relay.js' ssh-entry --config '/etc/relay.yaml' --user 'alice' --group 'design'",
    );
    const refused = [
      { ...base, configPath: "/etc/it's.yaml", user: 'a', groups: [] },
      { ...base, configPath: '/etc/a"b.yaml', user: 'a', groups: [] },
      { ...base, configPath: 'relay.yaml', user: 'a', groups: [] },
      { ...base, user: 'al ice', groups: [] },
      { ...base, user: '-x', groups: [] },
      { ...base, user: 'a', groups: ["x'y"] },
    ];
    for (const command of refused) assert.throws(() => renderForcedCommand(command), { code: 'USAGE' });
  });

  it('reads options with quoted blanks and escaped quotes before the key', () => {
    const key = readFileSync(`${makeClientKey(dir, 'opts')}.pub`, 'utf8').trim();
    const parsed = parseLine(`from="10.0.0.1",command="echo \\"a b\\"" ${key}`);
    assert.equal(parsed?.key.type, 'ssh-ed25519');
    assert.equal(parsed?.entry, undefined, 'a line mcp-relay did not write is no entry');
    assert.equal(parseLine('# a comment'), undefined);
    assert.equal(parseLine('garbage line'), undefined);
  });
});

describe('mcp-relay ssh authorize / list / revoke', () => {
  it('adds one restricted line, is idempotent, updates groups in place and keeps other lines and the mode', async () => {
    const file = join(dir, 'ak-main');
    const other = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOtherOtherOtherOtherOtherOtherOtherOther admin@box';
    writeFileSync(file, `# managed by hand\n${other}\n`);
    chmodSync(file, 0o640);
    const key = makeClientKey(dir, 'alice');
    const first = await authorize(`${key}.pub`, file, 'alice');
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stdout, /^added ssh-ed25519 SHA256:\S+ for alice/);
    const again = await authorize(`${key}.pub`, file, 'alice');
    assert.match(again.stdout, /already present, unchanged/);
    const lines = readFileSync(file, 'utf8').trim().split('\n');
    assert.equal(lines.length, 3);
    assert.equal(lines[0], '# managed by hand');
    assert.equal(lines[1], other);
    assert.match(
      lines[2] ?? '',
      /^restrict,command="'\/\S+' '\/\S+\/bin\/mcp-relay\.js' ssh-entry --config '\/\S+\/relay\.yaml' --user 'alice'" ssh-ed25519 \S+ mcp-relay:alice alice@laptop$/,
    );
    assert.equal(statSync(file).mode & 0o777, 0o640, 'the mode is kept');

    const grouped = await authorize(`${key}.pub`, file, 'alice', '--group', 'design', '--group', 'ops');
    assert.match(grouped.stdout, /^updated/);
    const updated = readFileSync(file, 'utf8').trim().split('\n');
    assert.equal(updated.length, 3);
    assert.match(updated[2] ?? '', /--user 'alice' --group 'design' --group 'ops'"/);

    const listed = await runCliInProcess(['ssh', 'list', '--json', '--authorized-keys', file]);
    assert.deepEqual(
      (JSON.parse(listed.stdout) as Array<Record<string, unknown>>).map(({ user, groups, comment }) => ({
        user,
        groups,
        comment,
      })),
      [{ user: 'alice', groups: ['design', 'ops'], comment: 'alice@laptop' }],
    );
    const table = await runCliInProcess(['ssh', 'list', '--authorized-keys', file]);
    assert.match(
      table.stdout,
      /^USER\s+GROUPS\s+TYPE\s+FINGERPRINT\s+COMMENT\nalice\s+design,ops\s+ssh-ed25519\s+SHA256:/,
    );
  });

  it('refuses a key that belongs to another user, a malformed key and a missing config', async () => {
    const file = join(dir, 'ak-refuse');
    const key = makeClientKey(dir, 'shared');
    assert.equal((await authorize(`${key}.pub`, file, 'alice')).code, 0);
    const taken = await authorize(`${key}.pub`, file, 'bob');
    assert.equal(taken.code, 1);
    assert.match(taken.stderr, /^mcp-relay: this key \(SHA256:\S+\) is already in .* for user alice; revoke/);
    writeFileSync(join(dir, 'broken.pub'), 'ssh-ed25519 AAAA broken\n');
    const broken = await authorize(join(dir, 'broken.pub'), file, 'bob');
    assert.equal(broken.code, 1);
    assert.equal(broken.stderr.trim().split('\n').length, 1);
    assert.match(broken.stderr, /key data is damaged/);
    const noConfig = await runCliInProcess([
      'ssh',
      'authorize',
      '--user',
      'bob',
      '--key-file',
      `${key}.pub`,
      '--config',
      join(dir, 'none.yaml'),
      '--authorized-keys',
      file,
    ]);
    assert.equal(noConfig.code, 2);
    assert.match(noConfig.stderr, /cannot read config/);
    for (const [flag, name] of [
      ['--user', '..'],
      ['--group', '.'],
    ] as const) {
      const other = makeClientKey(dir, `dots${name.length}`);
      const extra = flag === '--group' ? ['--group', name] : [];
      const dots = await authorize(`${other}.pub`, file, flag === '--user' ? name : 'bob', ...extra);
      assert.equal(dots.code, 2, flag);
      const what = flag === '--user' ? 'user' : 'group';
      assert.equal(
        dots.stderr,
        `mcp-relay: the ${what} name must be 1-64 letters, digits or ._@-, not only dots (not starting with -)\n`,
      );
    }
    assert.equal(readFileSync(file, 'utf8').trim().split('\n').length, 1, 'nothing was added');
  });

  it('as root, refuses a link planted by another account that leads into a file it does not own', {
    skip: process.getuid?.() === 0 ? false : 'needs root',
  }, async () => {
    const home = join(dir, 'planted-home');
    mkdirSync(home);
    chownSync(home, 4321, 4321);
    const rootsFile = join(dir, 'roots-authorized_keys');
    writeFileSync(rootsFile, '');
    symlinkSync(rootsFile, join(home, 'authorized_keys'));
    const key = makeClientKey(dir, 'planted');
    const refused = await authorize(`${key}.pub`, join(home, 'authorized_keys'), 'alice');
    assert.equal(refused.code, 2);
    assert.match(refused.stderr, /owned by uid 0, not by uid 4321.*refusing to edit it as root/);
    assert.equal(readFileSync(rootsFile, 'utf8'), '', "root's file is untouched");
  });

  it('revokes one key by fingerprint or all of a user, leaving others alone; edits through a symlink', async () => {
    const real = join(dir, 'ak-real');
    const link = join(dir, 'ak-link');
    symlinkSync(real, link);
    const one = makeClientKey(dir, 'one');
    const two = makeClientKey(dir, 'two');
    const bob = makeClientKey(dir, 'bobkey');
    for (const [key, user] of [
      [one, 'alice'],
      [two, 'alice'],
      [bob, 'bob'],
    ] as const) {
      assert.equal((await authorize(`${key}.pub`, link, user)).code, 0);
    }
    assert.ok(lstatSync(link).isSymbolicLink(), 'the link is still a link');
    const fingerprint = parsePublicKeyFile(readFileSync(`${one}.pub`, 'utf8'), 'one.pub').fingerprint;
    const single = await runCliInProcess([
      'ssh',
      'revoke',
      '--user',
      'alice',
      '--fingerprint',
      fingerprint,
      '--authorized-keys',
      link,
    ]);
    assert.match(single.stdout, /removed 1 key\(s\) of alice/);
    const all = await runCliInProcess(['ssh', 'revoke', '--user', 'alice', '--authorized-keys', link]);
    assert.match(all.stdout, /removed 1 key\(s\) of alice/);
    const none = await runCliInProcess(['ssh', 'revoke', '--user', 'alice', '--authorized-keys', link]);
    assert.equal(none.code, 1);
    assert.match(none.stderr, /no keys of alice in/);
    const left = readFileSync(real, 'utf8').trim().split('\n');
    assert.equal(left.length, 1);
    assert.match(left[0] ?? '', /mcp-relay:bob bobkey@laptop$/);
  });

  it("keeps the owner of another account's file when root edits it", {
    skip: process.getuid?.() !== 0 && 'needs root',
  }, async () => {
    const file = join(dir, 'ak-owned');
    writeFileSync(file, '', { mode: 0o600 });
    chownSync(file, 4242, 4243);
    const key = makeClientKey(dir, 'owned');
    assert.equal((await authorize(`${key}.pub`, file, 'alice')).code, 0);
    const info = statSync(file);
    assert.deepEqual([info.uid, info.gid, info.mode & 0o777], [4242, 4243, 0o600]);
  });
});

describe('ssh authorize for an account with no ~/.ssh', () => {
  it('creates ~/.ssh with mode 0700 (whatever the umask) and authorized_keys 0600 in $HOME', async () => {
    const home = join(dir, 'home-without-ssh');
    mkdirSync(home, { mode: 0o755 });
    const key = makeClientKey(dir, 'fresh');
    const umask = process.umask(0o002);
    let result: Awaited<ReturnType<typeof runCliInProcess>>;
    try {
      result = await runCliInProcess(
        ['ssh', 'authorize', '--user', 'alice', '--key-file', `${key}.pub`, '--config', configPath],
        { env: { ...process.env, HOME: home } },
      );
    } finally {
      process.umask(umask);
    }
    assert.equal(result.code, 0, result.stderr);
    assert.equal(statSync(join(home, '.ssh')).mode & 0o777, 0o700);
    const file = join(home, '.ssh', 'authorized_keys');
    assert.equal(statSync(file).mode & 0o777, 0o600);
    assert.equal(parseLine(readFileSync(file, 'utf8').trim())?.entry?.user, 'alice');
  });

  it("as root, gives a new ~/.ssh to the home's owner, so sshd (reading as that user) can use it", {
    skip: process.getuid?.() !== 0 && 'needs root',
  }, async () => {
    const home = join(dir, 'home-of-4242');
    mkdirSync(home, { mode: 0o755 });
    chownSync(home, 4242, 4243);
    const key = makeClientKey(dir, 'given');
    const file = join(home, '.ssh', 'authorized_keys');
    assert.equal((await authorize(`${key}.pub`, file, 'alice')).code, 0);
    const folder = statSync(join(home, '.ssh'));
    assert.deepEqual([folder.uid, folder.gid, folder.mode & 0o777], [4242, 4243, 0o700]);
    const written = statSync(file);
    assert.deepEqual([written.uid, written.gid, written.mode & 0o777], [4242, 4243, 0o600]);
  });
});

describe('claude config --ssh', () => {
  it('puts the port and extra options before the defaults, so they win', () => {
    const entry = claudeEntryForSsh({
      target: 'mcp@office',
      server: '3d',
      port: 2222,
      options: ['UserKnownHostsFile=~/.ssh/office', 'ServerAliveInterval=30'],
    });
    assert.deepEqual(entry.args.slice(0, 6), [
      '-p',
      '2222',
      '-o',
      'UserKnownHostsFile=~/.ssh/office',
      '-o',
      'ServerAliveInterval=30',
    ]);
    assert.deepEqual(entry.args.slice(-3), ['-T', 'mcp@office', '3d']);
    for (const options of [['-oProxyCommand=x'], ['=x'], ['Name=a\nb'], ['Name=']]) {
      assert.throws(() => claudeEntryForSsh({ target: 'mcp@office', server: '3d', options }), {
        code: 'USAGE',
      });
    }
    assert.throws(() => claudeEntryForSsh({ target: 'mcp@office', server: '3d', port: 70_000 }), {
      code: 'USAGE',
    });
  });

  it('refuses --port and --ssh-option without --ssh', async () => {
    const result = await runCliInProcess(['claude', 'config', '--url', 'https://x/mcp/3d', '--port', '22']);
    assert.equal(result.code, 2);
    assert.match(result.stderr, /apply to --ssh entries/);
  });
});
