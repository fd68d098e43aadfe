// What a backend can learn from the gateway's /proc entries, tested against a real `mcp-relay serve`
// whose backend reads /proc/<gateway pid>/environ: the config's ${VAR} and envPassthrough secrets
// are gone from it (and a reload still resolves them), and a backend run as another account
// (servers.<name>.user) cannot read it at all.

import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { runCli } from './helpers/cli.ts';
import { connectClient, FIXTURE_SERVER, INITIALIZE, rawPost, textOf } from './helpers/gateway.ts';
import { type ServeProcess, startServe } from './helpers/serve.ts';
import { eventually } from './helpers/wait.ts';

const PROBE = fileURLToPath(new URL('./fixtures/environ-probe.mjs', import.meta.url));
const RUN_CLI = fileURLToPath(new URL('./fixtures/run-cli.ts', import.meta.url));
const TIMEOUT = { timeout: 60_000 };

interface ProbeReport {
  uid: number;
  gid: number;
  env: { HOME?: string; USER?: string; LOGNAME?: string };
  ppid: number;
  environ: string | null;
  error: string | null;
}

/** Calls the probe backend of `server` through the gateway (no auth on loopback: user "local"). */
async function probe(url: string, server: string): Promise<ProbeReport> {
  const { client } = await connectClient(`${url}/mcp/${server}`, undefined);
  try {
    return JSON.parse(textOf(await client.callTool({ name: 'probe', arguments: {} }))) as ProbeReport;
  } finally {
    await client.close();
  }
}

/** A folder every account may enter, holding a copy of the probe (tmpdir's own folders are 0700). */
function probeFolder(prefix: string): { dir: string; probe: string } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  chmodSync(dir, 0o755);
  const copy = join(dir, 'environ-probe.mjs');
  copyFileSync(PROBE, copy);
  chmodSync(copy, 0o644);
  return { dir, probe: copy };
}

/** A server entry: `command` with `args`, plus `extra` lines, indented under `servers:`. */
function serverEntry(name: string, command: string, args: string[], extra: string[] = []): string[] {
  return [
    `  ${name}:`,
    `    command: ${JSON.stringify(command)}`,
    `    args: [${args.map((arg) => JSON.stringify(arg)).join(', ')}]`,
    ...extra.map((line) => `    ${line}`),
  ];
}

