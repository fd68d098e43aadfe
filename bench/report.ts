// docs/benchmarks.md from the runs: each figure is the median over runs with its spread, and under it its
// ratio to the floor and to the best peer; then a verdict per goal of issue 4 and the problems seen.

import { cpus, totalmem } from 'node:os';
import {
  cell,
  Figures,
  type FloorOf,
  finite,
  formatValue,
  perExtraSession,
  problemsOf,
  processesAtTop,
  seriesFloor,
  sumOfFloors,
  table,
} from './figures.ts';
import type { TargetRun } from './measure.ts';
import type { Profile } from './options.ts';
import type { TargetSpec } from './targets.ts';
import { verdictSection } from './verdicts.ts';

export interface ReportContext {
  profile: Profile;
  machine: string;
  versions: Record<string, string>;
  elapsedMs: number;
  skipped: number;
  date: Date;
}

export function machine(): string {
  const cpu = cpus();
  return `${cpu.length} × ${cpu[0]?.model.trim() ?? 'unknown CPU'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, ${process.platform} ${process.arch}`;
}

// --- Sections ---------------------------------------------------------------------------------------

function sequentialSection(figures: Figures, profile: Profile): string {
  const floor = sumOfFloors(figures);
  const rows = figures.specs.map((spec) => [
    spec.label,
    ...(['sdk', 'lean'] as const).flatMap((driver) =>
      ['p50', 'p90', 'p99'].map((p) => cell(figures, spec, `seq.${driver}.${p}`, 'us', floor, false)),
    ),
  ]);
  const fetchP50 = figures.value('bare-http', 'seq.fetch.p50');
  return [
    `## Sequential latency (one session, ${profile.sequentialCalls.toLocaleString('en-US')} calls)`,
    '',
    table(['target', 'SDK p50', 'SDK p90', 'SDK p99', 'lean p50', 'lean p90', 'lean p99'], rows),
    '',
    `The bare HTTP floor timed with \`fetch\`: p50 ${formatValue(fetchP50, 'us')}, p99 ${formatValue(figures.value('bare-http', 'seq.fetch.p99'), 'us')}.`,
    'Floor for a gateway here: the bare HTTP round trip plus the direct stdio round trip, with the same driver.',
  ].join('\n');
}

function throughputSection(figures: Figures, profile: Profile, driver: 'lean' | 'sdk'): string {
  const levels = profile.concurrency[driver];
  const rps = seriesFloor(figures);
  const p99 = sumOfFloors(figures);
  const rows = figures.specs.map((spec) => [
    spec.label,
    ...levels.map((n) => cell(figures, spec, `tput.${driver}.${n}.rps`, 'rps', rps, true)),
    ...levels.map((n) => cell(figures, spec, `tput.${driver}.${n}.p99`, 'us', p99, false)),
  ]);
  const name = driver === 'lean' ? 'lean driver (node:http keep-alive)' : 'official SDK client';
  return [
    `## Throughput, ${name}`,
    '',
    `Closed loop: every session has one call in flight at a time, for ${(profile.throughputMs / 1000).toFixed(1)} s after a ${profile.warmupMs} ms warm-up.`,
    '',
    table(['target', ...levels.map((n) => `calls/s, ${n}`), ...levels.map((n) => `p99, ${n}`)], rows),
    '',
    'Floor for calls/s: bare HTTP and direct stdio (one backend process, every session on its pipe) in series,',
    '1 ÷ (1/HTTP + 1/stdio); for p99: their sum.',
  ].join('\n');
}

function cpuSection(figures: Figures): string {
  const block = (title: string, prefix: string) => {
    const rows = figures.specs.map((spec) => [
      spec.label,
      cell(
        figures,
        spec,
        `${prefix}.cpu.gateway`,
        'us',
        (_s, key) => finite(figures.value('bare-http', key)),
        false,
      ),
      cell(
        figures,
        spec,
        `${prefix}.cpu.backends`,
        'us',
        (_s, key) => finite(figures.value('stdio', key)),
        false,
      ),
      cell(
        figures,
        spec,
        `${prefix}.cpu.driver`,
        'us',
        (_s, key) => finite(figures.value('bare-http', key)),
        false,
      ),
    ]);
    return [
      `### ${title}`,
      '',
      table(['target', 'gateway process', 'backend processes', 'driver'], rows),
    ].join('\n');
  };
  return [
    '## CPU time per call',
    '',
    'User + system CPU from /proc/<pid>/stat over the measured window, divided by the calls in it. Floors: the bare',
    'HTTP server for the gateway process and the driver, direct stdio for the backends.',
    '',
    block('Lean driver, 50 sessions', 'tput.lean.50'),
    '',
    block('Lean driver, one session (sequential)', 'seq.lean'),
    '',
    block('SDK client, one session (sequential)', 'seq.sdk'),
  ].join('\n');
}

