// Identity-based policy: who may use a server (allow → 403), which tools, prompts and resources each
// user and group sees (filtered lists, refused calls), with the SDK client against a real gateway.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { McpError } from '@modelcontextprotocol/sdk/types.js';
import { buildConfig, parseConfigText } from '../src/config/load.ts';
import { RelayError } from '../src/errors.ts';
import { Policy } from '../src/policy/policy.ts';
import { compileGlob, globProblem } from '../src/util/glob.ts';
import { FRONTS } from './helpers/fronts.ts';
import {
  connectClient,
  FIXTURE_SERVER,
  fixtureServer,
  INITIALIZE,
  rawPost,
  startGateway,
  type TestGateway,
  textOf,
} from './helpers/gateway.ts';

const TIMEOUT = { timeout: 30_000 };

function everythingServer(): Record<string, unknown> {
  const packageJson = createRequire(import.meta.url).resolve(
    '@modelcontextprotocol/server-everything/package.json',
  );
  const { bin } = JSON.parse(readFileSync(packageJson, 'utf8')) as { bin: Record<string, string> };
  const entry = bin['mcp-server-everything'];
  assert.ok(entry);
  return {
    command: process.execPath,
    args: [join(dirname(packageJson), entry), 'stdio'],
    isolation: 'shared',
  };
}

/** The JSON-RPC error a refused SDK call threw. */
async function refusal(call: Promise<unknown>): Promise<McpError> {
  try {
    await call;
  } catch (error) {
    assert.ok(error instanceof McpError, `expected a JSON-RPC error, got ${String(error)}`);
    return error;
  }
  assert.fail('expected the call to be refused');
}

function errorOf(json: unknown): { code: number; message: string } {
  return (json as { error: { code: number; message: string } }).error;
}

