// Group commit for single requests: the calls that arrive together go to the database as one
// statement, so N concurrent requests cost one round trip and one commit instead of N. Bounded both
// ways: a batch that does not settle in time gives up its slot, and calls beyond the waiting room are
// refused at once, so a database that stops answering costs requests a quick error, not a hang.

export interface CoalesceOptions {
  /** The most items one call of `run` receives. */
  maxBatch: number;
  /**
   * Calls of `run` allowed in flight at once. Calls that arrive while all are busy wait and go out
   * together when one returns: under load, batches grow by themselves instead of queueing for
   * connections of the pool.
   */
  maxInFlight: number;
  /** Calls allowed to wait for a slot; one more fails at once with CoalesceQueueFullError (default: no bound). */
  maxWaiting?: number;
  /**
   * A batch that has not settled this long after it left fails its calls with CoalesceDeadlineError,
   * its `run` is aborted (through the signal) and its slot is free again: a `run` that never settles
   * (a query postgres.js leaves pending forever) must not hold a slot for good. Without one, a batch
   * takes as long as `run` does (which must then bound itself).
   */
  deadlineMs?: number;
  /**
   * Failures of `run` that mean the database did not answer in time (a server-side statement or lock
   * timeout), which count like a missed deadline in `stats().stalled`.
   */
  isTimeout?: (err: unknown) => boolean;
  /** Monotonic milliseconds; performance.now() unless a test drives the clock. */
  now?: () => number;
}

/** Where requests stand; `stalled` is what readiness reports. */
export interface CoalesceStats {
  /** Calls waiting for a slot. */
  waiting: number;
  /** Batches in flight. */
  inFlight: number;
  /** How long the oldest waiting call has waited, in ms (0 when none waits). */
  oldestWaitingMs: number;
  /** How long the oldest batch in flight has run, in ms (0 when none runs). */
  oldestInFlightMs: number;
  /** Batches that ended by their deadline or by a timeout of the database since start. */
  timedOut: number;
  /**
   * Requests are not moving: a call has waited longer than a batch may take, or a batch timed out less
   * than a deadline ago and none has succeeded since. (A batch never runs longer than the deadline.)
   */
  stalled: boolean;
}

export interface Coalesced<I, O> {
  (item: I): Promise<O>;
  stats(): CoalesceStats;
}

export class CoalesceQueueFullError extends Error {
  readonly code = 'COALESCE_QUEUE_FULL';

  constructor(maxWaiting: number) {
    super(`${maxWaiting} requests are already waiting for the database`);
    this.name = 'CoalesceQueueFullError';
  }
}

export class CoalesceDeadlineError extends Error {
  readonly code = 'COALESCE_DEADLINE';

  constructor(deadlineMs: number) {
    super(`the database did not answer within ${deadlineMs} ms`);
    this.name = 'CoalesceDeadlineError';
  }
}

interface Waiting<I, O> {
  item: I;
  since: number;
  resolve: (output: O) => void;
  reject: (err: unknown) => void;
}

/**
 * Wraps `run` (items → one output per item, in the same order) into a function of one item. The calls
 * of one event-loop turn are gathered (a lone call waits for nothing but the end of the turn); a
 * failure of `run` rejects every call of its batch. `run` gets a signal that aborts at the deadline.
 */
export function coalesce<I, O>(
  run: (items: readonly I[], signal: AbortSignal) => Promise<readonly O[]>,
  options: CoalesceOptions,
): Coalesced<I, O> {
  const {
    maxBatch,
    maxInFlight,
    maxWaiting = Number.POSITIVE_INFINITY,
    deadlineMs = Number.POSITIVE_INFINITY,
    isTimeout = () => false,
  } = options;
  const now = options.now ?? (() => performance.now());
  let queue: Waiting<I, O>[] = [];
  /** Start times of the batches in flight. */
  const inFlight = new Set<{ since: number }>();
  let scheduled = false;
  let timedOut = 0;
  let lastTimeoutAt = Number.NEGATIVE_INFINITY;
  let lastSuccessAt = Number.NEGATIVE_INFINITY;

  function schedule(): void {
    if (scheduled || queue.length === 0 || inFlight.size >= maxInFlight) return;
    scheduled = true;
    setImmediate(flush);
  }

  function flush(): void {
    scheduled = false;
    while (queue.length > 0 && inFlight.size < maxInFlight) {
      const batch = queue.slice(0, maxBatch);
      queue = queue.slice(maxBatch);
      const slot = { since: now() };
      inFlight.add(slot);
      void send(batch).finally(() => {
        inFlight.delete(slot);
        schedule();
      });
    }
  }

  /** Settles every call of the batch exactly once: with the outputs, the failure or the deadline. */
  async function send(batch: Waiting<I, O>[]): Promise<void> {
    const abort = new AbortController();
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<'deadline'>((resolve) => {
      if (!Number.isFinite(deadlineMs)) return;
      timer = setTimeout(() => resolve('deadline'), deadlineMs);
      timer.unref();
    });
    const ran = run(
      batch.map((w) => w.item),
      abort.signal,
    ).then(
      (outputs) => ({ outputs }),
      (err: unknown) => ({ err }),
    );
    const outcome = await Promise.race([ran, deadline]);
    clearTimeout(timer);
    if (outcome === 'deadline') {
      timedOut += 1;
      lastTimeoutAt = now();
      const err = new CoalesceDeadlineError(deadlineMs);
      abort.abort(err);
      for (const w of batch) w.reject(err);
      return;
    }
    if ('err' in outcome) {
      if (isTimeout(outcome.err)) {
        timedOut += 1;
        lastTimeoutAt = now();
      }
      for (const w of batch) w.reject(outcome.err);
      return;
    }
    const { outputs } = outcome;
    if (outputs.length !== batch.length) {
      const err = new Error(`a batch of ${batch.length} came back with ${outputs.length} results`);
      for (const w of batch) w.reject(err);
      return;
    }
    lastSuccessAt = now();
    for (const [i, w] of batch.entries()) w.resolve(outputs[i] as O);
  }

  function stats(): CoalesceStats {
    const at = now();
    const oldestWaitingMs = queue.length > 0 ? at - (queue[0] as Waiting<I, O>).since : 0;
    let oldestInFlightMs = 0;
    for (const slot of inFlight) oldestInFlightMs = Math.max(oldestInFlightMs, at - slot.since);
    const recentTimeout = lastTimeoutAt > lastSuccessAt && at - lastTimeoutAt < deadlineMs;
    return {
      waiting: queue.length,
      inFlight: inFlight.size,
      oldestWaitingMs,
      oldestInFlightMs,
      timedOut,
      stalled: oldestWaitingMs > deadlineMs || recentTimeout,
    };
  }

  const call = (item: I) =>
    new Promise<O>((resolve, reject) => {
      if (queue.length >= maxWaiting) {
        reject(new CoalesceQueueFullError(maxWaiting));
        return;
      }
      queue.push({ item, since: now(), resolve, reject });
      schedule();
    });
  return Object.assign(call, { stats });
}