/** Metrics on against off, both in this run: what the subscribers and scrapes cost the gateway per call. */
function metricsSection(figures: Figures): string {
  const off = 'relay-shared';
  const on = 'relay-shared-metrics';
  if (!figures.specs.some((spec) => spec.id === off) || !figures.specs.some((spec) => spec.id === on))
    return '';
  const rows = [
    ['gateway CPU per call, lean, 50 sessions', 'tput.lean.50.cpu.gateway', 'us'],
    ['gateway CPU per call, lean, sequential', 'seq.lean.cpu.gateway', 'us'],
    ['gateway CPU per call, SDK, sequential', 'seq.sdk.cpu.gateway', 'us'],
    ['calls/s, lean, 50 sessions', 'tput.lean.50.rps', 'rps'],
    ['p50 latency, lean, sequential', 'seq.lean.p50', 'us'],
  ] as const;
  return [
    '## Metrics on and off',
    '',
    '`mcp-relay shared` without and with an `admin` section (Prometheus metrics and the admin page’s activity',
    'subscribed to every request, the loopback metrics listener scraped every 5 s), measured in the same run.',
    '',
    table(
      ['figure', 'metrics off', 'metrics on', 'on ÷ off'],
      rows.map(([label, key, unit]) => {
        const before = figures.summary(off, key);
        const after = figures.summary(on, key);
        // ± half the range across runs, as elsewhere in the report.
        const spread = (summary: { min: number; max: number; runs: number }) =>
          summary.runs > 1 ? ` ±${formatValue((summary.max - summary.min) / 2, unit)}` : '';
        return [
          label,
          `${formatValue(before.median, unit)}${spread(before)}`,
          `${formatValue(after.median, unit)}${spread(after)}`,
          Number.isFinite(before.median) && before.median > 0
            ? `${(after.median / before.median).toFixed(2)}×`
            : '—',
        ];
      }),
    ),
  ].join('\n');
}

function setupSection(figures: Figures, profile: Profile): string {
  // A target that starts a process per session cannot beat starting the backend over stdio.
  const floor: FloorOf = (spec, key) => {
    const http = figures.value('bare-http', key);
    const stdio = figures.value('stdio', key);
    return finite(spec.processPerSession ? http + stdio : http);
  };
  const rows = figures.specs.map((spec) => [
    spec.label,
    cell(figures, spec, 'setup.sdk.p50', 'ms', floor, false),
    cell(figures, spec, 'setup.lean.p50', 'ms', floor, false),
  ]);
  return [
    `## Session setup (${profile.setupSessions} sessions one after another, median)`,
    '',
    'initialize → notifications/initialized → the first `echo` call. Over direct stdio a session is a new process.',
    '',
    table(['target', 'SDK client', 'lean driver'], rows),
    '',
    'Floor: bare HTTP; for targets with a process per session, bare HTTP plus starting the backend over stdio.',
  ].join('\n');
}

function memorySection(figures: Figures, profile: Profile): string {
  const levels = profile.memoryLevels;
  const top = levels[levels.length - 1] ?? 0;
  const floor: FloorOf = (_spec, key) => {
    const http = figures.value('bare-http', key);
    const stdio = figures.value('stdio', key);
    return finite(http + (Number.isFinite(stdio) ? stdio : 0));
  };
  const rows = figures.specs.map((spec) => {
    const perSession = perExtraSession(figures, spec.id, levels);
    return [
      spec.label,
      ...levels.map((n) => cell(figures, spec, `rss.${n}`, 'bytes', floor, false)),
      perSession === undefined ? '—' : formatValue(perSession, 'bytes'),
      formatValue(processesAtTop(figures, spec.id, levels), 'count'),
    ];
  });
  return [
    '## Memory: RSS of the whole process tree (target + backends)',
    '',
    `Sessions opened with the lean driver, each holding its server→client stream as SDK clients do; read after ${profile.settleMs} ms.`,
    `Targets that start a backend per session are measured up to ${profile.processCap} sessions.`,
    '',
    table(
      [
        'target',
        ...levels.map((n) => `${n.toLocaleString('en-US')} sessions`),
        'per extra session',
        'processes at most',
      ],
      rows,
    ),
    '',
    `Per extra session: (RSS at the most sessions measured − RSS at 1) ÷ the difference. Floor: direct stdio (one backend) + bare HTTP. Top level measured: ${top.toLocaleString('en-US')}.`,
  ].join('\n');
}

