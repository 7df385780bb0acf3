// How long dispatch and processing stood still while a broker node was down: pure, from the poller's
// samples (one a second), so the rule is unit-tested without a cluster.

export interface ProgressSample {
  /** When the sample was taken (ms, any clock the window uses too). */
  atMs: number;
  /** Dispatches so far: the sum of every task's attempts (each claim and redrive adds one). */
  dispatched: number;
  /** Tasks in `success` or `error`. */
  finished: number;
  /** Tasks waiting to be dispatched, and dispatched but not finished. */
  waiting: number;
  sent: number;
}

/**
 * The longest span inside [fromMs, toMs] between two samples where `key` grew, counting from the
 * window's start: 0 when it grew at every sample. A sample with nothing to do (no task waiting, for
 * dispatch; none waiting or sent, for processing) counts as progress: standing still then is no stall.
 * The resolution is the sampling interval; a stall still running at the window's end counts up to
 * the last sample inside it.
 */
export function longestStall(
  samples: readonly ProgressSample[],
  key: 'dispatched' | 'finished',
  fromMs: number,
  toMs: number,
): number {
  const sorted = [...samples].sort((a, b) => a.atMs - b.atMs);
  const before = sorted.filter((s) => s.atMs <= fromMs).at(-1);
  const inside = sorted.filter((s) => s.atMs > fromMs && s.atMs <= toMs);
  if (inside.length === 0) return 0;
  let previous = before?.[key] ?? (inside[0] as ProgressSample)[key];
  let lastGrowth = fromMs;
  let longest = 0;
  const idle = (s: ProgressSample) => (key === 'dispatched' ? s.waiting === 0 : s.waiting + s.sent === 0);
  for (const sample of inside) {
    if (sample[key] > previous || idle(sample)) {
      longest = Math.max(longest, sample.atMs - lastGrowth);
      lastGrowth = sample.atMs;
    }
    previous = Math.max(previous, sample[key]);
  }
  return Math.max(longest, (inside.at(-1) as ProgressSample).atMs - lastGrowth);
}

/** How much `key` grew inside [fromMs, toMs]: work done while a node was down. */
export function growth(
  samples: readonly ProgressSample[],
  key: 'dispatched' | 'finished',
  fromMs: number,
  toMs: number,
): number {
  const sorted = [...samples].sort((a, b) => a.atMs - b.atMs);
  const at = (t: number) => sorted.filter((s) => s.atMs <= t).at(-1)?.[key];
  const start = at(fromMs) ?? sorted.find((s) => s.atMs > fromMs)?.[key] ?? 0;
  return Math.max(0, (at(toMs) ?? start) - start);
}
