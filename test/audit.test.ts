// The audit log against a real gateway: one JSON line per session start/end and per tools/call with
// the right fields and outcomes, no secrets, arguments only when opted in, rotation at maxSize, stderr.

import assert from 'node:assert/strict';
import { existsSync, readFileSync, renameSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { runProcess } from './helpers/cli.ts';
import { connectClient, fixtureServer, INITIALIZE, rawPost, startGateway } from './helpers/gateway.ts';
import { unicodeLines } from './helpers/unicode-lines.ts';

const TIMEOUT = { timeout: 30_000 };

type Line = Record<string, unknown>;

function readLines(file: string): Line[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as Line);
}

/** Waits (bounded) until `file` holds a line matching `predicate`. */
async function waitForLine(file: string, predicate: (line: Line) => boolean): Promise<Line> {
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    const found = readLines(file).find(predicate);
    if (found) return found;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  assert.fail('the expected audit line never came');
}

describe('audit log', () => {
  it('writes session and call lines with outcomes, sizes and no secrets', TIMEOUT, async () => {
    const gw = await startGateway(
      {
        servers: {
          a: fixtureServer('well', {
            allow: { users: ['alice'] },
            tools: { deny: ['crash'] },
            requestTimeout: '2s',
          }),
        },
        audit: { file: 'logs/audit.jsonl' },
      },
      { users: ['alice', 'mallory'] },
    );
    const file = join(gw.dir, 'logs', 'audit.jsonl');
    try {
      assert.equal(statSync(file).mode & 0o777, 0o600, 'the audit file is private to the gateway');
      const { client, transport } = await connectClient(`${gw.url}/mcp/a`, gw.keys.alice);
      const session = transport.sessionId;
      await client.callTool({ name: 'echo', arguments: { text: 'private words' } });
      await client.callTool({ name: 'nope', arguments: {} }).catch(() => undefined);
      await client.callTool({ name: 'crash', arguments: {} }).catch(() => undefined);
      await client.callTool({ name: 'sleep', arguments: { ms: 6_000 } }).catch(() => undefined);
      await transport.terminateSession();
      await client.close();
      assert.equal(
        (await rawPost(`${gw.url}/mcp/a`, INITIALIZE, { authorization: `Bearer ${gw.keys.mallory}` })).status,
        403,
      );

      await waitForLine(file, (line) => line.event === 'session.end');
      const lines = readLines(file);
      for (const line of lines) {
        assert.ok(!Number.isNaN(Date.parse(String(line.time))), 'every line has an ISO time');
        assert.equal(line.server, 'a');
      }
      const start = lines.find((line) => line.event === 'session.start' && line.user === 'alice');
      assert.deepEqual(
        { ...start, time: undefined },
        {
          time: undefined,
          event: 'session.start',
          user: 'alice',
          auth: 'api-key',
          server: 'a',
          address: '127.0.0.1',
          session,
          groups: [],
          outcome: 'ok',
        },
      );
      const calls = lines.filter((line) => line.event === 'tools.call');
      assert.deepEqual(
        calls.map((line) => [line.tool, line.outcome]),
        [
          ['echo', 'ok'],
          ['nope', 'error'],
          ['crash', 'refused'],
          ['sleep', 'timeout'],
        ],
      );
      for (const call of calls) {
        assert.equal(call.user, 'alice');
        assert.equal(call.address, '127.0.0.1', 'where the call came from');
        assert.equal(call.session, session);
        assert.equal(typeof call.durationMs, 'number');
        assert.ok((call.requestBytes as number) > 20);
        assert.ok(!('arguments' in call), 'arguments stay out unless the config opts in');
      }
      assert.ok((calls[0]?.responseBytes as number) > 20);
      assert.match(String(calls[1]?.reason), /unknown tool nope/);
      assert.match(String(calls[2]?.reason), /policy does not allow it/);
      assert.ok((calls[3]?.durationMs as number) >= 1_900, 'a timeout is recorded when it happened');
      const end = lines.find((line) => line.event === 'session.end');
      assert.equal(end?.session, session);
      assert.equal(end?.requests, 5, 'initialize and four tools/call; the DELETE is not a request');
      assert.match(String(end?.reason), /deleted by the client/);
      const refused = lines.find((line) => line.user === 'mallory');
      assert.equal(refused?.event, 'session.start');
      assert.equal(refused?.outcome, 'refused');
      assert.equal(refused?.address, '127.0.0.1');
      assert.equal(end?.address, '127.0.0.1');

      const text = readFileSync(file, 'utf8');
      for (const key of Object.values(gw.keys)) assert.ok(!text.includes(key), 'no API key in the audit log');
      assert.ok(!/mcpr_|bearer|authorization|private words/i.test(text));
    } finally {
      await gw.close();
    }
  });

  it('records arguments only when audit.includeArguments is true', TIMEOUT, async () => {
    const gw = await startGateway(
      { servers: { a: fixtureServer() }, audit: { file: 'audit.jsonl', includeArguments: true } },
      { users: ['alice'] },
    );
    try {
      const { client } = await connectClient(`${gw.url}/mcp/a`, gw.keys.alice);
      await client.callTool({ name: 'echo', arguments: { text: 'kept on purpose' } });
      await client.close();
      const call = await waitForLine(join(gw.dir, 'audit.jsonl'), (line) => line.event === 'tools.call');
      assert.deepEqual(call.arguments, { text: 'kept on purpose' });
    } finally {
      await gw.close();
    }
  });

  it(
    'keeps a record on one line for Unicode-aware readers when names and arguments hold line separators',
    TIMEOUT,
    async () => {
      const gw = await startGateway(
        { servers: { a: fixtureServer() }, audit: { file: 'audit.jsonl', includeArguments: true } },
        { users: ['alice'] },
      );
      const file = join(gw.dir, 'audit.jsonl');
      const tool = 'tool\u2028named\u2029with\u0085breaks';
      const args = { 'key\u2028': 'line one\u2028line two\u2029para\u0085next', plain: 'ok' };
      try {
        const { client, transport } = await connectClient(`${gw.url}/mcp/a`, gw.keys.alice);
        // The fixture answers an unknown tool with an error naming it, so the reason holds them too.
        const result = await client.callTool({ name: tool, arguments: args }).catch((error: Error) => error);
        assert.ok(result instanceof Error, 'the fixture does not know the tool');
        await transport.terminateSession();
        await client.close();
        await waitForLine(file, (line) => line.event === 'session.end');

        const text = readFileSync(file, 'utf8');
        // Split the way Python's str.splitlines and other Unicode-aware readers do.
        const lines = unicodeLines(text);
        assert.equal(lines.length, 3, 'three records, three lines');
        assert.doesNotMatch(text, /[\u0085\u2028\u2029]/, 'no raw Unicode line break in the file');
        const records = lines.map((line) => JSON.parse(line) as Line);
        assert.deepEqual(
          records.map((record) => record.event),
          ['session.start', 'tools.call', 'session.end'],
        );
        const call = records[1];
        assert.equal(call?.tool, tool);
        assert.deepEqual(call?.arguments, args);
        assert.equal(call?.outcome, 'error');
        assert.equal(call?.reason, `unknown tool ${tool}`);
      } finally {
        await gw.close();
      }
    },
  );

  it('rotates the file before it grows past maxSize and keeps `keep` old files', TIMEOUT, async () => {
    const gw = await startGateway(
      { servers: { a: fixtureServer() }, audit: { file: 'audit.jsonl', maxSize: '1KiB', keep: 2 } },
      { users: ['alice'] },
    );
    const file = join(gw.dir, 'audit.jsonl');
    try {
      const { client } = await connectClient(`${gw.url}/mcp/a`, gw.keys.alice);
      for (let i = 0; i < 40; i++) await client.callTool({ name: 'echo', arguments: { text: `call ${i}` } });
      await client.close();
      for (const name of [file, `${file}.1`, `${file}.2`]) {
        assert.ok(existsSync(name), `${name} exists`);
        assert.ok(statSync(name).size <= 1_024, `${name} is within maxSize`);
        assert.ok(readLines(name).length > 0, 'whole JSON lines in every file');
      }
      assert.ok(!existsSync(`${file}.3`), 'older files beyond keep are deleted');
      // The newest lines are in the current file, older ones in .1, .2.
      const newest = readLines(file).at(-1);
      const older = readLines(`${file}.1`).at(-1);
      assert.ok(Date.parse(String(newest?.time)) >= Date.parse(String(older?.time)));
    } finally {
      await gw.close();
    }
  });

  it('keeps writing after the audit file was moved away by hand (logrotate)', TIMEOUT, async () => {
    const gw = await startGateway(
      { servers: { a: fixtureServer() }, audit: { file: 'audit.jsonl', maxSize: '1KiB', keep: 1 } },
      { users: ['alice'] },
    );
    const file = join(gw.dir, 'audit.jsonl');
    try {
      const { client } = await connectClient(`${gw.url}/mcp/a`, gw.keys.alice);
      await client.callTool({ name: 'echo', arguments: { text: 'before the move' } });
      renameSync(file, join(gw.dir, 'moved-away.jsonl'));
      // Enough calls that the next rotation comes while audit.jsonl does not exist.
      for (let i = 0; i < 20; i++) await client.callTool({ name: 'echo', arguments: { text: `call ${i}` } });
      await client.close();
      const current = readLines(file);
      const moved = readLines(join(gw.dir, 'moved-away.jsonl'));
      // Before the fix the failed rename of the missing file lost this line and every later one.
      assert.ok(
        current.some((line) => line.event === 'tools.call'),
        'calls are audited again',
      );
      const last = (lines: Line[]) => Date.parse(String(lines.at(-1)?.time));
      assert.ok(last(current) >= last(moved), 'the newest lines are in audit.jsonl');
      assert.ok(statSync(file).size <= 1_024, 'and rotation still bounds it');
    } finally {
      await gw.close();
    }
  });

  it('writes to stderr with audit.stderr', TIMEOUT, async () => {
    const script = fileURLToPath(new URL('./fixtures/audit-to-stderr.ts', import.meta.url));
    const result = await runProcess(process.execPath, [script]);
    assert.equal(result.code, 0, result.stderr);
    const lines = result.stderr
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as Line);
    assert.deepEqual(
      lines.map((line) => line.event),
      ['session.start', 'tools.call', 'session.end'],
    );
    assert.equal(lines[1]?.tool, 'echo');
    assert.equal(lines[1]?.outcome, 'ok');
    assert.equal(result.stdout, '', 'stdout stays free');
  });
});
