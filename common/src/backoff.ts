// How long to hold back after failures, one rule for every retry loop of both services: pure, so it is
// unit-tested without timers.

export interface BackoffPolicy {
  initialMs: number;
  maxMs: number;
}

/**
 * Exponential delay for the n-th consecutive failure (n ≥ 1), with jitter on the upper half so that
 * replicas failing together do not retry together, and never instantly.
 */
export function backoffMs(
  failures: number,
  policy: BackoffPolicy,
  random: () => number = Math.random,
): number {
  if (failures < 1) return 0;
  const exponent = Math.min(failures - 1, 30);
  const ceiling = Math.min(policy.maxMs, policy.initialMs * 2 ** exponent);
  return Math.round(ceiling / 2 + (random() * ceiling) / 2);
}
