// Small statistics: percentiles of one run's latencies, and the median and spread of a figure over runs.

/** The p-th percentile (0–100) by nearest rank; NaN for no values. */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank] as number;
}

export function sortedCopy(values: Float64Array): Float64Array {
  return Float64Array.from(values).sort();
}

export function median(values: readonly number[]): number {
  const finite = values.filter(Number.isFinite).sort((a, b) => a - b);
  if (finite.length === 0) return Number.NaN;
  const middle = Math.floor(finite.length / 2);
  return finite.length % 2
    ? (finite[middle] as number)
    : ((finite[middle - 1] as number) + (finite[middle] as number)) / 2;
}

/** A figure over several runs: its median, and how far the runs lie from each other. */
export interface Summary {
  median: number;
  min: number;
  max: number;
  runs: number;
}

export function summarize(values: readonly number[]): Summary {
  const finite = values.filter(Number.isFinite);
  return {
    median: median(finite),
    min: finite.length ? Math.min(...finite) : Number.NaN,
    max: finite.length ? Math.max(...finite) : Number.NaN,
    runs: finite.length,
  };
}

/** Half the range as a share of the median (±%), the spread shown next to each median. */
export function spreadPercent(summary: Summary): number {
  if (summary.runs < 2 || !summary.median) return Number.NaN;
  return ((summary.max - summary.min) / 2 / Math.abs(summary.median)) * 100;
}
