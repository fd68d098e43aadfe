// Profiles the gateway's hot path: mcp-relay (shared mode) under `node --cpu-prof` while the lean driver
// keeps N sessions busy, then prints the functions with the most self time, grouped by where they live.
//   npm run build && node bench/profile.ts [--sessions 50] [--seconds 10] [--isolation shared] [--top 30]
//     [--front streamable|websocket|stateless]

import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { OpenResult, RunResult } from './driver.ts';
import { DriverProcess } from './driver-client.ts';
import { killAllNow } from './processes.ts';
import { relayTarget } from './targets.ts';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

/** Where a function lives, shortened: a package name, a file of ours, node's internals, or V8. */
function placeOf(url: string): string {
  if (!url) return '(native / V8)';
  if (url.startsWith('node:')) return url;
  const modules = url.lastIndexOf('node_modules/');
  if (modules !== -1) {
    const rest = url.slice(modules + 'node_modules/'.length).split('/');
    return rest[0]?.startsWith('@') ? `${rest[0]}/${rest[1]}` : (rest[0] ?? url);
  }
  const dist = url.indexOf('/dist/');
  return dist !== -1 ? `mcp-relay ${url.slice(dist + 1)}` : url.replace(/^file:\/\//, '');
}

export function summarizeProfile(profile: CpuProfile, top: number): string {
  const selfUs = new Map<number, number>();
  profile.samples.forEach((nodeId, i) => {
    selfUs.set(nodeId, (selfUs.get(nodeId) ?? 0) + (profile.timeDeltas[i] ?? 0));
  });
  const byFunction = new Map<string, number>();
  const byPlace = new Map<string, number>();
  const byOwner = new Map<string, number>();
  let total = 0;
  let idle = 0;
  for (const node of profile.nodes) {
    const us = selfUs.get(node.id) ?? 0;
    if (!us) continue;
    const { functionName, url, lineNumber } = node.callFrame;
    // Waiting for I/O is not work: shares below are of the time the gateway was busy.
    if (functionName === '(idle)') {
      idle += us;
      continue;
    }
    total += us;
    const owner =
      url.includes('/dist/') && !url.includes('node_modules')
        ? 'mcp-relay (ours)'
        : url.startsWith('node:')
          ? 'node.js (http, streams, timers)'
          : url
            ? 'packages'
            : 'native (V8, syscalls, GC)';
    byOwner.set(owner, (byOwner.get(owner) ?? 0) + us);
    const place = placeOf(url);
    const name = `${functionName || '(anonymous)'} — ${place}${url ? `:${lineNumber + 1}` : ''}`;
    byFunction.set(name, (byFunction.get(name) ?? 0) + us);
    byPlace.set(place, (byPlace.get(place) ?? 0) + us);
  }
  const rows = (map: Map<string, number>, count: number) =>
    [...map.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, count)
      .map(([name, us]) => `| ${((us / total) * 100).toFixed(1)} % | ${name.replaceAll('|', '\\|')} |`);
  return [
    `Busy ${(total / 1e6).toFixed(2)} s, idle ${(idle / 1e6).toFixed(2)} s (samples are wall-clock: a process that is`,
    'descheduled right after waking another one, as after a write to a busy backend, is charged to that write).',
    '',
    '| busy time | owner |',
    '|---:|---|',
    ...rows(byOwner, 5),
    '',
    '| self time | function — where |',
    '|---:|---|',
    ...rows(byFunction, top),
    '',
    '| self time | where |',
    '|---:|---|',
    ...rows(byPlace, 15),
  ].join('\n');
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      sessions: { type: 'string', default: '50' },
      seconds: { type: 'string', default: '10' },
      isolation: { type: 'string', default: 'shared' },
      top: { type: 'string', default: '30' },
      front: { type: 'string', default: 'streamable' },
    },
  });
  const sessions = Number(values.sessions);
  const seconds = Number(values.seconds);
  const isolation = values.isolation as 'shared' | 'per-user' | 'per-session';
  const dir = mkdtempSync(join(tmpdir(), 'mcp-relay-profile-'));
  const front = values.front as 'streamable' | 'websocket' | 'stateless';
  const target = await relayTarget(isolation, ['--cpu-prof', '--cpu-prof-dir', dir], { front }).start();
  const driver = new DriverProcess();
  try {
    await driver.send({ op: 'connect', target: target.ref, driver: 'lean' }, 60_000);
    const opened = await driver.send<OpenResult>(
      { op: 'open', count: sessions, hold: false, concurrency: 8, withinMs: 60_000 },
      120_000,
    );
    if (opened.open < sessions) throw new Error(`opened ${opened.open} of ${sessions} sessions`);
    const run = await driver.send<RunResult>(
      { op: 'run', sessions, warmupMs: 500, durationMs: seconds * 1_000, maxCalls: 5_000_000 },
      seconds * 1_000 + 120_000,
    );
    process.stderr.write(
      `${run.latenciesUs.length} calls in ${(run.elapsedMs / 1000).toFixed(1)} s (${Math.round(run.latenciesUs.length / (run.elapsedMs / 1000))} calls/s), ${run.failed} failed, ${run.wrong} wrong\n`,
    );
    await driver.send({ op: 'disconnect' }, 60_000);
  } finally {
    await driver.stop();
    // The profile is written when the gateway exits on SIGTERM.
    await target.stop();
  }
  const file = readdirSync(dir).find((name) => name.endsWith('.cpuprofile'));
  if (!file) throw new Error(`no .cpuprofile was written to ${dir}`);
  const profile = JSON.parse(readFileSync(join(dir, file), 'utf8')) as CpuProfile;
  process.stdout.write(`${summarizeProfile(profile, Number(values.top))}\n`);
  process.stderr.write(`profile kept at ${join(dir, file)} (open it in Chrome DevTools or speedscope)\n`);
  if (process.env.BENCH_PROFILE_DELETE) rmSync(dir, { recursive: true, force: true });
}

process.on('exit', killAllNow);
try {
  await main();
} catch (error) {
  process.stderr.write(`bench profile: ${(error as Error).message}\n`);
  process.exitCode = 1;
}
