// The figures of all runs, as the report reads them: medians and spreads by target and key, the floors a
// figure is compared with, the best peer, and how a number is written in a table cell.

import type { TargetRun } from './measure.ts';
import { type Summary, spreadPercent, summarize } from './stats.ts';
import type { TargetSpec } from './targets.ts';

export type Unit = 'us' | 'ms' | 'rps' | 'bytes' | 'count';
/** How a target's figure compares with the floor: the floor's own value, or none for this target. */
export type FloorOf = (target: TargetSpec, key: string) => number | undefined;

export class Figures {
  readonly #specs: readonly TargetSpec[];
  readonly #runs: ReadonlyMap<string, TargetRun[]>;

  constructor(specs: readonly TargetSpec[], runs: ReadonlyMap<string, TargetRun[]>) {
    this.#specs = specs;
    this.#runs = runs;
  }

  get specs(): readonly TargetSpec[] {
    return this.#specs;
  }

  summary(targetId: string, key: string): Summary {
    return summarize((this.#runs.get(targetId) ?? []).map((run) => run.figures[key] ?? Number.NaN));
  }

  value(targetId: string, key: string): number {
    return this.summary(targetId, key).median;
  }

  /** The best median among the peers (lowest, or highest when `higherIsBetter`). */
  bestPeer(key: string, higherIsBetter: boolean): number {
    const values = this.#specs
      .filter((spec) => spec.group === 'peer')
      .map((spec) => this.value(spec.id, key))
      .filter(Number.isFinite);
    if (values.length === 0) return Number.NaN;
    return higherIsBetter ? Math.max(...values) : Math.min(...values);
  }

  runsOf(targetId: string): TargetRun[] {
    return this.#runs.get(targetId) ?? [];
  }
}

// --- Formatting -------------------------------------------------------------------------------------

export function formatValue(value: number, unit: Unit): string {
  if (!Number.isFinite(value)) return '—';
  switch (unit) {
    case 'us':
      return value >= 1_000 ? `${(value / 1_000).toFixed(2)} ms` : `${value.toFixed(0)} µs`;
    case 'ms':
      return `${value.toFixed(value >= 100 ? 0 : 1)} ms`;
    case 'rps':
      return Math.round(value).toLocaleString('en-US');
    case 'bytes':
      return value >= 2 ** 20 ? `${(value / 2 ** 20).toFixed(1)} MiB` : `${(value / 1_024).toFixed(0)} KiB`;
    case 'count':
      return String(Math.round(value));
  }
}

export function ratio(value: number, reference: number | undefined): string {
  if (reference === undefined || !Number.isFinite(value) || !Number.isFinite(reference) || reference === 0)
    return '—';
  const r = value / reference;
  return `${r >= 10 ? r.toFixed(0) : r.toFixed(2)}×`;
}

/** "median ±spread" and, under it, "× floor · × best peer". */
export function cell(
  figures: Figures,
  spec: TargetSpec,
  key: string,
  unit: Unit,
  floor: FloorOf | undefined,
  higherIsBetter: boolean,
): string {
  const summary = figures.summary(spec.id, key);
  if (!Number.isFinite(summary.median)) return '—';
  const spread = spreadPercent(summary);
  const main = `${formatValue(summary.median, unit)}${Number.isFinite(spread) ? ` ±${spread.toFixed(0)}%` : ''}`;
  if (!floor) return main;
  const floorValue = spec.group === 'floor' ? undefined : floor(spec, key);
  const peer = spec.group === 'peer' ? undefined : figures.bestPeer(key, higherIsBetter);
  return `${main}<br><sub>${ratio(summary.median, floorValue)} · ${ratio(summary.median, peer)}</sub>`;
}

/** A markdown table; numbers are right-aligned, and `left` names the columns of text. */
export function table(header: string[], rows: string[][], left: readonly number[] = [0]): string {
  const align = header.map((_, i) => (left.includes(i) ? '---' : '---:'));
  return [header, align, ...rows].map((row) => `| ${row.join(' | ')} |`).join('\n');
}

export function finite(value: number): number | undefined {
  return Number.isFinite(value) ? value : undefined;
}

// --- Floors -----------------------------------------------------------------------------------------

/** Latency and CPU of a gateway cannot beat one HTTP round trip plus one stdio round trip. */
export function sumOfFloors(figures: Figures): FloorOf {
  return (_spec, key) => {
    const http = figures.value('bare-http', key);
    const stdio = figures.value('stdio', key.replace('.fetch.', '.sdk.'));
    return Number.isFinite(http) && Number.isFinite(stdio) ? http + stdio : undefined;
  };
}

/**
 * Throughput of the two floors in series: every call makes one HTTP round trip and one stdio round trip,
 * whose times (and, on a saturated machine, whose CPU) add up: 1 / (1/http + 1/stdio).
 */
export function seriesFloor(figures: Figures): FloorOf {
  return (_spec, key) => {
    const http = figures.value('bare-http', key);
    const stdio = figures.value('stdio', key);
    return Number.isFinite(http) && Number.isFinite(stdio) ? 1 / (1 / http + 1 / stdio) : undefined;
  };
}

// --- Across sections ---------------------------------------------------------------------------------

export function perExtraSession(figures: Figures, id: string, levels: readonly number[]): number | undefined {
  const measured = levels.filter((n) => n > 1 && Number.isFinite(figures.value(id, `rss.${n}`)));
  const top = measured[measured.length - 1];
  const one = figures.value(id, 'rss.1');
  if (top === undefined || !Number.isFinite(one)) return undefined;
  return (figures.value(id, `rss.${top}`) - one) / (top - 1);
}

export function processesAtTop(figures: Figures, id: string, levels: readonly number[]): number {
  const counts = levels.map((n) => figures.value(id, `rss.${n}.processes`)).filter(Number.isFinite);
  return counts.length ? Math.max(...counts) : Number.NaN;
}

/** Failed calls and wrong replies over all phases and runs, and what went wrong. */
export function problemsOf(figures: Figures, id: string): { failed: number; wrong: number; notes: string[] } {
  let failed = 0;
  let wrong = 0;
  const notes = new Set<string>();
  for (const run of figures.runsOf(id)) {
    for (const problem of run.problems) {
      failed += problem.failed;
      wrong += problem.wrong;
      for (const error of problem.errors) notes.add(`${problem.phase}: ${error}`);
    }
    for (const remark of run.remarks ?? []) notes.add(remark);
    if (run.error) notes.add(`stopped: ${run.error}`);
  }
  return { failed, wrong, notes: [...notes].slice(0, 6) };
}
