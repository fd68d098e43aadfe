// `npm run bench [-- --quick]`: measures every target with the same backend and the same drivers, a few
// runs each, then writes docs/benchmarks.md and its chart. Every process it starts is ended by pid, also
// when a target fails or the run is interrupted; the whole run is bounded by the profile's time budget.

import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { throughputChart } from './chart.ts';
import { measureTarget, type TargetRun } from './measure.ts';
import { type Options, parseOptions } from './options.ts';
import { killAllNow } from './processes.ts';
import { machine, type ReportContext, renderReport } from './report.ts';
import { ALL_TARGETS, type TargetSpec, versions } from './targets.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

interface Measured {
  specs: readonly TargetSpec[];
  runs: Map<string, TargetRun[]>;
  context: ReportContext;
}

async function measureAll(options: Options): Promise<Measured> {
  const { profile } = options;
  if (!existsSync(join(ROOT, 'dist/cli/main.js')))
    throw new Error('run `npm run build` first: the bench runs dist/');
  const specs = selectTargets(options.targets);
  const startedAt = Date.now();
  const deadline = startedAt + profile.budgetMs;
  const runs = new Map<string, TargetRun[]>(specs.map((spec) => [spec.id, []]));
  let skipped = 0;
  for (let run = 0; run < profile.runs; run++) {
    // Each run starts one target further along, so no target always goes first on a cold machine.
    const order = specs.map((_, i) => specs[(i + run) % specs.length] as TargetSpec);
    for (const spec of order) {
      if (Date.now() > deadline) {
        skipped++;
        continue;
      }
      process.stderr.write(`run ${run + 1}/${profile.runs}: ${spec.label}\n`);
      runs.get(spec.id)?.push(await measureTarget(spec, profile, deadline));
    }
  }
  const context: ReportContext = {
    profile,
    machine: machine(),
    versions: versions(),
    elapsedMs: Date.now() - startedAt,
    skipped,
    date: new Date(),
  };
  const resultsDir = join(ROOT, 'bench/results');
  mkdirSync(resultsDir, { recursive: true });
  const raw = join(resultsDir, `${profile.name}-${context.date.toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(raw, JSON.stringify({ ...context, runs: Object.fromEntries(runs) }));
  process.stderr.write(`raw figures: ${raw}\n`);
  return { specs, runs, context };
}

function selectTargets(ids: string[] | undefined): readonly TargetSpec[] {
  const specs = ids ? ALL_TARGETS.filter((spec) => ids.includes(spec.id)) : ALL_TARGETS;
  if (specs.length === 0)
    throw new Error(`no such target; known: ${ALL_TARGETS.map((spec) => spec.id).join(', ')}`);
  return specs;
}

/**
 * Figures of the scripts outside this run (bench/large-results.ts, large-bridge.ts, soak.ts,
 * app-proxy.ts, the fault tests), kept by hand in bench/faults.md with the date they were measured
 * on, appended to the report.
 */
function faultFigures(): string {
  const file = join(ROOT, 'bench/faults.md');
  return existsSync(file) ? `\n${readFileSync(file, 'utf8')}` : '';
}

/** A saved run (bench/results/*.json), to render the report again without measuring. */
function loadMeasured(file: string): Measured {
  const saved = JSON.parse(readFileSync(file, 'utf8')) as Omit<ReportContext, 'date'> & {
    date: string;
    runs: Record<string, TargetRun[]>;
  };
  const runs = new Map(Object.entries(saved.runs));
  const specs = ALL_TARGETS.filter((spec) => runs.has(spec.id));
  const { runs: _, date, ...rest } = saved;
  return { specs, runs, context: { ...rest, date: new Date(date) } };
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  const { specs, runs, context } = options.from ? loadMeasured(options.from) : await measureAll(options);
  const markdown = renderReport(specs, runs, context);
  if (options.write) {
    writeFileSync(join(ROOT, 'docs/benchmarks-throughput.svg'), throughputChart(specs, runs));
    writeFileSync(join(ROOT, 'docs/benchmarks.md'), markdown + faultFigures());
    process.stderr.write('wrote docs/benchmarks.md and docs/benchmarks-throughput.svg\n');
  } else {
    process.stdout.write(markdown);
  }
  process.stderr.write(`measured in ${(context.elapsedMs / 1000).toFixed(0)} s\n`);
}

process.on('exit', killAllNow);
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.once(signal, () => {
    killAllNow();
    process.exit(130);
  });
}

try {
  await main();
} catch (error) {
  process.stderr.write(`bench: ${(error as Error).message}\n`);
  killAllNow();
  process.exitCode = 1;
}
