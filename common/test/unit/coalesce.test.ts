import { describe, expect, test } from 'vitest';
import { coalesce } from '../../src/coalesce.js';

/** A `run` whose calls stay pending until the test releases them. */
function controlledRun() {
  const calls: { items: readonly number[]; release: () => void; fail: (err: Error) => void }[] = [];
  const run = (items: readonly number[]) =>
    new Promise<number[]>((resolve, reject) => {
      calls.push({ items, release: () => resolve(items.map((i) => i * 10)), fail: reject });
    });
  return { calls, run };
}

const nextTurn = () => new Promise((resolve) => setImmediate(resolve));

describe('coalesce', () => {
  test('the calls of one event-loop turn go out as one batch, each gets its own result', async () => {
    const { calls, run } = controlledRun();
    const one = coalesce(run, { maxBatch: 100, maxInFlight: 4 });
    const results = Promise.all([one(1), one(2), one(3)]);
    await nextTurn();
    expect(calls.map((c) => c.items)).toEqual([[1, 2, 3]]);
    calls[0]?.release();
    expect(await results).toEqual([10, 20, 30]);
  });

  test('a batch holds at most maxBatch items', async () => {
    const { calls, run } = controlledRun();
    const one = coalesce(run, { maxBatch: 2, maxInFlight: 4 });
    const results = Promise.all([1, 2, 3, 4, 5].map(one));
    await nextTurn();
    expect(calls.map((c) => c.items)).toEqual([[1, 2], [3, 4], [5]]);
    for (const c of calls) c.release();
    expect(await results).toEqual([10, 20, 30, 40, 50]);
  });

  test('while maxInFlight batches run, new calls wait and leave together when one returns', async () => {
    const { calls, run } = controlledRun();
    const one = coalesce(run, { maxBatch: 100, maxInFlight: 1 });
    const first = one(1);
    await nextTurn();
    const later = [one(2), one(3)];
    await nextTurn();
    const more = one(4);
    await nextTurn();
    expect(calls.map((c) => c.items)).toEqual([[1]]);
    calls[0]?.release();
    expect(await first).toBe(10);
    // The slot frees once the first batch has settled every caller, a turn after `first` resolves.
    await nextTurn();
    await nextTurn();
    expect(calls.map((c) => c.items)).toEqual([[1], [2, 3, 4]]);
    calls[1]?.release();
    expect(await Promise.all([...later, more])).toEqual([20, 30, 40]);
  });

  test('a failed batch rejects its own calls only', async () => {
    const { calls, run } = controlledRun();
    const one = coalesce(run, { maxBatch: 2, maxInFlight: 4 });
    const failed = [one(1), one(2)].map((p) => p.catch((err: Error) => err.message));
    const ok = one(3);
    await nextTurn();
    calls[0]?.fail(new Error('connection lost'));
    calls[1]?.release();
    expect(await Promise.all(failed)).toEqual(['connection lost', 'connection lost']);
    expect(await ok).toBe(30);
  });

  test('a run that answers for the wrong number of items fails its batch instead of misassigning', async () => {
    const one = coalesce(async (items: readonly number[]) => items.slice(1), {
      maxBatch: 10,
      maxInFlight: 1,
    });
    await expect(Promise.all([one(1), one(2)])).rejects.toThrow('a batch of 2 came back with 1 results');
  });
});
