// Where a failed task goes next (PROTOCOL §5, §7): the retry exchange for its retry count,
// or the dead-letter exchange once MAX_RETRIES retries are spent. More retries than delays reuse
// the last delay.
import { HEADERS, retryExchangeName } from '@task-pipeline/rabbitmq/contract';

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
