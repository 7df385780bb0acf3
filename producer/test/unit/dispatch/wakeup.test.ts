import { describe, expect, test } from 'vitest';
import { createThrottle, createWakeSignal, type Timers } from '../../../src/dispatch/wakeup.js';

function fakeTimers() {
  let now = 0;
  const due: { at: number; fn: () => void; id: number }[] = [];
  let ids = 0;
  const timers: Timers = {
    now: () => now,
    setTimeout(fn, ms) {
      ids += 1;
      due.push({ at: now + ms, fn, id: ids });
      return ids;
    },
    clearTimeout(handle) {
      const i = due.findIndex((d) => d.id === handle);
      if (i >= 0) due.splice(i, 1);
    },
  };
  return {
    timers,
    advance(ms: number) {
      now += ms;
      for (const d of due.filter((x) => x.at <= now)) {
        due.splice(due.indexOf(d), 1);
        d.fn();
      }
    },
  };
}

describe('createThrottle', () => {
  test('the first trigger runs at once; a burst inside the interval becomes one trailing call', () => {
    const clock = fakeTimers();
    let calls = 0;
    const throttle = createThrottle(100, () => (calls += 1), clock.timers);
    throttle.trigger();
    expect(calls).toBe(1);
    for (let i = 0; i < 1_000; i += 1) throttle.trigger();
    expect(calls).toBe(1);
    clock.advance(99);
    expect(calls).toBe(1);
    clock.advance(1);
    expect(calls).toBe(2);
    clock.advance(1_000);
    expect(calls).toBe(2);
  });

  test('under a steady stream of creates, at most one call per interval', () => {
    const clock = fakeTimers();
    let calls = 0;
    const throttle = createThrottle(100, () => (calls += 1), clock.timers);
    for (let ms = 0; ms < 10_000; ms += 1) {
      throttle.trigger();
      clock.advance(1);
    }
    expect(calls).toBeGreaterThanOrEqual(99);
    expect(calls).toBeLessThanOrEqual(101);
  });

  test('cancel drops the trailing call', () => {
    const clock = fakeTimers();
    let calls = 0;
    const throttle = createThrottle(100, () => (calls += 1), clock.timers);
    throttle.trigger();
    throttle.trigger();
    throttle.cancel();
    clock.advance(500);
    expect(calls).toBe(1);
  });
});

describe('createWakeSignal', () => {
  test('a wake resolves the waiter at once', async () => {
    const signal = createWakeSignal();
    const waiting = signal.wait(60_000);
    signal.wake();
    await waiting;
  });

  test('a wake with nobody waiting is remembered once', async () => {
    const signal = createWakeSignal();
    signal.wake();
    signal.wake();
    await signal.wait(60_000);
    let woke = false;
    const next = signal.wait(60_000).then(() => {
      woke = true;
    });
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(woke).toBe(false);
    signal.wake();
    await next;
  });

  test('an abort ends the wait', async () => {
    const signal = createWakeSignal();
    const abort = new AbortController();
    const waiting = signal.wait(60_000, abort.signal);
    abort.abort();
    await waiting;
    await signal.wait(60_000, abort.signal);
  });
});
