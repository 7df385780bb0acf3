// The targets the summary checks, and the checks themselves: pure, so a verdict in BENCHMARKS.md is
// tested rather than eyeballed. Ratios are ours ÷ theirs, measured in the same run.

export const TARGETS = {
  /** Dispatcher ÷ the naive loop of seed 002. */
  dispatchVsNaive: 50,
  /** Dispatcher ÷ raw confirmed publishes to the same quorum queue (the broker's ceiling). */
  dispatchVsRaw: 0.6,
  /** Drain ÷ pg-boss 12 at its best; the aim is past it and past graphile-worker. */
  drainVsPgBoss: 0.65,
  drainAim: 1,
  /** CPU per task in the drain, every process together (the broker and the database included). */
  cpuMicrosPerTask: 120,
  /** API ÷ the naive route. */
  apiVsNaive: 1,
  apiAim: 2,
  /** Create → success at 1,000 creates/s. */
  latencyP50Ms: 10,
  latencyP99Ms: 30,
  /** Peak RSS during the drain. */
  producerRssMiB: 150,
  consumerRssMiB: 120,
  /** Dispatch and drain at the largest backlog within this fraction of the smallest's figures. */
  flatWithin: 0.1,
} as const;

export type Verdict = '✅' | '❌' | '–';

/** ✅ when `value` reached `target`; – when there is nothing to judge (a part failed). */
export function atLeast(value: number | undefined, target: number): Verdict {
  if (value === undefined || !Number.isFinite(value)) return '–';
  return value >= target ? '✅' : '❌';
}

/** ✅ when `value` stayed at or under `limit`. */
export function atMost(value: number | undefined, limit: number): Verdict {
  if (value === undefined || !Number.isFinite(value)) return '–';
  return value <= limit ? '✅' : '❌';
}

/** large ÷ small, and whether it lies within `within` of 1 (flat with the backlog). */
export function flatness(
  small: number | undefined,
  large: number | undefined,
  within: number = TARGETS.flatWithin,
): { ratio: number | undefined; verdict: Verdict } {
  if (small === undefined || large === undefined || !(small > 0) || !Number.isFinite(large)) {
    return { ratio: undefined, verdict: '–' };
  }
  const ratio = large / small;
  // The epsilon keeps a ratio of exactly 1 ± within (0.9 = 9/10, in floating point) inside.
  return { ratio, verdict: Math.abs(ratio - 1) <= within + 1e-9 ? '✅' : '❌' };
}
