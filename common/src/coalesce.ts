// Group commit for single requests: the calls that arrive together go to the database as one
// statement, so N concurrent requests cost one round trip and one commit instead of N.

export interface CoalesceOptions {
  /** The most items one call of `run` receives. */
  maxBatch: number;
  /**
   * Calls of `run` allowed in flight at once. Calls that arrive while all are busy wait and go out
   * together when one returns: under load, batches grow by themselves instead of queueing for
   * connections of the pool.
   */
  maxInFlight: number;
}

interface Waiting<I, O> {
  item: I;
  resolve: (output: O) => void;
  reject: (err: unknown) => void;
}

/**
 * Wraps `run` (items → one output per item, in the same order) into a function of one item. The calls
 * of one event-loop turn are gathered (a lone call waits for nothing but the end of the turn); a
 * failure of `run` rejects every call of its batch.
 */
export function coalesce<I, O>(
  run: (items: readonly I[]) => Promise<readonly O[]>,
  { maxBatch, maxInFlight }: CoalesceOptions,
): (item: I) => Promise<O> {
  let queue: Waiting<I, O>[] = [];
  let inFlight = 0;
  let scheduled = false;

  function schedule(): void {
    if (scheduled || queue.length === 0 || inFlight >= maxInFlight) return;
    scheduled = true;
    setImmediate(flush);
  }

  function flush(): void {
    scheduled = false;
    while (queue.length > 0 && inFlight < maxInFlight) {
      const batch = queue.slice(0, maxBatch);
      queue = queue.slice(maxBatch);
      inFlight += 1;
      send(batch).finally(() => {
        inFlight -= 1;
        schedule();
      });
    }
  }

  async function send(batch: Waiting<I, O>[]): Promise<void> {
    try {
      const outputs = await run(batch.map((w) => w.item));
      if (outputs.length !== batch.length) {
        throw new Error(`a batch of ${batch.length} came back with ${outputs.length} results`);
      }
      for (const [i, w] of batch.entries()) w.resolve(outputs[i] as O);
    } catch (err) {
      for (const w of batch) w.reject(err);
    }
  }

  return (item) =>
    new Promise<O>((resolve, reject) => {
      queue.push({ item, resolve, reject });
      schedule();
    });
}
