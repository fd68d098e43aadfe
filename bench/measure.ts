// One run against one target: session setup, sequential latency, throughput at each concurrency, and RSS
// at each number of open sessions. CPU is read from /proc around each measured window, per process:
// the target's own process (the gateway), everything under it (the backends), and the driver.

import type { CallCounts, OpenResult, RunResult } from './driver.ts';
import { DriverProcess } from './driver-client.ts';
import type { DriverName } from './drivers/types.ts';
import type { Profile } from './options.ts';
import { descendants, treeCpu, treeRss } from './processes.ts';
import { median, percentile, sortedCopy } from './stats.ts';
import type { RunningTarget, TargetSpec } from './targets.ts';

/**
 * Every figure of one run of one target, by a dotted key: `setup.<driver>.p50` (ms),
 * `seq.<driver>.<p50|p90|p99>` (µs), `tput.<driver>.<sessions>.<rps|p99>`, `….cpu.<gateway|backends|driver>`
 * (µs per call), `rss.<sessions>` (bytes), and `<phase>.failed` / `<phase>.wrong` counts.
 */
export type FigureTable = Record<string, number>;

export interface TargetRun {
  figures: FigureTable;
  /** Wrong replies and failed calls, per phase. */
  problems: Array<{ phase: string; failed: number; wrong: number; errors: string[] }>;
  /** What was left out and why (levels not reached in time). */
  remarks: string[];
  /** Set when the target could not be measured to the end. */
  error?: string;
}

const JOB_TIMEOUT_MS = 180_000;

const started = Date.now();

function log(message: string): void {
  process.stderr.write(`  [${((Date.now() - started) / 1000).toFixed(1)} s] ${message}\n`);
}

export async function measureTarget(
  spec: TargetSpec,
  profile: Profile,
  deadline: number,
): Promise<TargetRun> {
  const result: TargetRun = { figures: {}, problems: [], remarks: [] };
  const driver = new DriverProcess();
  let target: RunningTarget | undefined;
  const note = (phase: string, counts: CallCounts) => {
    if (counts.failed || counts.wrong)
      result.problems.push({ phase, failed: counts.failed, wrong: counts.wrong, errors: counts.errors });
    result.figures[`${phase}.failed`] = counts.failed;
    result.figures[`${phase}.wrong`] = counts.wrong;
  };
  const remark = (text: string) => {
    result.remarks.push(text);
    log(`${spec.id}: ${text}`);
  };
  const ctx = { spec, profile, driver, note, remark, figures: result.figures };
  try {
    target = await spec.start();
    const drivers: DriverName[] = spec.id === 'bare-http' ? ['sdk', 'lean', 'fetch'] : ['sdk', 'lean'];
    for (const name of drivers) await setupPhase(ctx, target, name);
    for (const name of drivers) await sequentialPhase(ctx, target, name);
    for (const name of ['lean', 'sdk'] as const) {
      if (Date.now() > deadline) throw new Error('out of time');
      await throughputPhase(ctx, target, name);
    }
    // Memory starts from a fresh process, so "0 sessions" is what an idle target costs.
    await target.stop();
    target = undefined;
    if (Date.now() > deadline) throw new Error('out of time');
    target = await spec.start();
    await memoryPhase(ctx, target);
  } catch (error) {
    result.error = (error as Error).message.split('\n')[0];
    log(`${spec.id}: ${result.error}`);
  } finally {
    await driver.send({ op: 'disconnect' }, 30_000).catch(() => {});
    await driver.stop();
    await target?.stop();
  }
  return result;
}

interface Context {
  spec: TargetSpec;
  profile: Profile;
  driver: DriverProcess;
  note(phase: string, counts: CallCounts): void;
  remark(text: string): void;
  figures: FigureTable;
}

