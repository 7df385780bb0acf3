// How the reporter treats each reply of the producer's batch route (PROTOCOL §7), and how it narrows
// down a batch the producer keeps refusing. Pure.

/**
 * - `ok`: read the per-item results.
 * - `split`: 413, the body was too large; send halves.
 * - `stop`: 401/403, other 4xx and a redirect (3xx: PRODUCER_URL names something else, which the
 *   client does not follow) mean misconfiguration (token, URL, version): stop consuming, report
 *   not-ready, probe again later; never drop or park a batch for it.
 * - `unavailable`: the producer (or a proxy in front of it) cannot answer now: network errors, 408, 429,
 *   502, 503, 504. Back off and send the same reports again, however long it takes.
 * - `refused`: the producer failed on this request (500, another 5xx, an answer that does not match the
 *   reports): something in the batch may be to blame. Back off and send again; after repeated refusals
 *   the batch is split to find the report that fails it (see nextBatchSize).
 */
export type RequestClass = 'ok' | 'split' | 'stop' | 'unavailable' | 'refused';

const UNAVAILABLE = new Set([408, 429, 502, 503, 504]);

export function classifyRequest(status: number): RequestClass {
  if (status >= 200 && status < 300) return 'ok';
  if (status === 413) return 'split';
  if (UNAVAILABLE.has(status)) return 'unavailable';
  if (status >= 300 && status < 500) return 'stop';
  return 'refused';
}

/**
 * - `ack`: 200 (applied, same-status no-op, or stale) and 409 (a refused transition: the task's
 *   result is already decided).
 * - `park`: 400/404 and other 4xx: this report can never be applied; keep it for a human.
 * - `refused`: anything else (a 5xx for one item): send again, park after repeated refusals.
 */
export type ItemClass = 'ack' | 'park' | 'refused';

export function classifyItem(status: number): ItemClass {
  if ((status >= 200 && status < 300) || status === 409) return 'ack';
  if (status >= 400 && status < 500) return 'park';
  return 'refused';
}

export interface SplitPolicy {
  /** Full-size requests refused in a row before the batch is halved. */
  refusalsBeforeSplit: number;
}

/**
 * How many reports the next request takes, given how often the oldest waiting report was refused:
 * the full batch until `refusalsBeforeSplit`, then half as many per further refusal, down to one. One
 * bad report in a batch therefore stops its neighbours only for a few requests: the halves without it
 * go through, the halves with it keep shrinking until it travels alone (and is parked: shouldPark).
 */
export function nextBatchSize(batchSize: number, refusals: number, policy: SplitPolicy): number {
  const halvings = refusals - policy.refusalsBeforeSplit + 1;
  if (halvings <= 0) return batchSize;
  return Math.max(1, Math.floor(batchSize / 2 ** Math.min(halvings, 30)));
}

/** A report refused this many times while it travelled alone can never be applied: park it. */
export function shouldPark(refusalsAlone: number, policy: SplitPolicy): boolean {
  return refusalsAlone >= policy.refusalsBeforeSplit;
}
