// relay.yaml: the schema, its defaults, ${VAR} references, and errors that name the key and its line.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { buildConfig, parseConfigText } from '../src/config/load.ts';
import { parseDuration, parseSize } from '../src/config/units.ts';
import { createGateway } from '../src/http/gateway.ts';
import { silentLogger } from '../src/log.ts';
import { RelayError } from '../src/protocol/errors.ts';

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

function configError(text: string, env: NodeJS.ProcessEnv = {}): string {
  try {
    parseConfigText(text, '/etc/relay/relay.yaml', env);
  } catch (error) {
    assert.ok(error instanceof RelayError);
    assert.equal(error.code, 'CONFIG_INVALID');
    return error.message;
  }
  assert.fail('expected a config error');
}

describe('config', () => {
  it('parses, applies defaults, resolves paths against the file', () => {
    const config = parseConfigText(VALID, '/etc/relay/relay.yaml', {});
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
    const message = configError('servers:\n  a:\n    command: "${NOPE}"\n');
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

  it('refuses to listen beyond loopback without authentication', () => {
    const config = buildConfig({ listen: { host: '0.0.0.0', port: 0 }, servers: { a: { command: 'node' } } });
    assert.throws(
      () => createGateway({ config, log: silentLogger }),
      /refusing to listen on 0\.0\.0\.0 without authentication/,
    );
  });
});
