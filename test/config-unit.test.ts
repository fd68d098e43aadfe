// relay.yaml: the schema, its defaults, ${VAR} references, and errors that name the key and its line.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type AccountSystem, resolveAccounts } from '../src/backends/account.ts';
import { BackendLauncher } from '../src/backends/launcher.ts';
import { buildConfig, parseConfigText } from '../src/config/load.ts';
import { parseDuration, parseSize } from '../src/config/units.ts';
import { RelayError } from '../src/errors.ts';
import { createGateway } from '../src/gateway/create-gateway.ts';
import { silentLogger } from '../src/log.ts';

const VALID = `
listen: { host: 127.0.0.1, port: 9000 }
servers:
  3d:
    command: node
    args: [server.js]
    env: { SCENE_TITLE: "\${TITLE:-Office}" }
    idleTimeout: 2m
auth:
  apiKeys: { file: keys.yaml }
limits: { maxBodyBytes: 1MiB }
`;

function configError(text: string, env: NodeJS.ProcessEnv = {}, code = 'CONFIG_INVALID'): string {
  try {
    parseConfigText(text, '/etc/relay/relay.yaml', env);
  } catch (error) {
    assert.ok(error instanceof RelayError);
    assert.equal(error.code, code);
    return error.message;
  }
  assert.fail('expected a config error');
}

describe('config', () => {
  it('parses, applies defaults, resolves paths against the file', () => {
    const config = parseConfigText(VALID, '/etc/relay/relay.yaml', {});
    assert.ok(config.listen);
    assert.equal(config.listen.port, 9000);
    assert.equal(config.servers['3d']?.idleTimeout, 120_000);
    assert.equal(config.servers['3d']?.cwd, '/etc/relay');
    assert.equal(config.servers['3d']?.env.SCENE_TITLE, 'Office');
    assert.equal(config.auth.apiKeys?.file, '/etc/relay/keys.yaml');
    assert.equal(config.limits.maxBodyBytes, 1_048_576);
    assert.equal(config.limits.sessionsPerUser, 10);
    assert.ok(Object.isFrozen(config.servers));
  });

  // biome-ignore lint/suspicious/noTemplateCurlyInString: the config's ${VAR} syntax, not a template
  it('substitutes ${VAR} from the environment and names a missing one with its line', () => {
    const config = parseConfigText(VALID, '/etc/relay/relay.yaml', { TITLE: 'Studio' });
    assert.equal(config.servers['3d']?.env.SCENE_TITLE, 'Studio');
    // biome-ignore lint/suspicious/noTemplateCurlyInString: the config's ${VAR} syntax, not a template
    const message = configError('servers:\n  a:\n    command: "${NOPE}"\n', {}, 'CONFIG_ENV_UNSET');
    assert.match(message, /relay\.yaml:3: environment variable NOPE is not set/);
  });

  it('names an unknown key and its line', () => {
    const message = configError('servers:\n  a:\n    command: node\n    isolaton: shared\n');
    assert.match(message, /relay\.yaml:4: unknown key "servers\.a\.isolaton"/);
  });

  it('names a wrong value and its line', () => {
    assert.match(
      configError('servers:\n  a:\n    command: node\n    idleTimeout: soon\n'),
      /relay\.yaml:4: servers\.a\.idleTimeout: "soon" is not a duration/,
    );
    assert.match(
      configError('listen: { port: 99999 }\nservers: { a: { command: x } }\n'),
      /relay\.yaml:1: listen\.port/,
    );
    assert.match(
      configError('servers:\n  a:\n    command: node\n    isolation: everyone\n'),
      /relay\.yaml:4: servers\.a\.isolation/,
    );
    assert.match(configError('servers: {}\n'), /at least one server/);
    assert.match(configError('servers: [\n'), /invalid YAML/);
  });

  it('parses durations and sizes', () => {
    assert.equal(parseDuration('500ms'), 500);
    assert.equal(parseDuration('90d'), 90 * 86_400_000);
    assert.equal(parseDuration('x'), undefined);
    assert.equal(parseSize('4MiB'), 4_194_304);
    assert.equal(parseSize('10kb'), 10_000);
    assert.equal(parseSize('-1'), undefined);
  });

  it('takes listen: false only next to ssh attached mode, and auth.none only alone', () => {
    const attached = 'ssh: { mode: attached, socket: gw.sock }\n';
    const config = parseConfigText(
      `listen: false\nservers: { a: { command: x } }\n${attached}`,
      '/r/relay.yaml',
      {},
    );
    assert.equal(config.listen, false);
    assert.match(
      configError('listen: false\nservers: { a: { command: x } }\n'),
      /relay\.yaml:1: listen: false leaves nothing to serve without ssh\.mode attached/,
    );
    assert.match(
      configError('listen: yes\nservers: { a: { command: x } }\n'),
      /relay\.yaml:1: listen: must be false \(no TCP port: only the SSH socket\) or a map with host, port, tls/,
    );
    assert.equal(
      parseConfigText('auth: { none: true }\nservers: { a: { command: x } }\n', '/r/relay.yaml', {}).auth
        .none,
      true,
    );
    assert.match(
      configError('auth: { none: true, apiKeys: { file: keys.yaml } }\nservers: { a: { command: x } }\n'),
      /relay\.yaml:1: auth\.none: cannot be true next to auth\.apiKeys/,
    );
    assert.match(
      configError(
        'listen: { tls: { cert: c, key: k, clientCa: ca } }\nauth: { none: true }\nservers: { a: { command: x } }\n',
      ),
      /relay\.yaml:2: auth\.none: cannot be true next to listen\.tls\.clientCa/,
    );
  });

  it('refuses to listen beyond loopback without authentication', () => {
    const config = buildConfig({ listen: { host: '0.0.0.0', port: 0 }, servers: { a: { command: 'node' } } });
    assert.throws(
      () => createGateway({ config, log: silentLogger }),
      /refusing to listen on 0\.0\.0\.0 without authentication/,
    );
  });
});

