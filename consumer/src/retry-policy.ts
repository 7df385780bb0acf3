// Where a failed task goes next (PROTOCOL §5, §7): the retry exchange for its retry count,
// or the dead-letter exchange once MAX_RETRIES retries are spent. More retries than delays reuse
// the last delay.
import type { BackoffPolicy } from '@task-pipeline/common';
import { HEADERS, retryExchangeName } from '@task-pipeline/rabbitmq/contract';

/**
 * How long a worker holds a message whose outcomes it could not publish before returning it to its
 * queue, by how many times this worker failed that message. Returned at once, a message was back
 * every few hundred ms while the cause (a full retry queue, an unbound route, a broker under strain)
 * was still there, and spent the work queue's delivery limit (20) within seconds: dead-lettered,
 * every task reported `error`, for a failure of the broker, not of the tasks (and where the broker
 * does not count a requeue towards the limit, RabbitMQ 4.3 on, it loops hot). Held, the 20 deliveries
 * take minutes (by the expected holds, ~170 s on one replica and ~70 s among three, each counting
 * only its own failures); meanwhile the message takes a prefetch slot, so a worker whose publishes
 * all fail slows its own intake.
 */
export const REQUEUE_BACKOFF: BackoffPolicy = { initialMs: 250, maxMs: 15_000 };

/** Messages whose failures a worker remembers; past it, the oldest are forgotten (their count restarts). */
export const REMEMBERED_FAILED_MESSAGES = 10_000;

/**
 * Failed publishes per message, by a key of the worker's choosing (queue, message id, retry count): the
 * count a message's next hold grows with. Counted per message, not per worker, so the messages that
 * still go through do not cut a failing one's hold short, and a burst of failures at once (a
 * publishing channel lost with hundreds of messages in hand) does not hold each for the longest.
 */
export class FailedMessages {
  readonly #counts = new Map<string, number>();

  constructor(private readonly limit = REMEMBERED_FAILED_MESSAGES) {}

  /** Counts one more failure of `key` and returns how many this worker has seen. */
  failed(key: string): number {
    const count = (this.#counts.get(key) ?? 0) + 1;
    this.#counts.delete(key);
    this.#counts.set(key, count);
    if (this.#counts.size > this.limit) {
      const oldest = this.#counts.keys().next();
      if (!oldest.done) this.#counts.delete(oldest.value);
    }
    return count;
  }

  /** The message went through (or is gone): its count is dropped. */
  settled(key: string): void {
    this.#counts.delete(key);
  }

  get size(): number {
    return this.#counts.size;
  }
}

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
