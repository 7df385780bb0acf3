import { afterEach, describe, expect, test, vi } from 'vitest';
import {
  CoalesceDeadlineError,
  type CoalesceOptions,
  CoalesceQueueFullError,
  coalesce,
} from '../../src/coalesce.js';

/** Bounds that the tests of batching never reach. */
const unbounded = (options: Pick<CoalesceOptions, 'maxBatch' | 'maxInFlight'>): CoalesceOptions => ({
  maxWaiting: 1_000_000,
  deadlineMs: 3_600_000,
  ...options,
});

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
    const one = coalesce(run, unbounded({ maxBatch: 100, maxInFlight: 4 }));
    const results = Promise.all([one(1), one(2), one(3)]);
    await nextTurn();
    expect(calls.map((c) => c.items)).toEqual([[1, 2, 3]]);
    calls[0]?.release();
    expect(await results).toEqual([10, 20, 30]);
  });

  test('a batch holds at most maxBatch items', async () => {
    const { calls, run } = controlledRun();
    const one = coalesce(run, unbounded({ maxBatch: 2, maxInFlight: 4 }));
    const results = Promise.all([1, 2, 3, 4, 5].map(one));
    await nextTurn();
    expect(calls.map((c) => c.items)).toEqual([[1, 2], [3, 4], [5]]);
    for (const c of calls) c.release();
    expect(await results).toEqual([10, 20, 30, 40, 50]);
  });

  test('while maxInFlight batches run, new calls wait and leave together when one returns', async () => {
    const { calls, run } = controlledRun();
    const one = coalesce(run, unbounded({ maxBatch: 100, maxInFlight: 1 }));
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
    const one = coalesce(run, unbounded({ maxBatch: 2, maxInFlight: 4 }));
    const failed = [one(1), one(2)].map((p) => p.catch((err: Error) => err.message));
    const ok = one(3);
    await nextTurn();
    calls[0]?.fail(new Error('connection lost'));
    calls[1]?.release();
    expect(await Promise.all(failed)).toEqual(['connection lost', 'connection lost']);
    expect(await ok).toBe(30);
  });

  test('a run that answers for the wrong number of items fails its batch instead of misassigning', async () => {
    const one = coalesce(
      async (items: readonly number[]) => items.slice(1),
      unbounded({ maxBatch: 10, maxInFlight: 1 }),
    );
    await expect(Promise.all([one(1), one(2)])).rejects.toThrow('a batch of 2 came back with 1 results');
  });
});