describe('policy: patterns and precedence', () => {
  it('matches globs and names what is wrong with a bad one', () => {
    assert.ok(compileGlob('delete_*').test('delete_file'));
    assert.ok(!compileGlob('delete_*').test('undelete_file'));
    assert.ok(compileGlob('get-?um').test('get-sum'));
    assert.ok(compileGlob('[a-c]x').test('bx') && !compileGlob('[!a-c]x').test('bx'));
    assert.ok(compileGlob('file:///*').test('file:///a/b.txt'));
    assert.ok(compileGlob('a.b').test('a.b') && !compileGlob('a.b').test('aXb'));
    assert.ok(compileGlob('\\*').test('*') && !compileGlob('\\*').test('x'));
    assert.match(globProblem('[abc') ?? '', /no closing "]"/);
    assert.match(globProblem('') ?? '', /empty/);
    assert.match(globProblem('x\\') ?? '', /lone/);
    assert.match(globProblem('[z-a]') ?? '', /backwards/);
    assert.equal(globProblem('read_*'), undefined);
  });

  it('matches many-star patterns against a long client-chosen name without backtracking', TIMEOUT, () => {
    // One regex with a [\s\S]* per star took n^k steps here: about an hour for this 1 MiB URI.
    const slashes = `file:///${'/'.repeat(1_048_576)}`;
    assert.equal(compileGlob('*/*/*.md').test(slashes), false);
    assert.equal(compileGlob('*/*/*.md').test(`${slashes}x.md`), true);
    assert.equal(compileGlob('*_*_secret').test('_'.repeat(1_048_576)), false);
    assert.ok(compileGlob('a*b?c*[de]').test('a--b-c--e') && !compileGlob('a*b?c*[de]').test('a--bc--e'));
    assert.ok(compileGlob('*😀*').test('x😀y') && compileGlob('?').test('😀'));
  });

  it('compares class ranges by code point, so what validation accepts compiles', () => {
    // U+1F600 is above U+E000, though its first UTF-16 unit (U+D83D) is below: this range runs backwards.
    assert.match(globProblem('[😀-\uE000]') ?? '', /backwards/);
    assert.equal(globProblem('[\uE000-😀]'), undefined);
    assert.ok(compileGlob('[\uE000-😀]').test('😀'));
  });

  it('checks every spelling of a resource URI: normalized, case-folded, percent-decoded', () => {
    const config = buildConfig({
      servers: {
        s: { command: 'node', resources: { allow: ['file:///public/*'], deny: ['file:///public/secret/*'] } },
      },
    });
    const visibility = new Policy(config)
      .server('s')
      ?.visibilityFor({ user: 'a', groups: [], method: 'api-key', credential: 'key:a' });
    assert.ok(visibility);
    assert.ok(visibility.visible('resource', 'file:///public/a.txt'));
    assert.ok(visibility.visible('resource', 'file:///public/a%20b.txt'));
    for (const uri of [
      'file:///public/../etc/passwd',
      'file:///public/%2e%2e/etc/passwd',
      'file:///public/..%2fetc/passwd',
      'FILE:///public/secret/key',
      'file:///public/./secret/key',
      'file:///public/s%65cret/key',
    ])
      assert.ok(!visibility.visible('resource', uri), uri);
  });

  it('lets a deny win over every allow, and group allows add to the server allow', () => {
    const config = buildConfig({
      servers: {
        s: {
          command: 'node',
          allow: { users: ['alice'], groups: ['ops'] },
          tools: {
            allow: ['read_*'],
            deny: ['*_secret'],
            groups: { ops: { allow: ['write_*', 'read_secret'] }, interns: { deny: ['read_logs'] } },
          },
        },
      },
    });
    const policy = new Policy(config).server('s');
    assert.ok(policy);
    const user = (name: string, groups: string[] = []) => ({
      user: name,
      groups,
      method: 'api-key',
      credential: `key:${name}`,
    });
    assert.ok(policy.allows(user('alice')));
    assert.ok(policy.allows(user('bob', ['ops'])));
    assert.ok(!policy.allows(user('carol', ['design'])));
    const plain = policy.visibilityFor(user('alice'));
    const ops = policy.visibilityFor(user('bob', ['ops']));
    const intern = policy.visibilityFor(user('dan', ['interns', 'ops']));
    assert.ok(plain && ops && intern);
    assert.ok(plain.visible('tool', 'read_logs'));
    assert.ok(!plain.visible('tool', 'write_file'), 'not in the server allow');
    assert.ok(ops.visible('tool', 'write_file'), "the group's allow adds to the server's");
    assert.ok(!ops.visible('tool', 'read_secret'), "the server's deny wins over the group's allow");
    assert.ok(!intern.visible('tool', 'read_logs'), "a group's deny wins over the server's allow");
    assert.ok(intern.visible('tool', 'write_file'), "another group's allow still applies");
    assert.ok(plain.visible('prompt', 'anything'), 'no prompt filter: every prompt is visible');
    assert.equal(
      new Policy(buildConfig({ servers: { s: { command: 'x' } } })).server('s')?.visibilityFor(user('a')),
      undefined,
    );
  });

  it('refuses bad patterns and unknown filter keys with the line', () => {
    const problem = (text: string) => {
      try {
        parseConfigText(text, '/etc/relay.yaml', {});
      } catch (error) {
        assert.ok(error instanceof RelayError);
        return error.message;
      }
      assert.fail('expected a config error');
    };
    assert.match(
      problem('servers:\n  a:\n    command: node\n    tools:\n      deny: ["delete_[x"]\n'),
      /relay\.yaml:5: servers\.a\.tools\.deny\.0: bad pattern "delete_\[x": "\[" at position 8 has no closing "\]"/,
    );
    assert.match(
      problem('servers:\n  a:\n    command: node\n    tools:\n      deny: [x]\n      alow: [y]\n'),
      /relay\.yaml:6: unknown key "servers\.a\.tools\.alow"/,
    );
    assert.match(
      problem('servers:\n  a:\n    command: node\n    allow: { users: [a], teams: [b] }\n'),
      /relay\.yaml:4: unknown key "servers\.a\.allow\.teams"/,
    );
    assert.match(
      problem('servers:\n  a:\n    command: node\n    tools:\n      groups:\n        ops: { allow: [""] }\n'),
      /relay\.yaml:6: servers\.a\.tools\.groups\.ops\.allow\.0: bad pattern "": a pattern cannot be empty/,
    );
    assert.match(
      problem('servers: { a: { command: x } }\naudit: { keep: 2 }\n'),
      /relay\.yaml:2: audit: audit needs a destination/,
    );
    assert.match(
      problem('servers: { a: { command: x } }\nlimits: { requestsPerMinute: 0 }\n'),
      /relay\.yaml:2: limits\.requestsPerMinute/,
    );
  });
});