function problemsSection(figures: Figures): string {
  const rows = figures.specs.map((spec) => {
    const { failed, wrong, notes } = problemsOf(figures, spec.id);
    const burst = figures.value(spec.id, 'burst.sessions');
    const burstFailed = figures.value(spec.id, `burst.${burst}.failed`);
    const burstWrong = figures.value(spec.id, `burst.${burst}.wrong`);
    return [
      spec.label,
      String(wrong),
      String(failed),
      Number.isFinite(burst) ? `${burst}: ${burstFailed} failed, ${burstWrong} wrong` : '—',
      notes.map((note) => note.replaceAll('|', '\\|')).join('; ') || '',
    ];
  });
  return [
    '## Wrong replies and failed calls (all phases, all runs)',
    '',
    'A wrong reply is a call answered with another call’s text (every call sends text no other call carries).',
    'The burst is one call on every open session at once, at the most sessions of the memory phase.',
    '',
    table(['target', 'wrong replies', 'failed calls', 'burst (sessions: result)', 'notes'], rows, [0, 3, 4]),
  ].join('\n');
}

// --- The document -----------------------------------------------------------------------------------

export function renderReport(
  specs: readonly TargetSpec[],
  runs: ReadonlyMap<string, TargetRun[]>,
  context: ReportContext,
): string {
  const figures = new Figures(specs, runs);
  const { profile } = context;
  const versionList = Object.entries(context.versions)
    .map(([name, version]) => `${name} ${version}`)
    .join(', ');
  return `${[
    '# Benchmarks',
    '',
    `Generated by \`npm run bench${profile.name === 'quick' ? ' -- --quick' : ''}\` (see [bench/README.md](../bench/README.md)) on ${context.date.toISOString().slice(0, 16).replace('T', ' ')} UTC`,
    `in ${(context.elapsedMs / 60_000).toFixed(1)} min: ${profile.name} profile, ${profile.runs} run(s) per target${context.skipped ? `, ${context.skipped} target run(s) skipped for time` : ''}.`,
    `Machine: ${context.machine}. Versions: ${versionList}.`,
    '',
    'Every target fronts the same backend (`bench/backend.mjs`, the official SDK’s `McpServer` with `echo` and `sleep`)',
    'and is driven by the same clients: the official SDK client, and a lean driver on `node:http` keep-alive',
    '(Streamable HTTP, the legacy SSE transport for the SSE targets, a `ws` socket per session for the WebSocket',
    'targets; the SDK client there uses its WebSocketClientTransport). Targets and the driver run as separate',
    'processes on 127.0.0.1. Peers run with their logging off (`--logLevel none`); mcp-relay with `logLevel: warn`.',
    '',
    'Each figure is the median over runs, ±half its range across runs; under it, its ratio to the floor and to the best',
    'peer (value ÷ reference, so for calls/s higher is better and for everything else lower is better).',
    'Absolute numbers depend on the machine and on whatever else runs on it; compare ratios measured in one run.',
    '',
    'What the gateway’s CPU profile showed, and what was changed for it: [bench/README.md](../bench/README.md#hot-path-what-the-profile-showed).',
    '',
    '![calls per second by target and number of sessions](benchmarks-throughput.svg)',
    '',
    verdictSection(figures, profile),
    '',
    sequentialSection(figures, profile),
    '',
    throughputSection(figures, profile, 'lean'),
    '',
    throughputSection(figures, profile, 'sdk'),
    '',
    cpuSection(figures),
    '',
    metricsSection(figures),
    '',
    setupSection(figures, profile),
    '',
    memorySection(figures, profile),
    '',
    problemsSection(figures),
  ].join('\n')}\n`;
}
