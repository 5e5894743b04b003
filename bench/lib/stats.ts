/** Small statistics over repeated runs: medians and same-run ratios. */

/** The median of `values` (mean of the middle two for an even count); NaN when empty. */
export function median(values: number[]): number {
  const finite = values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
  if (finite.length === 0) return Number.NaN;
  const mid = Math.floor(finite.length / 2);
  return finite.length % 2 === 1 ? finite[mid] : (finite[mid - 1] + finite[mid]) / 2;
}

/** ours / reference; NaN when the reference is zero or missing. */
export function ratio(ours: number, reference: number): number {
  return reference > 0 && Number.isFinite(ours) ? ours / reference : Number.NaN;
}

export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