describe('servers.<name>.user and .group', () => {
  const PASSWD = [
    'root:x:0:0:root:/root:/bin/bash',
    '# a comment',
    'svc:x:1001:1001::/home/svc:/bin/sh',
    '1234:x:1500:1500:an all-digit name:/home/digits:/bin/sh',
    '+nis-entry::::::',
    'nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin',
    '',
  ].join('\n');
  const GROUP = ['root:x:0:', 'svc:x:1001:', 'design:x:2000:alice,bob', ''].join('\n');
  const as =
    (uid: number, gid = uid) =>
    (): AccountSystem => ({ passwd: PASSWD, group: GROUP, uid, gid });
  const servers = (entry: Record<string, unknown>) =>
    buildConfig({ servers: { a: { command: 'node', ...entry }, plain: { command: 'node' } } }).servers;
  const account = (entry: Record<string, unknown>, system = as(0)) =>
    resolveAccounts(servers(entry), system).get('a');

  it('resolves names and ids from the account files, the primary group by default', () => {
    const svc = { uid: 1001, gid: 1001, env: { HOME: '/home/svc', USER: 'svc', LOGNAME: 'svc' } };
    assert.deepEqual(account({ user: 'svc' }), svc);
    assert.deepEqual(account({ user: 1001 }), svc);
    assert.deepEqual(account({ user: '1001' }), svc, 'an all-digit string that names nobody is an id');
    assert.equal(account({ user: '1234' })?.uid, 1500, 'a name is looked up before an id, as chown does');
    assert.deepEqual(account({ user: 'svc', group: 'design' }), { ...svc, gid: 2000 });
    assert.deepEqual(account({ group: 2000 }), { uid: 0, gid: 2000, env: {} });
    assert.deepEqual(account({ user: 'root' }), {
      uid: undefined,
      gid: undefined,
      env: { HOME: '/root', USER: 'root', LOGNAME: 'root' },
    });
  });

  it('reads no account file for servers without user or group', () => {
    const untouched = () => assert.fail('the account files were read');
    assert.equal(
      resolveAccounts(buildConfig({ servers: { a: { command: 'x' } } }).servers, untouched).size,
      0,
    );
  });

  it('refuses an account that does not exist, and a switch without root', () => {
    assert.throws(
      () => account({ user: 'ghost' }),
      /^RelayError: servers\.a\.user: no account "ghost" in \/etc\/passwd$/,
    );
    assert.throws(
      () => account({ user: 4242 }),
      /servers\.a\.user: no account with uid 4242 in \/etc\/passwd/,
    );
    assert.throws(
      () => account({ user: 'svc', group: 'ops' }),
      /servers\.a\.group: no group "ops" in \/etc\/group/,
    );
    // Not root: the gateway's own account is fine (nothing switches), any other one is refused.
    assert.deepEqual(account({ user: 'svc' }, as(1001)), {
      uid: undefined,
      gid: undefined,
      env: { HOME: '/home/svc', USER: 'svc', LOGNAME: 'svc' },
    });
    assert.throws(
      () => account({ user: 'nobody' }, as(1001)),
      /^RelayError: servers\.a\.user: mcp-relay runs as uid 1001, not root, so it cannot start servers as uid 65534 gid 65534; start mcp-relay as root, or drop servers\.a\.user and \.group$/,
    );
    assert.throws(
      () => account({ group: 'design' }, as(1001)),
      /^RelayError: servers\.a\.group: mcp-relay runs as uid 1001/,
    );
    assert.throws(
      () => new BackendLauncher(servers({ user: 'nobody' }), silentLogger, {}, { system: as(1001) }),
      /servers\.a\.user: mcp-relay runs as uid 1001, not root/,
    );
  });

  it("gives the backend the account and its HOME, USER, LOGNAME; the server's env still wins", async () => {
    const launcher = new BackendLauncher(
      servers({ user: 'svc', env: { LOGNAME: 'configured' } }),
      silentLogger,
      { HOME: '/root', USER: 'root', LOGNAME: 'root', PATH: '/bin' },
      { system: as(0) },
    );
    const spec = await launcher.spec({ server: 'a', user: 'alice' });
    assert.equal(spec.uid, 1001);
    assert.equal(spec.gid, 1001);
    assert.equal(spec.env.HOME, '/home/svc');
    assert.equal(spec.env.USER, 'svc');
    assert.equal(spec.env.LOGNAME, 'configured');
    assert.equal(spec.env.PATH, '/bin');
    const plain = await launcher.spec({ server: 'plain', user: 'alice' });
    assert.equal(plain.uid, undefined);
    assert.equal(plain.env.HOME, '/root');
  });

  it('takes names and ids in the schema, with the line of a bad one', () => {
    assert.match(
      configError('servers:\n  a:\n    command: node\n    user: "bad name"\n'),
      /relay\.yaml:4: servers\.a\.user: must be an account name or a numeric id/,
    );
    assert.match(
      configError('servers:\n  a:\n    command: node\n    group: -1\n'),
      /relay\.yaml:4: servers\.a\.group/,
    );
  });
});
