// Small, pure number helpers shared by the measures and the report.

/** Nearest-rank percentile (p in 0..100) of unsorted samples; NaN when there are none. */
export function percentile(samples: readonly number[], p: number): number {
  if (samples.length === 0) return Number.NaN;
  const sorted = [...samples].sort((a, b) => a - b);
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))] as number;
}

export function perSecond(count: number, elapsedMs: number): number {
  return elapsedMs > 0 ? (count * 1000) / elapsedMs : 0;
}

/** ours / theirs, or undefined when the baseline did nothing (no ratio to speak of). */
export function ratio(ours: number, theirs: number): number | undefined {
  return theirs > 0 && Number.isFinite(ours) ? ours / theirs : undefined;
}

/** 12345.6 → "12,346"; 12.34 → "12.3"; 0.123 → "0.12": enough digits to compare, no more. */
export function formatNumber(value: number | undefined): string {
  if (value === undefined || !Number.isFinite(value)) return '–';
  const abs = Math.abs(value);
  const digits = abs >= 100 ? 0 : abs >= 10 ? 1 : 2;
  return value.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: 0 });
}

export function formatRatio(value: number | undefined): string {
  if (value === undefined) return '–';
  return `${formatNumber(value)}×`;
}

export function formatBytes(bytes: number): string {
  return `${formatNumber(bytes / (1024 * 1024))} MiB`;
}

/**
 * Items per second past a warm-up, from each item's completion time (ms, any order): from the time
 * the `warmUp`-th item completed until the last one did or `windowMs` after the first (or `endAt`,
 * when earlier), counting the items completed in between. The first items carry the start (the first
 * batch, code not yet optimised), which weighs on a short run and not on a long one: past the same
 * warm-up, a small backlog and a large one compare like with like. Undefined when too few items
 * completed.
 */
export function rateAfterWarmUp(
  completedAt: readonly number[],
  warmUp: number,
  windowMs: number,
  endAt = Number.POSITIVE_INFINITY,
) {
  const times = [...completedAt].sort((a, b) => a - b);
  const from = times[warmUp - 1];
  const first = times[0];
  if (from === undefined || first === undefined || warmUp < 1) return undefined;
  const until = Math.min(times[times.length - 1] as number, first + windowMs, endAt);
  const count = times.filter((t) => t > from && t <= until).length;
  const elapsedMs = until - from;
  if (count === 0 || elapsedMs <= 0) return undefined;
  return { count, elapsedMs, perSecond: perSecond(count, elapsedMs) };
}

/**
 * The middle run of repeated ones by `key` (the lower middle of an even count); runs without a key
 * (a run too short to leave anything past its warm-up) rank below every run with one. One noisy run
 * cannot pick the figure, and the run returned is a real one, so every figure of it stays consistent.
 */
export function medianRun<T>(runs: readonly T[], key: (run: T) => number | undefined): T | undefined {
  const ranked = [...runs].sort(
    (a, b) => (key(a) ?? Number.NEGATIVE_INFINITY) - (key(b) ?? Number.NEGATIVE_INFINITY),
  );
  return ranked[Math.floor((ranked.length - 1) / 2)];
}
