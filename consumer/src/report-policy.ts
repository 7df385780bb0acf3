// How the reporter treats each reply of the producer's batch route (CONTRACT §7). Pure.
import { jitter } from '@task-pipeline/rabbitmq';

/**
 * - `ok`: read the per-item results.
 * - `split`: 413, the body was too large; send halves.
 * - `stop`: 401/403 and other 4xx mean misconfiguration (token, URL, version): stop consuming and
 *   report not-ready; never drop or park a batch for it.
 * - `retry`: 5xx, network, and the transient 4xx (408, 429): back off, keep the messages unacked.
 */
export type RequestClass = 'ok' | 'split' | 'stop' | 'retry';

export function classifyRequest(status: number): RequestClass {
  if (status >= 200 && status < 300) return 'ok';
  if (status === 413) return 'split';
  if (status === 408 || status === 429) return 'retry';
  if (status >= 400 && status < 500) return 'stop';
  return 'retry';
}

/**
 * - `ack`: 200 (applied, same-status no-op, or stale) and 409 (a refused transition: the task's
 *   result is already decided).
 * - `park`: 400/404 and other 4xx: this report can never be applied; keep it for a human.
 * - `retry`: anything else (a 5xx for one item).
 */
export type ItemClass = 'ack' | 'park' | 'retry';

export function classifyItem(status: number): ItemClass {
  if ((status >= 200 && status < 300) || status === 409) return 'ack';
  if (status >= 400 && status < 500) return 'park';
  return 'retry';
}

export interface BackoffPolicy {
  initialMs: number;
  maxMs: number;
}

/** Exponential in the number of consecutive failures (1 = the first), capped, jittered. */
export function backoffDelay(policy: BackoffPolicy, failures: number, random: () => number = Math.random) {
  const exponent = Math.max(0, failures - 1);
  return jitter(Math.min(policy.maxMs, policy.initialMs * 2 ** Math.min(exponent, 30)), random);
}