describe('policy: one shared fixture backend', () => {
  let gw: TestGateway;

  before(async () => {
    gw = await startGateway(
      {
        servers: {
          team: fixtureServer('well', {
            isolation: 'shared',
            allow: { users: ['alice'], groups: ['ops', 'design'] },
            tools: {
              allow: ['echo'],
              deny: ['crash'],
              groups: {
                ops: { allow: ['pid', 'env', 'crash'] },
                design: { allow: ['whoami', 'pid'], deny: ['echo'] },
              },
            },
          }),
        },
      },
      {
        users: ['alice', 'olga', 'dana', 'mallory'],
        groups: { olga: ['ops'], dana: ['design'], mallory: ['guests'] },
      },
    );
  });
  after(() => gw.close());

  it(
    'answers 403 with a JSON-RPC error to a user outside allow, and starts no backend for them',
    TIMEOUT,
    async () => {
      const refused = await rawPost(`${gw.url}/mcp/team`, INITIALIZE, {
        authorization: `Bearer ${gw.keys.mallory}`,
      });
      assert.equal(refused.status, 403);
      assert.equal(errorOf(refused.json).code, -32003);
      assert.equal((refused.json as { id: number }).id, 1);
      assert.match(errorOf(refused.json).message, /"mallory" is not allowed to use server "team"/);
      assert.equal(refused.headers.get('mcp-session-id'), null);
      const health = (await (await fetch(`${gw.url}/healthz`)).json()) as { sessions: number };
      assert.equal(health.sessions, 0);
      await assert.rejects(connectClient(`${gw.url}/mcp/team`, gw.keys.mallory), /not allowed to use server/);
      // The legacy SSE front asks the same gate before its stream opens: the same 403 and reason.
      const legacy = await fetch(`${gw.url}/mcp/team/sse`, {
        headers: { authorization: `Bearer ${gw.keys.mallory}`, accept: 'text/event-stream' },
      });
      assert.equal(legacy.status, 403);
      assert.match(errorOf(await legacy.json()).message, /"mallory" is not allowed to use server "team"/);
      // Allowed by name and by group.
      for (const user of ['alice', 'olga', 'dana']) {
        const { client } = await connectClient(`${gw.url}/mcp/team`, gw.keys[user]);
        await client.close();
      }
    },
  );

  for (const front of FRONTS)
    it(
      `does not list a denied tool and refuses a call to it with a clear JSON-RPC error (${front.name})`,
      TIMEOUT,
      async () => {
        const client = await front.connect(`${gw.url}/mcp/team`, gw.keys.alice);
        const names = (await client.listTools()).tools.map((tool) => tool.name);
        assert.deepEqual(names, ['echo']);
        const error = await refusal(client.callTool({ name: 'crash', arguments: {} }));
        assert.equal(error.code, -32003);
        assert.match(error.message, /tool "crash" is not available: the gateway's policy does not allow it/);
        // A name not in the allow list is refused the same way, and the session carries on.
        assert.equal((await refusal(client.callTool({ name: 'pid', arguments: {} }))).code, -32003);
        assert.equal(
          textOf(await client.callTool({ name: 'echo', arguments: { text: 'still here' } })),
          'still here',
        );
        await client.close();
      },
    );

  it('refuses a call naming its tool with a non-string, which the policy cannot check', TIMEOUT, async () => {
    const auth = { authorization: `Bearer ${gw.keys.alice}` };
    const init = await rawPost(`${gw.url}/mcp/team`, INITIALIZE, auth);
    assert.equal(init.status, 200, init.text);
    const headers = { ...auth, 'mcp-session-id': init.headers.get('mcp-session-id') ?? '' };
    const post = (body: unknown) => rawPost(`${gw.url}/mcp/team`, JSON.stringify(body), headers);
    await post({ jsonrpc: '2.0', method: 'notifications/initialized' });
    // A lenient server could read ["crash"] as "crash" (a property key, a str() call): the gateway answers.
    for (const name of [['crash'], { toString: 'crash' }, 7, null]) {
      const answer = await post({ jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name } });
      assert.equal(errorOf(answer.json).code, -32602, answer.text);
      assert.match(errorOf(answer.json).message, /tools\/call: the item must be named by a string/);
    }
    const ok = await post({
      jsonrpc: '2.0',
      id: 3,
      method: 'tools/call',
      params: { name: 'echo', arguments: { text: 'fine' } },
    });
    assert.equal(textOf((ok.json as { result: unknown }).result), 'fine', ok.text);
  });

  for (const front of FRONTS)
    it(`shows two groups different tool lists from one shared backend (${front.name})`, TIMEOUT, async () => {
      const ops = { client: await front.connect(`${gw.url}/mcp/team`, gw.keys.olga) };
      const design = { client: await front.connect(`${gw.url}/mcp/team`, gw.keys.dana) };
      const opsTools = (await ops.client.listTools()).tools.map((tool) => tool.name).sort();
      const designTools = (await design.client.listTools()).tools.map((tool) => tool.name).sort();
      // ops: echo (everyone) + pid, env; crash stays denied for all. design: its deny removes echo.
      assert.deepEqual(opsTools, ['echo', 'env', 'pid']);
      assert.deepEqual(designTools, ['pid', 'whoami']);
      const opsPid = textOf(await ops.client.callTool({ name: 'pid', arguments: {} }));
      const designPid = textOf(await design.client.callTool({ name: 'pid', arguments: {} }));
      assert.equal(opsPid, designPid, 'both groups reach the same shared process');
      assert.equal(
        (await refusal(design.client.callTool({ name: 'echo', arguments: { text: 'x' } }))).code,
        -32003,
      );
      assert.equal((await refusal(ops.client.callTool({ name: 'whoami', arguments: {} }))).code, -32003);
      assert.equal((await refusal(ops.client.callTool({ name: 'crash', arguments: {} }))).code, -32003);
      await Promise.all([ops.client.close(), design.client.close()]);
    });
});

