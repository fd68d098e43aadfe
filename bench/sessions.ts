// Sessions benchmark (issue 3): memory of 100 sessions on one shared backend, and session setup time in
// `shared` vs `per-session` mode. Runs the built gateway as a child process so its RSS is its own.
//   npm run build && node bench/sessions.ts

import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const BIN = join(ROOT, 'bin/mcp-relay.js');
const FIXTURE = join(ROOT, 'test/fixtures/stdio-server.mjs');
const REPORT = join(ROOT, 'docs/benchmarks.md');
const HEADING = '## Sessions (issue 3)';
const OPEN_SESSIONS = 100;
const SETUP_RUNS = 20;

interface RunningGateway {
  url: string;
  pid: number;
  stop(): Promise<void>;
}

/** Starts `mcp-relay serve` with one server `echo` (the hand-written fixture) in the given isolation mode. */
async function startGateway(isolation: 'shared' | 'per-session'): Promise<RunningGateway> {
  const dir = mkdtempSync(join(tmpdir(), 'mcp-relay-bench-'));
  const configFile = join(dir, 'relay.yaml');
  // JSON is YAML; no auth because the gateway only listens on loopback.
  const config = {
    listen: { host: '127.0.0.1', port: 0 },
    logLevel: 'warn',
    limits: { sessionsPerUser: OPEN_SESSIONS * 2 },
    servers: { echo: { command: process.execPath, args: [FIXTURE], isolation } },
  };
  writeFileSync(configFile, JSON.stringify(config, null, 2));
  const child = spawn(process.execPath, [BIN, 'serve', '--config', configFile], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const url = await new Promise<string>((resolve, reject) => {
    let stderr = '';
    child.stderr?.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
      const match = /mcp-relay gateway at (\S+)/.exec(stderr);
      if (match?.[1]) resolve(match[1]);
    });
    child.once('exit', (code) => reject(new Error(`gateway exited (${code}) before listening:\n${stderr}`)));
  });
  return {
    url: `${url}/mcp/echo`,
    pid: child.pid as number,
    async stop() {
      await stopChild(child);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
  await exited;
  clearTimeout(timer);
}

/** VmRSS in KiB of one process, 0 when it is gone. */
function rssKiB(pid: number): number {
  try {
    const match = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match?.[1] ? Number(match[1]) : 0;
  } catch {
    return 0;
  }
}

/** Every live descendant of `root`, from the parent pids in /proc/<pid>/stat. */
function descendants(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      // The command name is in parentheses and may contain spaces; the parent pid is the 2nd field after it.
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      const list = children.get(ppid) ?? [];
      list.push(Number(entry));
      children.set(ppid, list);
    } catch {
      // The process ended while we looked.
    }
  }
  const found: number[] = [];
  const queue = [...(children.get(root) ?? [])];
  while (queue.length > 0) {
    const pid = queue.shift() as number;
    found.push(pid);
    queue.push(...(children.get(pid) ?? []));
  }
  return found;
}

/** RSS of the gateway and of its backends, in MiB, averaged over three samples. */
async function memory(gatewayPid: number): Promise<{ gateway: number; backends: number; processes: number }> {
  const samples: Array<{ gateway: number; backends: number; processes: number }> = [];
  for (let i = 0; i < 3; i++) {
    await sleep(500);
    const backends = descendants(gatewayPid);
    samples.push({
      gateway: rssKiB(gatewayPid) / 1024,
      backends: backends.reduce((sum, pid) => sum + rssKiB(pid), 0) / 1024,
      processes: backends.length,
    });
  }
  const mean = (pick: (sample: (typeof samples)[number]) => number) =>
    samples.reduce((sum, sample) => sum + pick(sample), 0) / samples.length;
  return {
    gateway: mean((s) => s.gateway),
    backends: mean((s) => s.backends),
    processes: Math.max(...samples.map((s) => s.processes)),
  };
}

interface OpenSession {
  client: Client;
  transport: StreamableHTTPClientTransport;
}

/** connect (initialize + initialized) and one tools/call, as a user's first use of a server. */
async function openSession(url: string, index: number): Promise<OpenSession> {
  const transport = new StreamableHTTPClientTransport(new URL(url));
  const client = new Client({ name: 'bench', version: '1.0.0' });
  await client.connect(transport);
  const result = (await client.callTool({ name: 'echo', arguments: { text: `hello ${index}` } })) as {
    content: Array<{ text?: string }>;
  };
  if (result.content[0]?.text !== `hello ${index}`) throw new Error(`wrong echo: ${JSON.stringify(result)}`);
  return { client, transport };
}

