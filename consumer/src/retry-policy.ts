// Where a failed task goes next (PROTOCOL §5, §7): the retry exchange for its retry count,
// or the dead-letter exchange once MAX_RETRIES retries are spent. More retries than delays reuse
// the last delay.
import type { BackoffPolicy } from '@task-pipeline/common';
import { HEADERS, retryExchangeName } from '@task-pipeline/rabbitmq/contract';

/**
 * How long a worker holds a message whose outcomes it could not publish before returning it to its
 * queue, by the worker's consecutive failed messages. Returned at once, a message would be back in
 * milliseconds while the cause (a full retry queue, an unbound route, a broker under strain) is
 * still there, and spend the work queue's delivery limit (20) in a second: dead-lettered, every
 * task reported `error`, for a failure of the broker, not of the tasks (or, where the broker does
 * not count requeues towards the limit, loop hot). Held, the limit lasts minutes; meanwhile the held
 * message takes a prefetch slot, so a worker whose publishes all fail slows its own intake.
 */
export const REQUEUE_BACKOFF: BackoffPolicy = { initialMs: 250, maxMs: 15_000 };

export interface RetryPolicy {
  maxRetries: number;
  retryDelaysSeconds: readonly number[];
}

export type RetryDecision =
  | { kind: 'retry'; exchange: string; delaySeconds: number; nextRetryCount: number }
  | { kind: 'dead-letter' };

/** `retryCount` is the number of retries already made (the message's `x-retry-count`). */
export function decideRetry(policy: RetryPolicy, retryCount: number): RetryDecision {
  if (retryCount >= policy.maxRetries) return { kind: 'dead-letter' };
  const delays = policy.retryDelaysSeconds;
  const delaySeconds = delays[Math.min(retryCount, delays.length - 1)];
  if (delaySeconds === undefined) return { kind: 'dead-letter' };
  return {
    kind: 'retry',
    exchange: retryExchangeName(delaySeconds),
    delaySeconds,
    nextRetryCount: retryCount + 1,
  };
}

/**
 * The retries already made, from the `x-retry-count` header. Anything but a non-negative integer
 * counts as 0: a message is never dropped for a header it did not need.
 */
export function readRetryCount(headers: Record<string, unknown> | undefined): number {
  const raw = headers?.[HEADERS.retryCount];
  const value = typeof raw === 'string' ? Number(raw) : raw;
  return typeof value === 'number' && Number.isInteger(value) && value >= 0 ? value : 0;
}