describe('policy: file URIs as a server reads them', () => {
  let gw: TestGateway;
  before(async () => {
    gw = await startGateway(
      { servers: { files: fixtureServer('well', { resources: { deny: ['file:///etc/*'] } }) } },
      { users: ['alice'] },
    );
  });
  after(() => gw.close());

  it(
    'refuses every spelling fileURLToPath reads as a denied path, and URIs it cannot read as a server would',
    TIMEOUT,
    async () => {
      const { client } = await connectClient(`${gw.url}/mcp/files`, gw.keys.alice);
      try {
        for (const uri of [
          'file:///etc/hostname',
          'file:////etc/hostname',
          'file://///etc/hostname',
          'file://localhost//etc/hostname',
          'file:///%2Fetc/hostname',
          'file://fileserver/etc/hostname',
          'file:///etc/%zz',
        ]) {
          await assert.rejects(client.readResource({ uri }), (error: Error & { code?: number }) => {
            assert.equal(error.code, -32003, `${uri}: ${error.message}`);
            return true;
          });
        }
        // An allowed path is read as usual.
        const read = await client.readResource({ uri: `file://${FIXTURE_SERVER}` });
        assert.match(JSON.stringify(read.contents), /A small stdio MCP server/);
      } finally {
        await client.close();
      }
    },
  );
});