describe('coalesce bounds', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  /** A clock the test moves; the deadline's timer runs on vitest's fake timers in step with it. */
  function fakeClock() {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    let at = 0;
    return {
      now: () => at,
      async advance(ms: number) {
        at += ms;
        await vi.advanceTimersByTimeAsync(ms);
      },
    };
  }

  /** Like controlledRun, keeping each call's abort signal. */
  function signalledRun() {
    const calls: {
      items: readonly number[];
      signal: AbortSignal;
      release: () => void;
      fail: (e: Error) => void;
    }[] = [];
    const run = (items: readonly number[], signal: AbortSignal) =>
      new Promise<number[]>((resolve, reject) => {
        calls.push({ items, signal, release: () => resolve(items.map((i) => i * 10)), fail: reject });
      });
    return { calls, run };
  }

  test('a call beyond maxWaiting is refused at once; the waiting ones still get their answers', async () => {
    const { calls, run } = signalledRun();
    const one = coalesce(run, { maxBatch: 2, maxInFlight: 1, maxWaiting: 3, deadlineMs: 60_000 });
    const first = one(1);
    await nextTurn();
    const waiting = [one(2), one(3), one(4)];
    await expect(one(5)).rejects.toBeInstanceOf(CoalesceQueueFullError);
    expect(one.stats()).toMatchObject({ waiting: 3, inFlight: 1 });
    calls[0]?.release();
    expect(await first).toBe(10);
    await nextTurn();
    await nextTurn();
    // The queue has room again as soon as a batch takes calls out of it.
    const later = one(6);
    calls[1]?.release();
    await nextTurn();
    await nextTurn();
    calls[2]?.release();
    expect(await Promise.all([...waiting, later])).toEqual([20, 30, 40, 60]);
  });

  test('a batch that never settles fails at its deadline, is aborted and frees its slot', async () => {
    const clock = fakeClock();
    const { calls, run } = signalledRun();
    const one = coalesce(run, {
      maxBatch: 10,
      maxInFlight: 1,
      maxWaiting: 100,
      deadlineMs: 1_000,
      now: clock.now,
    });
    const stuck = [one(1), one(2)].map((p) => p.catch((err: unknown) => err));
    await nextTurn();
    const next = one(3);
    await nextTurn();
    // One slot, held by the stuck batch: the next call waits.
    expect(calls.map((c) => c.items)).toEqual([[1, 2]]);
    expect(one.stats()).toMatchObject({ waiting: 1, inFlight: 1, stalled: false });

    await clock.advance(999);
    expect(calls).toHaveLength(1);
    await clock.advance(1);
    for (const err of await Promise.all(stuck)) expect(err).toBeInstanceOf(CoalesceDeadlineError);
    expect(calls[0]?.signal.aborted).toBe(true);
    expect(calls[0]?.signal.reason).toBeInstanceOf(CoalesceDeadlineError);
    await nextTurn();
    await nextTurn();
    expect(calls.map((c) => c.items)).toEqual([[1, 2], [3]]);
    // It timed out and nothing has succeeded since: requests are not moving.
    expect(one.stats()).toMatchObject({ inFlight: 1, timedOut: 1, stalled: true });

    // The stuck batch answering late changes nothing for its callers; the next one goes through.
    calls[0]?.release();
    calls[1]?.release();
    expect(await next).toBe(30);
    await nextTurn();
    expect(one.stats()).toMatchObject({ waiting: 0, inFlight: 0, timedOut: 1, stalled: false });
  });

  test('stalled: a call waiting longer than the deadline, or a timeout with no success since, for one deadline', async () => {
    const clock = fakeClock();
    const { calls, run } = signalledRun();
    const timeout = Object.assign(new Error('canceling statement due to lock timeout'), { code: '55P03' });
    const one = coalesce(run, {
      maxBatch: 10,
      maxInFlight: 1,
      maxWaiting: 100,
      deadlineMs: 1_000,
      isTimeout: (err) => err === timeout,
      now: clock.now,
    });
    const failed = one(1).catch((err: unknown) => err);
    await nextTurn();
    calls[0]?.fail(timeout);
    expect(await failed).toBe(timeout);
    await nextTurn();
    expect(one.stats()).toMatchObject({ timedOut: 1, stalled: true });
    // With no request since, it is no longer evidence after one deadline: readiness recovers by itself.
    await clock.advance(1_000);
    expect(one.stats().stalled).toBe(false);

    // Another kind of failure is not a stall.
    const broken = one(2).catch((err: unknown) => err);
    await nextTurn();
    calls[1]?.fail(new Error('syntax error'));
    await broken;
    await nextTurn();
    expect(one.stats()).toMatchObject({ timedOut: 1, stalled: false });

    // A slot held (not yet past the deadline) while a call waits longer than a deadline.
    const holding = one(3);
    await nextTurn();
    const queued = one(4);
    await clock.advance(600);
    expect(one.stats()).toMatchObject({
      waiting: 1,
      oldestWaitingMs: 600,
      oldestInFlightMs: 600,
      stalled: false,
    });
    calls[2]?.release();
    await holding;
    await nextTurn();
    await nextTurn();
    await clock.advance(999);
    expect(one.stats()).toMatchObject({ waiting: 0, inFlight: 1, stalled: false });
    calls[3]?.release();
    expect(await queued).toBe(40);
  });
});