async function endSession({ client, transport }: OpenSession): Promise<void> {
  await transport.terminateSession();
  await client.close();
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2
    ? (sorted[middle] as number)
    : ((sorted[middle - 1] as number) + (sorted[middle] as number)) / 2;
};
const mib = (value: number) => value.toFixed(1);

async function measureMemory() {
  const gateway = await startGateway('shared');
  const sessions: OpenSession[] = [];
  try {
    sessions.push(await openSession(gateway.url, 0));
    const one = await memory(gateway.pid);
    for (let i = 1; i < OPEN_SESSIONS; i++) sessions.push(await openSession(gateway.url, i));
    const hundred = await memory(gateway.pid);
    return { one, hundred };
  } finally {
    await Promise.allSettled(sessions.map(endSession));
    await gateway.stop();
  }
}

async function measureSetup(isolation: 'shared' | 'per-session') {
  const gateway = await startGateway(isolation);
  try {
    const times: number[] = [];
    for (let i = 0; i < SETUP_RUNS; i++) {
      const started = performance.now();
      const session = await openSession(gateway.url, i);
      times.push(performance.now() - started);
      await endSession(session);
    }
    return { median: median(times), first: times[0] as number, max: Math.max(...times) };
  } finally {
    await gateway.stop();
  }
}

async function main(): Promise<void> {
  if (!existsSync(join(ROOT, 'dist/cli/main.js')))
    throw new Error('run `npm run build` first: the bench runs dist/');
  const { one, hundred } = await measureMemory();
  const shared = await measureSetup('shared');
  const perSession = await measureSetup('per-session');
  const perExtra = (hundred.gateway + hundred.backends - (one.gateway + one.backends)) / (OPEN_SESSIONS - 1);
  const gatewayPerExtra = (hundred.gateway - one.gateway) / (OPEN_SESSIONS - 1);

  const cpu = cpus();
  const section = [
    HEADING,
    '',
    `\`node bench/sessions.ts\` on ${new Date().toISOString().slice(0, 10)}, Node ${process.version}, ` +
      `${cpu.length} × ${cpu[0]?.model.trim() ?? 'unknown CPU'}. Backend: \`test/fixtures/stdio-server.mjs\`; ` +
      'client: the official SDK over Streamable HTTP on 127.0.0.1; RSS from /proc/<pid>/status (VmRSS).',
    '',
    '| memory, one `shared` backend | gateway RSS | backend RSS | processes under the gateway | total |',
    '|---|---:|---:|---:|---:|',
    `| 1 session | ${mib(one.gateway)} MiB | ${mib(one.backends)} MiB | ${one.processes} | ${mib(one.gateway + one.backends)} MiB |`,
    `| ${OPEN_SESSIONS} sessions | ${mib(hundred.gateway)} MiB | ${mib(hundred.backends)} MiB | ${hundred.processes} | ${mib(hundred.gateway + hundred.backends)} MiB |`,
    `| per extra session | ${(gatewayPerExtra * 1024).toFixed(0)} KiB | | | ${(perExtra * 1024).toFixed(0)} KiB |`,
    '',
    `| session setup (connect + initialize + first call), ${SETUP_RUNS} runs | median | first | max |`,
    '|---|---:|---:|---:|',
    `| \`shared\` | ${shared.median.toFixed(1)} ms | ${shared.first.toFixed(1)} ms | ${shared.max.toFixed(1)} ms |`,
    `| \`per-session\` | ${perSession.median.toFixed(1)} ms | ${perSession.first.toFixed(1)} ms | ${perSession.max.toFixed(1)} ms |`,
    '',
  ].join('\n');
  process.stdout.write(`${section}\n`);
  writeReport(section);
  process.stdout.write(`written to ${REPORT}\n`);
}

/** Replaces this benchmark's section of docs/benchmarks.md (or appends it), keeping every other section. */
function writeReport(section: string): void {
  const current = existsSync(REPORT) ? readFileSync(REPORT, 'utf8') : '# Benchmarks\n';
  const start = current.indexOf(HEADING);
  if (start === -1) {
    writeFileSync(REPORT, `${current.trimEnd()}\n\n${section}`);
    return;
  }
  const next = current.indexOf('\n## ', start + HEADING.length);
  const rest = next === -1 ? '' : `\n${current.slice(next + 1)}`;
  writeFileSync(REPORT, `${current.slice(0, start)}${section}${rest}`);
}

await main();