describe('policy: prompts and resources (server-everything)', () => {
  let gw: TestGateway;

  before(async () => {
    gw = await startGateway(
      {
        servers: {
          everything: {
            ...everythingServer(),
            prompts: { deny: ['args-*'] },
            resources: {
              allow: ['demo://resource/static/document/*'],
              deny: ['*/features.md'],
              groups: { writers: { allow: ['demo://resource/dynamic/text/*'] } },
            },
          },
        },
      },
      { users: ['alice', 'wendy'], groups: { wendy: ['writers'] } },
    );
  });
  after(() => gw.close());

  it('hides and refuses a denied prompt, in lists and in completions', TIMEOUT, async () => {
    const { client } = await connectClient(`${gw.url}/mcp/everything`, gw.keys.alice);
    const prompts = (await client.listPrompts()).prompts.map((prompt) => prompt.name);
    assert.ok(prompts.includes('simple-prompt'));
    assert.ok(!prompts.includes('args-prompt'));
    const error = await refusal(client.getPrompt({ name: 'args-prompt', arguments: { city: 'Paris' } }));
    assert.equal(error.code, -32003);
    assert.match(error.message, /prompt "args-prompt" is not available/);
    const completion = await refusal(
      client.complete({
        ref: { type: 'ref/prompt', name: 'args-prompt' },
        argument: { name: 'city', value: 'P' },
      }),
    );
    assert.equal(completion.code, -32003);
    const simple = await client.getPrompt({ name: 'simple-prompt' });
    assert.ok(simple.messages.length > 0);
    await client.close();
  });

  it(
    'filters resources and templates by URI, per group, and refuses reads of hidden ones',
    TIMEOUT,
    async () => {
      const alice = await connectClient(`${gw.url}/mcp/everything`, gw.keys.alice);
      const wendy = await connectClient(`${gw.url}/mcp/everything`, gw.keys.wendy);
      const uris = (await alice.client.listResources()).resources.map((resource) => resource.uri);
      assert.ok(uris.length > 0);
      assert.ok(uris.every((uri) => uri.startsWith('demo://resource/static/document/')));
      assert.ok(!uris.some((uri) => uri.endsWith('/features.md')));
      assert.deepEqual((await alice.client.listResourceTemplates()).resourceTemplates, []);
      const wendyTemplates = (await wendy.client.listResourceTemplates()).resourceTemplates.map(
        (t) => t.uriTemplate,
      );
      assert.deepEqual(wendyTemplates, ['demo://resource/dynamic/text/{resourceId}']);

      const readable = uris[0] as string;
      assert.ok((await alice.client.readResource({ uri: readable })).contents.length > 0);
      const hidden = 'demo://resource/static/document/features.md';
      assert.equal((await refusal(alice.client.readResource({ uri: hidden }))).code, -32003);
      assert.equal((await refusal(alice.client.subscribeResource({ uri: hidden }))).code, -32003);
      assert.equal(
        (await refusal(alice.client.readResource({ uri: 'demo://resource/dynamic/text/1' }))).code,
        -32003,
      );
      assert.ok(
        (await wendy.client.readResource({ uri: 'demo://resource/dynamic/text/1' })).contents.length > 0,
      );
      // Other spellings of hidden URIs: the gateway refuses them itself (-32003), by policy.
      for (const uri of [
        'demo://resource/static/document/../../dynamic/text/1',
        'demo://resource/static/document/%2e%2e/%2e%2e/dynamic/text/1',
        'DEMO://resource/static/document/features.md',
        'demo://resource/static/document/features.m%64',
      ]) {
        const error = await refusal(alice.client.readResource({ uri }));
        assert.equal(error.code, -32003, uri);
        assert.match(error.message, /is not available/);
      }
      await Promise.all([alice.client.close(), wendy.client.close()]);
    },
  );
});
