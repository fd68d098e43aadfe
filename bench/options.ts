// The benchmark's command line and its two profiles: quick (development, under 3 minutes) and full
// (the published figures, under 20 minutes). Every count and duration of a run comes from here.

import { parseArgs } from 'node:util';

export interface Profile {
  name: 'quick' | 'full';
  /** Runs of every target; figures are the median over runs, shown with their spread. */
  runs: number;
  /** Sessions opened one after another to time session setup. */
  setupSessions: number;
  /** Calls on one session for sequential latency. */
  sequentialCalls: number;
  /** Calls before each measured window (JIT, connection pools), not counted. */
  warmupMs: number;
  /** Length of each throughput window. */
  throughputMs: number;
  /** Concurrent sessions for throughput, per driver. */
  concurrency: { lean: number[]; sdk: number[] };
  /** Open sessions at which RSS is read. */
  memoryLevels: number[];
  /** Most sessions for targets that start a backend process per session (each costs ~70 MB). */
  processCap: number;
  /** Wait after opening sessions before reading RSS. */
  settleMs: number;
  /** RSS readings (200 ms apart) at each level; the median is reported. */
  rssSamples: number;
  /** Bound on opening the sessions of one level, and on one burst; a level not reached in time is skipped. */
  phaseBudgetMs: number;
  /** The whole run stops starting new work after this; what is done is reported. */
  budgetMs: number;
}

export const PROFILES: Record<Profile['name'], Profile> = {
  quick: {
    name: 'quick',
    runs: 1,
    setupSessions: 3,
    sequentialCalls: 300,
    warmupMs: 150,
    throughputMs: 500,
    concurrency: { lean: [1, 10, 50, 200], sdk: [10] },
    memoryLevels: [0, 1, 10, 100, 1_000],
    processCap: 10,
    settleMs: 150,
    rssSamples: 1,
    phaseBudgetMs: 8_000,
    budgetMs: 150_000,
  },
  full: {
    name: 'full',
    runs: 3,
    setupSessions: 10,
    sequentialCalls: 2_000,
    warmupMs: 400,
    throughputMs: 1_500,
    concurrency: { lean: [1, 10, 50, 200], sdk: [10, 50] },
    memoryLevels: [0, 1, 10, 100, 1_000],
    processCap: 100,
    settleMs: 500,
    rssSamples: 3,
    phaseBudgetMs: 45_000,
    budgetMs: 19 * 60_000,
  },
};

export interface Options {
  profile: Profile;
  /** Target ids to measure (default: all). */
  targets: string[] | undefined;
  /** Write docs/benchmarks.md and the chart (default); off prints the report only. */
  write: boolean;
  /** Render the report from a saved run (bench/results/*.json) instead of measuring. */
  from: string | undefined;
}

export function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      quick: { type: 'boolean', default: false },
      runs: { type: 'string' },
      targets: { type: 'string' },
      'process-cap': { type: 'string' },
      'no-write': { type: 'boolean', default: false },
      from: { type: 'string' },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(
      [
        'npm run bench [-- --quick] [--runs N] [--targets id,id] [--process-cap N] [--no-write] [--from FILE]',
        '  --quick         a development run under 3 minutes (1 run, short windows)',
        '  --runs N        runs per target (full: 3)',
        '  --targets LIST  only these targets, e.g. relay-shared,mcp-proxy-streamable',
        '  --process-cap N sessions at most for targets with a process per session (full: 100)',
        '  --no-write      print the report instead of writing docs/benchmarks.md',
        '  --from FILE     render the report from a saved run (bench/results/*.json), measuring nothing',
        '',
      ].join('\n'),
    );
    process.exit(0);
  }
  const base = PROFILES[values.quick ? 'quick' : 'full'];
  const profile: Profile = {
    ...base,
    ...(values.runs ? { runs: positive(values.runs, '--runs') } : {}),
    ...(values['process-cap'] ? { processCap: positive(values['process-cap'], '--process-cap') } : {}),
  };
  return {
    profile,
    targets: values.targets?.split(',').map((id) => id.trim()),
    write: !values['no-write'],
    from: values.from,
  };
}

function positive(text: string, flag: string): number {
  const value = Number(text);
  if (!Number.isInteger(value) || value < 1)
    throw new Error(`${flag} must be a positive integer, not "${text}"`);
  return value;
}
