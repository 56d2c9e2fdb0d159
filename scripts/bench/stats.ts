/** Small statistics helpers: medians and nearest-rank percentiles. */

export function percentile(xs: readonly number[], p: number): number {
  if (xs.length === 0) return Number.NaN;
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

export const median = (xs: readonly number[]) => percentile(xs, 50);

export const round = (x: number, digits = 1) => Math.round(x * 10 ** digits) / 10 ** digits;
