// The load generator: a process of its own (forked by bench/run.ts) so its CPU is never counted as the
// target's. It takes one command at a time over IPC: connect a driver, open sessions, run a timed closed
// loop of echo calls, and answers with latencies, counts, wrong replies and its own CPU time.

import { randomBytes } from 'node:crypto';
import { legacySseConnector } from './drivers/legacy-sse.ts';
import { sdkConnector } from './drivers/sdk.ts';
import { stdioConnector } from './drivers/stdio.ts';
import { streamableConnector } from './drivers/streamable.ts';
import type { BenchSession, Connector, DriverName, TargetRef } from './drivers/types.ts';
import { websocketConnector } from './drivers/websocket.ts';

export type DriverCommand =
  | { op: 'connect'; target: TargetRef; driver: DriverName }
  | { op: 'setup'; count: number }
  | { op: 'open'; count: number; hold: boolean; concurrency: number; withinMs: number }
  | { op: 'run'; sessions: number; warmupMs: number; durationMs: number; maxCalls: number }
  | { op: 'burst'; withinMs: number }
  | { op: 'closeSessions' }
  | { op: 'disconnect' };

export interface CallCounts {
  ok: number;
  failed: number;
  /** Calls answered with another call's text. */
  wrong: number;
  /** A few distinct error messages, for the log. */
  errors: string[];
}

export interface RunResult extends CallCounts {
  /** Latency of every measured call, in microseconds. */
  latenciesUs: Float64Array;
  /** From the `mark` event to the last measured reply. */
  elapsedMs: number;
  /** This process's CPU time (user + system) over the same window. */
  cpuUs: number;
}

export interface OpenResult extends CallCounts {
  open: number;
  backendPids: number[];
  /** Set when `withinMs` ran out before `count` sessions were open. */
  outOfTime: boolean;
}

/** Calls a run may see fail before it gives up (a broken target must not spin for the whole window). */
const MAX_FAILURES = 2_000;

let connector: Connector | undefined;
let sessions: BenchSession[] = [];
const runId = randomBytes(3).toString('hex');
let callSeq = 0;

/** Text no other call carries, so a reply with someone else's text is caught. */
function uniqueText(session: number): string {
  return `${runId}:${session}:${++callSeq}`;
}

function counts(): CallCounts {
  return { ok: 0, failed: 0, wrong: 0, errors: [] };
}

function noteError(tally: CallCounts, error: unknown): void {
  tally.failed++;
  const message = error instanceof Error ? error.message : String(error);
  if (tally.errors.length < 5 && !tally.errors.includes(message)) tally.errors.push(message.slice(0, 300));
}

async function checkedCall(session: BenchSession, index: number, tally: CallCounts): Promise<void> {
  const text = uniqueText(index);
  try {
    const reply = await session.echo(text);
    if (reply === text) tally.ok++;
    else tally.wrong++;
  } catch (error) {
    noteError(tally, error);
  }
}

function makeConnector(target: TargetRef, driver: DriverName): Connector {
  if (target.transport === 'stdio') {
    // Throughput over stdio shares one process (the backend's ceiling); setup uses a fresh one per session.
    return driver === 'sdk' ? sdkConnector(target, true) : stdioConnector(target.command, target.args, true);
  }
  if (driver === 'sdk') return sdkConnector(target, false);
  if (target.transport === 'sse') return legacySseConnector(target.url);
  if (target.transport === 'websocket') return websocketConnector(target.url);
  if (target.transport === 'stateless')
    return streamableConnector(target.url, driver === 'fetch' ? 'fetch' : 'lean', 'stateless');
  return streamableConnector(target.url, driver === 'fetch' ? 'fetch' : 'lean');
}

let currentTarget: { target: TargetRef; driver: DriverName } | undefined;

async function setup(count: number): Promise<{ setupMs: number[] } & CallCounts> {
  if (!currentTarget) throw new Error('connect first');
  const { target, driver } = currentTarget;
  // Over stdio a session is a process of its own, so setup starts one each time.
  const fresh =
    target.transport === 'stdio'
      ? driver === 'sdk'
        ? sdkConnector(target, false)
        : stdioConnector(target.command, target.args, false)
      : (connector as Connector);
  const tally = counts();
  const setupMs: number[] = [];
  try {
    for (let i = 0; i < count; i++) {
      const started = performance.now();
      try {
        const session = await fresh.open({ hold: false });
        await checkedCall(session, i, tally);
        setupMs.push(performance.now() - started);
        await session.close();
      } catch (error) {
        noteError(tally, error);
      }
    }
  } finally {
    if (fresh !== connector) await fresh.close();
  }
  return { setupMs, ...tally };
}