describe("the config's secrets are not in /proc/<gateway pid>/environ", () => {
  const secret = `secret-${randomUUID()}`;
  const passed = `passed-${randomUUID()}`;
  let dir: string;
  let file: string;
  let serve: ServeProcess;
  let url: string;

  const config = (keeperAllow: string) =>
    [
      'listen: { host: 127.0.0.1, port: 0 }',
      'servers:',
      // The server the secrets are for: one as ${VAR} in its env, one passed through by name.
      ...serverEntry(
        'keeper',
        process.execPath,
        [FIXTURE_SERVER],
        [
          // biome-ignore lint/suspicious/noTemplateCurlyInString: the config's ${VAR} syntax
          'env: { TOKEN: "${KEEPER_SECRET}" }',
          'envPassthrough: [PASSED_SECRET]',
          `allow: { users: [${keeperAllow}] }`,
        ],
      ),
      // Another server, run as the gateway's own account: it must not find them.
      ...serverEntry('probe', process.execPath, [join(dir, 'environ-probe.mjs')]),
      '',
    ].join('\n');

  before(async () => {
    dir = probeFolder('mcp-relay-environ-').dir;
    file = join(dir, 'relay.yaml');
    writeFileSync(file, config('local'));
    serve = await startServe(file, {
      ...process.env,
      KEEPER_SECRET: secret,
      PASSED_SECRET: passed,
      PROBE_CANARY: 'visible',
    });
    url = serve.url as string;
  });

  after(async () => {
    await serve?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('a backend of the same account reads the environ, but no secret in it', TIMEOUT, async () => {
    const report = await probe(url, 'probe');
    assert.equal(report.ppid, serve.pid, "the probe reads its parent's entry: the gateway's");
    assert.equal(report.error, null);
    const environ = report.environ ?? '';
    // The probe does see the gateway's environment: a variable the config does not name is there.
    assert.match(environ, /^PROBE_CANARY=visible$/m);
    assert.ok(
      !environ.includes(secret),
      'the secret read as a config variable is not in /proc/<gateway pid>/environ',
    );
    assert.ok(!environ.includes(passed), 'the envPassthrough secret is not there either');
    assert.doesNotMatch(environ, /KEEPER_SECRET|PASSED_SECRET/);
    // The same file, as root reads it (the test's account is the gateway's).
    const direct = readFileSync(`/proc/${serve.pid}/environ`, 'latin1');
    assert.ok(
      direct.includes('PROBE_CANARY=visible') && !direct.includes(secret) && !direct.includes(passed),
    );
  });

  it('the server the secrets are for still gets them', TIMEOUT, async () => {
    const { client } = await connectClient(`${url}/mcp/keeper`, undefined);
    try {
      const value = async (name: string) =>
        textOf(await client.callTool({ name: 'env', arguments: { name } }));
      assert.equal(await value('TOKEN'), secret);
      assert.equal(await value('PASSED_SECRET'), passed);
      assert.equal(await value('KEEPER_SECRET'), '<unset>');
    } finally {
      await client.close();
    }
  });

  it('a reload (SIGHUP) still resolves the variable the gateway no longer has', TIMEOUT, async () => {
    writeFileSync(file, config('someone-else'));
    serve.child.kill('SIGHUP');
    await eventually(
      async () => (await rawPost(`${url}/mcp/keeper`, INITIALIZE)).status === 403,
      'the reloaded allow list',
    );
    await eventually(async () => /config reloaded/.test(serve.stderr()), 'the reload log line');
    assert.doesNotMatch(serve.stderr(), /config not reloaded|is not set/);
  });
});

/** A line of /etc/passwd or /etc/group by name: its fields. */
function accountLine(file: '/etc/passwd' | '/etc/group', name: string): string[] | undefined {
  return readFileSync(file, 'utf8')
    .split('\n')
    .map((line) => line.split(':'))
    .find((fields) => fields[0] === name);
}

/** Why a backend cannot be started as `nobody` here, or undefined when it can. */
function whyNotAsNobody(): string | undefined {
  if (process.getuid?.() !== 0)
    return 'only root can start a backend as another account; run the tests as root';
  if (!accountLine('/etc/passwd', 'nobody')) return 'there is no account "nobody" in /etc/passwd';
  // The test's own node (under root's home) is out of nobody's reach.
  if (!existsSync(SYSTEM_NODE)) return `${SYSTEM_NODE} is missing: nobody needs a node it may run`;
  return undefined;
}

const SYSTEM_NODE = '/usr/bin/node';

describe('a backend run as another account (servers.<name>.user)', { skip: whyNotAsNobody() }, () => {
  const secret = `secret-${randomUUID()}`;
  let dir: string;
  let serve: ServeProcess;
  let url: string;
  let nobody: { uid: number; gid: number; home: string };
  let otherGroup: { name: string; gid: number } | undefined;

  before(async () => {
    const folder = probeFolder('mcp-relay-account-');
    dir = folder.dir;
    const [, , uid, gid, , home] = accountLine('/etc/passwd', 'nobody') ?? [];
    nobody = { uid: Number(uid), gid: Number(gid), home: home ?? '' };
    // Some group other than nobody's own and root's, to run the probe with by name.
    const group = readFileSync('/etc/group', 'utf8')
      .split('\n')
      .map((line) => line.split(':'))
      .find(([name, , id]) => name && /^\d+$/.test(id ?? '') && ![0, nobody.gid].includes(Number(id)));
    otherGroup = group ? { name: group[0] as string, gid: Number(group[2]) } : undefined;
    const file = join(dir, 'relay.yaml');
    writeFileSync(
      file,
      [
        'listen: { host: 127.0.0.1, port: 0 }',
        'servers:',
        // biome-ignore lint/suspicious/noTemplateCurlyInString: the config's ${VAR} syntax
        ...serverEntry('keeper', process.execPath, [FIXTURE_SERVER], ['env: { TOKEN: "${KEEPER_SECRET}" }']),
        ...serverEntry('as-nobody', SYSTEM_NODE, [folder.probe], ['user: nobody']),
        ...serverEntry(
          'as-ids',
          SYSTEM_NODE,
          [folder.probe],
          [`user: ${nobody.uid}`, ...(otherGroup ? [`group: ${otherGroup.name}`] : [])],
        ),
        'ssh: { mode: standalone, stateDir: ssh-state }',
        '',
      ].join('\n'),
    );
    serve = await startServe(file, { ...process.env, KEEPER_SECRET: secret });
    url = serve.url as string;
  });

  after(async () => {
    await serve?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it(
    'runs as nobody, with its HOME, USER and LOGNAME, and cannot read the gateway environ',
    TIMEOUT,
    async () => {
      const report = await probe(url, 'as-nobody');
      assert.equal(report.ppid, serve.pid);
      assert.equal(report.uid, nobody.uid);
      assert.equal(report.gid, nobody.gid, "nobody's primary group");
      assert.deepEqual(report.env, { HOME: nobody.home, USER: 'nobody', LOGNAME: 'nobody' });
      assert.equal(report.environ, null, '/proc/<gateway pid>/environ is closed to another account');
      assert.equal(report.error, 'EACCES');
    },
  );

  it('takes numeric ids and a group by name', TIMEOUT, async () => {
    const report = await probe(url, 'as-ids');
    assert.equal(report.uid, nobody.uid);
    assert.equal(report.gid, otherGroup?.gid ?? nobody.gid);
    assert.equal(report.error, 'EACCES');
  });

  it(
    'runs as nobody in SSH standalone mode too (ssh-entry spawns the same launch spec)',
    TIMEOUT,
    async () => {
      const transport = new StdioClientTransport({
        command: process.execPath,
        args: [RUN_CLI, 'ssh-entry', '--config', join(dir, 'relay.yaml'), '--user', 'alice'],
        env: {
          PATH: process.env.PATH ?? '',
          HOME: dir,
          SSH_ORIGINAL_COMMAND: 'as-nobody',
          KEEPER_SECRET: secret,
        },
        stderr: 'pipe',
      });
      const client = new Client({ name: 'test-client', version: '1.0.0' });
      await client.connect(transport);
      try {
        const report = JSON.parse(
          textOf(await client.callTool({ name: 'probe', arguments: {} })),
        ) as ProbeReport;
        assert.equal(report.ppid, transport.pid, "the probe's parent is ssh-entry");
        assert.equal(report.uid, nobody.uid);
        assert.equal(report.env.USER, 'nobody');
        assert.equal(report.error, 'EACCES', "ssh-entry's environ is closed to nobody as well");
      } finally {
        await client.close();
      }
    },
  );
});

describe('servers.<name>.user and .group that cannot be used', () => {
  it('stop `mcp-relay serve` at start with the key in one line', TIMEOUT, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mcp-relay-account-'));
    try {
      const file = join(dir, 'relay.yaml');
      const refusal = async (extra: string) => {
        writeFileSync(
          file,
          ['servers:', ...serverEntry('probe', process.execPath, [PROBE], [extra]), ''].join('\n'),
        );
        const result = await runCli(['serve', '--config', file]);
        assert.equal(result.code, 2, result.stderr);
        return result.stderr;
      };
      assert.equal(
        await refusal('user: no-such-account-x'),
        'mcp-relay: servers.probe.user: no account "no-such-account-x" in /etc/passwd\n',
      );
      assert.equal(
        await refusal('group: no-such-group-x'),
        'mcp-relay: servers.probe.group: no group "no-such-group-x" in /etc/group\n',
      );
      assert.equal(
        await refusal('user: 4294967000'),
        'mcp-relay: servers.probe.user: no account with uid 4294967000 in /etc/passwd\n',
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
