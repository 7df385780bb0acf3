// How long to hold back after failures: pure, so the policy is unit-tested without timers.

export interface BackoffPolicy {
  initialMs: number;
  maxMs: number;
}

/** After a failed publish the task's lease is pushed out by this much (CONTRACT §6.3: no hot loop). */
export const PUBLISH_FAILURE_BACKOFF: BackoffPolicy = { initialMs: 250, maxMs: 30_000 };
/** Between attempts to reach PostgreSQL after a claim or record failed. */
export const DATABASE_BACKOFF: BackoffPolicy = { initialMs: 100, maxMs: 5_000 };

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