async function open(
  count: number,
  hold: boolean,
  concurrency: number,
  withinMs: number,
): Promise<OpenResult> {
  if (!connector) throw new Error('connect first');
  const tally = counts();
  const wanted = count - sessions.length;
  const deadline = performance.now() + withinMs;
  let next = 0;
  let outOfTime = false;
  const worker = async () => {
    while (next < wanted && tally.failed < MAX_FAILURES) {
      if (performance.now() > deadline) {
        outOfTime = true;
        return;
      }
      next++;
      try {
        const session = await (connector as Connector).open({ hold });
        sessions.push(session);
        // The first call belongs to opening: a lazy gateway starts its backend only now.
        await checkedCall(session, sessions.length, tally);
      } catch (error) {
        noteError(tally, error);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(concurrency, wanted)) }, worker));
  return { open: sessions.length, backendPids: connector.pids(), outOfTime, ...tally };
}

async function run(command: Extract<DriverCommand, { op: 'run' }>): Promise<RunResult> {
  const active = sessions.slice(0, command.sessions);
  if (active.length < command.sessions) throw new Error(`only ${active.length} sessions are open`);
  const tally = counts();
  const latencies = new Float64Array(command.maxCalls);
  let measured = 0;
  let phase: 'warm' | 'measure' | 'stop' = 'warm';
  let markedAt = 0;
  let cpuAtMark = process.cpuUsage();
  let endTimer: NodeJS.Timeout | undefined;
  const markTimer = setTimeout(() => {
    phase = 'measure';
    markedAt = performance.now();
    cpuAtMark = process.cpuUsage();
    process.send?.({ event: 'mark' });
    endTimer = setTimeout(() => {
      phase = 'stop';
    }, command.durationMs);
  }, command.warmupMs);
  const worker = async (session: BenchSession, index: number) => {
    while (phase !== 'stop' && tally.failed < MAX_FAILURES) {
      const counted = phase === 'measure';
      if (counted && measured >= command.maxCalls) {
        phase = 'stop';
        break;
      }
      const slot = counted ? measured++ : -1;
      const started = performance.now();
      await checkedCall(session, index, counted ? tally : counts());
      if (slot >= 0) latencies[slot] = (performance.now() - started) * 1_000;
    }
  };
  await Promise.all(active.map(worker));
  clearTimeout(markTimer);
  clearTimeout(endTimer);
  if (markedAt === 0) throw new Error('the run failed before its measured window began');
  const cpu = process.cpuUsage(cpuAtMark);
  return {
    ...tally,
    latenciesUs: latencies.slice(0, measured),
    elapsedMs: performance.now() - markedAt,
    cpuUs: cpu.user + cpu.system,
  };
}

/** One call on every open session at once; calls still unanswered after `withinMs` count as failed. */
async function burst(withinMs: number): Promise<CallCounts> {
  const tally = counts();
  let answered = 0;
  let timer: NodeJS.Timeout | undefined;
  const calls = Promise.all(
    sessions.map((session, index) => checkedCall(session, index, tally).finally(() => answered++)),
  );
  const late = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, withinMs);
  });
  await Promise.race([calls, late]);
  clearTimeout(timer);
  const unanswered = sessions.length - answered;
  if (unanswered > 0) {
    tally.failed += unanswered;
    tally.errors.push(`${unanswered} calls unanswered after ${withinMs} ms`);
  }
  return { ...tally, errors: [...tally.errors] };
}

async function closeSessions(): Promise<void> {
  const closing = sessions;
  sessions = [];
  // In batches, so a thousand DELETEs do not all land at once.
  for (let i = 0; i < closing.length; i += 50)
    await Promise.all(closing.slice(i, i + 50).map((s) => s.close()));
}

async function handle(command: DriverCommand): Promise<unknown> {
  switch (command.op) {
    case 'connect':
      if (connector) throw new Error('already connected');
      currentTarget = { target: command.target, driver: command.driver };
      connector = makeConnector(command.target, command.driver);
      return {};
    case 'setup':
      return setup(command.count);
    case 'open':
      return open(command.count, command.hold, command.concurrency, command.withinMs);
    case 'run':
      return run(command);
    case 'burst':
      return burst(command.withinMs);
    case 'closeSessions':
      await closeSessions();
      return {};
    case 'disconnect':
      await closeSessions();
      await connector?.close();
      connector = undefined;
      currentTarget = undefined;
      return {};
  }
}

process.on('message', (message: { seq: number; command: DriverCommand }) => {
  handle(message.command).then(
    (data) => process.send?.({ seq: message.seq, ok: true, data }),
    (error: unknown) =>
      process.send?.({
        seq: message.seq,
        ok: false,
        error: error instanceof Error ? error.message : String(error),
      }),
  );
});
// The parent going away (even killed) ends this process, and with it any stdio backend it started.
process.on('disconnect', () => {
  void (connector?.close() ?? Promise.resolve()).finally(() => process.exit(0));
  setTimeout(() => process.exit(0), 3_000).unref();
});