/** Sessions opened one after another: initialize + initialized + the first call, each then closed. */
async function setupPhase(ctx: Context, target: RunningTarget, name: DriverName): Promise<void> {
  await ctx.driver.send({ op: 'connect', target: target.ref, driver: name }, JOB_TIMEOUT_MS);
  const setup = await ctx.driver.send<{ setupMs: number[] } & CallCounts>(
    { op: 'setup', count: ctx.profile.setupSessions },
    JOB_TIMEOUT_MS,
  );
  await ctx.driver.send({ op: 'disconnect' }, JOB_TIMEOUT_MS);
  ctx.note(`setup.${name}`, setup);
  const sorted = sortedCopy(Float64Array.from(setup.setupMs));
  ctx.figures[`setup.${name}.p50`] = percentile(sorted, 50);
  ctx.figures[`setup.${name}.first`] = setup.setupMs[0] ?? Number.NaN;
  log(`${ctx.spec.id} setup ${name}: p50 ${percentile(sorted, 50).toFixed(1)} ms`);
}

async function sequentialPhase(ctx: Context, target: RunningTarget, name: DriverName): Promise<void> {
  await ctx.driver.send({ op: 'connect', target: target.ref, driver: name }, JOB_TIMEOUT_MS);
  try {
    const opened = await ctx.driver.send<OpenResult>(
      { op: 'open', count: 1, hold: name === 'sdk', concurrency: 1, withinMs: ctx.profile.phaseBudgetMs },
      JOB_TIMEOUT_MS,
    );
    if (opened.open < 1) throw new Error(`could not open a session: ${opened.errors[0] ?? ''}`);
    const run = await measuredRun(ctx, target, opened, {
      sessions: 1,
      warmupMs: ctx.profile.warmupMs,
      durationMs: 120_000,
      maxCalls: ctx.profile.sequentialCalls,
    });
    ctx.note(`seq.${name}`, run.counts);
    for (const [key, value] of Object.entries(run.figures)) ctx.figures[`seq.${name}.${key}`] = value;
    log(`${ctx.spec.id} sequential ${name}: p50 ${run.figures.p50?.toFixed(0)} µs`);
  } finally {
    await ctx.driver.send({ op: 'disconnect' }, JOB_TIMEOUT_MS);
  }
}

async function throughputPhase(ctx: Context, target: RunningTarget, name: DriverName): Promise<void> {
  const levels = ctx.profile.concurrency[name === 'sdk' ? 'sdk' : 'lean'].filter(
    (level) => !ctx.spec.processPerSession || level <= ctx.profile.processCap,
  );
  if (levels.length === 0) return;
  await ctx.driver.send({ op: 'connect', target: target.ref, driver: name }, JOB_TIMEOUT_MS);
  try {
    for (const level of levels) {
      const opened = await ctx.driver.send<OpenResult>(
        {
          op: 'open',
          count: level,
          hold: name === 'sdk',
          concurrency: 8,
          withinMs: ctx.profile.phaseBudgetMs,
        },
        JOB_TIMEOUT_MS,
      );
      ctx.note(`open.${name}.${level}`, opened);
      if (opened.outOfTime) {
        ctx.remark(
          `${name}: ${level} sessions not open within ${ctx.profile.phaseBudgetMs / 1000} s (${opened.open} were)`,
        );
        break;
      }
      if (opened.open < level)
        throw new Error(`opened ${opened.open} of ${level} sessions: ${opened.errors[0] ?? ''}`);
      const run = await measuredRun(ctx, target, opened, {
        sessions: level,
        warmupMs: ctx.profile.warmupMs,
        durationMs: ctx.profile.throughputMs,
        maxCalls: 2_000_000,
      });
      ctx.note(`tput.${name}.${level}`, run.counts);
      for (const [key, value] of Object.entries(run.figures))
        ctx.figures[`tput.${name}.${level}.${key}`] = value;
      log(
        `${ctx.spec.id} ${name} × ${level}: ${run.figures.rps?.toFixed(0)} calls/s, p99 ${run.figures.p99?.toFixed(0)} µs`,
      );
    }
  } finally {
    await ctx.driver.send({ op: 'disconnect' }, JOB_TIMEOUT_MS);
  }
}

/** Runs the driver's closed loop and reads every process's CPU at the start and end of its window. */
async function measuredRun(
  ctx: Context,
  target: RunningTarget,
  opened: OpenResult,
  job: { sessions: number; warmupMs: number; durationMs: number; maxCalls: number },
): Promise<{ figures: FigureTable; counts: CallCounts }> {
  const mainPid = target.pid;
  const backendPids = mainPid === undefined ? opened.backendPids : descendants(mainPid);
  let before = treeCpu(mainPid, backendPids);
  const run = await ctx.driver.send<RunResult>(
    { op: 'run', ...job },
    job.warmupMs + job.durationMs + JOB_TIMEOUT_MS,
    () => {
      before = treeCpu(mainPid, backendPids);
    },
  );
  const after = treeCpu(mainPid, backendPids);
  const calls = run.latenciesUs.length;
  const sorted = sortedCopy(run.latenciesUs);
  const perCallUs = (seconds: number) => (calls ? (seconds * 1e6) / calls : Number.NaN);
  return {
    counts: run,
    figures: {
      calls,
      rps: calls / (run.elapsedMs / 1_000),
      p50: percentile(sorted, 50),
      p90: percentile(sorted, 90),
      p99: percentile(sorted, 99),
      'cpu.gateway': mainPid === undefined ? Number.NaN : perCallUs(after.main - before.main),
      'cpu.backends': backendPids.length === 0 ? Number.NaN : perCallUs(after.rest - before.rest),
      'cpu.driver': calls ? run.cpuUs / calls : Number.NaN,
    },
  };
}

/** RSS of the target's whole tree with 0, 1, 10, … sessions open (each holding its stream, as clients do). */
async function memoryPhase(ctx: Context, target: RunningTarget): Promise<void> {
  const levels = ctx.profile.memoryLevels.filter(
    (level) => !ctx.spec.processPerSession || level <= ctx.profile.processCap,
  );
  await ctx.driver.send({ op: 'connect', target: target.ref, driver: 'lean' }, JOB_TIMEOUT_MS);
  let opened: OpenResult | undefined;
  for (const level of levels) {
    if (level > 0) {
      opened = await ctx.driver.send<OpenResult>(
        {
          op: 'open',
          count: level,
          hold: true,
          concurrency: ctx.spec.processPerSession ? 4 : 16,
          withinMs: ctx.profile.phaseBudgetMs,
        },
        JOB_TIMEOUT_MS,
      );
      ctx.note(`mem.open.${level}`, opened);
      if (opened.outOfTime) {
        ctx.remark(
          `memory: ${level} sessions not open within ${ctx.profile.phaseBudgetMs / 1000} s (${opened.open} were)`,
        );
        break;
      }
      if (opened.open < level)
        throw new Error(`opened ${opened.open} of ${level} sessions: ${opened.errors[0] ?? ''}`);
    }
    await sleep(ctx.profile.settleMs);
    const samples: number[] = [];
    let processes = 0;
    for (let i = 0; i < ctx.profile.rssSamples; i++) {
      if (i > 0) await sleep(200);
      const rss = rssOf(target, opened?.backendPids ?? []);
      samples.push(rss.bytes);
      processes = Math.max(processes, rss.processes);
    }
    ctx.figures[`rss.${level}`] = median(samples);
    ctx.figures[`rss.${level}.processes`] = processes;
    log(
      `${ctx.spec.id} ${level} sessions: ${((ctx.figures[`rss.${level}`] ?? 0) / 1_048_576).toFixed(1)} MiB in ${processes} processes`,
    );
  }
  // Every open session calls at once: concurrency without errors or crossed replies.
  const open = opened?.open ?? 0;
  if (open > 0) {
    const burst = await ctx.driver.send<CallCounts>(
      { op: 'burst', withinMs: ctx.profile.phaseBudgetMs },
      JOB_TIMEOUT_MS,
    );
    ctx.note(`burst.${open}`, burst);
    ctx.figures['burst.sessions'] = open;
  }
}

function rssOf(target: RunningTarget, driverPids: readonly number[]): { bytes: number; processes: number } {
  if (target.pid !== undefined) return treeRss(target.pid);
  if (driverPids.length === 0) return { bytes: Number.NaN, processes: 0 };
  // Direct stdio: the backend the driver started is the whole "tree".
  return driverPids.reduce(
    (sum, pid) => {
      const rss = treeRss(pid);
      return { bytes: sum.bytes + rss.bytes, processes: sum.processes + rss.processes };
    },
    { bytes: 0, processes: 0 },
  );
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
